"""cli/_workers.py, run in a child process (it forks): the port shared by every worker, a
signal to the supervisor reaching every worker, a worker failing to start stopping them all,
and a worker that keeps dying given up on."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import psutil

from tests._support.procs import ROOT, _env
from tests._support.wait import eventually_sync

SCRIPT = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    from mianzhang.cli import _workers

    mode = sys.argv[1]
    _workers.RESTART_WINDOW = 60.0

    def serve(sock):
        if mode == "fail":
            return 3
        if mode == "crash":
            return 1
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        sock.settimeout(0.05)
        while not stop:
            try:
                conn, _ = sock.accept()
            except (TimeoutError, InterruptedError):
                continue
            conn.sendall(str(os.getpid()).encode())
            conn.close()
        return 0

    sockets = _workers.reuse_port_sockets("127.0.0.1", 0, 2, 0)
    print(sockets[0].getsockname()[1], flush=True)
    sys.exit(_workers.supervise(sockets, serve))
    """
)


@contextlib.contextmanager
def started(mode: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The script running in ``mode``; killed (with its workers) and reaped at the end."""
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=ROOT,
        env=_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None
            yield proc, int(proc.stdout.readline())
        finally:
            if proc.poll() is None:
                for child in psutil.Process(proc.pid).children():
                    child.kill()
                proc.kill()
            proc.communicate(timeout=30)


def ask(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return int(conn.recv(64))


def test_the_workers_share_the_port_and_stop_on_sigterm() -> None:
    with started("serve") as (proc, port):
        eventually_sync(lambda: len(psutil.Process(proc.pid).children()) == 2)
        workers = {child.pid for child in psutil.Process(proc.pid).children()}
        answered = {ask(port) for _ in range(64)}
        assert answered == workers  # connections spread over both (2^-63 to miss one)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not any(psutil.pid_exists(pid) for pid in workers)


def test_a_worker_failing_to_start_stops_them_all() -> None:
    with started("fail") as (proc, _):
        assert proc.wait(20) == 3


def test_a_worker_that_keeps_dying_is_given_up_on() -> None:
    with started("crash") as (proc, _):
        assert proc.wait(60) == 3
        assert proc.stderr is not None
        assert b"starting it again" in proc.stderr.read()
