"""``POST /v1/messages`` served like every generation (in process): the caller's token budget,
a stop through the generic stream route (an ``event: error`` ends the stream), failures
before and after the first token with Anthropic's statuses, ``x-api-key`` auth, and a
generation of another API read in the ``anthropic`` surface."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mianzhang import SSEDecoder
from mianzhang.auth import generate_api_key, hash_api_key
from mianzhang.server import Settings, create_app

KEY = generate_api_key()


def make_client(**settings: Any) -> TestClient:
    values: dict[str, Any] = {"files": {"enabled": False}, "web": False, **settings}
    return TestClient(create_app(Settings(**values)))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with make_client() as http:
        yield http


def ask(text: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": "scripted",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


def script(*steps: dict[str, Any], delay: float = 0.0) -> str:
    return json.dumps({"script": list(steps), "delay": delay})


def test_the_token_budget_counts_messages() -> None:
    with make_client(limits={"llm_tokens_per_minute": 20}) as http:
        body = {**ask("hi"), "model": "demo"}
        first = http.post("/v1/messages", json=body)
        assert first.status_code == 200
        assert sum(first.json()["usage"].values()) > 20  # overdraws the window
        refused = http.post("/v1/messages", json={**body, "stream": True})
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert refused.json()["error"]["type"] == "rate_limit_error"


def test_a_stop_through_the_stream_route_ends_the_stream_with_an_error_event(
    client: TestClient,
) -> None:
    slow = script({"words": " ".join(["word"] * 200)}, delay=0.05)
    with client.stream("POST", "/v1/messages", json=ask(slow, stream=True)) as response:
        message_id = response.headers["x-stream-id"]
        decoder = SSEDecoder()
        events: list[Any] = []
        stopped = False
        for raw in response.iter_raw():
            events += decoder.decode(raw)
            if not stopped and any(e.event == "content_block_delta" for e in events):
                assert client.post(f"/v1/streams/{message_id}/cancel").status_code == 200
                stopped = True
    assert stopped and len(events) < 150  # far fewer than the 200 words asked for
    assert events[-1].event == "error"
    error = json.loads(events[-1].data)
    assert error == {
        "type": "error",
        "error": {"type": "cancelled_error", "message": "the generation was cancelled (stopped)"},
    }
    info = client.get(f"/v1/streams/{message_id}/info").json()
    assert info["meta"]["kind"] == "llm.anthropic" and info["state"] != "open"


@pytest.mark.parametrize(
    ("steps", "status", "error_type"),
    [
        ([{"error": {"status": 429, "retryable": False}}], 429, "rate_limit_error"),
        ([{"error": {"status": 401}}], 502, "api_error"),  # the upstream's key: not the caller's
        ([{"words": "half"}, {"error": {"status": 529}}], 529, "overloaded_error"),
        ([{"words": "half"}, {"error": {"kind": "timeout"}}], 504, "timeout_error"),
    ],
)
def test_failures_of_a_message_that_is_not_streamed(
    client: TestClient, steps: list[dict[str, Any]], status: int, error_type: str
) -> None:
    refused = client.post("/v1/messages", json=ask(script(*steps)))
    assert refused.status_code == status
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == error_type


def test_x_api_key_is_the_api_key() -> None:
    keys = {"a": {"digest": hash_api_key(KEY), "scopes": ["llm"]}}
    with make_client(auth={"api_keys": keys}) as http:
        assert http.post("/v1/messages", json=ask("hi"), headers={"x-api-key": KEY}).is_success
        for headers in ({}, {"x-api-key": "mz_wrong"}):
            refused = http.post("/v1/messages", json=ask("hi"), headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
        counted = http.post(
            "/v1/messages/count_tokens",
            json={"model": "scripted", "messages": ask("hi")["messages"]},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        assert counted.json()["input_tokens"] > 0


def test_a_chat_generation_reads_in_the_anthropic_surface(client: TestClient) -> None:
    body = {
        "model": "scripted",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "background": True,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as started:
        stream_id = started.headers["x-stream-id"]
        started.read()
    read = client.get(f"/v1/streams/{stream_id}", params={"format": "anthropic"})
    events = SSEDecoder().decode(read.content)
    assert [e.event for e in events][:2] == ["message_start", "ping"]
    assert events[-1].event == "message_stop"
    text = "".join(
        json.loads(e.data)["delta"]["text"] for e in events if e.event == "content_block_delta"
    )
    assert text == 'turn 1: you said "hello"'
    start = json.loads(events[0].data)["message"]
    assert start["id"] == f"msg_{stream_id}" and start["model"] == "scripted"
