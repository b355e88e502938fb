"""``mianzhang chat`` against a running server: prints tokens as they come, resumes by id."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest

from mianzhang._cli_chat import run_chat
from mianzhang.llm import demo_answer
from tests._support.procs import ServerProcess, uvicorn_process

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
