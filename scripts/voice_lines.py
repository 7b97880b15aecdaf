"""Turn a recording into Live API voice frames, one JSON object per line (for websocat).

    python scripts/voice_lines.py speech.wav [--stamp S] [--chunk-ms 100] > speech.jsonl

Reads any file libsndfile can (WAV, FLAC, OGG, MP3), mixes it to mono 16-bit PCM at its own
rate, and prints start_speaking (with that sample_rate), the speaking_part frames and
end_speaking.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys

import numpy as np
import soundfile


def voice_lines(path: str, stamp: str, chunk_ms: int) -> list[str]:
    samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
    mono = samples.mean(axis=1).astype("<i2")
    step = max(1, rate * chunk_ms // 1000)
    frames: list[dict[str, object]] = [{"t": "start_speaking", "stamp": stamp, "sample_rate": rate}]
    for i in range(0, len(mono), step):
        data = base64.b64encode(np.ascontiguousarray(mono[i : i + step]).tobytes()).decode()
        frames.append({"t": "speaking_part", "data": data})
    frames.append({"t": "end_speaking", "stamp": stamp})
    return [json.dumps(f) for f in frames]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--stamp", default="seg-1")
    parser.add_argument("--chunk-ms", type=int, default=100)
    args = parser.parse_args()
    sys.stdout.write("\n".join(voice_lines(args.path, args.stamp, args.chunk_ms)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
