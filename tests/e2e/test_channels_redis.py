"""Channels on two real uvicorn instances sharing a real Redis.

* a publish on A reaches a subscriber on A and one on B, each exactly once, in order;
* an idempotent publish repeated on the other instance is stored once (201, then 200 with
  the same id) and delivered once;
* the subscriber count is the same seen from either instance, and drops when readers leave;
* a subscriber that stops on A resumes on B with ``Last-Event-ID``, without gap or repeat;
* new subscribers get the retained history (all, the last N, or none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests._support.procs import ServerProcess, uvicorn_process
from tests._support.wait import eventually
from tests.e2e._channels import read_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

APP = "mianzhang.server:create_app"


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": redis_url,
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
    }
    with (
        uvicorn_process(APP, factory=True, env=env) as a,
        uvicorn_process(APP, factory=True, env=env) as b,
    ):
        yield a, b


async def subscribers(http: httpx.AsyncClient, base: str, channel: str) -> int:
    response = await http.get(f"{base}/v1/channels/{channel}")
    response.raise_for_status()
    count: int = response.json()["subscribers"]
    return count


async def has_subscribers(http: httpx.AsyncClient, base: str, channel: str, n: int) -> bool:
    return await subscribers(http, base, channel) == n


async def publish(
    http: httpx.AsyncClient, base: str, channel: str, data: Any, **extra: str
) -> httpx.Response:
    return await http.post(f"{base}/v1/channels/{channel}/publish", json={"data": data, **extra})


async def test_publish_on_a_reaches_subscribers_on_a_and_b_exactly_once(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    channel = "news"
    async with httpx.AsyncClient(timeout=10) as http, asyncio.timeout(60):
        async with asyncio.TaskGroup() as group:
            readers = [
                group.create_task(
                    read_until(
                        f"{server.url}/v1/channels/{channel}/events",
                        "end",
                        params={"history": "false"},
                    )
                )
                for server in (a, b)
            ]
            await eventually(lambda: has_subscribers(http, a.url, channel, 2), timeout=15)
            assert await subscribers(http, b.url, channel) == 2  # same count from either side
            ids: list[str] = []
            for i in range(20):
                response = await publish(http, a.url, channel, {"i": i}, event="note")
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
            first = await publish(http, a.url, channel, "once", idempotency_key="dup-1")
            again = await publish(http, b.url, channel, "once", idempotency_key="dup-1")
            assert (first.status_code, again.status_code) == (201, 200)
            assert again.json() == {"channel": channel, "id": first.json()["id"], "duplicate": True}
            ids.append(first.json()["id"])
            end = await publish(http, a.url, channel, "end")
            ids.append(end.json()["id"])
        for reader in readers:
            got = reader.result()
            assert [e.id for e in got] == ids  # each event once, in order, nothing else
            assert [orjson.loads(e.data) for e in got[:20]] == [{"i": i} for i in range(20)]
            assert {e.event for e in got[:20]} == {"note"}
            assert [e.data for e in got[20:]] == ["once", "end"]
        info = (await http.get(f"{b.url}/v1/channels/{channel}")).json()
        assert info["length"] == 22 and info["last_id"] == ids[-1]  # the repeat stored once
        await eventually(lambda: has_subscribers(http, b.url, channel, 0), timeout=15)


async def test_a_subscriber_resumes_on_the_other_instance(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    async with httpx.AsyncClient(timeout=10) as http, asyncio.timeout(60):
        ids = [(await publish(http, a.url, "feed", f"m{i}")).json()["id"] for i in range(10)]
        first = await read_until(f"{a.url}/v1/channels/feed/events", "m3")
        assert [e.data for e in first] == ["m0", "m1", "m2", "m3"]
        rest = await read_until(f"{b.url}/v1/channels/feed/events", "m9", after=first[-1].id)
        assert [e.data for e in rest] == [f"m{i}" for i in range(4, 10)]
        assert [e.id for e in first + rest] == ids


async def test_new_subscribers_choose_how_much_history(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    async with httpx.AsyncClient(timeout=10) as http, asyncio.timeout(60):
        for i in range(5):
            await publish(http, a.url, "hist", f"m{i}")
        url = f"{b.url}/v1/channels/hist/events"
        everything = await read_until(url, "m4")
        assert [e.data for e in everything] == [f"m{i}" for i in range(5)]
        last_two = await read_until(url, "m4", params={"history": "2"})
        assert [e.data for e in last_two] == ["m3", "m4"]
        async with asyncio.TaskGroup() as group:
            live = group.create_task(read_until(url, "live", params={"history": "false"}))
            await eventually(lambda: has_subscribers(http, a.url, "hist", 1), timeout=15)
            await publish(http, a.url, "hist", "live")
        assert [e.data for e in live.result()] == ["live"]
