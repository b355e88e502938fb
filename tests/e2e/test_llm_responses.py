"""The Responses API end to end with the official SDK: a background stream created on one
instance, dropped, and resumed with ``starting_after`` (or ``Last-Event-ID``) on another (both
share a real redis-server); retrieval and cancellation from either instance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI

from tests._support.procs import ServerProcess, uvicorn_process

from ._llm import API_KEY, APP, gateway_env, read_stream

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def instances(redis_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    # the demo model only: no upstream needed, deterministic text, 20 ms per token
    env = gateway_env(
        "http://127.0.0.1:9", MIANZHANG_LOG_BACKEND="redis", MIANZHANG_REDIS_URL=redis_url
    )
    with (
        uvicorn_process(APP, factory=True, env=env) as a,
        uvicorn_process(APP, factory=True, env=env) as b,
    ):
        yield a, b


def client(server: ServerProcess) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)


async def test_background_response_dropped_on_a_resumed_on_b(
    instances: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = instances
    on_a, on_b = client(a), client(b)
    try:
        stream = await on_a.responses.create(
            model="demo", input="hello there", stream=True, background=True
        )
        first: list[Any] = []
        async for event in stream:
            first.append(event)
            if sum(e.type == "response.output_text.delta" for e in first) == 5:
                break
        await stream.close()  # the client drops the stream; background keeps generating
        response_id = first[0].response.id
        last_seen = first[-1].sequence_number
        resumed = await on_b.responses.retrieve(response_id, stream=True, starting_after=last_seen)
        rest = [event async for event in resumed]
        final = await on_b.responses.retrieve(response_id)
        final_a = await on_a.responses.retrieve(response_id)
    finally:
        await on_a.close()
        await on_b.close()
    numbers = [e.sequence_number for e in first + rest]
    assert numbers == list(range(len(numbers)))  # nothing missed, nothing twice
    assert rest[-1].type == "response.completed"
    text = "".join(e.delta for e in first + rest if e.type == "response.output_text.delta")
    assert text and text.startswith("This is mianzhang's demo model")
    assert final.status == "completed" and final.output_text == text
    assert final_a.output_text == text
    assert rest[-1].response.usage is not None
    assert rest[-1].response.usage.output_tokens == 40
    # a reconnecting EventSource: Last-Event-ID (here inside a group of events) on the other
    # instance resumes exactly after it
    url = f"/v1/responses/{response_id}?stream=true"
    whole = read_stream(f"{a.url}{url}")
    assert [orjson.loads(e.data)["sequence_number"] for e in whole] == numbers
    middle = next(i for i, e in enumerate(whole) if "." in e.id)
    tail = read_stream(f"{b.url}{url}", last_event_id=whole[middle].id)
    assert [e.data for e in tail] == [e.data for e in whole[middle + 1 :]]


async def test_cancel_on_the_other_instance_stops_the_response(
    instances: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = instances
    on_a, on_b = client(a), client(b)
    try:
        created = await on_a.responses.create(model="demo", input="long", background=True)
        assert created.status == "in_progress" and created.background
        cancelled = await on_b.responses.cancel(created.id)
        events = [e async for e in await on_a.responses.retrieve(created.id, stream=True)]
    finally:
        await on_a.close()
        await on_b.close()
    assert cancelled.status == "cancelled"
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "cancelled"
    deltas = sum(e.type == "response.output_text.delta" for e in events)
    assert deltas < 40  # stopped before the end


async def test_unknown_response_is_404(instances: tuple[ServerProcess, ServerProcess]) -> None:
    on_a = client(instances[0])
    try:
        with pytest.raises(Exception) as info:
            await on_a.responses.retrieve("resp_nope")
    finally:
        await on_a.close()
    assert getattr(info.value, "status_code", None) == 404
