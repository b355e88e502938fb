"""The response to one upstream request, as its caller reads it: status, headers, and the
body streamed with ``async for`` from its :class:`~._upstream_connection.UpstreamConnection`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ._upstream_connection import UpstreamConnection

__all__ = ["UpstreamResponse"]


class UpstreamResponse:
    """Status, headers and the streamed body of one response; ``async for`` yields the body
    as it arrives (never empty chunks) and ends at its end.

    Always :meth:`aclose` it (in ``finally``): it hands the connection to ``release`` once
    (the pool's, which keeps a fully read keep-alive connection and closes any other). Reading
    raises :class:`UpstreamProtocolError` when the connection breaks off mid-body.
    """

    __slots__ = ("_conn", "_release", "_released", "headers", "status")

    def __init__(
        self, conn: UpstreamConnection, release: Callable[[UpstreamConnection], None]
    ) -> None:
        self._conn = conn
        self._release = release
        self._released = False
        self.status: int = conn.status
        self.headers: Mapping[str, str] = conn.headers  # names in lower case

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if self._released:
                raise StopAsyncIteration
            if conn.body:
                return conn.take_body()
            if conn.complete:
                raise StopAsyncIteration
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    @property
    def complete(self) -> bool:
        """Whether the whole body has been received (not necessarily read)."""
        return self._conn.complete

    async def aclose(self) -> None:
        """Give the connection back (fully read, keep-alive) or close it; idempotent."""
        if self._released:
            return
        self._released = True
        self._release(self._conn)
