"""The root ``mianzhang`` command: every subcommand registered in one place, and ``main``."""

from __future__ import annotations

import sys

import typer

from ._channels import publish, subscribe
from ._chat import chat
from ._serve import serve
from ._worker import worker

__all__ = ["app", "main"]

app = typer.Typer(
    name="mianzhang",
    help="Production-grade streaming: SSE, resumable event logs, an LLM gateway.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(serve)
app.command()(chat)
app.command()(publish)
app.command()(subscribe)
app.command()(worker)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
