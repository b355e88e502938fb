"""``mianzhang publish CHANNEL DATA`` and ``mianzhang subscribe CHANNEL``.

``publish`` sends one event (``POST /v1/channels/{name}/publish``) and prints
``{"channel", "id", "duplicate"}`` as one JSON line; network failures are retried under one
idempotency key (``--idempotency-key``, else a generated one), so the event is stored once.

``subscribe`` follows ``GET /v1/channels/{name}/events`` with the resuming client: after a
dropped connection or a server restart it reconnects with ``Last-Event-ID`` and continues
after the last event it printed, never repeating or skipping one while the history is
retained (a ``reset`` line says when it was not). Each event is one JSON line on stdout:
``{"id", "event", "data"}`` (``data`` as the text sent). Ctrl-C prints on stderr how to
resume. Exit status: 0 done (``--count`` events printed, or the server ended the stream),
1 refused or failed, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, TextIO
from urllib.parse import quote

import httpx
import orjson
import typer

from .._errors import ClientError
from .._sse import ServerSentEvent
from ..channels import publish_sync
from ..client import ResetEvent, connect_sync
from ._common import DEFAULT_URL, APIKey, ServerURL, print_stream, write_line

__all__ = ["publish", "run_publish", "run_subscribe", "subscribe"]


def publish(
    channel: Annotated[str, typer.Argument(metavar="CHANNEL", help="Channel name.")],
    data: Annotated[
        str, typer.Argument(metavar="DATA", help="Event data (text, or JSON with --json).")
    ],
    url: ServerURL = DEFAULT_URL,
    api_key: APIKey = None,
    event: Annotated[
        str | None, typer.Option(metavar="TYPE", help="Event type (default: message).")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(metavar="KEY", help="Store a retry of this publish once (default: random)."),
    ] = None,
    json_data: Annotated[bool, typer.Option("--json", help="DATA is JSON.")] = False,
) -> None:
    """Publish one event to a channel; prints its id as one JSON line."""
    raise typer.Exit(
        run_publish(
            channel,
            data,
            url=url,
            api_key=api_key,
            event=event,
            idempotency_key=idempotency_key,
            json_data=json_data,
        )
    )


def subscribe(
    channel: Annotated[str, typer.Argument(metavar="CHANNEL", help="Channel name.")],
    url: ServerURL = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(envvar="MIANZHANG_TOKEN", metavar="JWT", help="Subscriber token (JWT)."),
    ] = None,
    last_event_id: Annotated[
        str | None, typer.Option(metavar="ID", help="Resume after this event id.")
    ] = None,
    history: Annotated[bool, typer.Option(help="Replay the retained history first.")] = True,
    count: Annotated[int | None, typer.Option(metavar="N", help="Exit after N events.")] = None,
) -> None:
    """Print a channel's events as they arrive (one JSON line each); resumes on reconnect."""
    raise typer.Exit(
        run_subscribe(
            channel,
            url=url,
            token=token,
            last_event_id=last_event_id,
            history=history,
            count=count,
        )
    )


def run_publish(
    channel: str,
    data: str,
    *,
    url: str,
    api_key: str | None,
    event: str | None,
    idempotency_key: str | None,
    json_data: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Publish one event; returns the exit status (see the module docstring)."""
    value: Any = data
    if json_data:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            err.write(f"mianzhang publish: DATA is not JSON ({exc})\n")
            return 2
    try:
        published = publish_sync(
            url, channel, value, api_key=api_key, event=event, idempotency_key=idempotency_key
        )
    except ClientError as exc:  # PublishRejected, or the network failed past the retries
        err.write(f"mianzhang publish: {exc}\n")
        return 1
    write_line(out, {"channel": channel, "id": published.id, "duplicate": published.duplicate})
    return 0


def run_subscribe(
    channel: str,
    *,
    url: str,
    token: str | None,
    last_event_id: str | None,
    history: bool,
    count: int | None = None,
    max_reconnects: int | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print the channel's events (see the module docstring); returns the exit status."""
    if count is not None and count < 1:
        err.write("mianzhang subscribe: --count must be >= 1\n")
        return 2
    target = f"{url.rstrip('/')}/v1/channels/{quote(channel, safe='/@:')}/events"
    headers = {"authorization": f"Bearer {token}"} if token else {}
    params = {} if history else {"history": "false"}
    printed = 0
    stream = connect_sync(
        target,
        headers=headers,
        params=params,
        last_event_id=last_event_id,
        max_reconnects=max_reconnects,
    )

    def show(event: ServerSentEvent) -> bool:
        nonlocal printed
        if isinstance(event, ResetEvent):
            err.write(f"[history lost ({event.reason}): continuing from there]\n")
        write_line(out, {"id": event.id, "event": event.event or "message", "data": event.data})
        printed += 1
        return count is not None and printed >= count

    def resume(last: str) -> str:
        return f"resume with: --last-event-id {last}\n"

    failures = (ClientError, httpx.HTTPError)
    return print_stream("subscribe", stream, show, resume=resume, err=err, failures=failures)
