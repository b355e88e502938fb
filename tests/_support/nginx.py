"""Debian's nginx with the shipped ``deploy/nginx.conf``, its upstreams pointed at loopback."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .procs import ROOT, ServerProcess, free_port, stop_process, wait_for_port


def nginx_binary() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).exists():
        raise RuntimeError("nginx is not installed: run ./scripts/test (it installs it with apt)")
    return path


@contextlib.contextmanager
def nginx_process(upstream_ports: tuple[int, int], workdir: Path) -> Iterator[ServerProcess]:
    """nginx on a free port proxying to ``127.0.0.1:{a}`` and ``127.0.0.1:{b}``."""
    port = free_port()
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = (
        text.replace("app1:8000", f"127.0.0.1:{upstream_ports[0]}")
        .replace("app2:8000", f"127.0.0.1:{upstream_ports[1]}")
        .replace("listen 8080", f"listen 127.0.0.1:{port}")
    )
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / temp).mkdir(parents=True, exist_ok=True)
    temps = "".join(
        f"    {name}_temp_path {workdir / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {\n", "http {\n" + temps, 1)
    path = workdir / "nginx.conf"
    path.write_text(f"pid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n" + conf)
    cmd = [
        nginx_binary(),
        "-c",
        str(path),
        "-p",
        str(workdir),
        "-e",
        str(workdir / "err.log"),
        "-g",
        "daemon off;",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, None)
        yield ServerProcess(proc, port, log_path=workdir / "error.log")
    finally:
        stop_process(proc)
