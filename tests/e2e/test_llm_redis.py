"""Chat completion streams across two gateway instances sharing a real redis-server: a reader
on instance B keeps A's generation alive and resumes it with ``Last-Event-ID``; a stop sent
to B ends the generation running on A; nobody reading anywhere cancels it after the grace
period; one generation is read in three surfaces at once, on both instances. The upstream is
the fake OpenAI-compatible process, which observes its requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from tests._support.procs import ServerProcess, uvicorn_process

from ._llm import APP, GRACE, UpstreamControl, gateway_env, read_stream, sse_events, text_of

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

MESSAGES: Any = [{"role": "user", "content": "say the tokens"}]


def tokens(n: int) -> str:
    return "".join(f"tok{i}" if i == 0 else f" tok{i}" for i in range(n))


@pytest.fixture
def instances(
    upstream_proc: ServerProcess, redis_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = gateway_env(
        upstream_proc.url, MIANZHANG_LOG_BACKEND="redis", MIANZHANG_REDIS_URL=redis_url
    )
    with (
        uvicorn_process(APP, factory=True, env=env) as a,
        uvicorn_process(APP, factory=True, env=env) as b,
    ):
        yield a, b


def start_and_read(
    server: ServerProcess, body: dict[str, Any], until_tokens: int
) -> tuple[str, list[Any]]:
    """POST a streamed chat completion to ``server``, read until ``until_tokens`` tokens came,
    then drop the connection; the stream id and the events seen."""
    seen: list[Any] = []
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        stream_id = r.headers["x-stream-id"]
        for event in sse_events(r):
            seen.append(event)
            if text_of(seen).count("tok") >= until_tokens:
                break
    return stream_id, seen


def test_a_reader_on_b_keeps_a_generation_alive_and_resumes_it_exactly(
    instances: tuple[ServerProcess, ServerProcess], upstream: UpstreamControl
) -> None:
    a, b = instances
    # 40 tokens, 80 ms apart: the generation outlives the grace period several times over
    upstream.plan({"tokens": 40, "token_delay": 0.08})
    body = {"model": "fake", "messages": MESSAGES, "stream": True}  # not background
    stream_id, first = start_and_read(a, body, 3)
    rest = read_stream(f"{b.url}/v1/streams/{stream_id}", last_event_id=first[-1].id)
    assert rest[-1].data == "[DONE]"
    whole = read_stream(f"{a.url}/v1/streams/{stream_id}")
    assert [e.data for e in first + rest] == [e.data for e in whole]  # no gap, no duplicate
    assert [e.id for e in first + rest] == [e.id for e in whole]
    assert text_of(first + rest) == tokens(40)
    [request] = upstream.requests()
    assert request["completed"] is True and request["disconnected_at"] is None


def test_a_stop_sent_to_b_ends_the_generation_running_on_a(
    instances: tuple[ServerProcess, ServerProcess], upstream: UpstreamControl
) -> None:
    a, b = instances
    upstream.plan({"tokens": 600, "token_delay": 0.1})
    body = {"model": "fake", "messages": MESSAGES, "stream": True, "background": True}
    seen: list[Any] = []
    stopped_at: float | None = None
    with httpx.stream("POST", f"{a.url}/v1/chat/completions", json=body, timeout=30) as r:
        stream_id = r.headers["x-stream-id"]
        for event in sse_events(r):  # keeps reading on A until the stream ends
            seen.append(event)
            if stopped_at is None and text_of(seen).count("tok") == 2:
                stopped_at = time.time()
                stop = httpx.post(f"{b.url}/v1/streams/{stream_id}/cancel", timeout=30)
                assert stop.status_code == 200 and stop.json()["cancelled"] is True
    assert stopped_at is not None
    assert seen[-1].data == "[DONE]"
    error = orjson.loads(seen[-2].data)["error"]
    assert error["code"] == "cancelled" and "stopped" in error["message"]
    request = upstream.wait_for(lambda rs: rs[-1]["disconnected_at"] is not None)[-1]
    # B asks through the log; A's runner checks every 0.5 s (the default poll interval)
    assert request["disconnected_at"] - stopped_at <= 0.5 + 1.0
    info = httpx.get(f"{b.url}/v1/streams/{stream_id}/info").json()
    assert info["state"] == "cancelled"


def test_nobody_reading_on_any_instance_cancels_after_the_grace_period(
    instances: tuple[ServerProcess, ServerProcess], upstream: UpstreamControl
) -> None:
    a, b = instances
    upstream.plan({"tokens": 600, "token_delay": 0.1})
    body = {"model": "fake", "messages": MESSAGES, "stream": True}
    stream_id, _ = start_and_read(a, body, 2)
    closed_at = time.time()
    request = upstream.wait_for(
        lambda rs: rs[-1]["disconnected_at"] is not None, timeout=GRACE + 10
    )[-1]
    assert GRACE - 0.1 <= request["disconnected_at"] - closed_at <= GRACE + 1.0
    replay = read_stream(f"{b.url}/v1/streams/{stream_id}")
    assert replay[-1].data == "[DONE]"
    assert "abandoned" in orjson.loads(replay[-2].data)["error"]["message"]


def surface_text(events: list[Any]) -> str:
    """The answer text of a stream in any of the three surfaces."""
    out = []
    for e in events:
        if e.data == "[DONE]":
            continue
        body = orjson.loads(e.data)
        if e.event == "message":
            out += [c["delta"].get("content") or "" for c in body.get("choices") or []]
        elif e.event == "content":
            out.append(body["text"])
        elif e.event == "response.output_text.delta":
            out.append(body["delta"])
    return "".join(out)


def test_one_generation_is_watched_in_three_shapes_at_once_on_two_instances(
    instances: tuple[ServerProcess, ServerProcess], upstream: UpstreamControl
) -> None:
    a, b = instances
    upstream.plan({"tokens": 20, "token_delay": 0.03})
    body = {"model": "fake", "messages": MESSAGES}
    created = httpx.post(f"{a.url}/v1/llm/generations", json=body, timeout=30)
    assert created.status_code == 201
    stream_id = created.json()["stream_id"]
    urls = [
        f"{a.url}/v1/streams/{stream_id}",  # its home surface: native
        f"{b.url}/v1/streams/{stream_id}?format=chat",
        f"{b.url}/v1/streams/{stream_id}?format=responses",
    ]
    with ThreadPoolExecutor(3) as pool:
        native, chat, responses = pool.map(read_stream, urls)
    assert native[-1].event == "complete"
    assert chat[-1].data == "[DONE]"
    assert responses[-1].event == "response.completed"
    assert surface_text(native) == surface_text(chat) == surface_text(responses) == tokens(20)
    # resume in the middle of a group (response.output_item.added ... first delta) on A
    middle = next(i for i, e in enumerate(responses) if "." in e.id)
    rest = read_stream(urls[2].replace(b.url, a.url), last_event_id=responses[middle].id)
    assert [e.data for e in rest] == [e.data for e in responses[middle + 1 :]]
