"""A small HTTP/1.1 streaming client for LLM upstreams: asyncio protocols + httptools' C parser.

Why not httpx: for a streamed chat completion the gateway's CPU per token was mostly httpx and
h11 (pure-Python HTTP parsing). This client does one job, one request at a time per connection:

* :class:`UpstreamPool` (:mod:`._upstream_pool`) — keep-alive connections to ONE origin
  (``http`` or ``https``), at most ``max_connections`` open at once (a request waits up to
  ``connect_timeout`` for a free one), idle ones closed after ``keepalive_expiry`` seconds or
  as soon as the upstream closes them. A connection is reused only after its response was
  read to the end with keep-alive allowed; anything else closes it, so the upstream sees the
  disconnect at once. A reused connection the upstream had closed meanwhile (the keep-alive
  race) is replaced and the request sent once more.
* :meth:`UpstreamPool.request` writes the request head and body in one ``write``
  (:mod:`._upstream_request`) and returns an :class:`UpstreamResponse`
  (:mod:`._upstream_response`) once the status and headers are in; its body is read with
  ``async for``.
* Parsing (:mod:`._upstream_connection`): ``Content-Length``, chunked, or delimited by the
  connection closing; interim responses skipped; reading paused past 256 KiB unread.
* Connecting (:mod:`._upstream_connect`): TLS with httpx's default CA bundle and SNI,
  HTTP/1.1 by ALPN, bounded by ``connect_timeout``.

Errors are the gateway's (:mod:`mianzhang._errors`): :class:`UpstreamConnectError` (connect,
TLS or send failed, or the upstream closed before answering), :class:`UpstreamTimeout` (no
connection within ``connect_timeout``), :class:`UpstreamProtocolError` (unparseable response,
or the connection broke off mid-body).

Not supported (callers use httpx for these): proxies, HTTP/2, ``HEAD`` requests, content
decoding (no ``accept-encoding`` is sent), upgrades, request bodies that are not bytes.
"""

from __future__ import annotations

from ._upstream_connect import default_ssl_context
from ._upstream_pool import UpstreamPool
from ._upstream_response import UpstreamResponse

__all__ = ["UpstreamPool", "UpstreamResponse", "default_ssl_context"]
