"""``mianzhang serve --workers N``: N server processes on one port, so one machine uses all
its cores.

Each worker is a forked process with its own listening socket on the same address
(``SO_REUSEPORT``): the kernel spreads new connections evenly over the workers' sockets, and
each worker runs its own app, event loop and services. They share what the Redis backend
shares (the event log: a publish on one worker reaches the subscribers of all, each exactly
once; Redis commands per event do not grow with subscribers). With the memory backend each
worker would hold its own streams, so ``serve`` refuses ``--workers`` above 1 with it.

The parent (the supervisor) binds every socket before forking, so an address in use is
reported at once; it then only waits. Guarantees:

* **Signals.** SIGTERM, SIGINT and SIGHUP sent to the supervisor are passed to every worker
  (each drains its streams and shuts down gracefully); the supervisor exits once all have.
  Workers run in their own process group, so a terminal's Ctrl-C reaches them once, through
  the supervisor (a second one forces them out, as it forces uvicorn); on Linux a worker is
  sent SIGTERM if the supervisor itself dies.
* **Restarts.** A worker that dies while the supervisor is not stopping is started again on
  its socket (connections queued on it meanwhile are then accepted), at most ``MAX_RESTARTS``
  times within ``RESTART_WINDOW`` seconds; beyond that, or when a worker fails to start
  (uvicorn's exit status 3), every worker is stopped and ``serve`` exits with status 3.
* **Cleanup.** The sockets are closed when the supervisor ends; a worker exits through
  ``os._exit``, never returning into the supervisor's code.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW", "reuse_port_sockets", "supervise"]

logger = logging.getLogger("mianzhang.server")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
STARTUP_FAILURE = 3  # uvicorn's exit status for an app that failed to start

Serve = Callable[[socket.socket], int]
"""Run one worker on its socket until it is told to stop; its exit status."""


def reuse_port_sockets(host: str, port: int, count: int, send_buffer: int) -> list[socket.socket]:
    """``count`` listening sockets on ``(host, port)`` sharing the port (``SO_REUSEPORT``);
    port 0 is resolved once, by the first. ``OSError`` if the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if send_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(2048)
            sock.set_inheritable(True)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def supervise(sockets: list[socket.socket], serve: Serve) -> int:
    """Run one worker per socket (``serve(sock)`` in a forked process) until they all
    exit; the exit status of ``serve`` (see the module docstring)."""
    return _Supervisor(sockets, serve).run()


class _Supervisor:
    def __init__(self, sockets: list[socket.socket], serve: Serve) -> None:
        self.sockets = sockets
        self.serve = serve
        self.workers: dict[int, int] = {}  # pid -> index of its socket
        self.stopping = False
        self.status = 0
        self.restarts: list[float] = []

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._forward) for sig in _SIGNALS}
        try:
            for index in range(len(self.sockets)):
                self._start(index)
            while self.workers:
                pid, code = _wait()
                index = self.workers.pop(pid, -1)
                if index >= 0:
                    self._ended(index, pid, code)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
        return self.status

    def _start(self, index: int) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's code
            code = 1
            try:
                _detach_from_terminal(supervisor)
                for other, sock in enumerate(self.sockets):
                    if other != index:
                        sock.close()
                code = self.serve(self.sockets[index])
            finally:
                os._exit(code)
        self.workers[pid] = index

    def _ended(self, index: int, pid: int, code: int) -> None:
        """A worker is gone: start it again, or stop them all (see the module docstring)."""
        if self.stopping:
            return
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW]
        if code == STARTUP_FAILURE or len(self.restarts) >= MAX_RESTARTS:
            logger.error("worker %d ended (status %d): stopping every worker", pid, code)
            self.status = STARTUP_FAILURE
            self._stop(signal.SIGTERM)
            return
        logger.warning("worker %d ended (status %d): starting it again", pid, code)
        self.restarts.append(now)
        self._start(index)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        self.stopping = True
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _detach_from_terminal(supervisor: int) -> None:
    """In a new worker: default signal handlers, its own process group, and (Linux) SIGTERM
    when the supervisor (pid ``supervisor``) dies."""
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    os.setpgid(0, 0)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != supervisor:  # it died before that took effect
            os._exit(1)


_PR_SET_PDEATHSIG = 1


def _wait() -> tuple[int, int]:
    """The next worker to end, and its exit status (128 + signal if killed)."""
    pid, status = os.waitpid(-1, 0)
    if os.WIFSIGNALED(status):
        return pid, 128 + os.WTERMSIG(status)
    return pid, os.waitstatus_to_exitcode(status)
