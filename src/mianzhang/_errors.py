"""One exception tree for the whole project.

    MianzhangError
    ├── SSEError                          wire format (layer 1)
    │   ├── SSEEncodeError (ValueError)   a field that cannot be put on the wire as given
    │   └── SSEDecodeError (ValueError)
    │       └── EventTooLarge             an incoming event exceeded ``max_event_size``
    ├── StreamError                       responses (layer 2)
    │   └── SendTimeout (TimeoutError)    the peer did not take bytes within ``send_timeout``
    ├── LogError                          event log (layer 3)
    │   ├── StreamNotFound
    │   ├── StreamClosedError             append to a closed stream
    │   ├── BackendUnavailable            the storage engine (Redis) cannot be reached
    │   └── LeaseLost                     a request-bound producer's lease was ended elsewhere
    ├── ClientError                       ``mianzhang.client``
    │   ├── ResponseRejected              non-200 or not ``text/event-stream``: never retried
    │   ├── ReconnectExhausted            network errors outlasted the retry budget
    │   └── PublishRejected               the server refused a channel publish (4xx/5xx)
    ├── LLMError                          LLM gateway (``mianzhang.llm``)
    │   ├── ModelNotFound (KeyError)      no model configured by that name: 404
    │   ├── InvalidLLMRequest (ValueError) rejected before any stream starts: 400
    │   ├── GenerationCancelled           stopped by a user, or abandoned past the grace period
    │   ├── GenerationLost                its instance died mid-generation (its lease expired)
    │   └── UpstreamError                 a provider failed; ``retryable`` says if a retry may help
    │       ├── UpstreamConnectError      connecting or sending the request failed
    │       ├── UpstreamTimeout           the upstream stalled past the stall timeout
    │       ├── UpstreamStatusError       the upstream answered a non-2xx status
    │       ├── UpstreamStreamError       the upstream sent an error event inside its stream
    │       ├── UpstreamUnsupported       the request has no equivalent in the upstream's API
    │       └── UpstreamProtocolError     the upstream stream broke off or was malformed
    ├── JobError                          background jobs (layer 4)
    │   ├── UnknownJobType (ValueError)   no job function registered under that name
    │   ├── InvalidJobInput (ValueError)  the input does not fit the job type: 400, nothing stored
    │   ├── JobNotFound (KeyError)
    │   └── JobQueueFull                  the job queue is full: retry later
    ├── ChatError                         chats kept by the server (``mianzhang.chats``)
    │   ├── ChatNotFound (KeyError)       no chat by that id (never made, deleted, expired): 404
    │   └── ChatConflict                  the chat cannot take this turn now: 409
    ├── FilesError                        file storage and transfer (``mianzhang.files``)
    │   ├── FileNotFound (KeyError)       no stored file (or tus upload) by that id: 404
    │   ├── UploadTooLarge                the body exceeds the size limit: 413, nothing kept
    │   ├── InvalidUpload (ValueError)    malformed upload (multipart, headers, metadata): 400
    │   │   └── ChecksumMismatch          the received bytes do not match the expected digest
    │   ├── UploadStalled                 body slower than ``upload_min_rate`` (or silent): 408
    │   └── UploadConflict                tus: ``Upload-Offset`` is not the upload's offset: 409
    ├── AuthError                         credentials (before any stream starts)
    │   ├── Unauthorized                  missing, malformed, expired or wrongly signed: 401
    │   └── Forbidden                     valid, but not for this resource: 403
    ├── RateLimited                       a per-key limit is exhausted: 429 with Retry-After
    ├── RequestError                      an HTTP request refused before any work (routes)
    │   ├── InvalidRequest (ValueError)   a malformed body, query or path parameter: 400
    │   ├── NotFound (KeyError)           no such route or resource: 404
    │   ├── MethodNotAllowed              the route exists, not with this method: 405
    │   ├── Conflict                      the resource's state forbids it (already ended): 409
    │   ├── UnsupportedMediaType          a body of a content type the route does not take: 415
    │   ├── RequestTimeout                the request body stalled past its deadline: 408
    │   └── RequestTooLarge               the request body exceeds its size limit: 413
    ├── Draining                          the instance is shutting down: 503, retry elsewhere
    └── ConfigError (ValueError)          settings rejected at start

Errors of dependencies (redis-py, httpx) are translated at the adapter boundary with
``raise ... from exc`` so callers only ever catch ``MianzhangError`` subclasses.

Kept whole although over the 400-line rule: it is the one exception tree, read top to bottom
against the drawing above, and splitting it would part the branches from their picture.
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


class SendTimeout(StreamError, TimeoutError):
    """The peer did not accept a chunk within ``send_timeout`` seconds (a frozen reader).

    Raised only by a response made with ``raise_errors=True`` (otherwise the stream just
    ends, counted in ``StreamStatistics.send_timeouts``); ``mianzhang.compat.sse_starlette``
    exports it as ``SendTimeoutError``, the name sse-starlette gives it."""


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


class LeaseLost(LogError):
    """The producer lease a block held (``mianzhang.log.LeaseHolder``) was lost while it ran:
    this instance was presumed dead (cut off from the log, or its loop blocked, longer than the
    lease's ttl) and another instance applied the lease, or another producer took the stream
    over. The block was cancelled so that it does not go on producing for a stream whose
    readers were told it stopped."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"the producer lease of {stream!r} was lost")
        self.stream = stream


# -- client -----------------------------------------------------------------------------------
class ClientError(MianzhangError):
    """The SSE client gave up."""


class ResponseRejected(ClientError):
    """The server answered with a non-200 status or a non-``text/event-stream`` type.

    Per the WHATWG spec this is final: the client does not reconnect.
    """

    def __init__(self, status_code: int, content_type: str, body: bytes = b"") -> None:
        super().__init__(
            f"SSE response rejected: HTTP {status_code}, content-type {content_type!r}"
        )
        self.status_code = status_code
        self.content_type = content_type
        self.body = body


class ReconnectExhausted(ClientError):
    """Reconnection attempts ran out (``max_reconnects``) while the network kept failing."""


class PublishRejected(ClientError):
    """The server answered a channel publish with an error status (never retried).

    ``status_code`` is the HTTP status, ``message`` the server's ``error.message`` (or the
    start of the body when it was not mianzhang's JSON error).
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"publish refused: HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message


# -- LLM gateway ------------------------------------------------------------------------------
class LLMError(MianzhangError):
    """The LLM gateway could not serve a generation."""


class ModelNotFound(LLMError, KeyError):
    """No model is configured under that name (HTTP 404 before any stream starts)."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.model = model

    def __str__(self) -> str:
        return f"model not found: {self.model!r}"


class InvalidLLMRequest(LLMError, ValueError):
    """A generation request the gateway rejects before contacting any upstream (HTTP 400)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class GenerationCancelled(LLMError):
    """A generation was stopped before its end: by a user's stop, or because nobody had been
    reading it for the grace period. ``reason`` says which."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(f"the generation was cancelled ({reason})")
        self.reason = reason


class GenerationLost(LLMError):
    """The instance running a generation stopped (killed, partitioned) before its end: its
    producer's lease expired and another instance ended the stream with this error (type
    ``producer_lost``). The output logged until then stays readable; nothing more will come."""

    def __init__(self, message: str = "the instance running this generation stopped") -> None:
        super().__init__(message)


class UpstreamError(LLMError):
    """A provider (an upstream API or a local model) failed.

    ``retryable`` tells whether the same request may succeed if sent again (the official openai
    client's policy: 408, 409, 429, 5xx, connection errors, timeouts); ``retry_after`` is the
    delay in seconds the upstream asked for, if any; ``status_code`` the upstream's HTTP status.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


class UpstreamConnectError(UpstreamError):
    """Connecting to the upstream or sending the request failed (always retryable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class UpstreamTimeout(UpstreamError):
    """The upstream sent nothing for longer than the stall timeout (retryable before the first
    token; after it, the stream ends with an error event)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class UpstreamStatusError(UpstreamError):
    """The upstream answered with a non-2xx HTTP status; ``body`` is (the start of) its answer."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        body: str = "",
    ) -> None:
        super().__init__(
            message, retryable=retryable, status_code=status_code, retry_after=retry_after
        )
        self.body = body


class UpstreamStreamError(UpstreamError):
    """The upstream answered 200 and then reported an error inside its stream (an Anthropic
    ``error`` event). ``error_type`` is the upstream's error type (``overloaded_error``, ...);
    ``status_code`` the HTTP status that type stands for outside a stream. Retryable when that
    status is (429, 5xx, 529)."""

    def __init__(self, error_type: str, message: str, *, status_code: int) -> None:
        super().__init__(
            message,
            retryable=status_code in (408, 409, 429) or status_code >= 500,
            status_code=status_code,
        )
        self.error_type = error_type


class UpstreamUnsupported(UpstreamError):
    """The provider cannot express the request in its upstream's API (a content kind or a
    parameter with no equivalent there). Nothing was sent; never retried on the same
    upstream (the next model of a fallback chain may serve it). ``status_code`` is 400: the
    request, not the upstream, is the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, status_code=400)


class UpstreamProtocolError(UpstreamError):
    """The upstream's stream broke off before its end or carried something unparseable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


# -- jobs -------------------------------------------------------------------------------------
class JobError(MianzhangError):
    """A background-job operation failed."""


class UnknownJobType(JobError, ValueError):
    """No job type is registered under the requested name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown job type {name!r}; known types: {', '.join(sorted(known))}")
        self.name = name


class InvalidJobInput(JobError, ValueError):
    """The input does not fit the job type's input model; nothing was stored or queued.
    ``problems`` lists ``{"loc", "msg"}`` per invalid field."""

    def __init__(self, name: str, problems: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{p['loc'] or 'input'}: {p['msg']}" for p in problems)
        super().__init__(f"invalid input for job type {name!r}: {detail}")
        self.name = name
        self.problems = problems


class JobNotFound(JobError, KeyError):
    """No job with that id (never existed, or its record expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"job not found: {self.job_id!r}"


class JobQueueFull(JobError):
    """The job queue already holds ``max_queued`` jobs (in-process pool or Redis): the job was
    not run (its record, if written, is marked failed); retry later."""


# -- chats ------------------------------------------------------------------------------------
class ChatError(MianzhangError):
    """An operation on a chat kept by the server failed."""


class ChatNotFound(ChatError, KeyError):
    """No chat with that id: never created, deleted, or forgotten after its TTL."""

    def __init__(self, chat_id: str) -> None:
        super().__init__(chat_id)
        self.chat_id = chat_id

    def __str__(self) -> str:
        return f"chat not found: {self.chat_id!r}"


class ChatConflict(ChatError):
    """The chat cannot take this turn now: an answer is running (stop or resume it), another
    instance started one first, or the id is a chat of another kind. Nothing was started."""


# -- files ------------------------------------------------------------------------------------
class FilesError(MianzhangError):
    """A file storage or transfer operation failed. ``status_code`` is the HTTP answer."""

    status_code = 500


class FileNotFound(FilesError, KeyError):
    """No stored file (or tus upload) by that id. Ids that are not well-formed, and paths that
    would leave the storage directory or are symlinks, are reported the same way (404)."""

    status_code = 404

    def __init__(self, file_id: str) -> None:
        super().__init__(file_id)
        self.file_id = file_id

    def __str__(self) -> str:
        return f"file not found: {self.file_id!r}"


class UploadTooLarge(FilesError):
    """The upload exceeds ``limit`` bytes (by its ``Content-Length`` or while streaming).
    Nothing received is kept."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the size limit of {limit} bytes")
        self.limit = limit


class InvalidUpload(FilesError, ValueError):
    """The upload is malformed (multipart syntax, a limit on parts or headers, bad metadata).
    Nothing received is kept."""

    status_code = 400


class ChecksumMismatch(InvalidUpload):
    """The received bytes do not hash to the digest the client announced. Nothing is kept."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"sha-256 mismatch: expected {expected}, received {actual}")
        self.expected = expected
        self.actual = actual


class UploadStalled(FilesError):
    """Fewer than ``min_bytes`` of the request body arrived within a window of ``timeout``
    seconds (a slow-loris or trickling client): 408. A plain upload keeps nothing; a tus
    upload keeps what it received."""

    status_code = 408

    def __init__(self, timeout: float, min_bytes: int = 1) -> None:
        if min_bytes <= 1:
            message = f"no upload data received for {timeout:g} seconds"
        else:
            message = f"fewer than {min_bytes} bytes of upload data in {timeout:g} seconds"
        super().__init__(message)
        self.timeout = timeout
        self.min_bytes = min_bytes


class UploadConflict(FilesError):
    """tus: the request's ``Upload-Offset`` is not the upload's current offset (409)."""

    status_code = 409

    def __init__(self, expected: int, given: int) -> None:
        super().__init__(f"Upload-Offset is {given}, the upload is at {expected}")
        self.expected = expected
        self.given = given


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


# -- requests ---------------------------------------------------------------------------------
class RateLimited(MianzhangError):
    """A limit of the caller is exhausted (before any stream starts): answered 429.

    ``policy`` names the limit, ``quota`` its size per ``window`` seconds, ``retry_after`` the
    seconds until a retry can succeed.
    """

    def __init__(self, policy: str, quota: int, window: int, retry_after: int) -> None:
        super().__init__(f"rate limit {policy!r} exceeded ({quota} per {window}s)")
        self.policy = policy
        self.quota = quota
        self.window = window
        self.retry_after = max(1, retry_after)


class RequestError(MianzhangError):
    """An HTTP request the server refuses before doing any work (no stream started). Each
    surface renders it in its own error shape (docs/errors.md); ``status_code`` is the HTTP
    status (an instance may set its own, e.g. for a framework's ``HTTPException``)."""

    status_code = 400


class InvalidRequest(RequestError, ValueError):
    """A malformed body, query or path parameter (400). ``problems`` lists
    ``{"loc", "msg"}`` per invalid field, when known; ``param`` names the first one."""

    status_code = 400

    def __init__(self, message: str, *, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])

    @property
    def param(self) -> str | None:
        return (self.problems[0]["loc"] or None) if self.problems else None


class NotFound(RequestError, KeyError):
    """No route, or no resource of a route, by that name (404)."""

    status_code = 404

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class MethodNotAllowed(RequestError):
    """The route exists but does not take this method (405); ``allowed`` lists those it takes
    (the ``Allow`` header)."""

    status_code = 405

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(RequestError):
    """The resource's state forbids the request (a stream or job that already ended): 409."""

    status_code = 409


class UnsupportedMediaType(RequestError):
    """The body has a content type the route does not take (415)."""

    status_code = 415


class RequestTimeout(RequestError):
    """The client stopped sending its request body for longer than the body deadline."""

    status_code = 408


class RequestTooLarge(RequestError):
    """The request body exceeds ``limit`` bytes (answered 413 before any stream starts)."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds the size limit of {limit} bytes")
        self.limit = limit


# -- lifecycle and configuration ---------------------------------------------------------------
class Draining(MianzhangError):
    """This instance is shutting down and starts no new work; another instance will."""


class ConfigError(MianzhangError, ValueError):
    """Settings were rejected at start; the message names the setting and the reason."""
