"""The ASGI front of :class:`~._mcp_store.LogEventStore`: session scopes and resumption on any
instance.

Wrapped around an MCP streamable-HTTP app (``store.asgi(app)``), for every HTTP request:

* **Scope.** The request runs with its session's scope (``_mcp_store.current_scope``), so the
  store keeps sessions apart. A request without a session (the ``initialize`` that opens one)
  gets a fresh token; when the app answers it with an ``mcp-session-id``, the session is bound
  to that token, here and in the log, before the client can learn the id.
* **Resumption checked.** A ``GET`` with ``Last-Event-ID`` and a session id is answered 404
  (a JSON-RPC error, as the SDK answers an unknown session) unless the id names a stream of
  that session still retained in the log: the client then gives up instead of reconnecting
  to an empty stream forever.
* **Resumption anywhere.** If the session lives on another instance (its binding is in the
  shared log, not here), the front serves the stream itself from the log: the events after
  the id, then live ones as the other instance stores them, until the request's response.
  The origin's DNS-rebinding checks are applied (``security_settings``, as given to the app).
* **Deletion.** A ``DELETE`` the app accepted drops the session's binding here and ends its
  standalone stream in the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._responses import EventSourceResponse
from .._sse import ServerSentEvent
from ._mcp_store import LogEventStore, Resumable, SessionScope, current_scope, new_token

__all__ = ["McpFront"]

_NOT_FOUND = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32600, "message": "Not Found: unknown session or event id"},
}


class McpFront:
    """The ASGI wrapper (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        store: LogEventStore,
        *,
        security_settings: TransportSecuritySettings | None = None,
        resume_elsewhere: bool = True,
    ) -> None:
        self.app = app
        self.store = store
        self.security = TransportSecurityMiddleware(security_settings)
        self.resume_elsewhere = resume_elsewhere

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session = headers.get(MCP_SESSION_ID_HEADER)
        if session is None:
            token = new_token()
            await self._run(scope, receive, self._binding(send, token), token)
            return
        local = self.store.local_token(session)
        last_event_id = headers.get("last-event-id")
        if scope["method"] == "GET" and last_event_id:
            target = await self.store.resumable(last_event_id, session)
            if target is None:
                await JSONResponse(_NOT_FOUND, status_code=404)(scope, receive, send)
                return
            if local is None and self.resume_elsewhere:
                await self._resume(scope, receive, send, session, target)
                return
        if scope["method"] == "DELETE":
            send = self._forgetting(send, session)
        await self._run(scope, receive, send, local)

    async def _run(self, scope: Scope, receive: Receive, send: Send, token: str | None) -> None:
        reset = current_scope.set(None if token is None else SessionScope(token))
        try:
            await self.app(scope, receive, send)
        finally:
            current_scope.reset(reset)

    def _binding(self, send: Send, token: str) -> Send:
        """``send`` that binds the session the app creates to ``token`` before the client
        sees its id."""

        async def binding_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                session = Headers(raw=message["headers"]).get(MCP_SESSION_ID_HEADER)
                if session is not None:
                    await self.store.bind(session, token)
            await send(message)

        return binding_send

    def _forgetting(self, send: Send, session: str) -> Send:
        async def forgetting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                await self.store.forget(session)
            await send(message)

        return forgetting_send

    async def _resume(
        self, scope: Scope, receive: Receive, send: Send, session: str, target: Resumable
    ) -> None:
        """Serve another instance's session stream from the log (see the module docstring)."""
        refused = await self.security.validate_request(Request(scope, receive), is_post=False)
        if refused is not None:
            await refused(scope, receive, send)
            return
        headers = {"cache-control": "no-cache, no-transform", MCP_SESSION_ID_HEADER: session}
        response = EventSourceResponse(self._events(target), headers=headers)
        await response(scope, receive, send)

    async def _events(self, target: Resumable) -> AsyncIterator[ServerSentEvent]:
        async for event_id, message in self.store.follow(target):
            data = message.model_dump_json(by_alias=True, exclude_unset=True)
            yield ServerSentEvent(data, event="message", id=event_id)
