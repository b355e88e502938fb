"""The ``mcp`` SDK's ``EventStore`` on mianzhang's event log: each MCP stream one log stream.

The SDK hands ``store_event`` a stream id that is only unique within one session (a request
id such as ``"1"``, or ``"_GET_stream"``) while one store serves every session: keyed by that
id alone, a resuming client could be replayed another session's events. Here every session has
a random *token*, taken from the request's context (set by the ASGI front, ``_mcp_front``),
and each MCP stream of the session is one log stream named by the token and a random id.

Guarantees:

* **Isolated.** Events of one session are never replayed to another: an event id names its
  session's token, and a replay is refused unless the token is the requesting session's.
* **Ordered, gap-free, shared.** An event id is ``"{token}.{stream}/{log id}"``; replaying
  after it follows the log stream (memory, or Redis shared by every instance) with no gap and
  no duplicate, and continues live until the request's response was sent.
* **Bounded.** A request's log stream is closed once its response is stored and expires
  ``ttl`` seconds later; a session's binding to its token expires ``session_ttl`` seconds
  after the session began; the per-process maps keep at most ``sessions`` entries each.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse, jsonrpc_message_adapter
from starlette.types import ASGIApp

from .._errors import ConfigError, StreamClosedError, StreamNotFound
from ..log import EventLog, LogEvent, Reset, parse_id

if TYPE_CHECKING:
    from ._mcp_front import McpFront

__all__ = ["LogEventStore", "Resumable", "SessionScope", "current_scope"]

_PRIMING = "priming"
_MESSAGE = "message"
_HEX = re.compile(r"[0-9a-f]{8,64}")
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class SessionScope:
    """The session a request belongs to, as the store sees it."""

    token: str


_scope: contextvars.ContextVar[SessionScope | None] = contextvars.ContextVar(
    "mianzhang_mcp_session", default=None
)
current_scope = _scope


@dataclass(frozen=True, slots=True)
class Resumable:
    """A validated ``Last-Event-ID``: the log stream to follow and where."""

    stream: str  # "{token}.{random}" (the log stream name without the store's prefix)
    after: str  # the log id of the last event the client has


def new_token() -> str:
    return secrets.token_hex(16)


def parse_event_id(value: str) -> tuple[str, Resumable] | None:
    """``"{token}.{random}/{epoch}-{seq}"`` -> ``(token, Resumable)``, else ``None``."""
    stream, slash, after = value.partition("/")
    token, dot, rest = stream.partition(".")
    if not slash or not dot or not _HEX.fullmatch(token) or not _HEX.fullmatch(rest):
        return None
    if parse_id(after) is None:
        return None
    return token, Resumable(stream, after)


class LogEventStore(EventStore):
    """An ``mcp`` ``EventStore`` on an :class:`~mianzhang.log.EventLog` (see the module).

    Plug it in with its ASGI front, which gives each request its session's scope and lets
    another instance sharing the log resume a session's streams::

        store = LogEventStore(RedisEventLog(url))
        app = store.asgi(mcp.streamable_http_app(event_store=store))

    ``store_event`` outside the front raises :class:`~mianzhang.ConfigError`.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        prefix: str = "mcp.",
        ttl: float = 600.0,
        session_ttl: float = 86_400.0,
        max_events: int | None = 10_000,
        sessions: int = 10_000,
    ) -> None:
        if not prefix or ttl < 0 or session_ttl < 0 or sessions < 1:
            raise ValueError("prefix must be non-empty, ttls >= 0 and sessions >= 1")
        self.log = log
        self.prefix = prefix
        self.ttl = ttl
        self.session_ttl = session_ttl
        self.max_events = max_events
        self._capacity = sessions
        self._tokens: OrderedDict[str, str] = OrderedDict()  # session id -> token (local)
        self._streams: OrderedDict[tuple[str, str], str] = OrderedDict()  # -> log stream

    # -- the SDK's EventStore ------------------------------------------------------------------
    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Append ``message`` (``None``: a priming event) to the MCP stream's log stream and
        return its event id; a request's log stream is closed once its response is stored."""
        scope = _scope.get()
        if scope is None:
            raise ConfigError(
                "LogEventStore needs its ASGI front: app = store.asgi(app), around the app "
                "that was given event_store=store"
            )
        key = (scope.token, stream_id)
        data = "" if message is None else message.model_dump_json(by_alias=True, exclude_unset=True)
        event = _PRIMING if message is None else _MESSAGE
        stream = self._streams.get(key) or await self._open(key)
        try:
            log_id = await self.log.append(self.prefix + stream, data, event=event)
        except StreamClosedError:  # a request id used again: a new stream
            stream = await self._open(key)
            log_id = await self.log.append(self.prefix + stream, data, event=event)
        if stream_id != GET_STREAM_KEY and isinstance(message, JSONRPCResponse | JSONRPCError):
            self._streams.pop(key, None)
            await self.log.close(self.prefix + stream)
        return f"{stream}/{log_id}"

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Send the events after ``last_event_id`` of the requesting session's stream, then
        follow it live until the request's response was sent. Returns ``None``: the stream was
        delivered whole from the log, there is nothing for the SDK to continue."""
        scope = _scope.get()
        parsed = parse_event_id(last_event_id)
        if scope is None or parsed is None or parsed[0] != scope.token:
            return None  # another session's id, or not ours: nothing (the front answered 404)
        async for event_id, message in self.follow(parsed[1]):
            await send_callback(EventMessage(message, event_id))
        return None

    def asgi(
        self,
        app: ASGIApp,
        *,
        security_settings: TransportSecuritySettings | None = None,
        resume_elsewhere: bool = True,
    ) -> McpFront:
        """``app`` behind the store's front (``_mcp_front``): session scopes, checked
        resumption, resumption of other instances' sessions from the log. Pass the
        ``transport_security`` the app was given; with ``resume_elsewhere=False`` a session is
        resumed only on the instance that holds it.

        The front runs before ``app``'s own middleware: if ``app`` authenticates requests,
        wrap the authenticated part instead, or another instance would serve a session's
        stream to anyone holding its session id and one of its event ids."""
        from ._mcp_front import McpFront

        return McpFront(
            app, self, security_settings=security_settings, resume_elsewhere=resume_elsewhere
        )

    # -- for the front -------------------------------------------------------------------------
    def local_token(self, session: str) -> str | None:
        """The token of a session this process serves, if it does."""
        return self._tokens.get(session)

    async def bind(self, session: str, token: str) -> None:
        """Record that ``session`` (just created here) owns ``token``: in this process, and in
        the log for the other instances (for ``session_ttl`` seconds)."""
        self._remember(self._tokens, session, token)
        record = f"{self.prefix}session.{session}"
        await self.log.create(record, ttl_after_close=self.session_ttl, max_events=1)
        await self.log.append(record, token)
        await self.log.close(record)

    async def forget(self, session: str) -> None:
        """The session was deleted: drop its binding here and end its standalone stream."""
        token = self._tokens.pop(session, None)
        stream = None if token is None else self._streams.pop((token, GET_STREAM_KEY), None)
        if stream is not None:
            await self.log.close(self.prefix + stream)

    async def resumable(self, last_event_id: str, session: str) -> Resumable | None:
        """``last_event_id`` if it names a stream of ``session`` whose events after it are
        still retained, else ``None``."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return None
        token, target = parsed
        if token != (self._tokens.get(session) or await self._remote_token(session)):
            return None
        try:
            reset, _ = await self.log.read(self.prefix + target.stream, target.after, limit=1)
        except StreamNotFound:
            return None
        return None if reset is not None else target

    async def follow(self, target: Resumable) -> AsyncIterator[tuple[str, JSONRPCMessage]]:
        """``(event id, message)`` after ``target.after``, live until the stream is closed
        (priming events skipped). Stops at a gap in the log (lost history)."""
        events = self.log.follow(self.prefix + target.stream, target.after)
        try:
            async for item in events:
                if isinstance(item, Reset):
                    return
                if item.event != _PRIMING:
                    yield f"{target.stream}/{item.id}", _message(item)
        finally:
            await events.aclose()

    # -- inside --------------------------------------------------------------------------------
    async def _open(self, key: tuple[str, str]) -> str:
        stream = f"{key[0]}.{secrets.token_hex(8)}"
        await self.log.create(
            self.prefix + stream, max_events=self.max_events, ttl_after_close=self.ttl
        )
        self._remember(self._streams, key, stream)
        return stream

    async def _remote_token(self, session: str) -> str | None:
        try:
            reset, events = await self.log.read(f"{self.prefix}session.{session}", limit=1)
        except StreamNotFound:
            return None
        return events[0].data if reset is None and events else None

    def _remember(self, entries: OrderedDict[_K, str], key: _K, value: str) -> None:
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self._capacity:
            entries.popitem(last=False)


def _message(event: LogEvent) -> JSONRPCMessage:
    message: JSONRPCMessage = jsonrpc_message_adapter.validate_json(event.data, by_name=False)
    return message
