"""The LLM gateway end to end: real uvicorn processes (mianzhang + a fake OpenAI-compatible
upstream), the official ``openai`` SDK and raw HTTP, disconnects observed by the upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from tests._support.procs import ServerProcess, uvicorn_process

from ._llm import (
    API_KEY,
    APP,
    GRACE,
    NARROW_KEY,
    UPSTREAM_KEY,
    UpstreamControl,
    gateway_env,
    read_stream,
    sse_events,
    text_of,
)

pytestmark = pytest.mark.e2e

TOKENS = 16
FULL_TEXT = "".join(f"tok{i}" if i == 0 else f" tok{i}" for i in range(TOKENS))
MESSAGES: Any = [{"role": "user", "content": "say the tokens"}]


@pytest.fixture(scope="module")
def upstream_env() -> dict[str, str]:
    return {"FAKE_TOKENS": str(TOKENS)}


@pytest.fixture(scope="module")
def gateway(upstream_proc: ServerProcess) -> Iterator[ServerProcess]:
    env = gateway_env(upstream_proc.url)
    with uvicorn_process(APP, factory=True, env=env) as p:
        yield p


def sdk(gateway: ServerProcess) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0)


@pytest.mark.parametrize("include_usage", [False, True])
async def test_official_sdk_streams_through_the_openai_provider(
    gateway: ServerProcess, upstream: UpstreamControl, include_usage: bool
) -> None:
    client = sdk(gateway)
    try:
        options: Any = {"include_usage": True} if include_usage else openai.NOT_GIVEN
        stream = await client.chat.completions.create(
            model="fake", messages=MESSAGES, stream=True, stream_options=options
        )
        chunks = [c async for c in stream]
    finally:
        await client.close()
    choice_chunks = [c for c in chunks if c.choices]
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in choice_chunks) == FULL_TEXT
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and not usage_chunks[0].choices
        assert usage_chunks[0].usage is not None
        assert usage_chunks[0].usage.completion_tokens == TOKENS
    else:
        assert usage_chunks == []
    [request] = upstream.requests()
    assert request["model"] == "fake-up"  # the configured upstream model name
    assert request["body"]["stream_options"] == {"include_usage": True}  # always asked


async def test_non_streaming_completion_and_models(gateway: ServerProcess) -> None:
    client = sdk(gateway)
    try:
        completion = await client.chat.completions.create(model="fake", messages=MESSAGES)
        models = await client.models.list()
    finally:
        await client.close()
    assert completion.choices[0].message.content == FULL_TEXT
    assert completion.usage is not None and completion.usage.completion_tokens == TOKENS
    by_id = {m.id: m for m in models.data}
    assert set(by_id) >= {"fake", "flaky", "demo"}
    assert by_id["demo"].owned_by == "mianzhang-demo"


def test_bad_requests_are_4xx_json_before_any_stream(gateway: ServerProcess) -> None:
    url = f"{gateway.url}/v1/chat/completions"
    r = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(url, json={"model": "no-such-model", "messages": MESSAGES, "stream": True})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(url, json={"model": "fake", "messages": [], "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


async def test_upstream_500_before_first_token_is_retried_and_answered(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"status": 500}, {"status": 503, "retry_after_ms": 50})
    client = sdk(gateway)
    try:
        stream = await client.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        await client.close()
    assert text == FULL_TEXT
    assert len(upstream.requests()) == 3


async def test_dead_upstream_falls_back_to_the_next_model(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    client = sdk(gateway)
    try:
        completion = await client.chat.completions.create(model="flaky", messages=MESSAGES)
    finally:
        await client.close()
    assert completion.choices[0].message.content == FULL_TEXT
    assert len(upstream.requests()) == 1


def test_upstream_dropping_mid_stream_gives_an_error_event_and_keeps_the_partial_text(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"drop_after": 5})
    body = {"model": "fake", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        stream_id = r.headers["x-stream-id"]
        events = list(sse_events(r))
    assert text_of(events) == "tok0 tok1 tok2 tok3 tok4"
    assert events[-1].data == "[DONE]"
    error = orjson.loads(events[-2].data)["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_protocol_error"
    assert len(upstream.requests()) == 1  # no retry after the first token
    # the partial answer and the error are kept in the log: a reader later sees the same
    replay = read_stream(f"{gateway.url}/v1/streams/{stream_id}")
    assert [e.data for e in replay] == [e.data for e in events]


def test_resume_on_a_second_connection_yields_exactly_the_same_tokens(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"token_delay": 0.03})
    body = {"model": "fake", "messages": MESSAGES, "stream": True, "background": True}
    first: list[Any] = []
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
        stream_id = r.headers["x-stream-id"]
        for event in sse_events(r):
            first.append(event)
            if text_of(first).count("tok") >= 4:
                break  # drop the connection mid-answer
    rest = read_stream(f"{gateway.url}/v1/streams/{stream_id}", last_event_id=first[-1].id)
    assert rest[-1].data == "[DONE]"
    whole = read_stream(f"{gateway.url}/v1/streams/{stream_id}")
    assert [e.data for e in first + rest] == [e.data for e in whole]
    assert text_of(first + rest) == FULL_TEXT


def _disconnected_within(upstream: UpstreamControl, closed_at: float) -> float:
    requests = upstream.wait_for(
        lambda rs: bool(rs) and rs[-1]["disconnected_at"] is not None, timeout=GRACE + 10
    )
    return float(requests[-1]["disconnected_at"]) - closed_at


def test_client_disconnect_closes_the_upstream_request_within_grace(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"token_delay": 0.1, "tokens": 600})
    body = {"model": "fake", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
        seen: list[Any] = []
        for event in sse_events(r):
            seen.append(event)
            if text_of(seen).count("tok") >= 2:
                break
    closed_at = time.time()
    stream_id = r.headers["x-stream-id"]
    # not before the grace period (a reader may come back), and at most 1 s after it
    assert GRACE - 0.1 <= _disconnected_within(upstream, closed_at) <= GRACE + 1.0
    assert upstream.requests()[-1]["completed"] is False
    # the log keeps what was generated, then says why it ended
    replay = read_stream(f"{gateway.url}/v1/streams/{stream_id}")
    assert replay[-1].data == "[DONE]"
    error = orjson.loads(replay[-2].data)["error"]
    assert error["code"] == "cancelled" and "abandoned" in error["message"]
    assert text_of(replay).startswith("tok0 tok1")


@pytest.mark.parametrize("wait", ["headers_delay", "ttft"])
def test_disconnect_while_waiting_for_the_first_chunk_closes_the_upstream_request(
    gateway: ServerProcess, upstream: UpstreamControl, wait: str
) -> None:
    upstream.plan({wait: 60})
    body = {"model": "fake", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        upstream.wait_for(lambda rs: len(rs) == 1)  # the upstream has the request
    closed_at = time.time()
    assert _disconnected_within(upstream, closed_at) <= GRACE + 1.0


def test_background_generation_runs_to_the_end_without_readers(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"token_delay": 0.05, "tokens": 40})
    body = {"model": "fake", "messages": MESSAGES, "stream": True, "background": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
        stream_id = r.headers["x-stream-id"]
    requests = upstream.wait_for(lambda rs: bool(rs) and rs[-1]["completed"], timeout=GRACE + 15)
    assert requests[-1]["disconnected_at"] is None
    events = read_stream(f"{gateway.url}/v1/streams/{stream_id}")
    assert events[-1].data == "[DONE]" and text_of(events).count("tok") == 40


def test_stop_cancels_the_upstream_request_and_ends_the_stream(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"token_delay": 0.1, "tokens": 600})
    body = {"model": "fake", "messages": MESSAGES, "stream": True, "background": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
        stream_id = r.headers["x-stream-id"]
        seen: list[Any] = []
        stopped_at: float | None = None
        for event in sse_events(r):
            seen.append(event)
            if stopped_at is None and text_of(seen).count("tok") == 2:
                stopped_at = time.time()
                response = httpx.post(f"{gateway.url}/v1/streams/{stream_id}/cancel")
                assert response.status_code == 200 and response.json()["cancelled"] is True
        # the stream ends after the stop: a cancelled error event, then [DONE]
    assert stopped_at is not None
    assert seen[-1].data == "[DONE]"
    error = orjson.loads(seen[-2].data)["error"]
    assert error["code"] == "cancelled" and "stopped" in error["message"]
    assert text_of(seen).count("tok") < 600
    assert _disconnected_within(upstream, stopped_at) <= 1.0
    # stopping again is refused: the stream has ended
    again = httpx.post(f"{gateway.url}/v1/streams/{stream_id}/cancel")
    assert again.status_code == 409


def test_non_streaming_request_abandoned_by_its_client_closes_the_upstream_request(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"ttft": 60})
    body = {"model": "fake", "messages": MESSAGES}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=1.0)
    closed_at = time.time()
    assert _disconnected_within(upstream, closed_at) <= 1.0


def test_chunks_are_openai_shaped_and_carry_no_usage_unless_asked(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    body = {"model": "fake", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-stream-id"].startswith("chatcmpl-")
        events = list(sse_events(r))
    assert events[-1].data == "[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all("usage" not in c for c in chunks)  # the gateway's own usage request is hidden
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    # every event has an id: the log's, for Last-Event-ID
    assert all(e.id for e in events)


async def test_sdk_sees_the_partial_answer_then_the_in_stream_error(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"drop_after": 3})
    client = sdk(gateway)
    text: list[str] = []
    try:
        stream = await client.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match="broke off"):
            async for chunk in stream:
                if chunk.choices:
                    text.append(chunk.choices[0].delta.content or "")
    finally:
        await client.close()
    assert "".join(text) == "tok0 tok1 tok2"


async def test_responses_api_on_an_upstream_completed_failed_mid_stream_and_before(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    client = sdk(gateway)
    try:
        done = await client.responses.create(model="fake", input="hello")
        upstream.plan({"drop_after": 3})
        stream = await client.responses.create(model="fake", input="hello", stream=True)
        broken = [e async for e in stream]
        upstream.plan({"status": 500}, {"status": 500}, {"status": 500})
        stream = await client.responses.create(model="fake", input="hello", stream=True)
        refused = [e async for e in stream]
    finally:
        await client.close()
    assert done.status == "completed" and done.output_text == FULL_TEXT
    assert done.usage is not None and done.usage.output_tokens == TOKENS
    # after output: the deltas stay, then `error`, then response.failed
    types = [e.type for e in broken]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-2:] == ["error", "response.failed"] or types[-5:][0] == "error"
    assert "".join(e.delta for e in broken if e.type == "response.output_text.delta") == (
        "tok0 tok1 tok2"
    )
    assert [e.sequence_number for e in broken] == list(range(len(broken)))
    failed = broken[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None
    # before any output (3 attempts, all 500): no `error` event, only response.failed
    assert [e.type for e in refused] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert refused[-1].response.error is not None
    assert refused[-1].response.error.code == "upstream_500"


def test_native_event_stream_for_the_ui(gateway: ServerProcess, upstream: UpstreamControl) -> None:
    upstream.plan({"tokens": 40})
    created = httpx.post(
        f"{gateway.url}/v1/llm/generations", json={"model": "fake", "messages": MESSAGES}
    )
    assert created.status_code == 201
    stream_id = created.json()["stream_id"]
    assert created.json()["stream_url"] == f"/v1/streams/{stream_id}"
    events = read_stream(f"{gateway.url}/v1/streams/{stream_id}")
    names = [e.event for e in events]
    assert names[0] == "start" and names[-1] == "complete"
    assert names.count("content") == 40 and names.count("progress") == 2  # every 16 tokens
    start = orjson.loads(events[0].data)
    assert start["stream_id"] == stream_id and start["provider"] == "openai"
    assert start["demo"] is False
    text = "".join(orjson.loads(e.data)["text"] for e in events if e.event == "content")
    assert text == "".join(f"tok{i}" if i == 0 else f" tok{i}" for i in range(40))
    complete = orjson.loads(events[-1].data)
    assert complete["finish_reason"] == "stop"
    assert complete["usage"]["completion_tokens"] == 40 and complete["usage"]["estimated"] is False
    timings = complete["timings"]
    assert (
        timings["time_to_first_token_ms"] > 0
        and timings["duration_ms"] >= (timings["time_to_first_token_ms"])
    )
    # a reader that has everything is told the stream is over (EventSource stops)
    done = httpx.get(
        f"{gateway.url}/v1/streams/{stream_id}", headers={"last-event-id": events[-1].id}
    )
    assert done.status_code == 204


def _scrape(gateway: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{gateway.url}/metrics").text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _sum(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (n, ls), value in samples.items()
        if n == name and all(dict(ls).get(k) == v for k, v in labels.items())
    )


def test_metrics_follow_the_genai_conventions_and_count_cut_short_streams(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    before = _scrape(gateway)
    # one completion after a retried 500, one stream stopped after 2 tokens
    upstream.plan({"status": 500}, {}, {"token_delay": 0.1, "tokens": 600})
    body = {"model": "fake", "messages": MESSAGES}
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30).is_success
    stream_body = {**body, "stream": True}
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=stream_body, timeout=30
    ) as r:
        stream_id = r.headers["x-stream-id"]
        seen: list[Any] = []
        for event in sse_events(r):
            seen.append(event)
            if text_of(seen).count("tok") == 2:
                break
    assert httpx.post(f"{gateway.url}/v1/streams/{stream_id}/cancel").status_code == 200
    after = _scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        return _sum(after, name, **labels) - _sum(before, name, **labels)

    model = {"gen_ai_request_model": "fake"}
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **model) == 2
    assert delta("gen_ai_server_time_per_output_token_seconds_count", **model) == 2
    # token usage: both generations, the stopped one too (at least its 2 tokens)
    output = {**model, "gen_ai_token_type": "output"}
    assert delta("gen_ai_client_token_usage_count", **output) == 2
    assert delta("gen_ai_client_token_usage_sum", **output) >= TOKENS + 2
    assert delta("gen_ai_client_token_usage_count", **model, gen_ai_token_type="input") == 2
    assert delta("mianzhang_llm_upstream_errors_total", **model, error_type="500") == 1
    assert delta("mianzhang_llm_retries_total", **model) == 1
    assert delta("mianzhang_llm_cancellations_total", **model, reason="stopped") == 1
    assert delta("gen_ai_client_operation_duration_seconds_count", **model) == 2
    assert _sum(after, "mianzhang_llm_active_generations", **model) == 0


def test_no_base_http_middleware_hides_disconnects() -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    from mianzhang.server import create_app, load_settings

    app = create_app(load_settings(files={"enabled": False}))
    assert not any(issubclass(m.cls, BaseHTTPMiddleware) for m in app.user_middleware)  # type: ignore[arg-type]


async def test_keys_are_checked_before_any_stream_or_upstream_request(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    wrong = AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="mz_wrong", max_retries=0)
    narrow = AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=NARROW_KEY, max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError):
            await wrong.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
        with pytest.raises(openai.PermissionDeniedError):
            await narrow.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
    finally:
        await wrong.close()
        await narrow.close()
    assert upstream.requests() == []


def test_the_upstream_gets_its_key_from_env_over_one_pooled_connection(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    body = {"model": "fake", "messages": MESSAGES}
    for _ in range(3):
        r = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 200
    requests = upstream.requests()
    assert [q["authorization"] for q in requests] == [f"Bearer {UPSTREAM_KEY}"] * 3
    assert len({q["client_port"] for q in requests}) == 1  # one keep-alive connection reused


async def test_usage_is_counted_when_the_upstream_reports_none(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"usage": False})
    client = sdk(gateway)
    try:
        stream = await client.chat.completions.create(
            model="fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    finally:
        await client.close()
    [usage] = [c.usage for c in chunks if c.usage is not None]
    assert usage.completion_tokens == TOKENS  # one token per chunk with text
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + TOKENS


async def test_a_dropped_responses_stream_without_background_is_cancelled_after_grace(
    gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"token_delay": 0.1, "tokens": 600})
    client = sdk(gateway)
    try:
        stream = await client.responses.create(model="fake", input="hello", stream=True)
        seen: list[Any] = []
        async for event in stream:
            seen.append(event)
            if event.type == "response.output_text.delta":
                break
        await stream.close()
        closed_at = time.time()
        assert GRACE - 0.1 <= _disconnected_within(upstream, closed_at) <= GRACE + 1.0
        response_id = seen[0].response.id
        final = await client.responses.retrieve(response_id)
        events = [e async for e in await client.responses.retrieve(response_id, stream=True)]
    finally:
        await client.close()
    assert final.status == "cancelled"
    assert events[-1].type == "response.failed" and events[-1].response.status == "cancelled"
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.fixture(scope="module")
def strict_gateway(upstream_proc: ServerProcess) -> Iterator[ServerProcess]:
    """A gateway with short upstream timeouts: 1 s to the first token, 1 s between tokens."""
    env = gateway_env(
        upstream_proc.url,
        MIANZHANG_LLM__FIRST_TOKEN_TIMEOUT="1",
        MIANZHANG_LLM__STALL_TIMEOUT="1",
    )
    with uvicorn_process(APP, factory=True, env=env) as p:
        yield p


def test_an_upstream_stalling_mid_stream_is_cut_by_the_stall_timeout(
    strict_gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"stall_after": 3, "stall": 30})
    body = {"model": "fake", "messages": MESSAGES, "stream": True}
    url = f"{strict_gateway.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=30) as r:
        events = list(sse_events(r))
    assert text_of(events) == "tok0 tok1 tok2"
    assert events[-1].data == "[DONE]"
    assert orjson.loads(events[-2].data)["error"]["code"] == "upstream_timeout"
    [request] = upstream.wait_for(lambda rs: rs[-1]["disconnected_at"] is not None)
    assert request["completed"] is False  # the gateway closed the stalled request


def test_an_upstream_without_a_first_token_is_retried_then_answered_504(
    strict_gateway: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"ttft": 30}, {"ttft": 30}, {"ttft": 30})
    body = {"model": "fake", "messages": MESSAGES}
    r = httpx.post(f"{strict_gateway.url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    requests = upstream.wait_for(
        lambda rs: len(rs) == 3 and all(q["disconnected_at"] is not None for q in rs)
    )
    assert all(q["tokens_sent"] == 0 for q in requests)
