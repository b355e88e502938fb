"""``mianzhang run module:app``: your ASGI app under mianzhang's server
(``mianzhang.server.run``: uvicorn with mianzhang's protocol, connections accepted in batches,
the collector set up once the app has started).

Server settings come from the ``MIANZHANG_*`` environment, as for ``mianzhang serve``
(``MIANZHANG_MAX_CONNECTIONS``, ``MIANZHANG_ACCEPT_BATCH``, ``MIANZHANG_STREAM_UNSENT_LIMIT``,
header limits...); invalid ones end the command with exit status 2 before any socket opens.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import BindHost, BindPort, LogLevel, settings_or_exit

__all__ = ["run"]


def run(
    app: Annotated[str, typer.Argument(metavar="MODULE:APP", help="The ASGI app to serve.")],
    host: BindHost = None,
    port: BindPort = None,
    factory: Annotated[
        bool, typer.Option("--factory", help="MODULE:APP is a function returning the app.")
    ] = False,
    lifespan: Annotated[
        str, typer.Option(metavar="auto|on|off", help="The ASGI lifespan protocol.")
    ] = "auto",
    log_level: LogLevel = "info",
) -> None:
    """Serve your ASGI app (FastAPI, Starlette...) with mianzhang's server.

    What `uvicorn MODULE:APP` does, plus what streams need from their server: a reader cut
    for not reading is reset at once and a stalled one is detected by its acknowledgements,
    request heads are limited (slowloris), connections are accepted in batches (uvloop takes
    one per loop iteration), and the collector is tuned once the app has started. Reads the
    same MIANZHANG_* server settings as `serve`. Exit status 2 on bad settings.
    """
    from ..server._uvicorn import run as run_app

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings_or_exit(overrides)
    typer.echo(f"mianzhang running {app} on http://{settings.host}:{settings.port}/", err=True)
    run_app(app, settings=settings, factory=factory, lifespan=lifespan, log_level=log_level)
