"""What every command that talks to a server shares: the ``--url`` and ``--api-key`` options,
the ``Authorization`` header they make, and one way to print a refusal.

``--url`` (``MIANZHANG_URL``, default ``http://127.0.0.1:8000``) and ``--api-key``
(``MIANZHANG_API_KEY``, sent as ``Authorization: Bearer KEY``) mean the same in every command;
``subscribe`` takes a subscriber JWT instead (``--token``, ``MIANZHANG_TOKEN``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final, TextIO

import httpx
import orjson
import typer

from .._errors import ClientError, ConfigError, MianzhangError, ResponseRejected
from .._sse import ServerSentEvent
from ..client import SyncEventStream

if TYPE_CHECKING:
    from ..server import Settings

__all__ = [
    "DEFAULT_URL",
    "APIKey",
    "BindHost",
    "BindPort",
    "LogLevel",
    "ServerURL",
    "bearer",
    "call",
    "http_client",
    "print_stream",
    "refusal",
    "rejection",
    "settings_or_exit",
    "write_line",
]

DEFAULT_URL: Final = "http://127.0.0.1:8000"

BindHost = Annotated[
    str | None, typer.Option(metavar="HOST", help="Interface to bind [MIANZHANG_HOST].")
]
BindPort = Annotated[int | None, typer.Option(metavar="PORT", help="TCP port [MIANZHANG_PORT].")]
LogLevel = Annotated[str, typer.Option(metavar="LEVEL", help="debug, info, warning or error.")]
"""The options of the commands that run a server (``serve``, ``run``)."""


def settings_or_exit(overrides: Mapping[str, object]) -> Settings:
    """The server's validated settings (``MIANZHANG_*`` and ``overrides``); bad settings end
    the command with exit status 2 and one line per problem."""
    from ..server import load_settings

    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"mianzhang: {exc}", err=True)
        raise typer.Exit(2) from None


ServerURL = Annotated[
    str,
    typer.Option(
        "--url", envvar="MIANZHANG_URL", metavar="URL", help="The mianzhang server to talk to."
    ),
]
APIKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="MIANZHANG_API_KEY",
        metavar="KEY",
        help="API key, sent as 'Authorization: Bearer KEY'.",
    ),
]


def bearer(credential: str | None) -> dict[str, str]:
    """The ``Authorization`` header for an API key or token (none without one)."""
    return {"authorization": f"Bearer {credential}"} if credential else {}


def _server_message(body: bytes) -> str | None:
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return str(message)


def refusal(response: httpx.Response) -> str:
    """``HTTP 404: <the server's error message>`` for a refused request (the start of the
    body if it is not mianzhang's ``{"error": {"message"}}`` JSON). Reads the response."""
    body = response.read()
    message = _server_message(body) or body.decode(errors="replace").strip()[:500]
    return f"HTTP {response.status_code}: {message}"


def rejection(exc: ResponseRejected) -> str:
    """:func:`refusal` for an event stream the server refused to open."""
    message = _server_message(exc.body)
    return f"HTTP {exc.status_code}: {message}" if message is not None else str(exc)


def http_client(url: str, api_key: str | None, timeout: float = 30.0) -> httpx.Client:
    """A client for the server at ``url``, with the API key's header on every request."""
    return httpx.Client(base_url=url.rstrip("/"), headers=bearer(api_key), timeout=timeout)


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """One JSON request; the decoded body, or :class:`ClientError` with the server's
    message (:func:`refusal`) for a status of 400 or more."""
    response = client.request(method, path, **kwargs)
    if response.status_code >= 400:
        raise ClientError(refusal(response))
    return response.json()


def write_line(out: TextIO, payload: Any) -> None:
    """One JSON line, flushed at once (a pipe reader sees it as it is printed)."""
    out.write(orjson.dumps(payload).decode() + "\n")
    out.flush()


def print_stream(
    command: str,
    stream: SyncEventStream,
    show: Callable[[ServerSentEvent], bool],
    *,
    resume: Callable[[str], str],
    err: TextIO,
    failures: tuple[type[BaseException], ...] = (MianzhangError, httpx.HTTPError),
) -> int:
    """Open ``stream`` and hand each event to ``show`` until the stream ends or ``show``
    returns true; the exit status. 0: done; 130: Ctrl-C, after writing ``resume(last event
    id)`` on ``err`` when an event came; 1: the server refused the stream or one of
    ``failures`` ended it (``mianzhang COMMAND: ...`` on ``err``). The stream is closed."""
    try:
        with stream:
            for event in stream:
                if show(event):
                    break
        return 0
    except KeyboardInterrupt:
        if stream.last_event_id:
            err.write(resume(stream.last_event_id))
        return 130
    except ResponseRejected as exc:
        err.write(f"mianzhang {command}: {rejection(exc)}\n")
        return 1
    except failures as exc:
        err.write(f"mianzhang {command}: {exc}\n")
        return 1
