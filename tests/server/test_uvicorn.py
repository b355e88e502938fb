"""server/_uvicorn.py, the server of ``mianzhang serve`` and of ``mianzhang run`` /
``mianzhang.server.run`` for any app: once the app has started, the collector is set up (what
exists is frozen, the young generation's threshold raised) and connections are accepted in
batches; a user's own app gets the stream transport; bad settings fail before any socket."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from mianzhang import ConfigError
from mianzhang.server import run
from mianzhang.server._uvicorn import GC_THRESHOLD, new_server
from tests._support.procs import run_cli, run_process
from tests._support.wait import eventually


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app with nothing to start."""


async def test_the_collector_is_set_up_once_the_app_has_started() -> None:
    before = gc.get_threshold()
    server = new_server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    assert gc.get_threshold() == before  # nothing changes before the start
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started)
        assert gc.get_threshold()[0] == GC_THRESHOLD
        assert gc.get_freeze_count() > 0
        assert len(server.acceptors) == 1  # type: ignore[attr-defined]  # (batched accept)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        gc.unfreeze()
        gc.set_threshold(*before)
        sock.close()


def test_run_refuses_options_that_are_not_its_to_take() -> None:
    with pytest.raises(TypeError, match="http, workers"):
        run(app, http="h11", workers=2)


def test_run_fails_on_bad_settings_before_opening_a_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIANZHANG_ACCEPT_BATCH", "-1")
    with pytest.raises(ConfigError, match="MIANZHANG_ACCEPT_BATCH"):
        run(app, port=1)  # port 1 would need root: nothing was bound


def test_mianzhang_run_serves_a_users_app_with_the_stream_transport() -> None:
    """``mianzhang run module:app``: the app is served by mianzhang's protocol (its scope
    offers the transport), its streams end with their events, SIGTERM stops it cleanly."""
    args = ("--lifespan", "off", "--log-level", "warning")
    with run_process("tests.server._run_app:app", args=args) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/probe").json() == {"transport": True}
            body = client.get("/events").text
        assert [line for line in body.splitlines() if line.startswith("data:")] == [
            "data: event 0",
            "data: event 1",
            "data: event 2",
        ]
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(10)
        assert code in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises the signal
        assert "Traceback" not in server.output()


def test_mianzhang_run_exits_2_on_bad_settings() -> None:
    done = run_cli("run", "tests.server._run_app:app", env={"MIANZHANG_ACCEPT_BATCH": "-1"})
    assert done.returncode == 2
    assert "MIANZHANG_ACCEPT_BATCH" in done.stderr
