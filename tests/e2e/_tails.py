"""Shared pieces of the tails e2e tests: the log file a server tails as ``app``, and that
server's environment."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["log_with", "tails_env"]


def log_with(directory: Path, lines: list[str]) -> Path:
    """``directory/app.log`` holding ``lines``."""
    path = directory / "app.log"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def tails_env(log_file: Path, **extra: str) -> dict[str, str]:
    """A server tailing ``log_file`` as ``app`` (polled every 50 ms), files off; ``extra``
    settings added."""
    return {
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_TAILS__FILES": json.dumps({"app": str(log_file)}),
        "MIANZHANG_TAILS__POLL_INTERVAL": "0.05",
        **extra,
    }
