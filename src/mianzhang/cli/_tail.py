"""``mianzhang tail NAME``: follow a server-side file (``GET /v1/tails/{name}``), like
``tail -f``.

The server sends the file's last lines (``--lines``), then each line as it is appended; the
name must be one of the server's ``MIANZHANG_TAILS__FILES``. Every line is an event whose id
is a byte offset, so the resuming client continues after the last line printed when the
connection drops or the server restarts. When the lines asked for are gone (the file was
rotated or truncated) a note on stderr says so and the output continues from the start of
the current file. Lines go to stdout as they arrive; Ctrl-C prints on stderr how to resume
(``--after ID``).

Exit status: 0 the server ended the stream, 1 refused or failed, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated, TextIO
from urllib.parse import quote

import typer

from .._sse import ServerSentEvent
from ..client import ResetEvent, connect_sync
from ._common import DEFAULT_URL, APIKey, ServerURL, bearer, print_stream

__all__ = ["run_tail", "tail"]


def tail(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The tail's name on the server.")],
    url: ServerURL = DEFAULT_URL,
    api_key: APIKey = None,
    lines: Annotated[
        int | None,
        typer.Option(
            metavar="N", min=0, max=10_000, help="Start with the last N lines (server default)."
        ),
    ] = None,
    after: Annotated[
        str | None, typer.Option(metavar="EVENT_ID", help="Resume after this line's id.")
    ] = None,
) -> None:
    """Print a server-side file's lines as they are appended; resumes on reconnect."""
    raise typer.Exit(run_tail(name, url=url, api_key=api_key, lines=lines, after=after))


def run_tail(
    name: str,
    *,
    url: str,
    api_key: str | None = None,
    lines: int | None = None,
    after: str | None = None,
    max_reconnects: int | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print the tail's lines (see the module docstring); returns the exit status."""
    target = f"{url.rstrip('/')}/v1/tails/{quote(name, safe='')}"
    params = {"last_lines": str(lines)} if lines is not None else {}
    stream = connect_sync(
        target,
        headers=bearer(api_key),
        params=params,
        last_event_id=after,
        max_reconnects=max_reconnects,
    )

    def show(event: ServerSentEvent) -> bool:
        if isinstance(event, ResetEvent):
            err.write(f"[lines lost ({event.reason}): continuing from the file's start]\n")
        else:
            out.write(event.data + "\n")
            out.flush()
        return False

    def resume(last: str) -> str:
        return f"\nresume with: mianzhang tail {name} --after {last}\n"

    return print_stream("tail", stream, show, resume=resume, err=err)
