"""ASGI scopes and message recorders for in-process tests of ASGI code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
from starlette.types import Scope

__all__ = ["StalledClient", "http_scope", "websocket_scope"]


def http_scope(
    method: str = "GET",
    path: str = "/",
    *,
    headers: Iterable[tuple[str, str]] = (),
    query_string: bytes = b"",
    state: dict[str, Any] | None = None,
    **extra: Any,
) -> Scope:
    """An HTTP/1.1 scope as uvicorn builds it; ``extra`` keys override or add entries."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    if state is not None:
        scope["state"] = state
    scope.update(extra)
    return scope


def websocket_scope(path: str = "/", **extra: Any) -> Scope:
    """A WebSocket scope (for checking that HTTP-only apps refuse it)."""
    scope = http_scope("GET", path, **extra)
    scope["type"] = "websocket"
    scope["scheme"] = "ws"
    scope.pop("method")
    return scope


class StalledClient:
    """An ASGI client that sends ``first`` (more body announced) and then nothing ever again,
    without disconnecting (a slow loris, a vanished peer); ``taken`` is set once the app has
    received ``first``, and ``sent`` records every message the app sends."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.taken = anyio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.taken.is_set():
            self.taken.set()
            return {"type": "http.request", "body": self.first, "more_body": True}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
