"""Shared fixtures. Real processes only: see ``tests/_support/procs.py``."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from tests._support.procs import (
    RedisClusterProcesses,
    RedisProcess,
    RedisSentinelProcesses,
    ServerProcess,
    reap,
    redis_cluster,
    redis_process,
    redis_sentinel,
    uvicorn_process,
)
from tests.e2e._llm import UpstreamControl


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One redis-server for the session (tests that restart Redis start their own)."""
    with redis_process() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisClusterProcesses]:
    """One Redis Cluster (3 masters, 3 replicas) for the session (tests that kill nodes start
    their own)."""
    with redis_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel_server() -> Iterator[RedisSentinelProcesses]:
    """One master, its replica and a Sentinel for the session (tests that fail it over start
    their own)."""
    with redis_sentinel() as setup:
        yield setup


@pytest.fixture
async def redis_url(redis_server: RedisProcess) -> AsyncIterator[str]:
    """The session Redis, flushed before each test."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    yield redis_server.url


# the session fixture above holding each Redis deployment, by the name tests are parametrised with
REDIS_DEPLOYMENTS = {
    "redis": "redis_server",
    "redis-cluster": "redis_cluster_server",
    "redis-sentinel": "redis_sentinel_server",
}


@pytest.fixture(params=list(REDIS_DEPLOYMENTS))
def redis_deployment_url(request: pytest.FixtureRequest) -> str:
    """The URL of one of the session's Redis deployments (``redis://``, ``redis+cluster://``,
    ``redis+sentinel://``), parametrised over all three; not flushed."""
    return str(request.getfixturevalue(REDIS_DEPLOYMENTS[request.param]).url)


@pytest.fixture(
    params=[
        "memory",
        *(pytest.param(name, marks=pytest.mark.redis) for name in REDIS_DEPLOYMENTS),
    ]
)
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` for the memory backend, else the URL of one of the session's Redis
    deployments: the parameter of every contract suite (log, jobs, chats)."""
    if request.param == "memory":
        return None
    return str(request.getfixturevalue(REDIS_DEPLOYMENTS[request.param]).url)


@pytest.fixture(scope="module")
def upstream_env() -> dict[str, str]:
    """Extra environment of the module's fake upstream (a module overrides this fixture)."""
    return {}


@pytest.fixture(scope="module")
def upstream_proc(upstream_env: dict[str, str]) -> Iterator[ServerProcess]:
    """One fake OpenAI upstream (``tests/e2e/apps/fake_upstream.py``) per test module."""
    with uvicorn_process("tests.e2e.apps.fake_upstream:app", env=upstream_env or None) as proc:
        yield proc


@pytest.fixture
def upstream(upstream_proc: ServerProcess) -> Iterator[UpstreamControl]:
    """The fake upstream's control API, its plan and request record reset for each test."""
    control = UpstreamControl(upstream_proc.url)
    control.reset()
    try:
        yield control
    finally:
        control.close()


@pytest.fixture
def cli_procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started (append them): killed if still running, waited for, their
    pipes closed at teardown."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        reap(procs)
