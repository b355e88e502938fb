"""Opening a connection to an upstream: TCP, TLS when the upstream is ``https`` (httpx's
trust store, SNI, HTTP/1.1 by ALPN), bounded by a timeout, failures translated to the
gateway's errors."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import httpx

from .._errors import UpstreamConnectError, UpstreamTimeout
from ._upstream_connection import UpstreamConnection
from ._upstream_request import UpstreamTarget

__all__ = ["default_ssl_context", "open_connection"]


def default_ssl_context() -> ssl.SSLContext:
    """httpx's default verification (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), HTTP/1.1
    only (ALPN), so the fast client trusts exactly what the httpx path trusted."""
    ctx = httpx.create_ssl_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def open_connection(
    target: UpstreamTarget,
    on_lost: Callable[[UpstreamConnection], None],
    *,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float,
) -> UpstreamConnection:
    """A new connection to ``target`` (TLS with ``ssl_context`` when given), within
    ``connect_timeout`` seconds: else :class:`UpstreamTimeout`; refused, unreachable, DNS or TLS
    failures are :class:`UpstreamConnectError`. ``on_lost`` is the connection's (see
    :class:`UpstreamConnection`)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_timeout):
            _, conn = await loop.create_connection(
                lambda: UpstreamConnection(target.url, on_lost),
                target.host,
                target.port,
                ssl=ssl_context,
                server_hostname=target.host if ssl_context is not None else None,
            )
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"upstream {target.url}: connect timed out after {connect_timeout}s"
        ) from exc
    except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
        raise UpstreamConnectError(
            f"upstream {target.url}: connect failed: {type(exc).__name__}: {exc}"
        ) from exc
    return conn
