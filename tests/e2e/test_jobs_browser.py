"""The jobs page in Chromium: submit a summarize job, watch the progress bar climb to 100%
with partial results arriving, then the final summary; once with the server's in-process
pool, once with the job run by a ``mianzhang worker`` process through Redis."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._support.browser import chromium_page
from tests._support.procs import (
    ARTIFACTS,
    ROOT,
    RedisProcess,
    ServerProcess,
    _env,
    stop_process,
    uvicorn_process,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# ~0.25 s per LLM call: the sample text in 300-character chunks is 3 chunks + 1 combining call
DEMO = {"demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.02, "tokens": 10}}


@pytest.fixture(params=["local", "redis-worker"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "MIANZHANG_LLM__MODELS": json.dumps(DEMO),
        "MIANZHANG_FILES__DIRECTORY": str(tmp_path / "files"),
    }
    worker: subprocess.Popen[bytes] | None = None
    if request.param == "redis-worker":
        redis: RedisProcess = request.getfixturevalue("redis_server")
        env |= {
            "MIANZHANG_LOG_BACKEND": "redis",
            "MIANZHANG_REDIS_URL": redis.url,
            "MIANZHANG_REDIS_PREFIX": f"mzb{secrets.token_hex(4)}:",
            "MIANZHANG_JOBS__QUEUE": "redis",
            "MIANZHANG_JOBS__SERVE_LOCALLY": "false",
        }
        ARTIFACTS.mkdir(exist_ok=True)
        with (ARTIFACTS / "worker-browser.log").open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "mianzhang", "worker", "--name", "browser-worker"],
                cwd=ROOT,
                env=_env(env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    try:
        with uvicorn_process("mianzhang.server:create_app", factory=True, env=env) as proc:
            yield proc
    finally:
        if worker is not None:
            assert stop_process(worker, signal.SIGTERM) == 0


def test_progress_bar_reaches_100_with_partial_results(server: ServerProcess) -> None:
    with chromium_page() as page:
        page.goto(server.url + "/#/jobs")
        page.wait_for_selector("body[data-ready='1'][data-page='jobs']")
        # before any job: no job panel, no empty "Partial results" or blank "Result"
        for testid in ("jobs-panel", "jobs-partials-box", "jobs-result-box"):
            assert page.get_by_test_id(testid).is_hidden()
        assert page.get_by_text("Partial results").is_hidden()
        assert page.get_by_role("heading", name="Result").is_hidden()
        # every value the bar takes, sampled on each change and every 5 ms
        page.evaluate(
            """() => {
            window.__bar = [];
            const bar = document.querySelector("[data-testid=jobs-progress]");
            const record = () => window.__bar.push(bar.value);
            new MutationObserver(record).observe(bar, {attributes: true});
            setInterval(record, 5);
        }"""
        )
        page.fill("[data-testid=jobs-chunk]", "300")
        page.click("[data-testid=jobs-submit]")
        page.wait_for_function(
            "document.querySelector('[data-testid=jobs-progress]').value === 100",
            timeout=30_000,
        )
        page.wait_for_selector("[data-testid=jobs-state]:text-is('succeeded')", timeout=10_000)
        values: list[float] = page.evaluate("window.__bar")
        partials = page.locator("[data-testid=jobs-partial]").all_inner_texts()
        result = page.inner_text("[data-testid=jobs-result]")
        job_id = page.inner_text("[data-testid=jobs-id]")
        # the summary is shown as text (not JSON), the other values as labelled fields
        assert page.get_by_test_id("jobs-result-box").is_visible()
        fields = page.locator("[data-testid=jobs-result-fields] dt").all_inner_texts()
        assert {"Chunks", "Model calls", "Model", "Tokens"} <= set(fields)
        assert "{" not in page.get_by_test_id("jobs-result-box").inner_text()
        assert page.inner_text("[data-testid=jobs-percent]") == "100%"
        errors = list(page.console_errors)  # type: ignore[attr-defined]
    assert values[-1] == 100
    assert values == sorted(values)  # never backwards
    assert any(0 < v < 100 for v in values)  # it moved while the job ran, not only at the end
    assert len(partials) == 4
    assert [p.split(":")[0] for p in partials[:3]] == ["chunk 1/3", "chunk 2/3", "chunk 3/3"]
    assert partials[3].startswith("combined")
    job = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
    assert job["state"] == "succeeded" and result == job["result"]["summary"]
    assert errors == []
