"""Channel routes in-process (``TestClient``): publish bodies and their errors, idempotent
repeats, info with subscriber counts, and auth refusals, all JSON before any stream.

Streams themselves (which never end) are read from real uvicorn processes in
``tests/e2e/test_channels_*.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mianzhang.auth import generate_api_key, hash_api_key
from mianzhang.server import Settings, create_app
from tests.channels._tokens import SECRET, grant, hs256

PUBLISHER = generate_api_key()
SUBSCRIBER = generate_api_key()
CHANNELS = generate_api_key()


def _settings(**extra: object) -> Settings:
    return Settings(files={"enabled": False}, web=False, **extra)  # type: ignore[arg-type]


@pytest.fixture
def anon() -> Iterator[TestClient]:
    with TestClient(create_app(_settings(channels={"max_publish_bytes": 100}))) as client:
        yield client


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    auth = {
        "api_keys": {
            "pub": {"digest": hash_api_key(PUBLISHER), "scopes": ["channels:publish"]},
            "sub": {"digest": hash_api_key(SUBSCRIBER), "scopes": ["channels:subscribe"]},
            "all": {"digest": hash_api_key(CHANNELS), "scopes": ["channels"]},
        },
        "jwt_keys": [{"algorithm": "HS256", "key": SECRET}],
    }
    with TestClient(create_app(_settings(auth=auth))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- publish bodies --------------------------------------------------------------------------
def test_json_envelope_then_an_idempotent_repeat(anon: TestClient) -> None:
    body = {"data": {"n": 1}, "event": "note", "idempotency_key": "k-1"}
    first = anon.post("/v1/channels/news/publish", json=body)
    assert first.status_code == 201
    assert first.json() == {"channel": "news", "id": first.json()["id"], "duplicate": False}
    again = anon.post("/v1/channels/news/publish", json=body)
    assert again.status_code == 200
    assert again.json() == {"channel": "news", "id": first.json()["id"], "duplicate": True}
    assert anon.get("/v1/channels/news").json()["length"] == 1


def test_key_from_query_or_header_is_the_same_key(anon: TestClient) -> None:
    text = {"content-type": "text/plain"}
    first = anon.post("/v1/channels/news/publish?idempotency_key=k-2", content="hi", headers=text)
    again = anon.post(
        "/v1/channels/news/publish", content="hi", headers={**text, "Idempotency-Key": "k-2"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


def test_text_plain_is_the_data_with_event_from_the_query(anon: TestClient) -> None:
    got = anon.post(
        "/v1/channels/user/42/publish?event=alert",
        content="disk almost full",
        headers={"content-type": "text/plain; charset=utf-8"},
    )
    assert got.status_code == 201 and got.json()["channel"] == "user/42"
    info = anon.get("/v1/channels/user/42").json()
    assert info["last_id"] == got.json()["id"] and info["length"] == 1


@pytest.mark.parametrize(
    ("content", "content_type", "status", "needle"),
    [
        (b"{nope", "application/json", 400, "not JSON"),
        (b'{"dat": 1}', "application/json", 400, "data: Field required"),
        (b'{"data": 1, "extra": 2}', "application/json", 400, "extra"),
        (b'{"data": 1, "event": "a b"}', "application/json", 400, "invalid event type"),
        (b'{"data": 1, "idempotency_key": ""}', "application/json", 400, "idempotency key"),
        (b"\xff\xfe", "text/plain", 400, "UTF-8"),
        (b"<x/>", "application/xml", 415, "text/plain"),
        (b"x" * 101, "text/plain", 413, "100 bytes"),
    ],
)
def test_bad_publish_bodies_are_json_errors(
    anon: TestClient, content: bytes, content_type: str, status: int, needle: str
) -> None:
    got = anon.post(
        "/v1/channels/news/publish", content=content, headers={"content-type": content_type}
    )
    assert got.status_code == status, got.text
    assert got.headers["content-type"] == "application/json"
    assert needle in got.json()["error"]["message"]


def test_a_chunked_body_over_the_limit_is_413(anon: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 30

    got = anon.post(
        "/v1/channels/news/publish", content=chunks(), headers={"content-type": "text/plain"}
    )
    assert got.status_code == 413


def test_two_sources_that_disagree_are_refused(anon: TestClient) -> None:
    got = anon.post("/v1/channels/news/publish?event=b", json={"data": 1, "event": "a"})
    assert got.status_code == 400 and "event is given twice" in got.json()["error"]["message"]
    same = anon.post("/v1/channels/news/publish?event=a", json={"data": 1, "event": "a"})
    assert same.status_code == 201


@pytest.mark.parametrize("name", ["-dash-first", "sp%20ace", "x" * 201])
def test_bad_channel_names_are_400_everywhere(anon: TestClient, name: str) -> None:
    assert anon.post(f"/v1/channels/{name}/publish", json={"data": 1}).status_code == 400
    assert anon.get(f"/v1/channels/{name}/events").status_code == 400
    assert anon.get(f"/v1/channels/{name}").status_code == 400


def test_bad_history_is_400_before_the_stream(anon: TestClient) -> None:
    got = anon.get("/v1/channels/news/events?history=maybe")
    assert got.status_code == 400 and "history" in got.json()["error"]["message"]


def test_info_of_a_channel_nobody_used(anon: TestClient) -> None:
    assert anon.get("/v1/channels/quiet").json() == {
        "channel": "quiet",
        "subscribers": 0,
        "epoch": None,
        "last_id": None,
        "length": 0,
        "max_events": 1000,
        "created": None,
    }


# -- auth ------------------------------------------------------------------------------------
def test_publishing_needs_a_key_with_the_publish_scope(keyed: TestClient) -> None:
    url = "/v1/channels/news/publish"
    missing = keyed.post(url, json={"data": 1})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert keyed.post(url, json={"data": 1}, headers=bearer("mz_unknown")).status_code == 401
    wrong = keyed.post(url, json={"data": 1}, headers=bearer(SUBSCRIBER))
    assert wrong.status_code == 403 and "channels:publish" in wrong.json()["error"]["message"]
    token = hs256(grant("news"))  # a subscriber JWT is no publisher credential
    assert keyed.post(url, json={"data": 1}, headers=bearer(token)).status_code == 401
    assert keyed.post(url, json={"data": 1}, headers=bearer(PUBLISHER)).status_code == 201
    assert keyed.post(url, json={"data": 2}, headers=bearer(CHANNELS)).status_code == 201


def test_subscribing_refusals_are_json_before_the_stream(keyed: TestClient) -> None:
    url = "/v1/channels/news/events"
    cases = [
        ({}, 401),
        (bearer(PUBLISHER), 403),  # a key without channels:subscribe
        (bearer(hs256(grant("other"))), 403),
        (bearer(hs256(grant("news"), secret="w" * 40)), 401),
        ({"Cookie": f"mianzhang_token={hs256(grant('news', expires_in=-60))}"}, 401),
    ]
    for headers, status in cases:
        got = keyed.get(url, headers=headers)
        assert got.status_code == status, (headers, got.text)
        assert got.headers["content-type"] == "application/json"
        assert got.json()["error"]["message"]


def test_info_is_open_to_subscribers_and_publishers_of_the_channel(keyed: TestClient) -> None:
    url = "/v1/channels/news"
    assert keyed.get(url).status_code == 401
    assert keyed.get(url, headers=bearer(hs256(grant("news")))).status_code == 200
    assert keyed.get(url, headers=bearer(PUBLISHER)).status_code == 200
    assert keyed.get(url, headers=bearer(SUBSCRIBER)).status_code == 200
    refused = keyed.get(url, headers=bearer(hs256(grant("other"))))
    assert refused.status_code == 403 and "channel 'news'" in refused.json()["error"]["message"]
