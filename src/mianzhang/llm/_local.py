"""Provider for a transformers causal LM loaded from a local directory (extra ``local``).

The model and tokenizer are loaded on first use, in a worker thread, from ``path`` only
(``local_files_only=True``: nothing is downloaded). Each generation runs ``model.generate`` in
a worker thread; a streamer hands finished text pieces to the event loop with
``call_soon_threadsafe``.

Guarantees: closing the iterator (or cancelling the task iterating it) sets a stop flag that a
stopping criterion checks before every new token, and then *awaits* the worker thread, so no
generation outlives its iterator. ``max_concurrency`` generations run at once (others wait).
Usage is exact: prompt and completion tokens are counted with the model's tokenizer.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .._errors import UpstreamError
from ._types import ChatRequest, Chunk, Usage

__all__ = ["LocalProvider"]

_END = object()


class _Loaded:
    __slots__ = ("model", "tokenizer")

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer


def _module(name: str) -> Any:
    """``torch`` / ``transformers``, imported on first use (typed ``Any``: no stubs needed)."""
    return importlib.import_module(name)


def _load(path: str) -> _Loaded:
    transformers = _module("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    model.eval()
    return _Loaded(model, tokenizer)


def _prompt_ids(loaded: _Loaded, request: ChatRequest) -> Any:
    tokenizer = loaded.tokenizer
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=False
        )
    lines = [f"{m.get('role', 'user')}: {m.get('content', '')}" for m in request.messages]
    text = "\n".join([*lines, "assistant:"])
    return tokenizer(text, return_tensors="pt").input_ids


async def _settle(worker: asyncio.Future[int]) -> None:
    """Wait for the worker thread to end (shielded: it cannot be interrupted, only told to
    stop); an outcome nobody awaited is retrieved, never reported as unretrieved."""
    if not worker.done():
        await asyncio.shield(worker)
    elif not worker.cancelled():
        worker.exception()


class _Run:
    """One generation: ``work`` runs ``model.generate`` on a worker thread, its streamer puts
    each finished text piece on :attr:`queue` from that thread (``call_soon_threadsafe``),
    then ``_END``; a stopping criterion ends it once :attr:`stop` is set."""

    def __init__(self, loaded: _Loaded, request: ChatRequest, limit: int) -> None:
        self.loaded = loaded
        self.limit = limit
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.stop = threading.Event()
        self.input_ids = _prompt_ids(loaded, request)
        self.prompt_len = int(self.input_ids.shape[-1])
        self.sampling = request.params.get("temperature", 1.0) not in (0, 0.0)

    def _put(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _streamer(self) -> Any:
        run = self
        base: Any = _module("transformers").TextStreamer

        class _Streamer(base):  # type: ignore[misc]
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    run._put(text)

        return _Streamer(self.loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)

    def _stopping(self) -> Any:
        torch = _module("torch")
        transformers = _module("transformers")
        stop = self.stop
        base: Any = transformers.StoppingCriteria

        class _Stop(base):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        return transformers.StoppingCriteriaList([_Stop()])

    def work(self) -> int:
        """Generate (on a worker thread); the number of new tokens. Always ends the queue."""
        torch = _module("torch")
        eos = self.loaded.tokenizer.eos_token_id
        try:
            with torch.no_grad():
                output = self.loaded.model.generate(
                    self.input_ids,
                    attention_mask=torch.ones_like(self.input_ids),
                    max_new_tokens=self.limit,
                    do_sample=self.sampling,
                    streamer=self._streamer(),
                    stopping_criteria=self._stopping(),
                    pad_token_id=eos if eos is not None else 0,
                )
            return int(output.shape[-1]) - self.prompt_len
        finally:
            self._put(_END)

    async def texts(self) -> AsyncIterator[str]:
        """The text pieces, in order, until the worker ends."""
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            assert isinstance(item, str)
            yield item


class LocalProvider:
    """Generates with a local transformers model (see the module docstring)."""

    kind = "local"

    def __init__(
        self, path: str | Path, *, max_new_tokens: int = 256, max_concurrency: int = 1
    ) -> None:
        self.path = str(path)
        self.max_new_tokens = max_new_tokens
        self._loaded: _Loaded | None = None
        self._load_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_concurrency)

    async def _get(self) -> _Loaded:
        async with self._load_lock:
            if self._loaded is None:
                try:
                    self._loaded = await asyncio.to_thread(_load, self.path)
                except (OSError, ValueError, ImportError) as exc:
                    raise UpstreamError(
                        f"cannot load local model from {self.path!r}: {exc}", retryable=False
                    ) from exc
            return self._loaded

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        loaded = await self._get()
        async with self._slots:
            async for chunk in self._generate(loaded, request):
                yield chunk

    def _limit(self, request: ChatRequest) -> int:
        """New tokens allowed: ``max_new_tokens``, lowered by the request's ``max_tokens``."""
        if request.max_tokens is None:
            return self.max_new_tokens
        return min(self.max_new_tokens, max(request.max_tokens, 1))

    async def _generate(self, loaded: _Loaded, request: ChatRequest) -> AsyncIterator[Chunk]:
        run = _Run(loaded, request, self._limit(request))
        worker = asyncio.get_running_loop().run_in_executor(None, run.work)
        try:
            async for text in run.texts():
                yield Chunk(text=text)
            try:
                generated = await worker
            except Exception as exc:  # the model failed: translate at this boundary
                raise UpstreamError(f"local model failed: {exc}", retryable=False) from exc
            finish = "length" if generated >= run.limit else "stop"
            yield Chunk(finish_reason=finish, usage=Usage(run.prompt_len, generated))
        finally:
            run.stop.set()
            await _settle(worker)

    async def aclose(self) -> None:
        """Drop the loaded weights (the next generation loads them again)."""
        self._loaded = None
