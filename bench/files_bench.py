"""File transfer benchmark: mianzhang vs Starlette's ``FileResponse`` vs nginx, on loopback.

Every server has one worker process and serves the SAME file (page cache warm) from the same
directory:

* ``mianzhang`` — ``GET /v1/files/{id}`` (``tests/e2e/apps/files_app.py``: uvicorn + uvloop +
  httptools), once per download chunk size of the sweep (16 KiB .. 1 MiB);
* ``starlette`` — ``FileResponse`` in the same uvicorn setup (64 KiB chunks);
* ``nginx`` — Debian's nginx with ``sendfile on``, a temporary config, ``daemon off``.

The client is a raw-socket HTTP/1.1 client reading with ``recv_into`` into one buffer (it is
not the bottleneck: it copies nothing). Measured per target: MB/s of a full download (median
of ``--repeat`` runs) and the server's CPU seconds per GB (``/proc/PID/stat``), then ratios
against nginx and Starlette.

Uploads (same client, body sent from one 1 MiB buffer): mianzhang raw ``POST /v1/files``
(sha-256 on the fly, fsync on commit), multipart ``POST /v1/files``, tus ``PATCH``, against
Starlette writing ``request.stream()`` to a file and Starlette's ``request.form()``.

Bounded: fixed sizes and repeats; each transfer has a socket timeout; every process is started
here and stopped in ``finally``; temporary files are removed. Results: ``bench/results/``.

Usage::

    python bench/files_bench.py            # 512 MiB file, 3 repeats (about 1-2 minutes)
    python bench/files_bench.py --quick    # 64 MiB, 1 repeat
    python bench/files_bench.py --only download --repeat 5 --size-mib 256 \
        --out files-download-sweep.json   # the chunk-size sweep alone
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests._support.procs import (  # noqa: E402
    free_port,
    status_kib,
    stop_process,
    uvicorn_command,
    wait_for_port,
)

from mianzhang.files import new_file_id  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MiB = 1 << 20
KiB = 1 << 10
CHUNK_SWEEP = (16 * KiB, 64 * KiB, 256 * KiB, 512 * KiB, 1 * MiB)
SOCKET_TIMEOUT = 60.0


# -- processes ------------------------------------------------------------------------------------
def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "src")]))
    env.update(extra)
    return env


@contextlib.contextmanager
def uvicorn(factory: str, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    port = free_port()
    cmd = uvicorn_command(factory, port, factory=True)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, proc)
        yield port, proc.pid
    finally:
        stop_process(proc, signal.SIGTERM)


@contextlib.contextmanager
def nginx(directory: Path, workdir: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
error_log {workdir}/error.log warn;
pid {workdir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {directory}/; }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        ["/usr/sbin/nginx", "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        # with worker_processes 1 the worker is the master's only child
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        yield port, int(children[0]) if children else proc.pid
    finally:
        stop_process(proc, signal.SIGQUIT)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the raw-socket client ------------------------------------------------------------------------
def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed before the response head")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, rest


def download(port: int, path: str, buffer: bytearray) -> int:
    """GET ``path``; returns the bytes of body received (all discarded into ``buffer``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        status, headers, rest = _read_head(sock)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}")
        length = int(headers["content-length"])
        received = len(rest)
        view = memoryview(buffer)
        while received < length:
            count = sock.recv_into(view)
            if count == 0:
                raise ConnectionError("body cut short")
            received += count
        return received


def upload(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    prefix: bytes,
    block: bytes,
    blocks: int,
    suffix: bytes,
) -> tuple[int, bytes]:
    """Send a body of ``prefix + block * blocks + suffix``; returns (status, response body)."""
    length = len(prefix) + len(block) * blocks + len(suffix)
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {length}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(head.encode() + prefix)
        for _ in range(blocks):
            sock.sendall(block)
        sock.sendall(suffix)
        status, response_headers, rest = _read_head(sock)
        body = rest
        while len(body) < int(response_headers.get("content-length", 0)):
            more = sock.recv(65536)
            if not more:
                break
            body += more
        return status, body


# -- measurements -----------------------------------------------------------------------------
@dataclass
class Result:
    kind: str  # download | upload
    target: str
    mb_per_s: float
    cpu_s_per_gb: float
    runs: list[float]
    stalled_mib_per_conn: float | None = None


def measure(
    kind: str, target: str, pid: int, size: int, repeat: int, run: Callable[[], None]
) -> Result:
    run()  # warm-up (page cache, imports, first-request costs)
    speeds, cpus = [], []
    for _ in range(repeat):
        cpu_before, started = cpu_seconds(pid), time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        cpus.append((cpu_seconds(pid) - cpu_before) / (size / 1e9))
        speeds.append(size / elapsed / 1e6)
    result = Result(kind, target, statistics.median(speeds), statistics.median(cpus), speeds)
    print(
        f"  {kind:8} {target:28} {result.mb_per_s:8.0f} MB/s  "
        f"{result.cpu_s_per_gb:5.2f} server CPU s/GB"
    )
    return result


def stalled_rss(port: int, pid: int, path: str, connections: int) -> float:
    """Server RSS growth (MiB) while ``connections`` clients have asked for the file and
    read nothing beyond the headers (what each stalled download costs the server)."""
    before = status_kib(pid, "VmRSS")
    socks = []
    try:
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            socks.append(sock)
        for sock in socks:
            _read_head(sock)
        # poll until the server has filled every socket and stopped growing (bounded)
        last, deadline = -1, time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = status_kib(pid, "VmRSS")
            if now == last:
                break
            last = now
        return (status_kib(pid, "VmRSS") - before) / 1024
    finally:
        for sock in socks:
            sock.close()


def bench_downloads(
    directory: Path, work: Path, file_id: str, size: int, repeat: int, stalled: int
) -> list[Result]:
    results: list[Result] = []
    buffer = bytearray(4 * MiB)

    def getter(port: int, path: str) -> Callable[[], None]:
        def run() -> None:
            if download(port, path, buffer) != size:
                raise RuntimeError("short download")

        return run

    print(f"download of a {size // MiB} MiB file, median of {repeat}:")
    with nginx(directory, work) as (port, pid):
        results.append(
            measure(
                "download", "nginx (sendfile)", pid, size, repeat, getter(port, f"/files/{file_id}")
            )
        )
    env = {"MZ_FILES_DIR": str(directory)}
    with uvicorn("tests.e2e.apps.files_app:create_starlette_peer", env) as (port, pid):
        results.append(
            measure(
                "download",
                "starlette FileResponse",
                pid,
                size,
                repeat,
                getter(port, f"/files/{file_id}"),
            )
        )
    for chunk in CHUNK_SWEEP:
        chunk_env = {**env, "MZ_FILES_CHUNK": str(chunk)}
        with uvicorn("tests.e2e.apps.files_app:create_app", chunk_env) as (port, pid):
            result = measure(
                "download",
                f"mianzhang chunk {chunk // KiB} KiB",
                pid,
                size,
                repeat,
                getter(port, f"/v1/files/{file_id}"),
            )
            result.stalled_mib_per_conn = (
                stalled_rss(port, pid, f"/v1/files/{file_id}", stalled) / stalled
            )
            print(
                f"  {'':8} {'':28} {result.stalled_mib_per_conn:8.2f} MiB server RSS "
                f"per stalled download ({stalled} stalled)"
            )
            results.append(result)
    return results


def bench_uploads(
    directory: Path, file_id: str, blocks: int, repeat: int, block: bytes
) -> list[Result]:
    results: list[Result] = []
    size = blocks * MiB
    boundary = "benchboundary0123456789"
    form_prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    form_suffix = f"\r\n--{boundary}--\r\n".encode()
    form_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    def clean() -> None:  # keep the disk use bounded
        for path in directory.iterdir():
            if path.name != file_id and path.is_file():
                path.unlink()
        shutil.rmtree(directory / ".tus", ignore_errors=True)
        (directory / ".tus").mkdir()

    def poster(
        port: int, path: str, headers: dict[str, str], prefix: bytes = b"", suffix: bytes = b""
    ) -> Callable[[], None]:
        def run() -> None:
            status, body = upload(port, "POST", path, headers, prefix, block, blocks, suffix)
            if status != 201:
                raise RuntimeError(f"upload: HTTP {status} {body[:200]!r}")
            clean()

        return run

    def tus(port: int) -> Callable[[], None]:
        def run() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
                sock.sendall(
                    b"POST /v1/uploads HTTP/1.1\r\nHost: b\r\nTus-Resumable: 1.0.0\r\n"
                    + f"Connection: close\r\nUpload-Length: {size}\r\n\r\n".encode()
                )
                _, headers, _ = _read_head(sock)
            status, body = upload(
                port,
                "PATCH",
                headers["location"],
                {
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
                b"",
                block,
                blocks,
                b"",
            )
            if status != 204:
                raise RuntimeError(f"tus PATCH: HTTP {status} {body[:200]!r}")
            clean()

        return run

    print(f"upload of {blocks} MiB, median of {repeat}:")
    env = {"MZ_FILES_DIR": str(directory)}
    with uvicorn("tests.e2e.apps.files_app:create_starlette_peer", env) as (port, pid):
        results.append(
            measure(
                "upload",
                "starlette request.stream()",
                pid,
                size,
                repeat,
                poster(port, "/stream", {}),
            )
        )
        results.append(
            measure(
                "upload",
                "starlette request.form()",
                pid,
                size,
                repeat,
                poster(port, "/form", form_type, form_prefix, form_suffix),
            )
        )
    for fsync in ("1", "0"):
        label = "" if fsync == "1" else ", no fsync"
        with uvicorn("tests.e2e.apps.files_app:create_app", {**env, "MZ_FILES_FSYNC": fsync}) as (
            port,
            pid,
        ):
            results.append(
                measure(
                    "upload",
                    f"mianzhang raw{label}",
                    pid,
                    size,
                    repeat,
                    poster(port, "/v1/files", {}),
                )
            )
            results.append(
                measure(
                    "upload",
                    f"mianzhang multipart{label}",
                    pid,
                    size,
                    repeat,
                    poster(port, "/v1/files", form_type, form_prefix, form_suffix),
                )
            )
            results.append(
                measure("upload", f"mianzhang tus PATCH{label}", pid, size, repeat, tus(port))
            )
    return results


# the peers each mianzhang target is compared with, by kind: (target, label)
RATIO_PEERS = {
    "download": [("starlette FileResponse", "Starlette"), ("nginx (sendfile)", "nginx")],
    "upload": [
        ("starlette request.stream()", "Starlette stream"),
        ("starlette request.form()", "Starlette form"),
    ],
}


def print_ratios(results: list[Result]) -> None:
    """Each mianzhang target's throughput as a multiple of its peers' (kinds measured)."""
    by = {(r.kind, r.target): r.mb_per_s for r in results}
    for kind, peers in RATIO_PEERS.items():
        if not all((kind, peer) in by for peer, _ in peers):
            continue
        print(f"\nratios ({kind}):")
        for r in results:
            if r.kind == kind and r.target.startswith("mianzhang"):
                ratios = [f"{r.mb_per_s / by[kind, p]:5.2f}x {label}" for p, label in peers]
                print(f"  {r.target:30} {'  '.join(ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stalled", type=int, default=50, help="stalled downloads for RSS")
    parser.add_argument("--only", choices=["download", "upload"], default=None)
    parser.add_argument("--quick", action="store_true", help="64 MiB, 1 repeat")
    parser.add_argument("--out", default="files.json", help="file name under bench/results")
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.repeat, args.stalled = 64, 1, 10
    block = hashlib.sha256(b"bench").digest() * (MiB // 32)  # 1 MiB, not all zeros
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mz-files-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker runs as "nobody"
        directory = work / "files"
        directory.mkdir()
        file_id = new_file_id()
        with open(directory / file_id, "wb") as handle:
            for _ in range(args.size_mib):
                handle.write(block)
        if args.only in (None, "download"):
            results += bench_downloads(
                directory, work, file_id, args.size_mib * MiB, args.repeat, args.stalled
            )
        if args.only in (None, "upload"):
            results += bench_uploads(
                directory, file_id, max(1, args.size_mib // 2), args.repeat, block
            )
    print_ratios(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / Path(args.out).name
    out.write_text(
        json.dumps(
            {
                "size_mib": args.size_mib,
                "repeat": args.repeat,
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
    )
    print(f"\nwritten: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
