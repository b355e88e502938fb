"""``mianzhang tail NAME`` as a real process against a real server: appended lines appear as
they are written, the command carries on across a server restart without repeating or
losing a line, and Ctrl-C says how to resume by hand."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests._support.lines import Lines
from tests._support.procs import cli_process, free_port, run_cli, uvicorn_process
from tests.e2e._tails import log_with, tails_env

pytestmark = pytest.mark.e2e

APP = "mianzhang.server:create_app"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return log_with(tmp_path, ["old 1", "old 2"])


@pytest.fixture
def server_env(log: Path) -> dict[str, str]:
    return tails_env(log, MIANZHANG_WEB="false", MIANZHANG_GRACEFUL_TIMEOUT="2")


def append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")


def start_tail(procs: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    proc = cli_process("tail", "app", *args)
    procs.append(proc)
    return proc


def test_tail_follows_appended_lines_across_a_restart(
    log: Path, server_env: dict[str, str], cli_procs: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with uvicorn_process(APP, factory=True, env=server_env, port=port):
        proc = start_tail(cli_procs, "--lines", "1", "--url", url)
        assert proc.stdout is not None and proc.stderr is not None
        lines = Lines(proc.stdout)
        assert lines.next() == "old 2"
        append(log, "new 1")
        assert lines.next() == "new 1"
        append(log, "new 2")
        assert lines.next() == "new 2"
    append(log, "while the server was down")
    with uvicorn_process(APP, factory=True, env=server_env, port=port):
        # reconnecting backs off while the server is down: up to 30 s between attempts
        assert lines.next(timeout=60) == "while the server was down"
        append(log, "after the restart")
        assert lines.next() == "after the restart"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        hint = proc.stderr.read().strip().splitlines()[-1]
        assert hint.startswith("resume with: mianzhang tail app --after ")
        assert lines.rest() == [
            "old 2",
            "new 1",
            "new 2",
            "while the server was down",
            "after the restart",
        ]

        append(log, "later")
        resumed = start_tail(cli_procs, "--url", url, "--after", hint.rsplit(" ", 1)[1])
        assert resumed.stdout is not None
        assert Lines(resumed.stdout).next() == "later"  # nothing shown twice


def test_an_unknown_tail_is_refused(server_env: dict[str, str]) -> None:
    with uvicorn_process(APP, factory=True, env=server_env) as server:
        result = run_cli("tail", "nope", "--url", server.url)
    assert result.returncode == 1
    assert "mianzhang tail: HTTP 404: no tail named 'nope'" in result.stderr
