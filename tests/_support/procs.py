"""Real processes for tests: uvicorn servers and redis-server on free loopback ports.

Every helper here waits for readiness by polling with a deadline (never a fixed sleep) and
stops its process in ``finally`` (SIGTERM, then SIGKILL after a bound), so a failing test
leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0
) -> None:
    """Return once 127.0.0.1:port accepts TCP connections; raise if the process died or time
    ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening:\n{out}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> int:
    """Send ``sig``, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    host: str = "127.0.0.1"
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH")])
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


@contextlib.contextmanager
def uvicorn_process(
    app: str,
    *,
    factory: bool = False,
    env: dict[str, str] | None = None,
    port: int | None = None,
    args: tuple[str, ...] = (),
    graceful_timeout: float | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[ServerProcess]:
    """Run ``python -m uvicorn APP`` on 127.0.0.1:PORT (cwd = repo root, so ``tests.…`` apps
    import).

    Output goes to ``test-artifacts/uvicorn-PORT.log`` (read it with ``.output()``).
    """
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if factory:
        cmd.append("--factory")
    if graceful_timeout is not None:
        cmd += ["--timeout-graceful-shutdown", str(graceful_timeout)]
    cmd += list(args)
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"uvicorn-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port(port, None)
        except TimeoutError:
            raise RuntimeError(log_path.read_text(errors="replace")) from None
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log_path.read_text(errors='replace')}")
        yield ServerProcess(proc, port, log_path=log_path)
    finally:
        stop_process(proc, stop_signal)
        log.close()


@contextlib.contextmanager
def serve_process(
    *, env: dict[str, str] | None = None, port: int | None = None, args: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    """Run the product itself: ``python -m mianzhang serve --port PORT`` (output as above)."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "mianzhang",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *args,
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"serve-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port(port, None)
        except TimeoutError:
            raise RuntimeError(log_path.read_text(errors="replace")) from None
        yield ServerProcess(proc, port, log_path=log_path)
    finally:
        stop_process(proc)
        log.close()


def redis_server_binary() -> str:
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(path).exists():
        raise RuntimeError(
            "redis-server is not installed: run scripts/test (it installs it with apt)"
        )
    return path


@dataclass
class RedisProcess:
    """A redis-server on a free port with persistence off (``--save ''``). Restartable in place."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)
            self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        """Kill and start again on the same port: all data is lost (no persistence)."""
        self.kill()
        self.start()


@contextlib.contextmanager
def redis_process(*extra_args: str) -> Iterator[RedisProcess]:
    server = RedisProcess(extra_args=extra_args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
