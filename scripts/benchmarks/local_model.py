"""The embedded model (`LIVE_LLM=local`) in process: load, first token, tokens/s, a closed
stream's return, and a server's memory with every embedded engine. Reported, never a target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from .harness import live_server, summary, tree_rss_mb

QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Can you recommend a good book for the weekend?",
    "What should I cook for dinner tonight?",
    "Why is the sky blue?",
)


async def local_model_bench(args: argparse.Namespace, results: dict[str, Any] | None = None) -> int:
    """The embedded model (`LIVE_LLM=local`), in process: load time, first token and tokens/s
    over short spoken questions (the system prompt cached after the first, as in a
    conversation), how soon a closed stream returns, and the resident memory of a server with
    every embedded engine loaded (reported, not targets: issue 29 sets them on voice-to-voice
    latency)."""
    from live_server.engines import ChatMessage, Outcome
    from live_server.engines.llm.local import LocalLLM
    from live_server.settings import DEFAULT_SYSTEM_PROMPT, Settings

    defaults = Settings(data_dir=Path("."))  # the server's own: threads, context, slots
    t0 = time.perf_counter()
    llm = LocalLLM(
        model=None,
        threads=defaults.local_threads,
        context=defaults.local_context,
        slots=defaults.local_slots,
    )
    load_s = time.perf_counter() - t0
    first, rates, closes = [], [], []
    system: ChatMessage = {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    for i in range(max(1, args.utterances) * len(QUESTIONS)):
        question: ChatMessage = {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}
        outcome, t0 = Outcome(), time.perf_counter()
        t_first, n = None, 0
        async for _ in llm.stream([system, question], None, outcome):
            t_first = t_first or time.perf_counter() - t0
            n += 1
        total = time.perf_counter() - t0
        if t_first is not None:
            first.append(t_first)
            if n > 1:
                rates.append((n - 1) / (total - t_first))
        stream = llm.stream([system, {"role": "user", "content": "Tell me a long story."}])
        await anext(stream)
        t0 = time.perf_counter()
        await stream.aclose()
        closes.append(time.perf_counter() - t0)
    await llm.aclose()

    data_dir = tempfile.mkdtemp(prefix="live-bench-")
    server = live_server({"LIVE_LLM": "local"}, data_dir)  # Whisper, Silero and Piper too
    await server.wait_ready()
    rss = tree_rss_mb(server.proc.pid)
    server.stop()
    out = {
        "load_s": round(load_s, 3),
        "first_token_s": summary(first),
        "tokens_per_s": summary(rates),
        "close_to_return_s": summary(closes),
        "server_rss_mb_every_engine": round(rss),
    }
    threads = f"{defaults.local_threads} thread{'s' if defaults.local_threads > 1 else ''}"
    print(f"\nembedded model (SmolLM2-135M-Instruct, {threads}), in process:")
    print(
        f"  load {load_s:.2f} s; first token p50 {out['first_token_s']['p50'] * 1000:.0f} ms, "
        f"p90 {statistics.quantiles(first, n=10)[-1] * 1000:.0f} ms; "
        f"{out['tokens_per_s']['p50']:.0f} tokens/s; a closed stream returns in "
        f"{out['close_to_return_s']['p50'] * 1000:.1f} ms"
    )
    print(f"  server with every embedded engine loaded: {rss:.0f} MB resident")
    if results is not None:
        results["local"] = out
    else:
        Path(args.json).write_text(json.dumps({"local": out}, indent=2))
    return 0
