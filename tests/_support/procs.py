"""Real processes for tests: uvicorn servers, redis-server, a Redis Cluster and Sentinels, on
free loopback ports.

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
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests._support.wait import eventually_sync

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all bound at once while choosing)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


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


def uvicorn_command(
    app: str,
    port: int,
    *,
    factory: bool = False,
    args: tuple[str, ...] = (),
    module: str = "uvicorn",
) -> list[str]:
    """``python -m uvicorn APP`` on 127.0.0.1:PORT, no access log, warnings only; ``args``
    last (the benchmarks add ``--loop uvloop``, ``--backlog``...). ``module``: another
    launcher taking uvicorn's command line (``bench/_mz_serve.py``)."""
    cmd = [
        sys.executable,
        "-m",
        module,
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
    return [*cmd, *args]


@contextlib.contextmanager
def _listening(
    cmd: list[str], port: int, env: dict[str, str] | None, name: str, stop_signal: int
) -> Iterator[ServerProcess]:
    """Run ``cmd`` (cwd = repo root, output to ``test-artifacts/NAME-PORT.log``) until it
    listens on ``port``; stop it with ``stop_signal`` on exit. Raises with the log if it never
    listens or has already exited."""
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"{name}-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port(port, None)
        except TimeoutError:
            raise RuntimeError(log_path.read_text(errors="replace")) from None
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_path.read_text(errors='replace')}")
        yield ServerProcess(proc, port, log_path=log_path)
    finally:
        stop_process(proc, stop_signal)
        log.close()


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
    module: str = "uvicorn",
) -> Iterator[ServerProcess]:
    """Run ``python -m uvicorn APP`` (or ``python -m MODULE APP``, see
    :func:`uvicorn_command`) on 127.0.0.1:PORT (cwd = repo root, so ``tests.…`` apps import).

    Output goes to ``test-artifacts/uvicorn-PORT.log`` (read it with ``.output()``).
    """
    port = port or free_port()
    if graceful_timeout is not None:
        args = ("--timeout-graceful-shutdown", str(graceful_timeout), *args)
    cmd = uvicorn_command(app, port, factory=factory, args=args, module=module)
    with _listening(cmd, port, env, "uvicorn", stop_signal) as server:
        yield server


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
    with _listening(cmd, port, env, "serve", signal.SIGTERM) as server:
        yield server


@contextlib.contextmanager
def run_process(
    app: str, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    """Run a user's app under the product's server: ``python -m mianzhang run APP`` on
    127.0.0.1 and a free port (output as above)."""
    port = free_port()
    cmd = cli_command("run", app, "--host", "127.0.0.1", "--port", str(port), *args)
    with _listening(cmd, port, env, "run", signal.SIGTERM) as server:
        yield server


def cli_command(*args: str) -> list[str]:
    """``python -m mianzhang ARGS``: the product's command line."""
    return [sys.executable, "-m", "mianzhang", *args]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``mianzhang ARGS`` to its end (cwd = repo root, this tree on ``PYTHONPATH``, ``env``
    added); its output captured as text, its exit code not checked."""
    return subprocess.run(
        cli_command(*args),
        cwd=ROOT,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``mianzhang ARGS`` (as :func:`run_cli`) with its stdout and stderr piped as
    text; the caller stops it (``with``, or the ``cli_procs`` fixture)."""
    return subprocess.Popen(
        cli_command(*args),
        cwd=ROOT,
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def reap(procs: list[subprocess.Popen[str]]) -> None:
    """Kill whichever of ``procs`` still runs, wait for each, close their pipes."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field in KiB (``VmRSS``, ``VmHWM``...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> int:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); return that RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kib(pid, "VmRSS")


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


def redis_cli_binary() -> str:
    path = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    if not Path(path).exists():
        raise RuntimeError("redis-cli is not installed (it comes with redis-server)")
    return path


def redis_cli(port: int, *args: str, timeout: float = 10.0) -> str:
    """Run ``redis-cli -p PORT ARGS`` against 127.0.0.1; its output (raises on failure)."""
    result = subprocess.run(
        [redis_cli_binary(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


def _info(port: int, section: str) -> dict[str, str]:
    """``INFO section`` of the server on ``port`` as a dict (empty if it does not answer)."""
    try:
        out = redis_cli(port, "INFO", section, timeout=5)
    except (subprocess.SubprocessError, OSError):
        return {}
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


@dataclass
class RedisClusterProcesses:
    """A Redis Cluster of real redis-servers on loopback ports (see :func:`redis_cluster`)."""

    nodes: list[RedisProcess]

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def running(self) -> list[RedisProcess]:
        return [node for node in self.nodes if node.proc is not None]

    def masters(self) -> list[RedisProcess]:
        """Running nodes that are masters now (``ROLE``)."""
        return [n for n in self.running() if _info(n.port, "replication").get("role") == "master"]

    def master_of(self, key: str) -> RedisProcess:
        """The running master serving ``key``'s slot now."""
        slot = int(redis_cli(self.running()[0].port, "CLUSTER", "KEYSLOT", key).strip())
        for node in self.masters():
            if self._serves(node.port, slot):
                return node
        raise LookupError(f"no running master serves slot {slot}")

    def replica_of(self, master: RedisProcess) -> RedisProcess:
        """A running replica of ``master``."""
        for node in self.running():
            replication = _info(node.port, "replication")
            if replication.get("role") == "slave" and replication.get("master_port") == str(
                master.port
            ):
                return node
        raise LookupError(f"no running replica of {master.port}")

    @staticmethod
    def _serves(port: int, slot: int) -> bool:
        for line in redis_cli(port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "myself" not in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return True
        return False

    def healthy(self) -> bool:
        """Every running node reports ``cluster_state:ok`` and every replica is in sync."""
        for node in self.running():
            if "cluster_state:ok" not in redis_cli(node.port, "CLUSTER", "INFO"):
                return False
            replication = _info(node.port, "replication")
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return False
        return True

    def wait_healthy(self, timeout: float = 30.0) -> None:
        eventually_sync(
            self.healthy,
            timeout=timeout,
            interval=0.1,
            message="the cluster did not become healthy",
        )


@contextlib.contextmanager
def redis_cluster(
    masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000
) -> Iterator[RedisClusterProcesses]:
    """Start ``masters * (1 + replicas)`` ``redis-server --cluster-enabled yes`` (no
    persistence) on free loopback ports, join them with ``redis-cli --cluster create``, wait
    (bounded) until ``cluster_state:ok`` everywhere and replicas are in sync; stop them all and
    remove their files in ``finally``. ``node_timeout_ms`` bounds failure detection (a killed
    master's replica takes over about twice that later)."""
    with tempfile.TemporaryDirectory(prefix="mz-cluster-") as workdir:
        nodes: list[RedisProcess] = []
        count = masters * (1 + replicas)
        ports = free_ports(2 * count)  # a client port and a cluster bus port each
        try:
            for port, bus_port in zip(ports[:count], ports[count:], strict=True):
                nodes.append(
                    RedisProcess(
                        port=port,
                        extra_args=(
                            "--cluster-enabled",
                            "yes",
                            "--cluster-port",
                            str(bus_port),
                            "--cluster-config-file",
                            f"{workdir}/nodes-{port}.conf",
                            "--cluster-node-timeout",
                            str(node_timeout_ms),
                            "--dir",
                            workdir,
                        ),
                    )
                )
                nodes[-1].start()
            addresses = [f"127.0.0.1:{node.port}" for node in nodes]
            redis_cli(
                nodes[0].port,
                "--cluster", "create", *addresses,
                "--cluster-replicas", str(replicas),
                "--cluster-yes",
                timeout=60,
            )  # fmt: skip
            cluster = RedisClusterProcesses(nodes)
            cluster.wait_healthy()
            yield cluster
        finally:
            for node in nodes:
                node.stop()


@dataclass
class RedisSentinelProcesses:
    """A master, its replica and Sentinels watching them (see :func:`redis_sentinel`)."""

    master: RedisProcess
    replica: RedisProcess
    sentinels: list[subprocess.Popen[bytes]]
    sentinel_ports: list[int]
    service: str = "mz"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def reported_master(self) -> int | None:
        """The master port the first Sentinel reports now."""
        try:
            out = redis_cli(
                self.sentinel_ports[0], "SENTINEL", "get-master-addr-by-name", self.service
            )
        except (subprocess.SubprocessError, OSError):
            return None
        lines = out.split()
        return int(lines[1]) if len(lines) == 2 else None


@contextlib.contextmanager
def redis_sentinel(
    sentinels: int = 1, down_after_ms: int = 1000
) -> Iterator[RedisSentinelProcesses]:
    """A master and one replica (no persistence) watched by ``sentinels`` Sentinels
    (``redis-server --sentinel``, quorum 1) on free loopback ports; waits (bounded) until the
    replica is in sync and every Sentinel knows the replica; stops everything in ``finally``."""
    with tempfile.TemporaryDirectory(prefix="mz-sentinel-") as workdir:
        master = RedisProcess()
        replica = RedisProcess(extra_args=("--replicaof", "127.0.0.1", str(master.port)))
        procs: list[subprocess.Popen[bytes]] = []
        ports: list[int] = []
        try:
            master.start()
            replica.start()
            replica.extra_args = ()  # once promoted and restarted, it starts as a master
            eventually_sync(
                lambda: _info(replica.port, "replication").get("master_link_status") == "up",
                timeout=20,
                message="the replica did not sync",
            )
            for index in range(sentinels):
                port = free_port()
                config = Path(workdir) / f"sentinel-{index}.conf"
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {workdir}\n"
                    f"sentinel monitor mz 127.0.0.1 {master.port} 1\n"
                    f"sentinel down-after-milliseconds mz {down_after_ms}\n"
                    "sentinel failover-timeout mz 5000\n"
                )
                procs.append(
                    subprocess.Popen(
                        [redis_server_binary(), str(config), "--sentinel"],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                    )
                )
                ports.append(port)
                wait_for_port(port, procs[-1])
            setup = RedisSentinelProcesses(master, replica, procs, ports)

            def replicas_known() -> bool:
                return all(
                    "num-slaves" in (out := redis_cli(p, "SENTINEL", "master", "mz"))
                    and out.split("num-slaves")[1].split()[0] == "1"
                    for p in ports
                )

            eventually_sync(
                replicas_known, timeout=20, message="the Sentinels did not discover the replica"
            )
            yield setup
        finally:
            for proc in procs:
                stop_process(proc)
            replica.stop()
            master.stop()
