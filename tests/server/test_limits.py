"""Rate limits: requests per minute, concurrent streams (memory and Redis), LLM tokens."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from fastapi.testclient import TestClient

from mianzhang import RateLimited
from mianzhang.server import Settings, create_app
from mianzhang.server._limits import LimitsSettings, RateLimiter, StreamLease
from tests._support.wait import eventually


def _client(**limits: object) -> TestClient:
    settings = Settings(files={"enabled": False}, limits=limits)  # type: ignore[arg-type]
    return TestClient(create_app(settings))


def test_requests_over_the_minute_budget_get_429_with_headers() -> None:
    with _client(requests_per_minute=3) as client:
        statuses = [client.get("/v1/models").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("/v1/models")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert refused.headers["ratelimit-policy"] == '"requests";q=3;w=60'
        assert refused.headers["ratelimit"].startswith('"requests";r=0;t=')
        assert refused.json()["error"]["type"] == "rate_limit_error"  # OpenAI's shape
        assert refused.json()["error"]["code"] == "rate_limited"


async def test_memory_limiter_counts_concurrent_streams_and_releases_them() -> None:
    limiter = RateLimiter(LimitsSettings(concurrent_streams=2))
    first = await limiter.stream("k")
    second = await limiter.stream("k")
    with pytest.raises(RateLimited) as refused:
        await limiter.stream("k")
    assert refused.value.policy == "streams"
    assert await limiter.stream("other") is not None  # per caller
    assert first is not None and second is not None
    await first.release()
    await first.release()  # idempotent
    assert await limiter.stream("k") is not None
    await limiter.aclose()


@pytest.fixture(
    params=[
        pytest.param("redis_server", marks=pytest.mark.redis),
        pytest.param("redis_cluster_server", marks=pytest.mark.redis),
        pytest.param("redis_sentinel_server", marks=pytest.mark.redis),
    ]
)
def deployment_url(request: pytest.FixtureRequest) -> str:
    """One server, a Redis Cluster and a Sentinel-managed master (the session's)."""
    return str(request.getfixturevalue(request.param).url)


async def test_redis_limiter_is_shared_between_instances(deployment_url: str) -> None:
    settings = LimitsSettings(concurrent_streams=1, requests_per_minute=2)
    prefix = f"t{secrets.token_hex(4)}:"  # the session's Redis is not flushed here
    a = RateLimiter(settings, redis_url=deployment_url, prefix=prefix)
    b = RateLimiter(settings, redis_url=deployment_url, prefix=prefix)
    try:
        lease = await a.stream("k")
        with pytest.raises(RateLimited):
            await b.stream("k")
        assert lease is not None
        await lease.release()
        again = await b.stream("k")
        assert again is not None
        await a.request("k")
        await b.request("k")
        with pytest.raises(RateLimited):
            await a.request("k")
    finally:
        await a.aclose()
        await b.aclose()


async def test_tokens_budget_refuses_once_spent() -> None:
    limiter = RateLimiter(LimitsSettings(llm_tokens_per_minute=100))
    await limiter.check_tokens("k")
    await limiter.charge_tokens("k", 60)
    await limiter.check_tokens("k")
    await limiter.charge_tokens("k", 60)  # overdraws: the window is full now
    with pytest.raises(RateLimited) as refused:
        await limiter.check_tokens("k")
    assert refused.value.policy == "tokens"
    await limiter.aclose()


def test_a_second_concurrent_stream_is_refused_before_it_starts() -> None:
    with _client(concurrent_streams=1) as client:
        url = "/v1/demo/ticks?interval=0.05&count=40"
        with client.stream("GET", url) as first:
            assert first.status_code == 200
            second = client.get(url)
            assert second.status_code == 429
            assert second.headers["ratelimit-policy"] == '"streams";q=1'
            assert "retry-after" in second.headers
            next(first.iter_lines())
        # the first stream ended: its slot is free again
        with client.stream("GET", "/v1/demo/ticks?interval=0.05&count=1") as third:
            assert third.status_code == 200


def test_llm_tokens_per_minute_refuse_the_next_generation_once_spent() -> None:
    with _client(llm_tokens_per_minute=20) as client:
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        first = client.post("/v1/chat/completions", json=body)
        assert first.status_code == 200
        assert first.json()["usage"]["total_tokens"] > 20  # overdraws the window
        refused = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert refused.status_code == 429
        assert refused.headers["ratelimit-policy"] == '"tokens";q=20;w=60'
        assert refused.json()["error"]["policy"] == "tokens"


def test_streamed_generations_are_charged_when_they_end() -> None:
    with _client(llm_tokens_per_minute=20) as client:
        body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with client.stream("POST", "/v1/chat/completions", json=body) as first:
            assert first.status_code == 200
            lines = [line for line in first.iter_lines() if line.startswith("data:")]
        assert lines[-1] == "data: [DONE]"
        refused = client.post("/v1/chat/completions", json=body)
        assert refused.status_code == 429


async def test_redis_stream_slots_are_renewed_while_held_and_expire_after_a_crash(
    redis_url: str,
) -> None:
    """The docstring's promise: a live lease outlives its TTL (renewed); a crashed instance's
    lease frees its slot after ``lease_ttl`` seconds at most."""
    settings = LimitsSettings(concurrent_streams=1, lease_ttl=1.5)
    holder = RateLimiter(settings, redis_url=redis_url)
    other = RateLimiter(settings, redis_url=redis_url)
    try:
        lease = await holder.stream("k")
        assert lease is not None
        # The stimulus, not a synchronisation: time must pass beyond the TTL (1.5 s) for the
        # test to mean anything; only renewal can keep the slot taken after it.
        await asyncio.sleep(2.5)
        with pytest.raises(RateLimited):
            await other.stream("k")
        # "crash": the holder stops renewing without releasing
        renewer = holder._slots._renewer  # type: ignore[attr-defined]
        renewer.cancel()
        taken: list[StreamLease | None] = []

        async def slot_freed() -> bool:
            try:
                taken.append(await other.stream("k"))
            except RateLimited:
                return False
            return True

        await eventually(slot_freed, timeout=10, interval=0.1, message="the lease never expired")
        assert taken[0] is not None
        await taken[0].release()
    finally:
        await holder.aclose()
        await other.aclose()
