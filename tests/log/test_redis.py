"""RedisEventLog specifics against a real redis-server (the shared behaviour is in ``contract/``):
several instances (processes) on one Redis, one blocking connection per instance, restarts,
flushes, outages, presence of readers in a process that dies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from mianzhang._errors import BackendUnavailable, StreamNotFound
from mianzhang.log import EventLog, LogEvent, RedisEventLog, Reset, format_id, parse_id
from tests._support.procs import ROOT, RedisProcess, _env

from ._util import Item, drain, eventually, seq_of, take

pytestmark = pytest.mark.redis


def epoch_of(event_id: str) -> str:
    parsed = parse_id(event_id)
    assert parsed is not None
    return parsed[0]


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def own_redis() -> Any:
    """A redis-server of this test alone (it gets killed and restarted)."""
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new(logs: list[RedisEventLog], url: str, **options: Any) -> RedisEventLog:
    log = RedisEventLog(url, **options)
    logs.append(log)
    return log


class Collector:
    """Follows a stream in a task, recording every item; wait on conditions, never sleep."""

    def __init__(self, log: EventLog, stream: str, after: str | None = None) -> None:
        self.items: list[Item] = []
        self.error: BaseException | None = None
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._run(log.follow(stream, after)))

    async def _run(self, iterator: AsyncIterator[Item]) -> None:
        try:
            async for item in iterator:
                self.items.append(item)
                self.changed.set()
        except Exception as exc:
            self.error = exc
            self.changed.set()

    async def until(self, predicate: Any, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

    def events(self) -> list[LogEvent]:
        return [i for i in self.items if isinstance(i, LogEvent)]


async def test_is_an_event_log(logs: list[RedisEventLog], redis_url: str) -> None:
    assert isinstance(new(logs, redis_url), EventLog)


async def test_keys_live_under_the_prefix_with_the_stream_as_hash_tag(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    log = new(logs, redis_url, prefix="app1:")
    await log.create("chat/42", ttl_after_close=60)
    await log.append("chat/42", "x")
    assert set(await raw.keys("*")) == {"app1:{chat/42}:meta", "app1:{chat/42}:log"}
    assert await raw.pttl("app1:{chat/42}:log") == -1
    await log.close("chat/42")
    for key in ("app1:{chat/42}:meta", "app1:{chat/42}:log"):
        assert 0 < await raw.pttl(key) <= 60_000
    other = new(logs, redis_url, prefix="app2:")
    assert await other.info("chat/42") is None


async def test_two_instances_share_streams_ids_and_readers(
    logs: list[RedisEventLog], redis_url: str
) -> None:
    a, b = new(logs, redis_url), new(logs, redis_url)
    await a.create("s")
    on_b = Collector(b, "s")
    await eventually(lambda: _readers_are(a, "s", 1))

    async def produce(log: RedisEventLog, tag: str) -> list[str]:
        return [await log.append("s", f"{tag}{i}") for i in range(100)]

    ids_a, ids_b = await asyncio.gather(produce(a, "a"), produce(b, "b"))
    assert sorted(seq_of(i) for i in ids_a + ids_b) == list(range(1, 201))
    await b.close("s")
    await asyncio.wait_for(on_b.task, 20)
    assert on_b.error is None
    assert [e.seq for e in on_b.events()] == list(range(1, 201))
    by_id = {e.id: e.data for e in on_b.events()}
    assert [by_id[i] for i in ids_a] == [f"a{i}" for i in range(100)]
    await eventually(lambda: _readers_are(a, "s", 0))


async def _readers_are(log: EventLog, stream: str, n: int) -> bool:
    return await log.readers(stream) == n


async def test_one_blocking_connection_whatever_the_number_of_local_followers(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    log = new(logs, redis_url, max_connections=8)

    async def clients() -> list[dict[str, Any]]:
        return [c for c in await raw.client_list() if log.instance in c.get("name", "")]

    async def blocked_on_xread() -> bool:
        return any(c["cmd"] == "xread" for c in await clients())

    for i in range(5):
        await log.create(f"s{i}")
    followers: list[Collector] = []
    for wanted in (1, 300):
        while len(followers) < wanted:
            followers.append(Collector(log, f"s{len(followers) % 5}"))
        await eventually(lambda w=wanted: _local_followers(log, w), timeout=30)
        await eventually(blocked_on_xread)
        seen = await clients()
        watch = [c for c in seen if c["name"] == f"mz-watch:{log.instance}"]
        assert len(watch) == 1, seen
        assert sum(c["cmd"] == "xread" for c in seen) == 1
        assert len(seen) <= 8 + 1  # the bounded pool plus the one blocking connection
    assert log.statistics().streams == 5
    for i in range(5):
        await log.append(f"s{i}", "last")
        await log.close(f"s{i}")
    await asyncio.wait_for(asyncio.gather(*(f.task for f in followers)), 30)
    assert all(f.error is None and [e.data for e in f.events()] == ["last"] for f in followers)


async def _local_followers(log: RedisEventLog, n: int) -> bool:
    return log.statistics().followers == n


async def test_the_local_cache_holds_at_most_max_events(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    log = new(logs, redis_url, cache_size=1024)
    await log.create("s", max_events=10)
    await log.append("s", "0")
    stalled = log.follow("s")
    await take(stalled, 1)
    live = Collector(log, "s")
    for i in range(1, 300):
        await log.append("s", str(i))
    await live.until(lambda c: bool(c.events()) and c.events()[-1].seq == 300)
    assert log.statistics().events <= 10
    assert await raw.xlen("mz:{s}:log") == 10
    await stalled.aclose()
    live.task.cancel()


async def test_restart_without_persistence_appends_fail_then_a_new_epoch_is_reset_to(
    own_redis: RedisProcess, logs: list[RedisEventLog]
) -> None:
    log = new(logs, own_redis.url, backoff_max=0.2, validate_interval=0.5)
    ids = [await log.append("s", f"old{i}") for i in range(3)]
    follower = Collector(log, "s")
    await follower.until(lambda c: len(c.items) == 3)

    own_redis.kill()
    with pytest.raises(BackendUnavailable) as info:
        await log.append("s", "while down")
    assert isinstance(info.value.__cause__, Exception)
    with pytest.raises(BackendUnavailable):
        await log.read("s")
    own_redis.start()

    fresh = await log.append("s", "new0")  # works again at once: stale connections are replaced
    assert seq_of(fresh) == 1
    assert epoch_of(fresh) != epoch_of(ids[0])
    await follower.until(lambda c: len(c.items) >= 5)
    assert follower.items[3] == Reset("epoch", ids[-1], fresh, epoch_of(fresh))
    assert isinstance(follower.items[4], LogEvent)
    assert follower.items[4].id == fresh
    more = [await log.append("s", f"new{i}") for i in range(1, 4)]
    await log.close("s")
    await asyncio.wait_for(follower.task, 20)
    assert follower.error is None
    assert [e.id for e in follower.events()] == [*ids, fresh, *more]


async def test_a_flushall_is_detected_by_validation(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    log = new(logs, redis_url, validate_interval=0.2)
    ids = [await log.append("s", str(i)) for i in range(5)]
    follower = Collector(log, "s")
    await follower.until(lambda c: len(c.items) == 5)
    await raw.flushall()
    fresh = await log.append("s", "after flush")  # seq 1 <= 5: XREAD alone would not see it
    await follower.until(lambda c: len(c.items) >= 7)
    assert follower.items[5] == Reset("epoch", ids[-1], fresh, epoch_of(fresh))
    assert isinstance(follower.items[6], LogEvent)
    assert follower.items[6].id == fresh
    follower.task.cancel()


async def test_followers_give_up_after_reconnect_timeout(
    own_redis: RedisProcess, logs: list[RedisEventLog]
) -> None:
    log = new(logs, own_redis.url, reconnect_timeout=0.5, backoff_max=0.1)
    await log.append("s", "x")
    follower = Collector(log, "s")
    await follower.until(lambda c: len(c.items) == 1)
    own_redis.kill()
    await asyncio.wait_for(follower.task, 20)
    assert isinstance(follower.error, BackendUnavailable)


async def test_a_vanished_stream_ends_followers_after_missing_timeout(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    log = new(logs, redis_url, validate_interval=0.1, missing_timeout=0.3)
    await log.append("s", "x")
    follower = Collector(log, "s")
    await follower.until(lambda c: len(c.items) == 1)
    await raw.delete("mz:{s}:meta", "mz:{s}:log")
    await asyncio.wait_for(follower.task, 20)
    assert isinstance(follower.error, StreamNotFound)


async def test_every_operation_maps_a_dead_server_to_backend_unavailable() -> None:
    dead = RedisProcess()  # a free port nobody listens on
    async with RedisEventLog(dead.url, connect_timeout=0.5) as log:
        calls = [
            log.create("s"),
            log.append("s", "x"),
            log.read("s"),
            log.info("s"),
            log.close("s"),
            log.readers("s"),
            anext(log.follow("s")),
        ]
        for call in calls:
            with pytest.raises(BackendUnavailable) as info:
                await call
            assert info.value.__cause__ is not None


async def test_readers_of_a_process_that_died_expire(
    logs: list[RedisEventLog], redis_url: str
) -> None:
    log = new(logs, redis_url)
    await log.append("s", "x")
    script = (
        "import asyncio, sys\n"
        "from mianzhang.log import RedisEventLog\n"
        "async def main():\n"
        "    log = RedisEventLog(sys.argv[1], presence_ttl=0.6)\n"
        "    async for _ in log.follow('s'):\n"
        "        print('following', flush=True)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, redis_url],
        cwd=ROOT,
        env=_env(None),
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line.strip() == b"following"
        await eventually(lambda: _readers_are(log, "s", 1))
        proc.kill()  # no cleanup runs
        proc.wait(10)
        await eventually(lambda: _readers_are(log, "s", 0), timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


async def test_follow_stays_in_one_epoch_when_it_starts_on_a_closed_stream(
    logs: list[RedisEventLog], redis_url: str
) -> None:
    log = new(logs, redis_url)
    ids = [await log.append("s", str(i)) for i in range(1200)]  # more than one read batch
    await log.close("s")
    items = await drain(log.follow("s"))
    assert [i.id for i in items] == ids


async def test_no_gap_or_duplicate_when_the_producer_is_another_instance(
    logs: list[RedisEventLog], redis_url: str
) -> None:
    producer_log, follower_log = new(logs, redis_url), new(logs, redis_url)
    total = 150
    for round_ in range(10):
        stream = f"x{round_}"
        await producer_log.create(stream)
        halfway = asyncio.Event()

        async def produce(stream: str = stream, halfway: asyncio.Event = halfway) -> None:
            for i in range(total):
                await producer_log.append(stream, str(i))
                if i == total // 3:
                    halfway.set()
            await producer_log.close(stream)

        producer = asyncio.ensure_future(produce())
        await halfway.wait()
        followers = [asyncio.ensure_future(drain(follower_log.follow(stream))) for _ in range(3)]
        await asyncio.wait_for(producer, 20)
        for items in await asyncio.gather(*followers):
            assert [i.seq for i in items if isinstance(i, LogEvent)] == list(range(1, total + 1))
            assert len(items) == total


async def test_idempotency_keys_are_hashed_under_the_hash_tag_with_a_ttl(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    log = new(logs, redis_url)
    await log.append("s", "x", idempotency_key="order}:meta", idempotency_ttl=30)
    [key] = [k for k in await raw.keys("*") if ":idem:" in k]
    assert key.startswith("mz:{s}:idem:")
    assert len(key.rsplit(":", 1)[1]) == 32
    assert 0 < await raw.pttl(key) <= 30_000


async def test_a_stream_last_written_by_another_server_continues_in_a_new_epoch(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    """What a failover or a restart from a persistence file looks like to the scripts: the
    meta names another server's ``run_id``. Writes that server acknowledged may be missing,
    so the next append starts a new epoch (ids are never reused) and followers reset."""
    log = new(logs, redis_url, validate_interval=0.2)
    ids = [await log.append("s", str(i)) for i in range(3)]
    follower = Collector(log, "s")
    await follower.until(lambda c: len(c.items) == 3)
    await raw.hset("mz:{s}:meta", "run", "0" * 40)  # "another server wrote it last"
    fresh = await log.append("s", "after")
    assert epoch_of(fresh) != epoch_of(ids[0])
    assert seq_of(fresh) == 4
    await follower.until(lambda c: len(c.items) >= 8)
    first = format_id(epoch_of(fresh), 1)
    assert follower.items[3] == Reset("epoch", ids[-1], first, epoch_of(fresh))
    assert [e.data for e in follower.events()[3:]] == ["0", "1", "2", "after"]
    assert await log.append("s", "next") == format_id(epoch_of(fresh), 5)  # one change only
    follower.task.cancel()


async def test_a_stream_written_before_the_server_was_recorded_adopts_it(
    logs: list[RedisEventLog], redis_url: str, raw: Any
) -> None:
    log = new(logs, redis_url)
    first = await log.append("s", "a")
    await raw.hdel("mz:{s}:meta", "run")  # written by a version that did not record it
    second = await log.append("s", "b")
    assert epoch_of(second) == epoch_of(first)
    assert await raw.hget("mz:{s}:meta", "run")
