"""``mianzhang worker`` refuses bad settings with exit status 2 and one clear line, before it
connects to anything. (Running workers: ``tests/e2e/test_jobs_worker_kill.py``.)"""

from __future__ import annotations

import subprocess

import pytest

from tests._support.procs import run_cli


def run_worker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: "" for k in ("MIANZHANG_REDIS_URL",)}
    return run_cli("worker", *args, env={**clean, **(env or {})})


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "needs MIANZHANG_REDIS_URL"),
        (("--redis-url", "redis://127.0.0.1:1/0", "--concurrency", "0"), {}, "--concurrency"),
        (
            (
                "--redis-url",
                "redis://127.0.0.1:1/0",
            ),
            {"MIANZHANG_JOBS__INCLUDE": '["tests.nope:registry"]'},
            "jobs.include 'tests.nope:registry'",
        ),
        ((), {"MIANZHANG_JOBS__VISIBILITY_TIMEOUT": "-1"}, "MIANZHANG_JOBS__VISIBILITY_TIMEOUT"),
    ],
)
def test_worker_exits_2_on_bad_settings(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = run_worker(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
