"""``mianzhang jobs ...`` as real processes against a real server running the built-in jobs.

The demo model answers 20 tokens 50 ms apart, so a ``summarize`` of four chunks (four chunk
calls and one combining call) runs about five seconds with several progress events per call:
long enough to interrupt a watcher in the middle.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mianzhang import SSEDecoder, __version__
from tests._support.lines import Lines
from tests._support.procs import (
    ROOT,
    ServerProcess,
    _env,
    cli_command,
    cli_process,
    run_cli,
    uvicorn_process,
)
from tests._support.terminal import run_on_terminal

pytestmark = pytest.mark.e2e

APP = "mianzhang.server:create_app"
MODELS = {
    "demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.05, "tokens": 20},
    "broken": {"provider": "openai", "upstream": "down"},
}
# four chunks of at most 300 characters
TEXT = " ".join(f"Sentence number {i} says something about streams." for i in range(20))
EVENT_LINE = re.compile(r"^\[([^\]]+)\] ")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "MIANZHANG_WEB": "false",
        "MIANZHANG_FILES__DIRECTORY": str(tmp_path_factory.mktemp("files")),
        "MIANZHANG_LLM__MODELS": json.dumps(MODELS),
        "MIANZHANG_LLM__UPSTREAMS": json.dumps(
            {"down": {"base_url": "http://127.0.0.1:9/v1", "connect_timeout": 1.0}}
        ),
        "MIANZHANG_LLM__MAX_RETRIES": "0",
    }
    with uvicorn_process(APP, factory=True, env=env) as proc:
        yield proc


@pytest.fixture
def env(tmp_path: Path, server: ServerProcess) -> dict[str, str]:
    """The CLI's environment: this server, and a cache of its own for the checkpoints."""
    return _env({"MIANZHANG_URL": server.url, "XDG_CACHE_HOME": str(tmp_path / "cache")})


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def submit_summary(env: dict[str, str], *extra: str) -> str:
    queued = cli(env, "jobs", "submit", "summarize", "--set", f"text={TEXT}", *extra)
    assert queued.returncode == 0, queued.stderr
    return queued.stdout.strip()


def shown_ids(lines: list[str]) -> list[str]:
    return [m.group(1) for line in lines if (m := EVENT_LINE.match(line))]


def all_event_ids(server: ServerProcess, job_id: str) -> list[str]:
    decoder = SSEDecoder()
    ids: list[str] = []
    with httpx.stream("GET", f"{server.url}/v1/jobs/{job_id}/events", timeout=30) as response:
        for chunk in response.iter_bytes():
            ids += [event.id or "" for event in decoder.decode(chunk)]
    return ids


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"mianzhang {__version__}\n"


def test_submit_watch_draws_the_bar_to_100_percent(env: dict[str, str]) -> None:
    args = ("jobs", "submit", "summarize", "--set", f"text={TEXT}", "--set", "chunk_chars:=300")
    run = run_on_terminal(cli_command(*args, "--watch"), env=env, cwd=ROOT)
    assert run.returncode == 0, run.terminal
    percents = [int(p) for p in re.findall(r"(\d+)%", run.terminal)]
    assert percents[-1] == 100
    assert len(set(percents)) >= 5 and min(percents) < 25  # drawn as it moved, not once
    assert "━" in run.terminal and "succeeded" in run.terminal
    # the result on stdout, readably: fields, the summary as text below its name
    fields = dict(line.split(":", 1) for line in run.stdout.splitlines() if ":" in line[:10])
    assert fields["chunks"].strip() == "4" and fields["llm_calls"].strip() == "5"
    assert run.stdout.startswith("summary:\n  This is mianzhang's demo model")
    assert "{" not in run.stdout


def test_watch_resumes_after_ctrl_c_without_repeating_events(
    env: dict[str, str], server: ServerProcess
) -> None:
    job_id = submit_summary(env, "--set", "chunk_chars:=300")
    with cli_process("jobs", "watch", job_id, env=env) as first:
        try:
            assert first.stderr is not None
            lines = Lines(first.stderr)
            lines.until(lambda line: "progress  20%" in line)  # chunk 1 of 4 summarised
            first.send_signal(signal.SIGINT)
            assert first.wait(30) == 130
            before = lines.rest()
        finally:
            if first.poll() is None:
                first.kill()
    assert before[-1] == (
        f"detached (the job keeps running); resume with: mianzhang jobs watch {job_id}"
    )
    first_ids = shown_ids(before)

    second = cli(env, "jobs", "watch", job_id)
    assert second.returncode == 0, second.stderr
    after = second.stderr.splitlines()
    assert f"resuming after event {first_ids[-1]}" in after
    assert after[-1] == "succeeded" and second.stdout.startswith("summary:")

    every = all_event_ids(server, job_id)  # the job's whole stream, its final event last
    assert first_ids + shown_ids(after) == every[:-1]  # each shown once, none missing

    third = cli(env, "jobs", "watch", job_id)  # finished and read: the result again
    assert third.returncode == 0 and third.stdout == second.stdout


def test_a_file_job_its_json_result_and_the_list(env: dict[str, str], tmp_path: Path) -> None:
    data = b"line\n" * 50_000
    path = tmp_path / "big.log"
    path.write_bytes(data)
    run = cli(env, "jobs", "submit", "checksum", "--file", str(path), "--watch", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["digest"] == hashlib.sha256(data).hexdigest()
    assert result["lines"] == 50_000 and result["matches_upload"] is True
    assert "[" in run.stderr and "progress 100%" in run.stderr

    listed = cli(env, "jobs", "list", "--limit", "50")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "TYPE", "STATE", "PROGRESS", "CREATED", "MESSAGE"]
    assert any(row.split()[1:4] == ["checksum", "succeeded", "100%"] for row in rows)
    as_json = json.loads(cli(env, "jobs", "list", "--json").stdout)
    assert as_json[0]["type"] == "checksum" and as_json[0]["result"]["digest"] == result["digest"]


def test_a_failed_job_exits_1_with_its_error(env: dict[str, str]) -> None:
    run = cli(env, "jobs", "submit", "summarize", "--set", "text=hi", "--set", "model=broken", "-w")
    assert run.returncode == 1
    assert re.search(r"^failed: \w+: .+", run.stderr, re.MULTILINE), run.stderr
    assert run.stdout == ""


def test_cancel_stops_a_watched_job_which_exits_3(env: dict[str, str]) -> None:
    job_id = submit_summary(env, "--set", "chunk_chars:=300")
    with cli_process("jobs", "watch", job_id, env=env) as watcher:
        try:
            assert watcher.stderr is not None
            lines = Lines(watcher.stderr)
            lines.until(lambda line: "progress" in line)
            cancelled = cli(env, "jobs", "cancel", job_id)
            assert cancelled.returncode == 0, cancelled.stderr
            assert cancelled.stdout.startswith(f"{job_id} cancel")
            assert watcher.wait(30) == 3
            assert lines.rest()[-1] == "cancelled"
        finally:
            if watcher.poll() is None:
                watcher.kill()
    again = cli(env, "jobs", "cancel", job_id)
    assert again.returncode == 0  # cancelling a cancelled job is a no-op
    missing = cli(env, "jobs", "watch", "job_0000000000000000")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_bad_requests_are_refused_readably(env: dict[str, str]) -> None:
    unknown = cli(env, "jobs", "submit", "nope")
    assert unknown.returncode == 1
    assert "HTTP 400: unknown job type 'nope'" in unknown.stderr
    bad = cli(env, "jobs", "submit", "summarize", "--input", "[1]")
    assert bad.returncode == 2 and "JSON object" in bad.stderr
