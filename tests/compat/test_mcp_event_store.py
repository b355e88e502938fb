"""``LogEventStore`` and its ASGI front, in process on a ``MemoryEventLog``: sessions kept
apart (the SDK's stream ids repeat across sessions), replay in order and to the end of the
request, priming events skipped, retention and foreign ids refused, the session bound when the
app answers with its id, resumption served from the log for another instance's session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage
from mcp_types import JSONRPCNotification, JSONRPCResponse
from starlette.types import Receive, Scope, Send

from mianzhang import ConfigError, SSEDecoder
from mianzhang.compat._mcp_store import SessionScope, current_scope
from mianzhang.compat.mcp import LogEventStore
from mianzhang.log import MemoryEventLog
from tests._support.asgi import http_scope
from tests.responses._peer import FakeClient, serve


def note(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"n": n})


def answer(request_id: int) -> JSONRPCResponse:
    return JSONRPCResponse(jsonrpc="2.0", id=request_id, result={"ok": True})


async def store_as(store: LogEventStore, token: str, stream: str, message: Any) -> str:
    reset = current_scope.set(SessionScope(token))
    try:
        return await store.store_event(stream, message)
    finally:
        current_scope.reset(reset)


async def replay_as(store: LogEventStore, token: str, last: str) -> list[EventMessage]:
    sent: list[EventMessage] = []

    async def collect(message: EventMessage) -> None:
        sent.append(message)

    reset = current_scope.set(SessionScope(token))
    try:
        assert await store.replay_events_after(last, collect) is None
    finally:
        current_scope.reset(reset)
    return sent


TOKEN_A, TOKEN_B = "a" * 32, "b" * 32


async def test_store_event_outside_the_front_is_a_config_error() -> None:
    store = LogEventStore(MemoryEventLog())
    with pytest.raises(ConfigError, match="asgi"):
        await store.store_event("1", note(1))


async def test_sessions_with_the_same_stream_id_are_kept_apart() -> None:
    store = LogEventStore(MemoryEventLog())
    first_a = await store_as(store, TOKEN_A, "1", None)  # priming
    first_b = await store_as(store, TOKEN_B, "1", None)
    for n in (1, 2):
        await store_as(store, TOKEN_A, "1", note(n))
        await store_as(store, TOKEN_B, "1", note(100 + n))
    await store_as(store, TOKEN_A, "1", answer(1))
    await store_as(store, TOKEN_B, "1", answer(1))
    assert first_a.startswith(TOKEN_A + ".") and first_b.startswith(TOKEN_B + ".")
    assert await replay_as(store, TOKEN_B, first_a) == []  # another session's id: nothing
    replayed = await replay_as(store, TOKEN_A, first_a)
    assert [m.message for m in replayed] == [note(1), note(2), answer(1)]
    assert all(m.event_id and m.event_id.startswith(TOKEN_A) for m in replayed)
    after_one = await replay_as(store, TOKEN_A, replayed[0].event_id or "")
    assert [m.message for m in after_one] == [note(2), answer(1)]


async def test_replay_follows_live_events_until_the_response() -> None:
    store = LogEventStore(MemoryEventLog())
    priming = await store_as(store, TOKEN_A, "7", None)
    replay = asyncio.create_task(replay_as(store, TOKEN_A, priming))
    await store_as(store, TOKEN_A, "7", note(1))
    await store_as(store, TOKEN_A, "7", answer(7))
    replayed = await asyncio.wait_for(replay, 5)
    assert [m.message for m in replayed] == [note(1), answer(7)]


async def test_a_request_id_used_again_gets_a_new_stream() -> None:
    store = LogEventStore(MemoryEventLog())
    old = await store_as(store, TOKEN_A, "1", note(1))
    await store_as(store, TOKEN_A, "1", answer(1))  # closes the request's log stream
    new = await store_as(store, TOKEN_A, "1", note(2))
    assert old.split("/")[0] != new.split("/")[0]
    assert [m.message for m in await replay_as(store, TOKEN_A, old)] == [answer(1)]


async def test_the_standalone_stream_stays_open_after_a_null_id_error() -> None:
    store = LogEventStore(MemoryEventLog())
    first = await store_as(store, TOKEN_A, GET_STREAM_KEY, note(1))
    await store_as(store, TOKEN_A, GET_STREAM_KEY, note(2))
    info = await store.log.info(store.prefix + first.split("/")[0])
    assert info is not None and info.state == "open"


async def test_resumable_checks_the_session_and_the_retention() -> None:
    log = MemoryEventLog()
    store = LogEventStore(log, max_events=2)
    await store.bind("session-a", TOKEN_A)
    ids = [await store_as(store, TOKEN_A, "1", note(n)) for n in range(5)]
    assert await store.resumable(ids[3], "session-a") is not None
    assert await store.resumable(ids[0], "session-a") is None  # trimmed: would have a gap
    assert await store.resumable(ids[3], "session-b") is None  # not that session's
    assert await store.resumable("garbage", "session-a") is None
    other_instance = LogEventStore(log, max_events=2)  # knows the session from the log only
    assert await other_instance.resumable(ids[3], "session-a") is not None


# -- the front ----------------------------------------------------------------------------------
def fake_mcp(store: LogEventStore, session: str) -> Any:
    """Plays the SDK: a request without a session opens ``session`` (stores a priming event
    and the response under request id "0", answers with the id); DELETE answers 200."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            await store.store_event("0", None)
            await store.store_event("0", answer(0))
            headers = [(b"mcp-session-id", session.encode())]
        else:
            headers = []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def get_with(session: str, last: str) -> Scope:
    return http_scope("GET", "/mcp", headers=[("mcp-session-id", session), ("last-event-id", last)])


async def test_the_front_binds_the_session_and_refuses_foreign_ids() -> None:
    log = MemoryEventLog()
    store = LogEventStore(log)
    front = store.asgi(fake_mcp(store, "s1"))
    await serve(front, FakeClient(), http_scope("POST", "/mcp"))
    token = store.local_token("s1")
    assert token is not None
    other = FakeClient()
    await serve(front, other, get_with("s2", f"{token}.{'c' * 16}/x-1"))
    assert other.start["status"] == 404 and b"Not Found" in other.body
    deleted = FakeClient()
    await serve(front, deleted, http_scope("DELETE", "/mcp", headers=[("mcp-session-id", "s1")]))
    assert store.local_token("s1") is None


async def test_another_instance_serves_the_resumption_from_the_log() -> None:
    log = MemoryEventLog()
    origin, elsewhere = LogEventStore(log), LogEventStore(log)
    await origin.bind("s1", TOKEN_A)
    priming = await store_as(origin, TOKEN_A, "3", None)
    await store_as(origin, TOKEN_A, "3", note(1))
    client = FakeClient()
    front = elsewhere.asgi(fake_mcp(elsewhere, "unused"))
    task = asyncio.create_task(serve(front, client, get_with("s1", priming)))
    await client.wait_body(b'"n":1')
    await store_as(origin, TOKEN_A, "3", answer(3))  # live, stored by the origin
    await asyncio.wait_for(task, 5)
    assert client.ended
    assert dict(client.headers)[b"mcp-session-id"] == b"s1"
    events = SSEDecoder().decode(client.body)
    assert [e.event for e in events] == ["message", "message"]
    assert all(e.id.startswith(TOKEN_A) for e in events)
    assert '"result":{"ok":true}' in events[1].data
