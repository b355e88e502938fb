"""server/_lean.py: the SSE read routes answered without FastAPI's router give the answers the
FastAPI routes give (every case runs both ways: the app as built, and the same app with a
dependency override, which sends every request to FastAPI's routes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import mianzhang.server._lean as lean
from mianzhang._responses import SUPERVISOR_STATE_KEY
from mianzhang.auth import generate_api_key, hash_api_key
from mianzhang.server import Settings, create_app
from mianzhang.server._deps import get_settings
from tests._support.asgi import http_scope
from tests.channels._tokens import SECRET, grant, hs256
from tests.responses._peer import FakeClient, streaming

STREAMS = generate_api_key()
OTHER = generate_api_key()


@pytest.fixture(params=["lean", "fastapi"])
def client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    auth = {
        "api_keys": {
            "streams": {"digest": hash_api_key(STREAMS), "scopes": ["streams"]},
            "other": {"digest": hash_api_key(OTHER), "scopes": ["jobs"]},
        },
        "jwt_keys": [{"algorithm": "HS256", "key": SECRET}],
    }
    app = create_app(Settings(files={"enabled": False}, web=False, auth=auth))  # type: ignore[arg-type]
    answered: list[str] = []
    original = lean._answer

    async def counting(scope: Any, receive: Any) -> Any:
        answered.append(scope["path"])
        return await original(scope, receive)

    monkeypatch.setattr(lean, "_answer", counting)
    if request.param == "fastapi":
        app.dependency_overrides[get_settings] = get_settings  # changes nothing but the path
    with TestClient(app) as test_client:
        test_client.answered = answered  # type: ignore[attr-defined]
        test_client.lean = request.param == "lean"  # type: ignore[attr-defined]
        yield test_client
    # the lean path answered every read route request, or none of them
    assert bool(answered) == (request.param == "lean")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def subscriber_of(channel: str) -> dict[str, str]:
    return bearer(hs256(grant(channel)))


@pytest.mark.parametrize(
    ("path", "headers", "status", "kind"),
    [
        ("/v1/channels/news/events", {}, 401, "unauthorized"),
        ("/v1/channels/news/events", "other-channel", 403, "forbidden"),
        ("/v1/channels/news/events?history=maybe", "news", 400, "invalid_request"),
        ("/v1/channels/-bad/events", "-bad", 400, "invalid_request"),
        ("/v1/streams/nope", {}, 401, "unauthorized"),
        ("/v1/streams/nope", "other-key", 403, "forbidden"),
        ("/v1/streams/nope", "streams-key", 404, "not_found"),
    ],
)
def test_refusals_are_the_routes_json_before_any_stream(
    client: Any, path: str, headers: Any, status: int, kind: str
) -> None:
    if headers == "other-channel":
        headers = subscriber_of("sports")
    elif headers == "other-key":
        headers = bearer(OTHER)
    elif headers == "streams-key":
        headers = bearer(STREAMS)
    elif isinstance(headers, str):
        headers = subscriber_of(headers)
    got = client.get(path, headers=headers)
    assert got.status_code == status
    assert got.headers["content-type"] == "application/json"
    error = got.json()["error"]
    assert kind in (error.get("type"), error.get("code"))
    assert got.headers["x-request-id"]  # the app's middleware still wraps the answer


def test_a_subscriber_gets_the_event_stream_then_the_events(client: Any) -> None:
    async def subscribe() -> tuple[int, bytes, dict[bytes, bytes]]:
        peer = FakeClient()
        scope = http_scope(
            "GET",
            "/v1/channels/news/events",
            query_string=b"history=false",
            headers=list(subscriber_of("news").items()),
            state={SUPERVISOR_STATE_KEY: client.app.state.services.supervisor},
        )
        async with streaming(client.app, peer, scope):
            await peer.wait_for(lambda: bool(peer.messages))
            await client.app.state.services.channels.publish("news", "hello")
            await peer.wait_body(b"data: hello\n\n")
            peer.disconnect()
        return peer.start["status"], peer.body, dict(peer.headers)

    status, body, headers = client.portal.call(subscribe)
    assert status == 200
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"x-channel"] == b"news"
    assert body.endswith(b"data: hello\n\n")


def test_a_finished_stream_is_read_to_its_end_then_answers_204(client: Any) -> None:
    log = client.app.state.services.log
    client.portal.call(log.create, "done")
    first = client.portal.call(log.append, "done", "one")
    last = client.portal.call(log.append, "done", "two")
    client.portal.call(log.close, "done")
    got = client.get("/v1/streams/done", headers=bearer(STREAMS))
    assert got.status_code == 200
    assert got.text == f"id: {first}\ndata: one\n\nid: {last}\ndata: two\n\n"
    assert got.headers["x-stream-id"] == "done"
    again = client.get("/v1/streams/done", headers={**bearer(STREAMS), "Last-Event-ID": last})
    assert again.status_code == 204


def test_other_requests_go_to_fastapi(client: Any) -> None:
    client.answered.clear()
    assert client.get("/v1/streams/x/info", headers=bearer(STREAMS)).status_code == 404
    assert client.get("/v1/channels/news", headers=subscriber_of("news")).status_code == 200
    assert client.post("/v1/channels/news/events").status_code in (401, 405)
    assert client.answered == []
    client.get("/v1/streams/x", headers=bearer(STREAMS))  # (the fixture checks the path taken)


def test_an_unexpected_failure_is_the_routes_500_json_and_is_logged(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mianzhang.server.routes.channels as channels

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(channels, "subscribe", broken)
    monkeypatch.setattr(lean, "subscribe", broken)
    with caplog.at_level("ERROR", logger="mianzhang.server"):
        got = client.get("/v1/channels/news/events", headers=subscriber_of("news"))
    assert got.status_code == 500
    assert got.json() == {"error": {"type": "internal_error", "message": "internal server error"}}
    assert got.headers["x-request-id"]
    logged = [r for r in caplog.records if r.name == "mianzhang.server" and r.exc_info]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["a bug"]  # with its traceback
