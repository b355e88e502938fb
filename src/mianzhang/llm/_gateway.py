"""Running one generation: the model chain, retries, timeouts, usage and metrics.

:meth:`Gateway.start` resolves the model (``ModelNotFound`` is raised there, before anything
streams); :meth:`Generation.events` then yields ``Started``, the ``Token`` events and exactly
one ``Finished`` or ``Failed``, unless it is closed or cancelled first.

Guarantees
----------
* **Before the first token** an attempt that fails with a retryable error (408, 409, 429, 5xx,
  connection errors, timeouts, a stream broken off) is retried up to ``retry.max_retries``
  times with the openai client's backoff; then the model's fallbacks are tried in order, each
  with its own retries. Nothing a failed attempt produced is delivered (role-only chunks are
  held back until the first token). A 400, 413 or 422 (the request itself is bad) ends the
  chain at once.
* **After the first token** nothing is retried: a failure ends the events with ``Failed``
  (``partial=True``); what was delivered stays delivered.
* The wait for the first token is bounded by ``first_token_timeout`` per attempt and every
  later gap by ``stall_timeout``; both become :class:`UpstreamTimeout`.
* Closing the iterator or cancelling the task iterating it (a stop, an abandoned stream)
  closes the provider's iterator, so the upstream request is closed at once, also while
  waiting for the first chunk.
* Usage is the provider's when it reports one, otherwise counted (chunks with text, prompt
  estimated; ``estimated=True``). It is recorded in the metrics for every outcome, including
  failures and cancellations, and readable on :attr:`Generation.usage` at any time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

from .._errors import (
    LLMError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ._gateway_metrics import GenerationMetrics, error_type
from ._metrics import LLMMetrics
from ._registry import ModelEntry, ModelRegistry
from ._retry import RetryPolicy
from ._settings import LLMSettings
from ._stall import StallTimeout
from ._tokens import estimate_prompt_tokens
from ._types import (
    ChatRequest,
    Chunk,
    Failed,
    Finished,
    GenEvent,
    Started,
    Timings,
    Token,
    Usage,
)

__all__ = ["Gateway", "Generation", "GenerationState"]

GenerationState = Literal["pending", "running", "completed", "failed", "cancelled"]

_FINAL_STATUSES = frozenset({400, 413, 422})


class Gateway:
    """Starts generations against a :class:`ModelRegistry` (see the module docstring).

    ``clock`` (monotonic seconds) and ``sleep`` (the wait between retries) are the gateway's
    time policy, public so that tests and generations use the same ones."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        metrics: LLMMetrics | None = None,
        retry: RetryPolicy | None = None,
        first_token_timeout: float = 120.0,
        stall_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.retry = retry or RetryPolicy()
        self.first_token_timeout = first_token_timeout
        self.stall_timeout = stall_timeout
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def from_settings(
        cls, settings: LLMSettings, registry: ModelRegistry, metrics: LLMMetrics | None
    ) -> Gateway:
        return cls(
            registry,
            metrics=metrics,
            retry=RetryPolicy(
                max_retries=settings.max_retries,
                initial_delay=settings.retry_initial_delay,
                max_delay=settings.retry_max_delay,
            ),
            first_token_timeout=settings.first_token_timeout,
            stall_timeout=settings.stall_timeout,
        )

    def start(self, model: str | None, request: ChatRequest) -> Generation:
        """A generation of ``model`` (the default model if ``None``). Raises
        :class:`ModelNotFound` now, and the refusal of a provider that checks its requests
        (``_provider.RequestCheck``: the model asked for, not its fallbacks); nothing is sent
        upstream until ``events()`` is iterated."""
        name = model or self.registry.default_model
        chain = self.registry.chain(name)
        # duck-typed, not isinstance(.., RequestCheck): a runtime protocol check costs ~7 us
        check = getattr(chain[0].provider, "check_request", None)
        if check is not None:
            check(request)
        return Generation(self, name, chain, request)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """An upstream request that produced its first token: the chunks held back before it,
    the first chunk, and the iterator of the rest."""

    entry: ModelEntry
    chunks: AsyncIterator[Chunk]
    held: list[Chunk]
    first: Chunk


class Generation:
    """One generation; iterate :meth:`events` once.

    ``state``, ``usage``, ``output_tokens`` and :meth:`timings` are live. The reason of a
    cancellation (``cancel_reason``, a metrics label) is taken from the ``CancelledError``'s
    message (see :meth:`note_cancel`), or set before cancelling.
    """

    def __init__(
        self, gateway: Gateway, model: str, chain: list[ModelEntry], request: ChatRequest
    ) -> None:
        self.model = model
        self.request = request
        self.created = int(time.time())
        self.state: GenerationState = "pending"
        self.cancel_reason = "cancelled"
        self.output_tokens = 0
        self.entry: ModelEntry = chain[0]
        self.reported_usage: Usage | None = None
        self.error: LLMError | None = None
        self._gateway = gateway
        self._clock = gateway.clock
        self._chain = chain
        self._start = self._clock()
        self._first: float | None = None
        self._end: float | None = None
        self._prompt_estimate: int | None = None
        self._last_error: LLMError | None = None
        self._metrics = GenerationMetrics(gateway.metrics, model)

    @property
    def usage(self) -> Usage:
        """The provider's usage if it reported one, else counted so far (``estimated``)."""
        if self.reported_usage is not None:
            return self.reported_usage
        if self._prompt_estimate is None:
            self._prompt_estimate = estimate_prompt_tokens(self.request.messages)
        return Usage(self._prompt_estimate, self.output_tokens, estimated=True)

    def timings(self) -> Timings:
        end = self._end if self._end is not None else self._clock()
        first = None if self._first is None else self._first - self._start
        return Timings(first, end - self._start, self.usage.completion_tokens)

    def started(self) -> Started:
        """The ``Started`` event of this generation (first model of the chain)."""
        entry = self._chain[0]
        return Started(self.model, self.created, entry.kind, entry.description)

    async def events(self) -> AsyncGenerator[GenEvent, None]:
        """``Started``, then tokens, then ``Finished`` or ``Failed`` (see module docstring)."""
        if self.state != "pending":
            raise RuntimeError("Generation.events() can be iterated only once")
        self.state = "running"
        self._metrics.started()
        try:
            yield self.started()
            attempt = await self._open()
            if attempt is None:
                yield self._failed_before_output()
                return
            try:
                async with aclosing(self._stream(attempt)) as stream:
                    async for event in stream:
                        yield event
            finally:
                await _aclose(attempt.chunks)
        except BaseException as exc:
            if self.state == "running":
                self.state = "cancelled"
                self.note_cancel(exc)
            raise
        finally:
            self._finish_metrics()

    def note_cancel(self, exc: BaseException) -> None:
        """Take the reason of a cancellation (``asyncio.CancelledError("stopped")``, as the
        producer runner sends it) as :attr:`cancel_reason`."""
        if isinstance(exc, asyncio.CancelledError) and exc.args and isinstance(exc.args[0], str):
            self.cancel_reason = exc.args[0]

    # -- step 1: find a model of the chain that gives a first token --------------------------
    async def _open(self) -> _Attempt | None:
        """The first attempt of the chain that produced a first token, trying each model in
        order (with its retries); ``None`` once every model failed or one failed for good."""
        for index, entry in enumerate(self._chain):
            if index:
                self._metrics.fallback(entry)
            self.entry = entry
            attempt = await self._try_model(entry)
            if attempt is not None:
                return attempt
            last = self._last_error
            if isinstance(last, UpstreamStatusError) and last.status_code in _FINAL_STATUSES:
                return None
        return None

    async def _try_model(self, entry: ModelEntry) -> _Attempt | None:
        """Ask ``entry``'s provider, retrying retryable failures before the first token."""
        retry = self._gateway.retry
        retries = 0
        while True:
            self.reported_usage = None
            chunks = aiter(entry.provider.stream(entry.upstream_model, self.request))
            try:
                held, first = await self._first_token(chunks)
            except UpstreamError as exc:
                await _aclose(chunks)
                self._metrics.upstream_error(entry, exc)
                self._last_error = exc
                if not exc.retryable or retries >= retry.max_retries:
                    return None
                await self._gateway.sleep(retry.delay(retries, exc.retry_after))
                retries += 1
                self._metrics.retry(entry)
                continue
            except BaseException:
                await _aclose(chunks)
                raise
            return _Attempt(entry, chunks, held, first)

    async def _first_token(self, it: AsyncIterator[Chunk]) -> tuple[list[Chunk], Chunk]:
        """Chunks up to and including the first with output (or a finish reason)."""
        held: list[Chunk] = []
        limit = self._gateway.first_token_timeout
        deadline = self._clock() + limit
        while True:
            try:
                async with asyncio.timeout(max(deadline - self._clock(), 0.0)):
                    chunk = await anext(it)
            except TimeoutError:
                raise UpstreamTimeout(f"no first token within {limit:g} s") from None
            except StopAsyncIteration:
                raise UpstreamProtocolError("the upstream ended without any output") from None
            if chunk.usage is not None:
                self.reported_usage = chunk.usage
            if chunk.is_token or chunk.finish_reason is not None:
                return held, chunk
            held.append(chunk)

    def _failed_before_output(self) -> Failed:
        self.state = "failed"
        self.error = self._last_error
        self._end = self._clock()
        error = self._last_error or LLMError("no model could serve the request")
        return Failed(error, self.usage, self.timings(), partial=False)

    # -- step 2: stream the attempt's tokens, then how it ended -------------------------------
    async def _stream(self, attempt: _Attempt) -> AsyncGenerator[GenEvent, None]:
        self._first = first_at = self._clock()
        self._metrics.first_token(attempt.entry, first_at - self._start)
        elapsed = first_at - self._start
        for chunk in attempt.held:
            yield Token(chunk, elapsed)
        finish = attempt.first.finish_reason
        if attempt.first.text:
            self.output_tokens += 1
        yield Token(attempt.first, elapsed)
        stall = self._gateway.stall_timeout
        failure: LLMError | None = None
        chunks = attempt.chunks
        clock, start = self._clock, self._start
        try:
            async with StallTimeout(stall) as guard:
                while True:
                    guard.waiting()
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except UpstreamError as exc:
                        failure = exc
                        break
                    guard.arrived()
                    if chunk.usage is not None:
                        self.reported_usage = chunk.usage
                    if chunk.text:
                        self.output_tokens += 1
                    if chunk.finish_reason is not None:
                        finish = chunk.finish_reason
                    yield Token(chunk, clock() - start)
        except TimeoutError:
            failure = UpstreamTimeout(f"the upstream stalled for more than {stall:g} s")
        yield self._ended(attempt.entry, finish, failure)

    def _ended(self, entry: ModelEntry, finish: str | None, failure: LLMError | None) -> GenEvent:
        """``Finished``, or ``Failed`` after output (a stream without a finish reason is a
        protocol error)."""
        self._end = self._clock()
        if failure is None and finish is not None:
            self.state = "completed"
            return Finished(
                finish,
                self.usage,
                self.timings(),
                provider=entry.kind,
                upstream_model=entry.upstream_model,
                usage_reported=self.reported_usage is not None,
                completed_at=int(time.time()),
            )
        failure = failure or UpstreamProtocolError("the upstream ended without a finish reason")
        self._metrics.upstream_error(entry, failure)
        self.state = "failed"
        self.error = failure
        return Failed(failure, self.usage, self.timings(), partial=True)

    def _finish_metrics(self) -> None:
        if self._end is None:
            self._end = self._clock()
        self._metrics.ended(self, self._error_label())

    def _error_label(self) -> str:
        if self.state == "cancelled":
            return "cancelled"
        if self.state == "failed":
            return error_type(self.error) if self.error is not None else "failed"
        return ""


async def _aclose(it: AsyncIterator[Chunk]) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()
