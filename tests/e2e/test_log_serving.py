"""The event log served over SSE by real uvicorn processes (memory and Redis backends).

* chaos: 1,000 disconnects at random byte offsets of a live 20,000-event stream, each followed
  by a resume with ``Last-Event-ID``: every event exactly once, in order;
* two instances sharing Redis: readers move from A to B, also when A is SIGKILLed;
* Redis restarted mid-stream: readers get ``reset`` (the history is gone), then continue;
* 1,000 readers that stop reading: bounded server memory, a fast reader still gets everything.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import psutil
import pytest

from mianzhang import SSEDecoder
from mianzhang._errors import BackendUnavailable
from mianzhang.client import ResetEvent, connect
from mianzhang.log import RedisEventLog
from tests._support.procs import (
    RedisProcess,
    ServerProcess,
    redis_process,
    serve_process,
    uvicorn_process,
)
from tests._support.wait import eventually

pytestmark = pytest.mark.e2e

APP = "tests.e2e.apps.log_app:create_app"


def _redis_env(url: str) -> dict[str, str]:
    return {"MIANZHANG_LOG_BACKEND": "redis", "MIANZHANG_REDIS_URL": url}


@pytest.fixture(params=["memory", "redis"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env: dict[str, str] = {"MIANZHANG_FILES__ENABLED": "false"}
    if request.param == "redis":
        redis: RedisProcess = request.getfixturevalue("redis_server")
        env |= _redis_env(redis.url)
    with uvicorn_process(APP, factory=True, env=env) as proc:
        yield proc


def _produce(base: str, stream: str, n: int, **params: float) -> None:
    query = {"stream": stream, "n": n, **params}
    httpx.post(f"{base}/_test/produce", params=query, timeout=10).raise_for_status()


def test_chaos_1000_random_disconnects_deliver_every_event_exactly_once(
    server: ServerProcess,
) -> None:
    total = 20_000
    stream = f"chaos-{random.randrange(1 << 30)}"
    # the producer pauses 2 ms every 100 events: the readers meet the live tail repeatedly
    _produce(server.url, stream, total, every=100, pause=0.002)
    rng = random.Random(20261130)
    seen: list[int] = []
    last_id: str | None = None
    cuts = 0
    deadline = time.monotonic() + 90
    with httpx.Client(timeout=10) as client:
        while True:
            assert time.monotonic() < deadline, f"stuck after {len(seen)} events, {cuts} cuts"
            cut_after = rng.randint(1, 2000) if cuts < 1000 else None  # bytes on this connection
            headers = {"Last-Event-ID": last_id} if last_id else {}
            decoder = SSEDecoder()
            received = 0
            finished = False
            with client.stream("GET", f"{server.url}/v1/streams/{stream}", headers=headers) as r:
                if r.status_code == 204:
                    break  # a closed stream read to its end
                assert r.status_code == 200
                for chunk in r.iter_raw():
                    if cut_after is not None and received + len(chunk) >= cut_after:
                        chunk = chunk[: cut_after - received]  # cut mid-frame, maybe mid-char
                        for event in decoder.decode(chunk):
                            seen.append(orjson.loads(event.data)["i"])
                        break
                    received += len(chunk)
                    for event in decoder.decode(chunk):
                        seen.append(orjson.loads(event.data)["i"])
                else:
                    finished = True
            # the pending, undispatched event is discarded: only dispatched ids count
            last_id = decoder.last_event_id or last_id
            if cut_after is not None:
                cuts += 1
            if finished:
                break
    assert cuts == 1000
    assert seen == list(range(1, total + 1))


def _kill(proc: ServerProcess) -> None:
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)


async def _read(
    url: str, after: str | None, until: int, got: list[int]
) -> tuple[list[int], str | None]:
    """Read events ``i`` from ``url`` after ``after`` into ``got`` until ``i == until`` or the
    server dies."""
    stream = connect(url, last_event_id=after, max_reconnects=0, read_timeout=10)
    try:
        async with stream:
            async for event in stream:
                assert not isinstance(event, ResetEvent), event
                got.append(orjson.loads(event.data)["i"])
                if got[-1] == until:
                    break
    except Exception:  # the instance was killed under us: resume elsewhere
        pass
    return got, stream.last_event_id


async def test_readers_move_from_a_killed_instance_to_another_without_loss(
    redis_server: RedisProcess,
) -> None:
    env = _redis_env(redis_server.url) | {"MIANZHANG_FILES__ENABLED": "false"}
    stream = f"ha-{random.randrange(1 << 30)}"
    total, readers = 2000, 20
    log = RedisEventLog(redis_server.url)
    try:
        await log.create(stream, max_events=10_000, ttl_after_close=600)
        with (
            uvicorn_process(APP, factory=True, env=env) as a,
            uvicorn_process(APP, factory=True, env=env) as b,
        ):
            first_half = asyncio.Event()
            a_killed = asyncio.Event()
            progress: list[list[int]] = [[] for _ in range(readers)]

            async def produce() -> None:
                for i in range(1, total + 1):
                    await log.append(stream, orjson.dumps({"i": i}).decode())
                    if i == total // 2:
                        first_half.set()
                        await a_killed.wait()  # the second half is written after A died
                    elif i % 50 == 0:
                        await asyncio.sleep(0.005)
                await log.close(stream)

            async def reader(k: int) -> list[int]:
                # even readers start on A, odd ones start on A and hop to B half-way by choice
                url_a, url_b = f"{a.url}/v1/streams/{stream}", f"{b.url}/v1/streams/{stream}"
                got, last = await _read(url_a, None, total if k % 2 == 0 else 300, progress[k])
                if not got or got[-1] != total:
                    await _read(url_b, last, total, got)  # appends to the same list
                return got

            def mid_stream() -> bool:
                # every reader (the odd ones on B by now) is in the middle of the stream
                return all(len(got) >= total // 4 for got in progress)

            producer = asyncio.create_task(produce())
            tasks = [asyncio.create_task(reader(k)) for k in range(readers)]
            await asyncio.wait_for(first_half.wait(), 30)
            await eventually(mid_stream, timeout=30)
            _kill(a)  # SIGKILL: no goodbye to any reader
            a_killed.set()
            results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
            await asyncio.wait_for(producer, 30)
        for got in results:
            assert got == list(range(1, total + 1))
    finally:
        await log.aclose()


async def test_redis_restart_mid_stream_resets_readers_then_they_continue() -> None:
    with redis_process() as redis:
        env = _redis_env(redis.url) | {"MIANZHANG_FILES__ENABLED": "false"}
        stream = "restart"
        log = RedisEventLog(redis.url, backoff_max=0.2)
        try:
            with uvicorn_process(APP, factory=True, env=env) as srv:
                await log.create(stream, max_events=10_000, ttl_after_close=600)
                old = [await log.append(stream, orjson.dumps({"i": i}).decode()) for i in (1, 2)]
                items: list[object] = []
                got_old = asyncio.Event()
                got_new = asyncio.Event()

                async def read() -> None:
                    url = f"{srv.url}/v1/streams/{stream}"
                    async with connect(url, retry=200, read_timeout=10) as events:
                        async for event in events:
                            items.append(event)
                            if len(items) == 2:
                                got_old.set()
                            if not isinstance(event, ResetEvent) and event.data == '{"i":-1}':
                                got_new.set()
                                return

                reader = asyncio.create_task(read())
                await asyncio.wait_for(got_old.wait(), 20)
                redis.restart()  # no persistence: the history is gone

                async def appended() -> bool:  # the producer side recovers once Redis is back
                    try:
                        await log.append(stream, '{"i":-1}')
                    except BackendUnavailable:
                        return False
                    return True

                await eventually(appended, timeout=30, interval=0.1)
                await asyncio.wait_for(got_new.wait(), 30)
                await asyncio.wait_for(reader, 10)
        finally:
            await log.aclose()
    resets = [item for item in items if isinstance(item, ResetEvent)]
    data = [getattr(item, "data", None) for item in items if not isinstance(item, ResetEvent)]
    assert data[:2] == ['{"i":1}', '{"i":2}']
    assert data[-1] == '{"i":-1}'
    assert len(resets) == 1, items  # told exactly once that history was lost
    assert resets[0].requested == old[-1]
    assert resets[0].reason == "epoch"
    assert items.index(resets[0]) == 2  # before anything of the new history


def _stalled_reader(port: int, path: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock  # never read


async def test_stalled_readers_keep_memory_bounded_and_do_not_slow_a_fast_reader(
    redis_server: RedisProcess,
) -> None:
    """``mianzhang serve`` itself (Redis backend, 64 KiB socket send buffers), a producer in
    this process, 1,000 readers that never read and one that reads everything."""
    env = _redis_env(redis_server.url) | {
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_SEND_TIMEOUT": "120",  # keep the stalled readers connected for the test
        "MIANZHANG_SOCKET_SEND_BUFFER": "65536",
    }
    stream = f"fanout-{random.randrange(1 << 30)}"
    total, stalled = 3000, 1000
    pad = "x" * 2000  # 6 MB of events: per-reader queues would need 6 GB for 1,000 readers
    log = RedisEventLog(redis_server.url)
    socks: list[socket.socket] = []
    try:
        await log.create(stream, max_events=total + 10, ttl_after_close=600)
        with serve_process(env=env) as srv:
            server = psutil.Process(srv.proc.pid)
            rss_before = server.memory_info().rss
            for _ in range(stalled):
                socks.append(_stalled_reader(srv.port, f"/v1/streams/{stream}"))
            async with httpx.AsyncClient(timeout=10) as http:

                async def all_connected() -> bool:
                    info = await http.get(f"{srv.url}/v1/streams/{stream}/info")
                    return bool(info.json()["readers"] >= stalled)

                await eventually(all_connected, timeout=30, interval=0.05)

            async def produce() -> None:
                for i in range(1, total + 1):
                    await log.append(stream, orjson.dumps({"i": i, "pad": pad}).decode())
                    if i % 10 == 0:
                        await asyncio.sleep(0.002)
                await log.close(stream)

            seen: list[int] = []

            async def fast_reader() -> None:
                async with connect(f"{srv.url}/v1/streams/{stream}", read_timeout=30) as events:
                    async for event in events:
                        seen.append(orjson.loads(event.data)["i"])

            reader = asyncio.create_task(fast_reader())
            started = time.monotonic()
            await asyncio.wait_for(produce(), 120)
            produced_in = time.monotonic() - started
            await asyncio.wait_for(reader, 120)
            lag = time.monotonic() - started - produced_in
            assert seen == list(range(1, total + 1))
            growth = server.memory_info().rss - rss_before
            # each stalled reader pins at most its socket buffer and one coalesced batch
            assert growth < 300 * 1024 * 1024, growth
            # "not slowed down": the fast reader finishes right behind the producer rather than
            # after the stalled readers (a generous bound: this is not a benchmark)
            assert lag < 10, (produced_in, lag)
    finally:
        for sock in socks:
            sock.close()
        await log.aclose()


async def test_producers_keep_going_through_redis_while_their_instance_drains(
    redis_url: str,
) -> None:
    """SIGTERM on the instance running a producer: its reader on another instance still gets
    every event and the normal end, because the producer finishes during the drain."""
    env = _redis_env(redis_url) | {"MIANZHANG_FILES__ENABLED": "false"}
    stream, total = "drain-producer", 150
    with (
        uvicorn_process(APP, factory=True, env=env) as a,
        uvicorn_process(APP, factory=True, env=env) as b,
    ):
        _produce(a.url, stream, total, every=1, pause=0.02)  # ~3 s of producing on A
        got: list[int] = []
        async with connect(f"{b.url}/v1/streams/{stream}", read_timeout=20) as events:
            async for event in events:
                got.append(orjson.loads(event.data)["i"])
                if len(got) == 20:
                    a.proc.send_signal(signal.SIGTERM)
        assert got == list(range(1, total + 1))
        info = httpx.get(f"{b.url}/v1/streams/{stream}/info", timeout=5).json()
        assert info["state"] == "closed"  # finished, not cancelled
        assert a.proc.wait(15) in (0, -signal.SIGTERM)
