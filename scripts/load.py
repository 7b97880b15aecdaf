"""Load: many live sockets doing text turns, one server process against two workers.

    .venv/bin/python scripts/load.py [--sockets 500,1000,2000] [--think-s 3.0] [--seconds 20]
                                     [--database sqlite|postgres] [--json load-results.json]

Each socket is one user of the API-key socket (`/api/v1/live/ws`) on a conversation of its
own: it sends a `text_input`, reads until the turn's `end`, thinks (uniformly 0.5 to 1.5 x
--think-s), and again. Three seconds is a brisk conversation (a spoken turn alone takes that
long); with it one process shows what was seen of it before there were workers: 500 sockets
held with a p99 of tens of milliseconds, 1,000 not. The model is the embedded echo at 0 ms a
token (about 30 deltas a turn), without voice (`LIVE_TTS=none`); turns are stored as always
(SQLite in the data dir, or a private PostgreSQL with --database postgres). The sockets are
driven by --clients processes of their own (one by default), each an asyncio protocol that
makes its handshake and its frames with the `websockets` library and reads the server's frames
itself: about 0.4 ms of CPU a turn with the kernel's part, against the server's 1.7 ms, and on
a 2-core machine taken from it. One process costs less a turn than two (0.4 ms against 0.6
at saturation): it finds more sockets ready at each wake-up, and the server shares the cores
with one process fewer. It needs under 0.4 of a core even at saturation.

Each configuration runs on a fresh server: 1 worker (`live-server serve`: the default, one
process, no Redis) and 2 workers (`serve --workers 2`, with a private Redis). For each and each
socket count, measured over the window after a warm-up:
  first delta     text_input -> first bot_delta_chunk, p50/p99 over the turns sent in it
  turns/s         turns ended in it, per second
  RSS per socket  the server's resident memory (all its processes) with the sockets open and
                  no turn run yet, less before they opened, per socket
and, with --saturation-sockets sockets and no think time, the turns/s each configuration
holds at saturation, in --saturation-rounds rounds that alternate the configurations.

Targets (exit 1 if missed): 2 workers at 1,000 sockets, first delta p99 <= 50 ms; 2 workers'
saturation turns/s >= 1.6 x one worker's (the median of the rounds' ratios); RSS per idle
socket < 50 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from benchmarks import load  # this folder: the bench's package
from benchmarks.load_clients import client_main


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    load.add_arguments(parser)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        await client_main(json.loads(args.client))
        return 0
    return await load.load_bench(args)


if __name__ == "__main__":
    if "--client" in sys.argv:  # uvloop: a client's CPU a frame is half the default loop's
        import uvloop

        sys.exit(uvloop.run(main()))
    sys.exit(asyncio.run(main()))
