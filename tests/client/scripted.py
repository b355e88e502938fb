"""A scripted ``httpx.MockTransport`` for client unit tests: one step per request.

A step is an exception (raised when connecting), or ``Stream(...)``: a response whose body is
the given chunks, optionally followed by an exception raised mid-body. After the last step every
request gets 204 (so a stream that keeps reconnecting ends instead of looping).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx

SSE = {"content-type": "text/event-stream"}


@dataclass
class Stream:
    chunks: list[bytes] = field(default_factory=list)
    error: Exception | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: dict(SSE))


Step = Exception | Stream


@dataclass
class Script:
    steps: list[Step]
    requests: list[httpx.Request] = field(default_factory=list)
    responses: list[httpx.Response] = field(default_factory=list)

    @property
    def all_closed(self) -> bool:
        """Every response handed to the client was closed by it (read to the end or not)."""
        return all(r.is_closed for r in self.responses)

    def _step(self, request: httpx.Request) -> Stream:
        self.requests.append(request)
        index = len(self.requests) - 1
        step = self.steps[index] if index < len(self.steps) else Stream(status=204, headers={})
        if isinstance(step, Exception):
            raise step
        return step

    def async_handler(self, request: httpx.Request) -> httpx.Response:
        step = self._step(request)

        async def body() -> AsyncIterator[bytes]:
            for chunk in step.chunks:
                yield chunk
            if step.error is not None:
                raise step.error

        response = httpx.Response(step.status, headers=step.headers, content=body())
        self.responses.append(response)
        return response

    def sync_handler(self, request: httpx.Request) -> httpx.Response:
        step = self._step(request)

        def body() -> Iterator[bytes]:
            yield from step.chunks
            if step.error is not None:
                raise step.error

        response = httpx.Response(step.status, headers=step.headers, content=body())
        self.responses.append(response)
        return response

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.async_handler))

    def sync_client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.sync_handler))

    def last_ids(self) -> list[bytes | None]:
        """The raw ``Last-Event-ID`` of each request (``None``: header absent)."""
        return [
            {k.lower(): v for k, v in r.headers.raw}.get(b"last-event-id") for r in self.requests
        ]


class Sleeps:
    """An injected ``sleep`` that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    def sync(self, seconds: float) -> None:
        self.delays.append(seconds)
