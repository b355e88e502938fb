"""mianzhang: production-grade streaming responses for Python (SSE, resumable event logs)."""

from ._errors import (
    AuthError,
    BackendUnavailable,
    ClientError,
    ConfigError,
    EventTooLarge,
    Forbidden,
    LogError,
    MianzhangError,
    ReconnectExhausted,
    ResponseRejected,
    SendTimeout,
    SSEDecodeError,
    SSEEncodeError,
    SSEError,
    StreamClosedError,
    StreamError,
    StreamNotFound,
    Unauthorized,
)
from ._sse import JSONServerSentEvent, ServerSentEvent, SSEDecoder, json_dumps

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BackendUnavailable",
    "ClientError",
    "ConfigError",
    "EventTooLarge",
    "Forbidden",
    "JSONServerSentEvent",
    "LogError",
    "MianzhangError",
    "ReconnectExhausted",
    "ResponseRejected",
    "SSEDecodeError",
    "SSEDecoder",
    "SSEEncodeError",
    "SSEError",
    "SendTimeout",
    "ServerSentEvent",
    "StreamClosedError",
    "StreamError",
    "StreamNotFound",
    "Unauthorized",
    "__version__",
    "json_dumps",
]
