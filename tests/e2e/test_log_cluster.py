"""The Redis event log on a real Redis Cluster (3 masters, 3 replicas) and behind Sentinel.

* streams spread over slots live on every master, and one process follows them all with one
  sharded pub/sub connection per master;
* a master SIGKILLed mid-stream while a producer appends and a follower reads: its replica is
  promoted, the producer carries on (retrying what failed), and the follower resumes with no
  silent gap: what it delivered after its last ``Reset`` is exactly the stream's final
  history; without a ``Reset`` it is every event exactly once. The same on Sentinel;
* writes the promoted replica never received (it was stopped while they were acknowledged and
  read), on Cluster and Sentinel: the follower gets a ``Reset`` and the new history's ids are
  never the ones it already delivered with other data;
* a shard with no replica left: its followers give up after ``reconnect_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mianzhang._errors import BackendUnavailable
from mianzhang.log import LogEvent, RedisEventLog, Reset
from tests._support.procs import (
    RedisClusterProcesses,
    RedisProcess,
    redis_cli,
    redis_cluster,
    redis_sentinel,
)
from tests._support.wait import eventually, eventually_sync

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

STREAMS = [f"room-{i}" for i in range(24)]


def _keys_on(node: RedisProcess) -> int:
    return int(redis_cli(node.port, "DBSIZE").strip())


def _watch_connections(node: RedisProcess, instance: str) -> int:
    clients = redis_cli(node.port, "CLIENT", "LIST").splitlines()
    return sum(f"name=mz-watch:{instance} " in line for line in clients)


async def test_streams_spread_over_every_master_and_are_followed_through_one_connection_each(
    redis_cluster_server: RedisClusterProcesses,
) -> None:
    cluster = redis_cluster_server
    async with RedisEventLog(cluster.url, prefix="spread:") as log, asyncio.timeout(60):
        for stream in STREAMS:
            await log.create(stream)
        masters = cluster.masters()
        assert len(masters) == 3
        assert all(_keys_on(master) > 0 for master in masters)  # every master holds streams

        async def follow(stream: str) -> list[str]:
            return [item.data async for item in log.follow(stream) if isinstance(item, LogEvent)]

        followers = [asyncio.ensure_future(follow(stream)) for stream in STREAMS]
        await eventually(lambda: log.statistics().followers == len(STREAMS))
        await eventually(
            lambda: all(_watch_connections(m, log.instance) == 1 for m in masters),
            message="one sharded pub/sub connection per master",
        )
        for round_ in range(5):
            for stream in STREAMS:
                await log.append(stream, f"{stream}/{round_}")
        for stream in STREAMS:
            await log.close(stream)
        results = await asyncio.gather(*followers)
    for stream, got in zip(STREAMS, results, strict=True):
        assert got == [f"{stream}/{round_}" for round_ in range(5)]


async def _produce(log: RedisEventLog, stream: str, total: int, acked: list[int]) -> None:
    """Append payloads 1..total, retrying each (with its idempotency key) while the backend is
    unavailable, then close; ``acked`` records what the log acknowledged."""
    for i in range(1, total + 1):
        while True:
            try:
                await log.append(stream, str(i), idempotency_key=f"p{i}")
                break
            except BackendUnavailable:
                await asyncio.sleep(0.05)
        acked.append(i)
        await asyncio.sleep(0.003)
    while True:
        try:
            await log.close(stream)
            return
        except BackendUnavailable:
            await asyncio.sleep(0.05)


def _check_no_silent_gap(items: list[LogEvent | Reset], final: list[LogEvent]) -> None:
    """Between resets, seqs are contiguous; after the last reset (or from the start without
    one) the follower delivered exactly the stream's final history, each event once."""
    resets = [index for index, item in enumerate(items) if isinstance(item, Reset)]
    start = resets[-1] + 1 if resets else 0
    for reset in resets:
        assert isinstance(items[reset], Reset)
        assert items[reset].reason == "epoch", items[reset]  # type: ignore[union-attr]
    before = [item for item in items[: resets[0] if resets else 0] if isinstance(item, LogEvent)]
    assert [event.seq for event in before] == list(range(1, len(before) + 1))
    after = items[start:]
    assert all(isinstance(item, LogEvent) for item in after)
    assert [(e.id, e.data) for e in after] == [(e.id, e.data) for e in final]  # type: ignore[union-attr]


async def _failover_while_streaming(
    url: str, kill_master: Callable[[], None], wait_promoted: Callable[[], None]
) -> tuple[list[LogEvent | Reset], list[LogEvent], list[int]]:
    """A producer instance appends, a follower instance reads; once the follower is
    mid-stream the stream's master is SIGKILLed. Returns the follower's items, the stream's
    final history and the acknowledged payloads."""
    stream, total = "failover", 600
    options: dict[str, Any] = {"validate_interval": 0.5, "backoff_max": 0.2}
    async with (
        RedisEventLog(url, **options) as producer_log,
        RedisEventLog(url, **options) as follower_log,
        asyncio.timeout(90),
    ):
        await producer_log.create(stream, max_events=10_000)
        items: list[LogEvent | Reset] = []

        async def follow() -> None:
            async for item in follower_log.follow(stream):
                items.append(item)

        follower = asyncio.ensure_future(follow())
        acked: list[int] = []
        producer = asyncio.ensure_future(_produce(producer_log, stream, total, acked))
        await eventually(lambda: len(items) >= 150, timeout=30)  # mid-stream
        kill_master()
        await asyncio.to_thread(wait_promoted)
        await asyncio.gather(producer, follower)
        _, final = await producer_log.read(stream, limit=10_000)
    return items, final, acked


def _check_history(items: list[LogEvent | Reset], final: list[LogEvent], acked: list[int]) -> None:
    _check_no_silent_gap(items, final)
    payloads = [int(event.data) for event in final]
    assert payloads == sorted(set(payloads))  # the history keeps the producer's order, once each
    assert payloads[-1] == acked[-1] == 600
    if not any(isinstance(item, Reset) for item in items):
        assert payloads == list(range(1, 601))


async def test_a_killed_master_is_replaced_and_the_follower_resumes_without_a_silent_gap() -> None:
    with redis_cluster() as cluster:
        victim: list[RedisProcess] = []

        def kill_master() -> None:
            victim.append(cluster.master_of("mz:{failover}:meta"))
            victim[0].kill()  # SIGKILL: no goodbye, unreplicated writes are lost

        def wait_promoted() -> None:
            cluster.wait_healthy(timeout=60)

        items, final, acked = await _failover_while_streaming(
            cluster.url, kill_master, wait_promoted
        )
        assert cluster.master_of("mz:{failover}:meta").port != victim[0].port
    _check_history(items, final, acked)


async def test_a_sentinel_failover_mid_stream_leaves_no_silent_gap() -> None:
    with redis_sentinel() as setup:
        old_master = setup.master.port

        def wait_promoted() -> None:
            eventually_sync(
                lambda: setup.reported_master() == setup.replica.port, timeout=60, interval=0.1
            )

        items, final, acked = await _failover_while_streaming(
            setup.url, setup.master.kill, wait_promoted
        )
        assert setup.reported_master() != old_master
    _check_history(items, final, acked)


@dataclass
class Failover:
    """A deployment whose master of stream ``lost`` can be failed over: its ``url``, that
    ``master``, the ``replica`` to be promoted, and how to wait for the promotion."""

    url: str
    master: RedisProcess
    replica: RedisProcess
    wait_promoted: Callable[[], None]


@contextlib.contextmanager
def _failover_setup(kind: str) -> Iterator[Failover]:
    if kind == "cluster":
        with redis_cluster() as cluster:
            master = cluster.master_of("mz:{lost}:meta")
            yield Failover(
                cluster.url, master, cluster.replica_of(master), lambda: cluster.wait_healthy(60)
            )
    else:
        with redis_sentinel() as setup:

            def promoted() -> None:
                eventually_sync(lambda: setup.reported_master() == setup.replica.port, timeout=60)

            yield Failover(setup.url, setup.master, setup.replica, promoted)


async def _append_retrying(log: RedisEventLog, stream: str, data: str) -> str:
    while True:
        try:
            return await log.append(stream, data)
        except BackendUnavailable:
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
async def test_writes_lost_in_a_failover_give_a_reset_and_ids_are_never_reused(kind: str) -> None:
    stream = "lost"
    with _failover_setup(kind) as setup:
        master, replica = setup.master, setup.replica
        options: dict[str, Any] = {"validate_interval": 0.5, "backoff_max": 0.2}
        async with (
            RedisEventLog(setup.url, **options) as producer_log,
            RedisEventLog(setup.url, **options) as follower_log,
            asyncio.timeout(90),
        ):
            kept = [await producer_log.append(stream, f"kept{i}") for i in range(5)]
            await eventually(
                lambda: _info_offset(replica) == _info_offset(master), message="replica in sync"
            )
            items: list[LogEvent | Reset] = []

            async def follow() -> None:
                async for item in follower_log.follow(stream):
                    items.append(item)

            follower = asyncio.ensure_future(follow())
            await eventually(lambda: len(items) == 5)
            assert replica.proc is not None
            replica.proc.send_signal(signal.SIGSTOP)
            redis_cli(master.port, "CLIENT", "KILL", "TYPE", "replica")  # it gets nothing more
            lost = [await producer_log.append(stream, f"lost{i}") for i in range(3)]
            await eventually(lambda: len(items) == 8)  # the follower delivered them
            master.kill()
            replica.proc.send_signal(signal.SIGCONT)
            await asyncio.to_thread(setup.wait_promoted)
            after = [await _append_retrying(producer_log, stream, f"after{i}") for i in range(3)]
            await producer_log.close(stream)
            await follower
            _, final = await producer_log.read(stream)
    expected = [*(f"kept{i}" for i in range(5)), *(f"after{i}" for i in range(3))]
    assert [e.data for e in final] == expected
    assert not {e.id for e in final} & set(kept + lost)  # a new epoch: no id given out twice
    assert [e.id for e in final[5:]] == after
    resets = [item for item in items if isinstance(item, Reset)]
    assert len(resets) == 1 and resets[0].requested == lost[-1]
    _check_no_silent_gap(items, final)


def _info_offset(node: RedisProcess) -> str:
    out = redis_cli(node.port, "INFO", "replication")
    for line in out.splitlines():
        if line.startswith(("master_repl_offset:", "slave_repl_offset:")):
            return line.split(":", 1)[1].strip()
    return ""


async def test_followers_give_up_after_reconnect_timeout_when_a_shard_is_gone() -> None:
    with redis_cluster() as cluster:
        async with RedisEventLog(
            cluster.url, reconnect_timeout=1.0, backoff_max=0.2, validate_interval=0.5
        ) as log:
            await log.append("gone", "x")
            items: list[LogEvent | Reset] = []

            async def follow() -> None:
                async for item in log.follow("gone"):
                    items.append(item)

            follower = asyncio.ensure_future(follow())
            await eventually(lambda: len(items) == 1)
            master = cluster.master_of("mz:{gone}:meta")
            replica = cluster.replica_of(master)
            master.kill()
            replica.kill()  # nobody can take over these slots
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(follower, 30)
