"""Production behaviour of ``mianzhang serve`` with real processes: nginx in front of two
instances sharing Redis, SIGTERM drain, auth and rate-limit refusals, metrics, and a
schemathesis run against the OpenAPI schema. The HTTP limits (slowloris, header size and
count, deadlines, connection cap) are in ``test_http_limits.py``."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mianzhang.auth import generate_api_key, hash_api_key
from mianzhang.client import ResetEvent, connect
from mianzhang.log import RedisEventLog
from tests._support.nginx import nginx_process
from tests._support.procs import ServerProcess, serve_process
from tests._support.wait import eventually

pytestmark = pytest.mark.e2e

BASE_ENV = {"MIANZHANG_FILES__ENABLED": "false"}


def _cluster_env(redis_url: str, **extra: str) -> dict[str, str]:
    return BASE_ENV | {
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": redis_url,
        "MIANZHANG_GRACEFUL_TIMEOUT": "5",
        "MIANZHANG_RECONNECT_RETRY_MS": "[100, 300]",
        **extra,
    }


def test_nginx_passes_each_event_through_at_once(tmp_path: Path) -> None:
    with (
        serve_process(env=BASE_ENV) as a,
        serve_process(env=BASE_ENV) as b,
        nginx_process((a.port, b.port), tmp_path) as proxy,
    ):
        arrivals: list[float] = []
        started = time.monotonic()
        url = f"{proxy.url}/v1/demo/ticks?interval=1&count=3"
        with httpx.Client(timeout=10) as client, client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            for line in response.iter_lines():
                if line.startswith("data:"):
                    arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 3
        # the first event arrives while the stream still has 2 s to run: nothing buffered it
        assert arrivals[0] < 1.0
        assert arrivals[2] - arrivals[0] > 1.5


def _active_streams(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == "mianzhang_streams_active":
            return family.samples[0].value
    raise AssertionError("mianzhang_streams_active missing")


async def test_sigterm_drains_readers_to_the_other_instance_without_loss(
    redis_url: str, tmp_path: Path
) -> None:
    stream, total, readers = "drain", 600, 10
    env = _cluster_env(redis_url)
    log = RedisEventLog(redis_url)
    try:
        await log.create(stream, max_events=10_000, ttl_after_close=600)
        with (
            serve_process(env=env) as a,
            serve_process(env=env) as b,
            nginx_process((a.port, b.port), tmp_path) as proxy,
        ):
            attached = asyncio.Event()
            results: list[list[int]] = [[] for _ in range(readers)]

            async def read(k: int) -> None:
                url = f"{proxy.url}/v1/streams/{stream}"
                async with connect(url, read_timeout=20) as events:
                    async for event in events:
                        assert not isinstance(event, ResetEvent)
                        results[k].append(orjson.loads(event.data)["i"])
                        if results[k][-1] == total:
                            return

            tasks = [asyncio.create_task(read(k)) for k in range(readers)]
            for i in range(1, total + 1):
                await log.append(stream, orjson.dumps({"i": i}).decode())
                if i == 100:
                    await eventually(lambda: min(len(r) for r in results) >= 100, timeout=20)
                    on_a = await asyncio.to_thread(_active_streams, a)
                    assert on_a >= 1, "nginx sent no reader to instance A"
                    sent = time.monotonic()
                    a.proc.send_signal(signal.SIGTERM)
                    attached.set()
                await asyncio.sleep(0.005)  # pacing the producer (a rate), not a wait
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            code = await asyncio.to_thread(a.proc.wait, 10)
            exited_after = time.monotonic() - sent
            assert code in (0, -signal.SIGTERM), a.output()  # uvicorn re-raises the signal
            assert exited_after < 5 + 1, exited_after  # graceful timeout + 1 s
            assert attached.is_set()
        for got in results:
            assert got == list(range(1, total + 1))
    finally:
        await log.aclose()


def test_auth_and_rate_limit_refusals_carry_their_headers() -> None:
    key = generate_api_key()
    keys = {"ci": {"digest": hash_api_key(key), "scopes": ["llm", "streams"]}}
    env = BASE_ENV | {
        "MIANZHANG_AUTH__API_KEYS": json.dumps(keys),
        "MIANZHANG_LIMITS__REQUESTS_PER_MINUTE": "3",
        "MIANZHANG_LIMITS__CONCURRENT_STREAMS": "1",
    }
    with serve_process(env=env) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        anonymous = http.get("/v1/models")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["error"]["type"] == "authentication_error"  # OpenAI's shape
        auth = {"Authorization": f"Bearer {key}"}
        assert http.get("/v1/jobs", headers=auth).status_code in (403, 404, 405)
        statuses = [http.get("/v1/models", headers=auth).status_code for _ in range(3)]
        refused = http.get("/v1/models", headers=auth)
        assert statuses == [200, 200, 200] or 429 in statuses
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-policy"] == '"requests";q=3;w=60'
        assert refused.headers["ratelimit"].startswith('"requests";r=0;t=')


def test_metrics_parse_with_the_prometheus_parser() -> None:
    with serve_process(env=BASE_ENV) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        http.get("/v1/demo/ticks", params={"interval": 0.05, "count": 2})
        http.post(
            "/v1/chat/completions",
            json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        )
        names = {f.name for f in text_string_to_metric_families(http.get("/metrics").text)}
    for name in (
        "mianzhang_streams_active",
        "mianzhang_streams_opened",
        "mianzhang_streams_ended",
        "mianzhang_log_followers",
        "mianzhang_llm_active_generations",
    ):
        assert name in names, sorted(names)


def test_schemathesis_finds_no_server_error() -> None:
    with serve_process(env=BASE_ENV) as srv:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{srv.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--request-timeout",
                "10",
                # endless or long-lived streams by design: their bad-input paths are unit-tested
                "--exclude-path-regex",
                r"(ticks|/events|/streams/\{stream\}$|/tails/)",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
