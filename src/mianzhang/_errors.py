"""One exception tree for the whole project.

    MianzhangError
    ├── SSEError                          wire format (layer 1)
    │   ├── SSEEncodeError (ValueError)   a field that cannot be put on the wire as given
    │   └── SSEDecodeError (ValueError)
    │       └── EventTooLarge             an incoming event exceeded ``max_event_size``
    ├── StreamError                       responses (layer 2)
    │   └── SendTimeout                   the peer did not take bytes within ``send_timeout``
    ├── LogError                          event log (layer 3)
    │   ├── StreamNotFound
    │   ├── StreamClosedError             append to a closed stream
    │   └── BackendUnavailable            the storage engine (Redis) cannot be reached
    ├── ClientError                       ``mianzhang.client``
    │   ├── ResponseRejected              non-200 or not ``text/event-stream``: never retried
    │   └── ReconnectExhausted            network errors outlasted the retry budget
    ├── AuthError                         credentials (before any stream starts)
    │   ├── Unauthorized                  missing, malformed, expired or wrongly signed: 401
    │   └── Forbidden                     valid, but not for this resource: 403
    └── ConfigError (ValueError)          settings rejected at start

Errors of dependencies (redis-py, httpx) are translated at the adapter boundary with
``raise ... from exc`` so callers only ever catch ``MianzhangError`` subclasses.
"""

from __future__ import annotations


class MianzhangError(Exception):
    """Base of every exception raised on purpose by mianzhang."""


# -- layer 1: wire format ---------------------------------------------------------------------
class SSEError(MianzhangError):
    """Something about the SSE wire format."""


class SSEEncodeError(SSEError, ValueError):
    """A field value cannot be encoded without changing its meaning (never silently stripped)."""


class SSEDecodeError(SSEError, ValueError):
    """An incoming stream cannot be decoded under the configured limits."""


class EventTooLarge(SSEDecodeError):
    """An incoming event grew past ``max_event_size`` characters before it was dispatched."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"SSE event exceeds max_event_size: {size} > {limit} characters")
        self.size = size
        self.limit = limit


# -- layer 2: responses -----------------------------------------------------------------------
class StreamError(MianzhangError):
    """A streaming response could not deliver."""


class SendTimeout(StreamError):
    """The peer did not accept a chunk within ``send_timeout`` seconds (a frozen reader)."""


# -- layer 3: event log -----------------------------------------------------------------------
class LogError(MianzhangError):
    """An event-log operation failed."""


class StreamNotFound(LogError, KeyError):
    """No stream by that name exists (or it expired)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream

    def __str__(self) -> str:
        return f"stream not found: {self.stream!r}"


class StreamClosedError(LogError):
    """The stream is closed (or cancelled): nothing more can be appended."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream is closed: {stream!r}")
        self.stream = stream


class BackendUnavailable(LogError):
    """The log's storage engine cannot be reached right now; retrying later may succeed."""


# -- client -----------------------------------------------------------------------------------
class ClientError(MianzhangError):
    """The SSE client gave up."""


class ResponseRejected(ClientError):
    """The server answered with a non-200 status or a non-``text/event-stream`` type.

    Per the WHATWG spec this is final: the client does not reconnect.
    """

    def __init__(self, status_code: int, content_type: str, body: bytes = b"") -> None:
        super().__init__(f"SSE response rejected: HTTP {status_code}, content-type {content_type!r}")
        self.status_code = status_code
        self.content_type = content_type
        self.body = body


class ReconnectExhausted(ClientError):
    """Reconnection attempts ran out (``max_reconnects``) while the network kept failing."""


# -- auth -------------------------------------------------------------------------------------
class AuthError(MianzhangError):
    """Credentials were refused. ``status_code`` is the HTTP status to answer with."""

    status_code = 401


class Unauthorized(AuthError):
    """No usable credentials: missing, malformed, ``alg: none``, expired, or a bad signature."""

    status_code = 401


class Forbidden(AuthError):
    """Valid credentials that do not grant this resource (channel, scope)."""

    status_code = 403


# -- configuration ----------------------------------------------------------------------------
class ConfigError(MianzhangError, ValueError):
    """Settings were rejected at start; the message names the setting and the reason."""
