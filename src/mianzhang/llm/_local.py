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

    async def _generate(self, loaded: _Loaded, request: ChatRequest) -> AsyncIterator[Chunk]:
        torch = _module("torch")
        transformers = _module("transformers")
        streamer_base: Any = transformers.TextStreamer
        criteria_base: Any = transformers.StoppingCriteria

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        limit = self.max_new_tokens
        if request.max_tokens is not None:
            limit = min(limit, max(request.max_tokens, 1))
        input_ids = _prompt_ids(loaded, request)
        prompt_len = int(input_ids.shape[-1])

        class _Streamer(streamer_base):  # type: ignore[misc]
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    loop.call_soon_threadsafe(queue.put_nowait, text)

        class _Stop(criteria_base):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        streamer = _Streamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
        eos = loaded.tokenizer.eos_token_id
        sampling = request.params.get("temperature", 1.0) not in (0, 0.0)

        def work() -> int:
            try:
                with torch.no_grad():
                    output = loaded.model.generate(
                        input_ids,
                        attention_mask=torch.ones_like(input_ids),
                        max_new_tokens=limit,
                        do_sample=sampling,
                        streamer=streamer,
                        stopping_criteria=transformers.StoppingCriteriaList([_Stop()]),
                        pad_token_id=eos if eos is not None else 0,
                    )
                return int(output.shape[-1]) - prompt_len
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        worker = loop.run_in_executor(None, work)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                assert isinstance(item, str)
                yield Chunk(text=item)
            try:
                generated = await worker
            except Exception as exc:  # the model failed: translate at this boundary
                raise UpstreamError(f"local model failed: {exc}", retryable=False) from exc
            finish = "length" if generated >= limit else "stop"
            yield Chunk(finish_reason=finish, usage=Usage(prompt_len, generated))
        finally:
            stop.set()
            if not worker.done():
                await asyncio.shield(worker)
            elif not worker.cancelled():
                worker.exception()  # retrieved: never "exception was never retrieved"

    async def aclose(self) -> None:
        """Drop the loaded weights (the next generation loads them again)."""
        self._loaded = None
