"""``mianzhang serve``: the app built by ``create_app(settings)`` under uvicorn.

Command-line options override the ``MIANZHANG_*`` environment. Invalid settings end the
command with exit status 2 and one line per problem, before any socket is opened. The
listening socket is bound here (so ``socket_send_buffer`` can be set on it) and closed when
the server stops.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Annotated

import typer

from .._errors import ConfigError

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from ..server import Settings

__all__ = ["serve"]


def serve(
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="Interface to bind [MIANZHANG_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="TCP port [MIANZHANG_PORT].")
    ] = None,
    log_backend: Annotated[
        str | None,
        typer.Option(metavar="memory|redis", help="Event log backend [MIANZHANG_LOG_BACKEND]."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Redis for the log and jobs [MIANZHANG_REDIS_URL]."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(metavar="LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the server (web UI at http://HOST:PORT/)."""
    overrides: dict[str, object] = {
        name: value
        for name, value in (
            ("host", host),
            ("port", port),
            ("log_backend", log_backend),
            ("redis_url", redis_url),
        )
        if value is not None
    }
    settings, application = _build(overrides)
    config = _uvicorn_config(application, settings, log_level)
    typer.echo(f"mianzhang serving on http://{settings.host}:{settings.port}/", err=True)
    _run(config, settings.socket_send_buffer)


def _build(overrides: dict[str, object]) -> tuple[Settings, ASGIApp]:
    """Validated settings and the app; bad settings exit with status 2 and their problems."""
    from ..server import create_app, load_settings

    try:
        settings = load_settings(**overrides)
        return settings, create_app(settings)
    except ConfigError as exc:
        typer.echo(f"mianzhang: {exc}", err=True)
        raise typer.Exit(2) from None


def _uvicorn_config(application: ASGIApp, settings: Settings, log_level: str) -> uvicorn.Config:
    """uvicorn's configuration from the settings: header deadlines and size limit, the
    connection limit, graceful shutdown, log format; the access log is the app's own."""
    import uvicorn

    from ..server._http_protocol import guarded_protocol
    from ..server._logging import log_config

    return uvicorn.Config(
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


def _run(config: uvicorn.Config, send_buffer: int) -> None:
    """Bind the socket (with ``SO_SNDBUF`` unless 0), serve until stopped, close it."""
    import uvicorn

    sock = config.bind_socket()
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
