"""mianzhang: production-grade streaming responses for Python (SSE, resumable event logs)."""

from ._errors import (
    BackendUnavailable,
    ClientError,
    ConfigError,
    EventTooLarge,
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
)
from ._sse import JSONServerSentEvent, ServerSentEvent, SSEDecoder, json_dumps

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "ClientError",
    "ConfigError",
    "EventTooLarge",
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
    "__version__",
    "json_dumps",
]
