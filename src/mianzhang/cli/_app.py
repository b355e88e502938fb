"""The root ``mianzhang`` command: ``--version``, every subcommand registered in one place,
and ``main``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from ._channels import publish, subscribe
from ._chat import chat
from ._help import Command, Group
from ._jobs import jobs_app
from ._run import run
from ._serve import serve
from ._tail import tail
from ._worker import worker

__all__ = ["app", "main"]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mianzhang {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Production-grade streaming: SSE, resumable event logs, an LLM gateway, channels,
    jobs, files and tails.

    Commands that call a server take --url (MIANZHANG_URL, default http://127.0.0.1:8000)
    and --api-key (MIANZHANG_API_KEY).
    """


app = typer.Typer(
    cls=Group,
    name="mianzhang",
    no_args_is_help=True,
    add_completion=False,
    callback=_root,
)
for command in (serve, run, chat, publish, subscribe, tail, worker):
    app.command(cls=Command)(command)
app.add_typer(jobs_app)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
