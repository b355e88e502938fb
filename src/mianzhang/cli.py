"""The ``mianzhang`` command (typer): ``serve``, ``chat``, ``publish``, ``subscribe``, ``worker``.

``serve`` runs uvicorn on the app built by ``create_app(settings)``; command-line options
override the ``MIANZHANG_*`` environment. Invalid settings end the command with exit status 2
and one line per problem, before any socket is opened.
"""

from __future__ import annotations

import socket
import sys
from typing import Annotated

import typer

from ._errors import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="mianzhang",
    help="Production-grade streaming: SSE, resumable event logs, an LLM gateway.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [MIANZHANG_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [MIANZHANG_PORT].")] = None,
    log_backend: Annotated[
        str | None, typer.Option(help="memory | redis [MIANZHANG_LOG_BACKEND].")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="[MIANZHANG_REDIS_URL].")] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run the server (web UI at http://HOST:PORT/)."""
    import uvicorn

    from .server import create_app, load_settings
    from .server._http_protocol import guarded_protocol
    from .server._logging import log_config

    overrides: dict[str, object] = {}
    for name, value in (
        ("host", host),
        ("port", port),
        ("log_backend", log_backend),
        ("redis_url", redis_url),
    ):
        if value is not None:
            overrides[name] = value
    try:
        settings = load_settings(**overrides)
        application = create_app(settings)
    except ConfigError as exc:
        typer.echo(f"mianzhang: {exc}", err=True)
        raise typer.Exit(2) from None
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings),
        # uvicorn counts the connection it refuses: N + 1 lets N be served
        limit_concurrency=settings.max_connections + 1,
        timeout_graceful_shutdown=int(settings.graceful_timeout) or None,
        log_config=log_config(settings.log_format, log_level),
        log_level=log_level,
        access_log=False,
        proxy_headers=True,
    )
    typer.echo(f"mianzhang serving on http://{settings.host}:{settings.port}/", err=True)
    sock = config.bind_socket()
    if settings.socket_send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.socket_send_buffer)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


@app.command()
def chat(
    prompt: Annotated[str | None, typer.Argument(help="The user message.")] = None,
    url: Annotated[str, typer.Option(envvar="MIANZHANG_URL")] = "http://127.0.0.1:8000",
    model: Annotated[str | None, typer.Option(help="Model name (default: the server's).")] = None,
    resume: Annotated[str | None, typer.Option(help="Follow an existing generation.")] = None,
    after: Annotated[str | None, typer.Option(help="With --resume: after this event id.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="MIANZHANG_API_KEY")] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    background: Annotated[bool, typer.Option(help="Keep generating without readers.")] = False,
) -> None:
    """Stream a generation to the terminal; resumes by itself after a dropped connection."""
    from ._cli_chat import run_chat

    if prompt is None and resume is None:
        typer.echo("mianzhang chat: give a PROMPT or --resume STREAM_ID", err=True)
        raise typer.Exit(2)
    code = run_chat(
        prompt,
        url=url,
        model=model,
        resume=resume,
        after=after,
        api_key=api_key,
        max_tokens=max_tokens,
        background=background,
    )
    raise typer.Exit(code)


@app.command()
def publish(
    channel: Annotated[str, typer.Argument(help="Channel name.")],
    data: Annotated[str, typer.Argument(help="Event data (text, or JSON with --json).")],
    url: Annotated[str, typer.Option(envvar="MIANZHANG_URL")] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="MIANZHANG_API_KEY")] = None,
    event: Annotated[str | None, typer.Option(help="Event type.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Store a retry once.")] = None,
    json_data: Annotated[bool, typer.Option("--json", help="DATA is JSON.")] = False,
) -> None:
    """Publish one event to a channel."""
    from ._cli_channels import run_publish

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


@app.command()
def subscribe(
    channel: Annotated[str, typer.Argument(help="Channel name.")],
    url: Annotated[str, typer.Option(envvar="MIANZHANG_URL")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option(envvar="MIANZHANG_TOKEN")] = None,
    last_event_id: Annotated[str | None, typer.Option(help="Resume after this id.")] = None,
    history: Annotated[bool, typer.Option(help="Replay the retained history first.")] = True,
    count: Annotated[int | None, typer.Option(help="Exit after this many events.")] = None,
) -> None:
    """Print a channel's events as they arrive (one JSON line each); resumes on reconnect."""
    from ._cli_channels import run_subscribe

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


@app.command()
def worker(
    redis_url: Annotated[
        str | None, typer.Option(help="The server's Redis [MIANZHANG_REDIS_URL].")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once [MIANZHANG_JOBS__CONCURRENCY].")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Consumer name (default: host-pid-random).")
    ] = None,
) -> None:
    """Take jobs from Redis and run them (scale-out for `POST /v1/jobs`).

    Reads the same MIANZHANG_* settings as `serve` (Redis prefix, LLM models, file storage,
    jobs.include), so it knows the same job types and resources as the server. SIGTERM stops
    taking jobs; running ones are left for another worker. Exit status 2 on bad settings.
    """
    from ._cli_jobs import run_worker_command

    raise typer.Exit(run_worker_command(redis_url=redis_url, concurrency=concurrency, name=name))


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
