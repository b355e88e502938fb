"""``mianzhang serve --workers N``: N processes on one port sharing Redis.

* refused with the memory backend (exit status 2, a clear message);
* subscribers land on both workers (``SO_REUSEPORT``) and one publish reaches every one of
  them exactly once;
* a worker killed is started again and the port keeps serving;
* SIGTERM stops every worker and the command exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from mianzhang.client import connect
from tests._support.procs import ROOT, ServerProcess, serve_process, stop_process
from tests._support.wait import eventually

pytestmark = pytest.mark.e2e


def _workers(srv: ServerProcess) -> list[psutil.Process]:
    return psutil.Process(srv.proc.pid).children()


def test_workers_are_refused_with_the_memory_backend() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mianzhang", "serve", "--workers", "2", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "MIANZHANG_LOG_BACKEND": "memory"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"--workers 2 needs the Redis backend" in done.stderr


@pytest.mark.redis
async def test_two_workers_share_the_port_and_the_channel(redis_url: str) -> None:
    env = {
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": redis_url,
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
    }
    with serve_process(env=env, args=("--workers", "2")) as srv:
        await eventually(lambda: len(_workers(srv)) == 2, timeout=30)
        count = 24
        got: list[list[str]] = [[] for _ in range(count)]

        async def subscriber(index: int) -> None:
            url = f"{srv.url}/v1/channels/news/events"
            stream = connect(url, params={"history": "false"}, max_reconnects=0, read_timeout=30)
            async with stream:
                async for event in stream:
                    got[index].append(event.data)
                    if event.data == "hi":
                        return

        tasks = [asyncio.create_task(subscriber(i)) for i in range(count)]
        try:
            async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:

                async def all_subscribed() -> bool:
                    info = await http.get("/v1/channels/news")
                    return bool(info.json()["subscribers"] == count)

                await eventually(all_subscribed, timeout=30)
                spread = [_connections(worker, srv.port) for worker in _workers(srv)]
                assert sum(spread) >= count and all(spread), spread  # both workers serve
                published = await http.post(
                    "/v1/channels/news/publish",
                    content="hi",
                    headers={"content-type": "text/plain"},
                )
                assert published.status_code == 201
                await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert got == [["hi"]] * count  # each exactly once

        # a worker killed is started again on its socket; the port keeps serving
        victim = _workers(srv)[0]
        victim.kill()
        await eventually(
            lambda: len(_workers(srv)) == 2 and victim.pid not in [w.pid for w in _workers(srv)],
            timeout=30,
        )
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
            for _ in range(10):
                assert (await http.get("/v1/channels/news")).status_code == 200
        workers = _workers(srv)
        assert stop_process(srv.proc, signal.SIGTERM, timeout=30) == 0
        assert not any(worker.is_running() and worker.status() != "zombie" for worker in workers)


def _connections(worker: psutil.Process, port: int) -> int:
    return sum(
        1
        for conn in worker.net_connections(kind="tcp")
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )
