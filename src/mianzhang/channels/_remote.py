"""Publishing to a channel of a mianzhang server over HTTP (``POST /v1/channels/{name}/publish``).

:func:`publish` (async) and :func:`publish_sync` send one event and return its id. Network
failures (connect errors, timeouts, a connection dropped before the answer) are retried up to
``retries`` times under one idempotency key, so a publish whose answer was lost is still
stored once: the caller's key if given, else one generated for this call. An error status
from the server is final: :class:`~mianzhang.PublishRejected` (never retried); network errors
that outlast the retries end in :class:`~mianzhang.ClientError`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from .._errors import ClientError, PublishRejected
from ._hub import Published

__all__ = ["publish", "publish_sync"]

_RETRYABLE = (httpx.TransportError,)


def _request(
    channel: str,
    data: Any,
    event: str | None,
    idempotency_key: str | None,
    api_key: str | None,
    retries: int,
) -> tuple[str, dict[str, str], bytes]:
    if retries < 0:
        raise ValueError("retries must be >= 0")
    envelope: dict[str, Any] = {"data": data}
    if event is not None:
        envelope["event"] = event
    envelope["idempotency_key"] = idempotency_key or "mz-" + secrets.token_urlsafe(18)
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    path = f"/v1/channels/{quote(channel, safe='/@:')}/publish"
    return path, headers, orjson.dumps(envelope)


def _result(channel: str, response: httpx.Response) -> Published:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400 or not isinstance(body, dict) or "id" not in body:
        message = response.text[:200]
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message", message))
        raise PublishRejected(response.status_code, message)
    return Published(channel, str(body["id"]), bool(body.get("duplicate", False)))


def _delay(attempt: int) -> float:
    return float(min(2.0, 0.1 * 2**attempt))


async def publish(
    base_url: str,
    channel: str,
    data: Any,
    *,
    api_key: str | None = None,
    event: str | None = None,
    idempotency_key: str | None = None,
    retries: int = 3,
    request_timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
) -> Published:
    """Publish ``data`` (``str`` as text, anything else as JSON) to ``channel`` on the server
    at ``base_url``; see the module docstring for retries. ``client`` is used as given (not
    closed); by default one is made for this call, with ``request_timeout`` seconds per
    attempt."""
    path, headers, body = _request(channel, data, event, idempotency_key, api_key, retries)
    url = base_url.rstrip("/") + path
    own = client is None
    http = client or httpx.AsyncClient(timeout=request_timeout)
    try:
        attempt = 0
        while True:
            try:
                response = await http.post(url, content=body, headers=headers)
            except _RETRYABLE as exc:
                if attempt >= retries:
                    raise ClientError(f"publishing to {channel!r} failed: {exc}") from exc
                await asyncio.sleep(_delay(attempt))
                attempt += 1
                continue
            return _result(channel, response)
    finally:
        if own:
            await http.aclose()


def publish_sync(
    base_url: str,
    channel: str,
    data: Any,
    *,
    api_key: str | None = None,
    event: str | None = None,
    idempotency_key: str | None = None,
    retries: int = 3,
    request_timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> Published:
    """The blocking twin of :func:`publish` (same arguments, an ``httpx.Client``)."""
    path, headers, body = _request(channel, data, event, idempotency_key, api_key, retries)
    url = base_url.rstrip("/") + path
    own = client is None
    http = client or httpx.Client(timeout=request_timeout)
    try:
        attempt = 0
        while True:
            try:
                response = http.post(url, content=body, headers=headers)
            except _RETRYABLE as exc:
                if attempt >= retries:
                    raise ClientError(f"publishing to {channel!r} failed: {exc}") from exc
                time.sleep(_delay(attempt))
                attempt += 1
                continue
            return _result(channel, response)
    finally:
        if own:
            http.close()
