"""``mianzhang publish`` and ``mianzhang subscribe`` as real processes against a real server
on Redis. The subscriber keeps running while the server is restarted: it reconnects with
``Last-Event-ID`` and prints every event exactly once."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests._support.lines import Lines
from tests._support.procs import cli_process, free_port, run_cli, uvicorn_process
from tests.channels._tokens import SECRET, grant, hs256

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

APP = "mianzhang.server:create_app"


def next_json(lines: Lines, timeout: float = 30.0) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(lines.next(timeout))
    return parsed


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": redis_url,
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
        "MIANZHANG_GRACEFUL_TIMEOUT": "2",
    }


def test_publish_and_subscribe_across_a_server_restart(
    env: dict[str, str], cli_procs: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with uvicorn_process(APP, factory=True, env=env, port=port):
        sub = cli_process("subscribe", "news", "--url", url, "--count", "4")
        cli_procs.append(sub)
        assert sub.stdout is not None
        lines = Lines(sub.stdout)
        first = run_cli("publish", "news", '{"n": 1}', "--json", "--event", "note", "--url", url)
        assert first.returncode == 0, first.stderr
        published = json.loads(first.stdout)
        assert published["channel"] == "news" and published["duplicate"] is False
        assert next_json(lines) == {"id": published["id"], "event": "note", "data": '{"n":1}'}

    # the server is gone (its streams were drained); a new one takes over on the same port
    with uvicorn_process(APP, factory=True, env=env, port=port):
        second = run_cli("publish", "news", "plain text", "--idempotency-key", "k-7", "--url", url)
        repeat = run_cli("publish", "news", "plain text", "--idempotency-key", "k-7", "--url", url)
        third = run_cli("publish", "news", "[1, 2]", "--json", "--url", url)
        fourth = run_cli("publish", "news", "bye", "--url", url)
        results = [json.loads(p.stdout) for p in (second, repeat, third, fourth)]
        assert results[1] == {**results[0], "duplicate": True}
        # reconnecting backs off while the server is down: up to 30 s between attempts
        got = [next_json(lines, timeout=60) for _ in range(3)]
        assert got == [
            {"id": results[0]["id"], "event": "message", "data": "plain text"},
            {"id": results[2]["id"], "event": "message", "data": "[1,2]"},
            {"id": results[3]["id"], "event": "message", "data": "bye"},
        ]
        assert sub.wait(30) == 0  # --count 4 reached
        assert len(lines.rest()) == 4  # nothing after the 4th event


def test_bad_arguments_and_refusals_exit_non_zero() -> None:
    bad_json = run_cli("publish", "news", "{nope", "--json", "--url", "http://127.0.0.1:9")
    assert bad_json.returncode == 2 and "not JSON" in bad_json.stderr
    bad_count = run_cli("subscribe", "news", "--url", "http://127.0.0.1:9", "--count", "0")
    assert bad_count.returncode == 2
    env = {
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
        "MIANZHANG_AUTH__JWT_KEYS": json.dumps([{"algorithm": "HS256", "key": SECRET}]),
    }
    with uvicorn_process(APP, factory=True, env=env) as server:
        unauthorized = run_cli("publish", "news", "x", "--url", server.url)
        assert unauthorized.returncode == 1 and "HTTP 401" in unauthorized.stderr
        no_token = run_cli("subscribe", "news", "--url", server.url)
        assert no_token.returncode == 1 and "HTTP 401: subscribing needs a token" in no_token.stderr
        wrong = run_cli("subscribe", "news", "--url", server.url, "--token", hs256(grant("other")))
        assert wrong.returncode == 1 and "HTTP 403" in wrong.stderr
