"""The whole server on a Redis Cluster (issue 15, item 4): two real ``mianzhang serve``
processes on ``redis+cluster://`` (the 6-node cluster the tests start: 3 masters, 3 replicas),
with the job queue and the rate limiter on it too:

* a channel published on A reaches a subscriber on B, in order, once each;
* a generation started on A is resumed on B after its last event id, with no gap or repeat;
* a job submitted on B runs on a worker and finishes, its progress read on A;
* a per-key request limit is shared by both instances (the window lives in the cluster);
* a chat created on A (``/v1/chats``) is listed on B; an AI SDK turn (``POST /v1/ui/chat``)
  started on A and dropped after a few chunks is resumed on B after its last event id, with
  no gap or repeat; B then has the answer saved in the chat, lists it, and deletes it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from mianzhang import ServerSentEvent
from mianzhang.auth import hash_api_key
from mianzhang.client import connect
from tests._support.procs import RedisClusterProcesses, ServerProcess, serve_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

KEY = "mz_cluster-limited-key"
LIMIT = 30  # requests per minute, per caller
DEMO = {"provider": "demo", "ttft": 0.05, "token_delay": 0.02, "tokens": 60}
SUMMARIZE = {
    "type": "summarize",
    "input": {"text": "\n\n".join(f"Part {i} has words. " * 3 for i in range(3)), "model": "demo"},
}


@pytest.fixture
def pair(redis_cluster_server: RedisClusterProcesses) -> Iterator[list[ServerProcess]]:
    url = redis_cluster_server.url
    assert url.startswith("redis+cluster://")
    keys = {"limited": {"digest": hash_api_key(KEY), "scopes": ["llm"]}}
    env = {
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": url,
        "MIANZHANG_REDIS_PREFIX": "cl:",  # the session's cluster is shared: own keys
        "MIANZHANG_JOBS__QUEUE": "redis",
        "MIANZHANG_LIMITS__REQUESTS_PER_MINUTE": str(LIMIT),
        "MIANZHANG_AUTH__API_KEYS": json.dumps(keys),
        "MIANZHANG_AUTH__ANONYMOUS": "true",
        "MIANZHANG_LLM__MODELS": json.dumps({"demo": DEMO}),
        "MIANZHANG_LLM__DEFAULT_MODEL": "demo",
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
    }
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(serve_process(env=env)) for _ in range(2)]


async def read_until(url: str, stop: Any, **options: Any) -> list[ServerSentEvent]:
    """The events of one connection up to the first that ``stop`` accepts (bounded)."""
    got: list[ServerSentEvent] = []
    async with connect(url, max_reconnects=0, read_timeout=30, **options) as stream:
        async for event in stream:
            got.append(event)
            if stop(event):
                break
    return got


def text_of(events: list[ServerSentEvent]) -> str:
    out = []
    for event in events:
        if event.data and event.data != "[DONE]":
            for choice in orjson.loads(event.data).get("choices") or []:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


async def channel_crosses_instances(a: ServerProcess, b: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(3):
            published = await http.post(f"{a.url}/v1/channels/news/publish", json={"data": f"m{i}"})
            assert published.status_code == 201, published.text
    got = await read_until(f"{b.url}/v1/channels/news/events", lambda e: e.data == "m2")
    assert [e.data for e in got] == ["m0", "m1", "m2"]


async def generation_resumes_on_the_other_instance(a: ServerProcess, b: ServerProcess) -> None:
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    seen: list[ServerSentEvent] = []

    def enough(event: ServerSentEvent) -> bool:  # the first few tokens on A, then drop it
        seen.append(event)
        return event.id is not None and len(text_of(seen)) > 8

    first = await read_until(f"{a.url}/v1/chat/completions", enough, method="POST", json=body)
    stream = str(orjson.loads(first[0].data)["id"])  # the chunks' id is the stream's
    assert first[-1].id is not None
    rest = await read_until(
        f"{b.url}/v1/streams/{stream}",
        lambda e: e.data == "[DONE]",
        last_event_id=first[-1].id,
    )
    whole = await read_until(f"{a.url}/v1/streams/{stream}", lambda e: e.data == "[DONE]")
    assert [e.id for e in first + rest] == [e.id for e in whole]  # no gap, no repeat
    assert text_of(first + rest) == text_of(whole) and len(text_of(whole)) > 20


async def job_runs_to_the_end(a: ServerProcess, b: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        submitted = await http.post(f"{b.url}/v1/jobs", json=SUMMARIZE)
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        events = await read_until(
            a.url + job["links"]["events"], lambda e: e.event in ("complete", "error")
        )
        assert events[-1].event == "complete", events[-1].data
        done = (await http.get(f"{b.url}/v1/jobs/{job['id']}")).json()
    assert done["state"] == "succeeded" and done["result"]["chunks"] >= 1


async def limit_is_shared(a: ServerProcess, b: ServerProcess) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    statuses = []
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        for i in range(LIMIT + 2):
            server = (a, b)[i % 2]
            statuses.append((await http.get(f"{server.url}/v1/models")).status_code)
        refused = await http.get(f"{a.url}/v1/models")
    assert statuses == [200] * LIMIT + [429, 429]  # one window for both instances
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]  # /v1/models is an OpenAI route: OpenAI's shape
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")


def ui_text(events: list[ServerSentEvent]) -> str:
    chunks = (orjson.loads(e.data) for e in events if e.data and e.data != "[DONE]")
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


async def chat_turn_resumes_on_the_other_instance(a: ServerProcess, b: ServerProcess) -> None:
    chat_id = f"cluster-{secrets.token_hex(4)}"
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{a.url}/v1/chats", json={"id": chat_id, "title": "On a cluster"}
        )
        assert created.status_code == 201, created.text
        listed = (await http.get(f"{b.url}/v1/chats")).json()["data"]
        assert [c["id"] for c in listed if c["id"] == chat_id] == [chat_id]
    question = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    body = {"id": chat_id, "messages": [question], "trigger": "submit-message", "model": "demo"}
    seen: list[ServerSentEvent] = []

    def enough(event: ServerSentEvent) -> bool:  # a few text deltas on A, then drop it
        seen.append(event)
        return event.id is not None and len(ui_text(seen)) > 8

    first = await read_until(f"{a.url}/v1/ui/chat", enough, method="POST", json=body)
    assert first[-1].id is not None and ui_text(first)
    rest = await read_until(
        f"{b.url}/v1/ui/chat/{chat_id}/stream",
        lambda e: e.data == "[DONE]",
        last_event_id=first[-1].id,
    )
    ids = [e.id for e in first + rest if e.id is not None]
    assert len(ids) == len(set(ids)) and rest[0].id not in {e.id for e in first}
    assert any(orjson.loads(e.data)["type"] == "finish" for e in rest if e.data != "[DONE]")
    async with httpx.AsyncClient(timeout=10) as http:
        saved = (await http.get(f"{b.url}/v1/chats/{chat_id}")).json()
        assert saved["title"] == "On a cluster" and saved["running"] is False
        assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
        answer = saved["messages"][1]["parts"]
        assert "".join(p["text"] for p in answer if p["type"] == "text") == ui_text(first + rest)
        listed = (await http.get(f"{a.url}/v1/chats")).json()["data"]
        assert [c["id"] for c in listed][:1] == [chat_id]  # the most recently active
        assert (await http.delete(f"{b.url}/v1/chats/{chat_id}")).status_code == 204
        assert (await http.get(f"{a.url}/v1/chats/{chat_id}")).status_code == 404
        listed = (await http.get(f"{a.url}/v1/chats")).json()["data"]
        assert chat_id not in [c["id"] for c in listed]


async def test_the_server_runs_on_a_redis_cluster(pair: list[ServerProcess]) -> None:
    a, b = pair
    await chat_turn_resumes_on_the_other_instance(a, b)
    await channel_crosses_instances(a, b)
    await generation_resumes_on_the_other_instance(a, b)
    await job_runs_to_the_end(a, b)
    await limit_is_shared(a, b)
