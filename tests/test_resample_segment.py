"""The streaming rate converter and segment assembly: pure code, table-tested."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from live_server.audio.resample import Resampler
from live_server.audio.segment import Segment
from live_server.errors import AudioError, ErrorCode, ProtocolError


def tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16)


def convert(x: np.ndarray, src: int, dst: int, parts: int = 1) -> np.ndarray:
    r = Resampler(src, dst)
    chunks = [r.feed(c) for c in np.array_split(x, parts)]
    return np.concatenate([*chunks, r.flush()])


@pytest.mark.parametrize("src", [8000, 16000, 22050, 44100, 48000])
def test_chunked_equals_whole_and_the_length_is_right(src):
    x = tone(440, src, 2.0)
    whole = convert(x, src, 16000)
    assert len(whole) == 32000
    assert np.array_equal(whole, convert(x, src, 16000, parts=137))


@pytest.mark.parametrize("src", [22050, 44100, 48000])
def test_a_tone_keeps_its_pitch_and_level(src):
    y = convert(tone(440, src), src, 16000).astype(np.float64)
    ref = tone(440, 16000).astype(np.float64)
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 0.005 * 10000


def test_what_the_new_rate_cannot_carry_is_filtered_not_aliased():
    for freq, max_rms in [(10000, 50), (20000, 50)]:
        y = convert(tone(freq, 48000), 48000, 16000)
        assert np.sqrt(np.mean(y[100:-100].astype(np.float64) ** 2)) < max_rms


def b64(samples: np.ndarray) -> str:
    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


def test_segment_checks_each_part_and_converts_it():
    seg = Segment("s", sample_rate=48000, target_rate=16000, max_seconds=1)
    out = seg.add(b64(tone(300, 48000, 0.5)))
    with pytest.raises(AudioError, match="base64"):
        seg.add("@@@@")
    with pytest.raises(AudioError, match="even"):
        seg.add(base64.b64encode(b"abc").decode())
    assert seg.seconds == 0.5  # the bad parts added nothing
    assert abs(len(out) + len(seg.close()) - 8000) <= 1
    assert seg.assemble_time > 0


def test_segment_refuses_audio_past_its_limit():
    seg = Segment("s", sample_rate=16000, target_rate=16000, max_seconds=1)
    seg.add(b64(np.zeros(16000, np.int16)))
    with pytest.raises(ProtocolError) as caught:
        seg.add(b64(np.zeros(2, np.int16)))
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED


@pytest.mark.parametrize(("rate", "n"), [(16000, 0), (22050, 1), (24000, 12345), (48000, 48000)])
def test_wav_writer_matches_libsndfile(rate: int, n: int) -> None:
    """Our 44-byte header is byte for byte what libsndfile writes, and reads back intact."""
    import io

    import soundfile

    from live_server.audio.convert import decode, pcm_to_wav

    samples = np.random.default_rng(n).integers(-32768, 32767, n, dtype=np.int16)
    ours = pcm_to_wav(samples, rate)
    theirs = io.BytesIO()
    soundfile.write(theirs, samples, rate, format="WAV", subtype="PCM_16")
    assert ours == theirs.getvalue()
    if n:
        back = decode(ours)
        assert back.sample_rate == rate and np.array_equal(back.samples, samples)
