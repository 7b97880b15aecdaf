"""A recording as Live API voice frames, one JSON object per line (for websocat):
`live-server voice-lines FILE [--stamp S] [--chunk-ms 100] [--vad-server]`.

Reads any file libsndfile can (WAV, FLAC, OGG, MP3), mixes it to mono 16-bit PCM at its own
rate, and gives start_speaking (with that sample_rate), the speaking_part frames and
end_speaking. With `vad_server` (for a socket opened with `vad=server&sample_rate=RATE`) only
speaking_part frames, with a second of silence after the speech: the server hears where the
turn ends.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import soundfile


def voice_lines(path: str, stamp: str, chunk_ms: int, vad_server: bool = False) -> list[str]:
    samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
    mono = samples.mean(axis=1).astype("<i2")
    if vad_server:
        mono = np.concatenate([mono, np.zeros(rate, dtype="<i2")])
    step = max(1, rate * chunk_ms // 1000)
    parts: list[dict[str, object]] = []
    for i in range(0, len(mono), step):
        data = base64.b64encode(np.ascontiguousarray(mono[i : i + step]).tobytes()).decode()
        parts.append({"t": "speaking_part", "data": data})
    if not vad_server:
        start = {"t": "start_speaking", "stamp": stamp, "sample_rate": rate}
        parts = [start, *parts, {"t": "end_speaking", "stamp": stamp}]
    return [json.dumps(f) for f in parts]
