"""In-process cost of one generation's way through the log, per token: producer -> log ->
one reader -> SSE bytes, with no network and no upstream waiting.

This isolates what the canonical log changed (encoding at read time instead of at write time)
from the noise of a loaded machine: each run streams ``--generations`` generations of
``--tokens`` OpenAI upstream chunks (passed through by the chat surface) or built chunks (the
demo provider's), each read by one reader, sequentially, on a memory log, and reports the CPU
time per token (minimum and median of ``--repeat`` runs: on a shared machine the minimum is the
least disturbed; compare both trees in the same session, alternating).

It runs on this tree and on the tree before canonical logs (commit 388df06: the wire format
was written to the log), whichever ``mianzhang`` is importable::

    PYTHONPATH=src:. python bench/llm_encoding.py
    PYTHONPATH=/tmp/old/src:. python bench/llm_encoding.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from _common import raw_chunk
from mianzhang.llm import ChatRequest, Chunk, Gateway, ModelEntry, ModelRegistry, Usage
from mianzhang.llm._openai import parse_chunk
from mianzhang.log import MemoryEventLog, StreamState

REQUEST = ChatRequest(messages=[{"role": "user", "content": "benchmark prompt"}])


def token(i: int) -> str | None:
    """The ``i``-th token (``None``: the role chunk before them)."""
    return None if i < 0 else f" tok{i}"


class InstantProvider:
    """``tokens`` chunks at once: OpenAI upstream chunks (``raw``) or built ones."""

    kind = "openai"

    def __init__(self, tokens: int, raw: bool) -> None:
        self.tokens = tokens
        self.raw = raw
        self.chunks = [parse_chunk(raw_chunk(token(i))) for i in range(-1, tokens)]

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        if self.raw:
            for chunk in self.chunks:
                yield chunk
        else:
            for i in range(self.tokens):
                yield Chunk(text=f" tok{i}")
        yield Chunk(finish_reason="stop", usage=Usage(3, self.tokens))

    async def aclose(self) -> None:
        return None


def new_tree() -> bool:
    try:
        import mianzhang.llm._reader  # noqa: F401
    except ImportError:
        return False
    return True


async def one_generation(log: MemoryEventLog, gateway: Gateway, sid: str, surface: str) -> int:
    """Run one generation with one reader; the bytes the reader got."""
    generation = gateway.start("bench", REQUEST)
    if new_tree():
        from mianzhang.llm import SURFACES, surface_events
        from mianzhang.llm._service import PreparedStream
        from mianzhang.log.serve import StreamHost

        options: dict[str, Any] = {"include_usage": False} if surface == "chat" else {}
        prepared = PreparedStream(sid, generation, surface, False, options)
        host = StreamHost(log)
        await log.create(sid, meta=prepared.meta())
        await host.start(sid, prepared.entries(), background=True, closing=prepared.closing)
        reader: AsyncIterator[Any] = surface_events(log, sid, SURFACES[surface])
    else:
        host, reader = await _old_pipeline(log, generation, sid, surface)
    total = 0
    async for item in reader:
        total += len(item) if isinstance(item, bytes) else len(item.encode())
    await host.aclose()
    return total


async def _old_pipeline(
    log: MemoryEventLog, generation: Any, sid: str, surface: str
) -> tuple[Any, AsyncIterator[Any]]:
    from mianzhang.llm import ChatChunkEncoder, NativeEncoder, ResponsesEncoder
    from mianzhang.llm._service import LLMService, PreparedStream
    from mianzhang.llm._streams import (  # type: ignore[attr-defined]
        ChatFormat,
        NativeFormat,
        ResponsesFormat,
    )
    from mianzhang.log.serve import StreamHost, log_events

    model, created = generation.model, generation.created
    fmt: Any
    if surface == "chat":
        fmt = ChatFormat(ChatChunkEncoder(completion_id=sid, model=model, created=created))
    elif surface == "responses":
        encoder = ResponsesEncoder(response_id=sid, model=model, created=created, background=False)
        fmt = ResponsesFormat(encoder)
    else:
        native = NativeEncoder(  # type: ignore[call-arg]
            stream_id=sid,
            model=model,
            provider="openai",
            description="",
            timings=generation.timings,
        )
        fmt = NativeFormat(native)
    prepared = PreparedStream(sid, generation, fmt, False, surface)  # type: ignore[arg-type]
    host = StreamHost(log)
    await log.create(sid, meta=prepared.meta())
    await host.start(sid, LLMService.producer(log, prepared), background=True)  # type: ignore[attr-defined]
    return host, log_events(log, sid)


async def run(args: argparse.Namespace, surface: str, raw: bool) -> float:
    """CPU seconds per token (one run)."""
    provider = InstantProvider(args.tokens, raw)
    registry = ModelRegistry([ModelEntry("bench", provider, "fake-up")], default_model="bench")
    gateway = Gateway(registry)
    async with MemoryEventLog(ttl_after_close=0) as log:
        start = time.process_time()
        for i in range(args.generations):
            await one_generation(log, gateway, f"s{i}", surface)
            info = await log.info(f"s{i}")
            assert info is None or info.state is not StreamState.OPEN
        cpu = time.process_time() - start
    return cpu / (args.generations * args.tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, Any] = {"tree": "canonical" if new_tree() else "before (388df06)"}
    for surface, raw in (("chat", True), ("chat", False), ("responses", False), ("native", False)):
        samples = [asyncio.run(run(args, surface, raw)) for _ in range(args.repeat)]
        name = f"{surface}{'-upstream-chunks' if raw else ''}"
        results[name] = {
            "us_per_token_min": round(min(samples) * 1e6, 2),
            "us_per_token_median": round(statistics.median(samples) * 1e6, 2),
        }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
