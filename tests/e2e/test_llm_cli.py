"""``mianzhang chat`` against a running server: prints tokens as they come, resumes by id."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mianzhang.cli._chat import run_chat
from mianzhang.llm import demo_answer
from tests._support.procs import (
    ROOT,
    ServerProcess,
    free_port,
    stop_process,
    uvicorn_process,
    wait_for_port,
)

from ._llm import APP, gateway_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = gateway_env("http://127.0.0.1:9")
    with uvicorn_process(APP, factory=True, env=env) as p:
        yield p


class Recording(io.StringIO):
    """stdout that remembers each write (to see that text came in pieces)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_chat_prints_the_answer_as_it_streams(server: ServerProcess) -> None:
    out, err = Recording(), io.StringIO()
    status = run_chat("hello gateway", url=server.url, model="demo", out=out, err=err)
    assert status == 0, err.getvalue()
    expected = "".join(demo_answer("hello gateway", 40))
    assert out.getvalue() == expected + "\n"
    assert len([w for w in out.writes if w.strip()]) == 40  # one write per token
    log = err.getvalue()
    assert "stream gen-" in log and "demo model" in log and "time to first token" in log


def test_chat_resume_replays_a_finished_generation(server: ServerProcess) -> None:
    created = httpx.post(
        f"{server.url}/v1/llm/generations",
        json={
            "model": "demo",
            "messages": [{"role": "user", "content": "again"}],
            "background": True,
        },
    )
    assert created.status_code == 201
    stream_id = created.json()["stream_id"]
    out, err = io.StringIO(), io.StringIO()
    assert run_chat(None, url=server.url, resume=stream_id, out=out, err=err) == 0
    assert out.getvalue() == "".join(demo_answer("again", 40)) + "\n"


def test_chat_reports_refusals(server: ServerProcess) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_chat("x", url=server.url, model="nope", out=out, err=err) == 1
    assert "model not found" in err.getvalue()
    assert run_chat(None, url=server.url, out=out, err=err) == 1


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """``mianzhang serve`` as a user runs it: nothing configured (memory log, demo model)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIANZHANG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable,
        "-m",
        "mianzhang",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc)
            yield ServerProcess(proc, port, log_path=log_path)
        finally:
            stop_process(proc)


def test_serve_defaults_to_the_demo_model_and_says_it_is_one(default_server: ServerProcess) -> None:
    models = httpx.get(f"{default_server.url}/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["demo", "scripted"]
    assert [m["owned_by"] for m in models] == ["mianzhang-demo", "mianzhang-scripted"]
    assert all("not an LLM" in m["description"] for m in models)
    completion = httpx.post(
        f"{default_server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},  # no model: the default
        timeout=30,
    ).json()
    assert completion["model"] == "demo"
    assert completion["choices"][0]["message"]["content"] == "".join(demo_answer("hi", 120))


def test_serve_offers_the_scripted_model_out_of_the_box(default_server: ServerProcess) -> None:
    def complete(content: str) -> dict[str, Any]:
        body = {"model": "scripted", "messages": [{"role": "user", "content": content}]}
        response = httpx.post(f"{default_server.url}/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json()["choices"][0])

    assert complete("hi")["message"]["content"] == 'turn 1: you said "hi"'
    script = {"script": [{"words": "Let me check."}, {"finish": "length"}]}
    choice = complete(json.dumps(script))
    assert choice["message"]["content"] == "Let me check."
    assert choice["finish_reason"] == "length"


def test_the_chat_command_prints_tokens_while_they_stream(default_server: ServerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIANZHANG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "mianzhang", "chat", "stream to me", "--url", default_server.url]
    # the demo answers 120 tokens 40 ms apart: about 5 s from first to last
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.read1(65536)  # returns as soon as the first bytes are there
            assert first and proc.poll() is None  # text arrived while the command still runs
            rest = proc.stdout.read()
            err = proc.stderr.read().decode()
            assert proc.wait(30) == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
    expected = "".join(demo_answer("stream to me", 120))
    assert (first + rest).decode() == expected + "\n"
    assert len(first.decode()) < len(expected) // 2
    assert "model demo (demo model: not an LLM)" in err and "time to first token" in err


def test_the_chat_command_reads_a_piped_prompt(default_server: ServerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIANZHANG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "mianzhang", "chat", "--url", default_server.url]
    result = subprocess.run(
        [*cmd, "--max-tokens", "16"],
        env=env,
        input="one two three\nfour five\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(demo_answer("one two three four five", 16)) + "\n"
    assert "You wrote 5 words" in result.stdout  # the model saw the piped prompt
    nothing = subprocess.run(cmd, env=env, input="  \n", capture_output=True, text=True, timeout=60)
    assert nothing.returncode == 2 and "give a PROMPT" in nothing.stderr
