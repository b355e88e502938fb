"""Run a command with its stderr on a pseudo-terminal, as a person at a terminal would see it.

Programs draw differently on a terminal (rich's live progress bars, colours): to test that
drawing, ``run_on_terminal`` gives the command a pty of a fixed size as stderr (stdout stays a
pipe, as in ``cmd > file``) and returns everything drawn there, escape codes included.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TerminalRun:
    returncode: int
    stdout: str
    terminal: str  # what was drawn on the terminal (stderr), escape codes included


def run_on_terminal(
    cmd: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    columns: int = 120,
    timeout: float = 60.0,
) -> TerminalRun:
    """Run ``cmd`` to its end with stderr on a ``columns``-wide pty; kill it after ``timeout``."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    drawn = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # the process is killed below
                raise AssertionError(f"still running after {timeout} s; drew {bytes(drawn)!r}")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not data:
                break
            drawn += data
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode()  # the program closed the pty: it is ending
        returncode = proc.wait(timeout=10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return TerminalRun(returncode, stdout, drawn.decode(errors="replace"))
