"""The client's state machine without I/O: shared by the async and the sync stream.

It owns the one :class:`SSEDecoder` of a stream (reused across connections: it keeps the last
event id and the reconnection time), the queue of decoded events not yet handed out, and the
failure accounting that drives :class:`Backoff` and ``max_reconnects``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

import httpx

from .._errors import ReconnectExhausted
from .._sse import ServerSentEvent, SSEDecoder
from ._backoff import Backoff
from ._events import RECONNECT_EVENT, RESET_EVENT, ResetEvent

logger: Final = logging.getLogger("mianzhang.client")

RETRYABLE: Final = (
    httpx.NetworkError,  # connect / read / write / close failed (refused, reset, ...)
    httpx.TimeoutException,  # includes the read timeout: no byte, not even a heartbeat
    httpx.RemoteProtocolError,  # the peer broke HTTP, e.g. closed mid-chunk
    httpx.ProxyError,
)
"""Errors after which the client reconnects. Any other ``httpx`` error is final."""

DEFAULT_RETRY: Final = 3000
DEFAULT_MAX_EVENT_SIZE: Final = 16 * 1024 * 1024
DEFAULT_MAX_ERROR_BODY: Final = 64 * 1024

Verdict = Literal["open", "done", "rejected"]


class State(Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Options:
    """Every argument of ``connect``/``connect_sync`` but the client and the sleep function:
    the request, its limits and the resumption knobs (validated once, shared by both streams;
    the knobs of :class:`Core` are checked when it is made from them)."""

    url: httpx.URL | str
    method: str
    params: Any
    headers: Mapping[str, str] | None
    json: Any
    last_event_id: str | None
    retry: int
    backoff: Backoff | None
    max_reconnects: int | None
    read_timeout: float | None
    connect_timeout: float
    max_event_size: int | None
    max_error_body: int

    def __post_init__(self) -> None:
        if self.read_timeout is not None and not self.read_timeout > 0:
            raise ValueError("read_timeout must be positive or None")
        if not self.connect_timeout > 0:
            raise ValueError("connect_timeout must be positive")
        if self.max_error_body < 0:
            raise ValueError("max_error_body must not be negative")

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.connect_timeout, read=self.read_timeout)


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


class StreamView:
    """The public state both stream classes share (async and sync differ only in I/O)."""

    _core: Core
    _response: httpx.Response | None
    _state: State

    @property
    def last_event_id(self) -> str:
        """The id a reconnect resumes after: the last event handed out (``""``: none)."""
        return self._core.last_event_id

    @property
    def retry(self) -> int:
        """The current reconnection time in milliseconds (the server's ``retry:`` wins)."""
        return self._core.retry

    @property
    def reconnects(self) -> int:
        """How many times the stream connected again after its first attempt."""
        return self._core.reconnects

    @property
    def response(self) -> httpx.Response | None:
        """The response being read (its headers), ``None`` between connections."""
        return self._response

    @property
    def closed(self) -> bool:
        return self._state is State.CLOSED


class Core:
    """Decoder, delivery queue, reconnection time and failure count of one stream.

    A *failure* is a connection attempt that ended (network error, timeout, clean EOF) without
    dispatching a single event; a connection that dispatched one resets the count to 0. The
    delay before each reconnect is ``backoff.delay(retry / 1000, failures)``; once
    ``failures`` exceeds ``max_reconnects`` the stream raises :class:`ReconnectExhausted`.
    """

    def __init__(
        self,
        *,
        last_event_id: str | None,
        retry: int,
        backoff: Backoff | None,
        max_reconnects: int | None,
        max_event_size: int | None,
    ) -> None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"retry must be a non-negative int (milliseconds), got {retry!r}")
        if max_reconnects is not None and max_reconnects < 0:
            raise ValueError("max_reconnects must be None (unlimited) or >= 0")
        last_event_id = last_event_id or ""
        if any(c in last_event_id for c in "\r\n\0"):
            raise ValueError(f"last_event_id must not contain CR, LF or NUL: {last_event_id!r}")
        self.decoder = SSEDecoder(max_event_size)
        self.decoder.last_event_id = last_event_id
        self.decoder.close()  # resets the decoder's pending-id buffer to last_event_id
        self.initial_retry = retry
        self.backoff = backoff if backoff is not None else Backoff()
        self.max_reconnects = max_reconnects
        self.attempts = 0
        self.failures = 0
        self._delivered = False  # the current connection dispatched an event
        self._reconnect_requested = False
        self._pending: deque[ServerSentEvent] = deque()
        self._handed_out_id = last_event_id

    @classmethod
    def from_options(cls, options: Options) -> Core:
        """The state machine for a stream opened with ``options``."""
        return cls(
            last_event_id=options.last_event_id,
            retry=options.retry,
            backoff=options.backoff,
            max_reconnects=options.max_reconnects,
            max_event_size=options.max_event_size,
        )

    # -- what callers see ------------------------------------------------------------------
    @property
    def last_event_id(self) -> str:
        """The id to resume after: the last event handed out (or a later id-only update)."""
        return self._handed_out_id if self._pending else self.decoder.last_event_id

    @property
    def retry(self) -> int:
        """The reconnection time in milliseconds (the server's last valid ``retry:``)."""
        return self.decoder.retry if self.decoder.retry is not None else self.initial_retry

    @property
    def reconnects(self) -> int:
        return max(0, self.attempts - 1)

    def pop(self) -> ServerSentEvent | None:
        if not self._pending:
            return None
        event = self._pending.popleft()
        self._handed_out_id = event.id or ""
        return event

    # -- connection lifecycle ----------------------------------------------------------------
    def begin_attempt(self, url: object) -> float | None:
        """Count one connection attempt; return seconds to wait first (``None``: first one)."""
        self.attempts += 1
        delay: float | None = None
        if self.attempts > 1:
            delay = self.backoff.delay(self.retry / 1000, self.failures)
            if self._reconnect_requested:
                why = "the server asked for it"
            elif self.failures:
                why = f"{self.failures} failed attempt(s) in a row"
            else:
                why = "the connection ended"
            logger.info("reconnecting to %s in %.3f s: %s", url, delay, why)
        self._delivered = False
        self._reconnect_requested = False
        return delay

    def request_headers(self, extra: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
        """Caller's headers plus the SSE ones; ``Last-Event-ID`` (UTF-8) only if non-empty."""
        raw = [
            (k, v)
            for k, v in httpx.Headers(extra or {}).raw
            if k.lower() not in (b"last-event-id", b"accept", b"cache-control")
        ]
        raw.append((b"Accept", b"text/event-stream"))
        raw.append((b"Cache-Control", b"no-store"))
        last_id = self.decoder.last_event_id
        if last_id:
            raw.append((b"Last-Event-ID", last_id.encode("utf-8")))
        return raw

    @staticmethod
    def classify(status_code: int, content_type: str) -> Verdict:
        """200 + ``text/event-stream``: read it; 204: the server says stop; else: reject."""
        if status_code == 204:
            return "done"
        if status_code == 200 and media_type(content_type) == "text/event-stream":
            return "open"
        return "rejected"

    def feed(self, chunk: bytes) -> bool:
        """Decode ``chunk`` into the queue; ``True`` if the server asked for a reconnect.

        Raises :class:`EventTooLarge` from the decoder. Every event decoded from the chunk is
        queued, also those after a ``reconnect`` event, because the decoder's last event id
        already counts them.
        """
        for event in self.decoder.decode(chunk):
            self._delivered = True
            if event.event == RECONNECT_EVENT:
                self._reconnect_requested = True
                continue
            if event.event == RESET_EVENT:
                event = ResetEvent.from_event(event) or event
            self._pending.append(event)
        return self._reconnect_requested

    def end_connection(self, error: BaseException | None) -> None:
        """The connection (or attempt) is over: discard any unterminated event and account.

        Raises :class:`ReconnectExhausted` (chained to ``error``) when this failure exceeds
        ``max_reconnects``.
        """
        self.decoder.close()
        if self._delivered:
            self.failures = 0
            return
        self.failures += 1
        if self.max_reconnects is not None and self.failures > self.max_reconnects:
            what = f"{type(error).__name__}: {error}" if error else "closed without an event"
            raise ReconnectExhausted(
                f"gave up after {self.failures} failed connection attempt(s) in a row "
                f"(max_reconnects={self.max_reconnects}); last: {what}"
            ) from error
