"""Layer 1: the Server-Sent Events wire format (WHATWG HTML, "Server-sent events"). No I/O.

``ServerSentEvent.encode()`` turns one event into bytes; ``SSEDecoder`` turns bytes, in any
chunking, into events exactly as a browser's ``EventSource`` would see them.

Guarantees
----------
* Encoding never changes meaning silently: CR/LF in ``event`` or ``id``, NUL in ``id`` and a
  ``retry`` that is not a non-negative ``int`` raise :class:`SSEEncodeError`, at construction and
  on assignment to the attribute (sse-starlette strips CR/LF, which turns an injection into a
  different event).
* Multi-line data (CR, LF or CRLF) becomes one ``data:`` line per line, so the decoder yields
  the same text back with every line end normalised to LF.
* The decoder never raises on any input (only :class:`EventTooLarge` when ``max_event_size`` is
  set) and gives the same events whatever the chunking of the bytes.
* The decoder runs in time linear in its input: a line is collected as a list of pieces and
  joined once, never re-scanned. An 8 MiB single-line event decodes in tens of milliseconds.
* Only CR, LF and CRLF end a line; U+2028, U+0085, ``\\v`` and ``\\x1c`` are ordinary characters
  (``str.splitlines`` is wrong for SSE and is not used).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

from ._errors import EventTooLarge, SSEEncodeError

__all__ = [
    "JSONServerSentEvent",
    "SSEDecoder",
    "ServerSentEvent",
    "encode_comment",
    "encode_data",
    "json_dumps",
]

_LINE_END: Final = re.compile(r"\r\n|\r|\n")
_DEFAULT_SEP: Final = "\n"
_VALID_SEPS: Final = frozenset({"\n", "\r", "\r\n"})
_MAX_RETRY: Final = 2**63 - 1  # decoded ``retry:`` saturates here (~292 million years)
_MAX_RETRY_DIGITS: Final = len(str(_MAX_RETRY))


def json_dumps(value: Any) -> str:
    """Serialise ``value`` to compact JSON text with orjson (UTF-8, no spaces).

    Non-string keys and dataclasses/pydantic-style objects follow orjson's rules; anything orjson
    cannot serialise raises ``TypeError`` (never falls back to ``repr``).
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _check_sep(sep: str | None) -> str:
    if sep is None:
        return _DEFAULT_SEP
    if sep not in _VALID_SEPS:
        raise SSEEncodeError(f"sep must be one of '\\n', '\\r', '\\r\\n', got {sep!r}")
    return sep


def _check_event(event: object) -> str | None:
    if event is None:
        return None
    if not isinstance(event, str):
        raise SSEEncodeError(f"event must be str, got {type(event).__name__}")
    if "\r" in event or "\n" in event:
        raise SSEEncodeError(f"event must not contain CR or LF: {event!r}")
    return event


def _check_id(id: object) -> str | None:
    if id is None:
        return None
    if isinstance(id, int) and not isinstance(id, bool):
        return str(id)
    if not isinstance(id, str):
        raise SSEEncodeError(f"id must be str, got {type(id).__name__}")
    if "\r" in id or "\n" in id or "\0" in id:
        raise SSEEncodeError(f"id must not contain CR, LF or NUL: {id!r}")
    return id


def _check_retry(retry: object) -> int | None:
    if retry is None:
        return None
    if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
        raise SSEEncodeError(f"retry must be a non-negative int (milliseconds), got {retry!r}")
    return retry


def _check_comment(comment: object) -> str | None:
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise SSEEncodeError(f"comment must be str, got {type(comment).__name__}")
    return comment


def _data_text(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data).decode("utf-8")
    if isinstance(data, dict | list | tuple):
        # sse-starlette sends str(dict), a Python repr no client can parse; we send JSON.
        return json_dumps(data)
    return str(data)


class ServerSentEvent:
    """One SSE event. Accepts sse-starlette 3.x's arguments with the same meaning.

    ``data`` may be ``str`` (sent as is, split on line ends), ``bytes`` (UTF-8 text), ``dict``/
    ``list`` (JSON, where sse-starlette would send a Python repr), ``None`` (no ``data:`` line)
    or anything else (``str(data)``). Fields are validated here, at construction, so a bad
    event fails where it is made and not deep inside a running stream.
    """

    __slots__ = ("_comment", "_event", "_id", "_retry", "_sep", "data")

    def __init__(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
    ) -> None:
        # The ``is None`` tests inline the common case (no such field): no call at all.
        self.data = data
        self._event = None if event is None else _check_event(event)
        self._id = None if id is None else _check_id(id)
        self._retry = None if retry is None else _check_retry(retry)
        self._comment = None if comment is None else _check_comment(comment)
        self._sep = _DEFAULT_SEP if sep is None else _check_sep(sep)

    # The validated fields are properties so that assigning after construction is checked
    # exactly like the constructor's arguments (sse-starlette lets users set them).
    @property
    def event(self) -> str | None:
        """The ``event:`` field (``None``: no field, a client sees ``"message"``)."""
        return self._event

    @event.setter
    def event(self, value: str | None) -> None:
        self._event = _check_event(value)

    @property
    def id(self) -> str | None:
        """The ``id:`` field; an ``int`` given here is stored as its decimal text."""
        return self._id

    @id.setter
    def id(self, value: str | int | None) -> None:
        self._id = _check_id(value)

    @property
    def retry(self) -> int | None:
        """The ``retry:`` field in milliseconds."""
        return self._retry

    @retry.setter
    def retry(self, value: int | None) -> None:
        self._retry = _check_retry(value)

    @property
    def comment(self) -> str | None:
        """Comment text, sent as one ``:`` line per line before the fields."""
        return self._comment

    @comment.setter
    def comment(self, value: str | None) -> None:
        self._comment = _check_comment(value)

    def _data_str(self) -> str | None:
        return None if self.data is None else _data_text(self.data)

    def encode(self) -> bytes:
        """The event as UTF-8 bytes, terminated by a blank line.

        Field order: comment, id, event, data, retry (as sse-starlette). An event with no field
        at all encodes as a bare blank line, which a client ignores.
        """
        sep = self._sep
        data = self.data
        if (  # the hot case: a one-line text event, nothing else (5x faster than the general path)
            type(data) is str
            and type(self) is ServerSentEvent
            and self._id is None
            and self._event is None
            and self._retry is None
            and self._comment is None
            and "\n" not in data
            and "\r" not in data
        ):
            return f"data: {data}{sep}{sep}".encode()
        parts: list[str] = []
        if self._comment is not None:
            for line in _LINE_END.split(self._comment):
                parts.append(f": {line}{sep}" if line else f":{sep}")
        if self._id is not None:
            parts.append(f"id: {self._id}{sep}")
        if self._event is not None:
            parts.append(f"event: {self._event}{sep}")
        data = self._data_str()
        if data is not None:
            if "\n" in data or "\r" in data:
                for line in _LINE_END.split(data):
                    parts.append(f"data: {line}{sep}")
            else:
                parts.append(f"data: {data}{sep}")
        if self._retry is not None:
            parts.append(f"retry: {self._retry}{sep}")
        parts.append(sep)
        return "".join(parts).encode("utf-8")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (
            self._data_str() == other._data_str()
            and self.event == other.event
            and self.id == other.id
            and self.retry == other.retry
            and self.comment == other.comment
        )

    def __hash__(self) -> int:
        return hash((self._data_str(), self.event, self.id, self.retry, self.comment))

    def __repr__(self) -> str:
        fields = [f"data={self.data!r}"]
        for name in ("event", "id", "retry", "comment"):
            value = getattr(self, name)
            if value is not None:
                fields.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(fields)})"


class JSONServerSentEvent(ServerSentEvent):
    """An event whose ``data`` is serialised as JSON (orjson), whatever its type.

    Unlike sse-starlette's (``json.dumps``), ``NaN``/``Infinity`` become ``null`` and a value
    orjson cannot serialise raises ``TypeError`` when the event is encoded.
    """

    __slots__ = ()

    def _data_str(self) -> str | None:
        return None if self.data is None else json_dumps(self.data)


def encode_data(text: str, sep: str = _DEFAULT_SEP) -> bytes:
    """Fast path: the bytes of an event carrying only ``text`` as data.

    The same bytes as ``ServerSentEvent(text, sep=sep).encode()``; a ``sep`` other than LF, CR
    or CRLF raises :class:`SSEEncodeError`.
    """
    if sep not in _VALID_SEPS:
        _check_sep(sep)
    if "\n" in text or "\r" in text:
        return "".join(f"data: {line}{sep}" for line in _LINE_END.split(text)).encode() + (
            sep.encode()
        )
    return f"data: {text}{sep}{sep}".encode()


def encode_comment(text: str = "", sep: str = _DEFAULT_SEP) -> bytes:
    """A comment line (``: text``) and nothing else: the heartbeat, ignored by clients.

    Without a trailing blank line, so it never completes a pending event of its own; a comment
    between events is harmless to every conforming client. A ``sep`` other than LF, CR or
    CRLF raises :class:`SSEEncodeError`.
    """
    if sep not in _VALID_SEPS:
        _check_sep(sep)
    return "".join(
        f": {line}{sep}" if line else f":{sep}" for line in _LINE_END.split(text)
    ).encode()


def _parse_retry(digits: str) -> int:
    """ASCII digits -> milliseconds, saturating at ``2**63 - 1``.

    Linear in ``len(digits)`` and never raises: ``int()`` refuses more than 4300 digits
    (``sys.get_int_max_str_digits``) and a huge value would overflow a float later.
    """
    significant = digits.lstrip("0")
    if len(significant) > _MAX_RETRY_DIGITS:
        return _MAX_RETRY
    return min(int(significant or "0"), _MAX_RETRY)


class SSEDecoder:
    """Incremental decoder: feed bytes in any chunking, get dispatched events.

    Exactly the WHATWG "interpret an event stream" algorithm:

    * one leading UTF-8 BOM is stripped; invalid UTF-8 becomes U+FFFD, also when a multi-byte
      character is split across chunks;
    * CRLF, LF and a lone CR end a line, also a CR at the end of one chunk followed by LF at the
      start of the next (one line end); nothing else ends a line;
    * ``decode`` returns the events dispatched by the bytes given; ``close`` discards an event
      that was never terminated by a blank line (and its ``id``: ``last_event_id`` only changes
      when an event is dispatched, so an unterminated id is never used on reconnect).

    Dispatched events are :class:`ServerSentEvent` with ``event`` defaulting to ``"message"``,
    ``id`` set to the last event id at dispatch time (``""`` when none), and ``retry`` set when
    the event carried a valid ``retry`` field. ``self.retry`` holds the latest reconnection time
    (a value beyond ``2**63 - 1`` ms saturates there: an absurd ``retry`` never raises).

    ``max_event_size`` (characters of the pending line plus pending data) bounds memory for an
    untrusted stream: exceeding it raises :class:`EventTooLarge`.
    """

    __slots__ = (
        "_after_cr",
        "_data",
        "_data_size",
        "_event_type",
        "_id_buffer",
        "_line",
        "_line_size",
        "_pending_retry",
        "_text",
        "last_event_id",
        "max_event_size",
        "on_comment",
        "retry",
    )

    def __init__(
        self,
        max_event_size: int | None = None,
        *,
        on_comment: Callable[[str], None] | None = None,
    ) -> None:
        if max_event_size is not None and max_event_size <= 0:
            raise ValueError("max_event_size must be positive")
        self.max_event_size = max_event_size
        self.on_comment = on_comment
        self._text = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._after_cr = False
        self._line: list[str] = []
        self._line_size = 0
        self._data: list[str] = []
        self._data_size = 0
        self._event_type = ""
        self._id_buffer = ""
        self._pending_retry: int | None = None
        self.last_event_id = ""
        self.retry: int | None = None

    # -- feeding --------------------------------------------------------------------------------
    def decode(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume ``chunk``; return the events it completed, in order."""
        return self._feed(self._text.decode(chunk, False))

    def close(self) -> list[ServerSentEvent]:
        """End of stream: discard any unterminated event (and any unfinished UTF-8 character).

        Always returns ``[]`` (a pending event is never dispatched at EOF, per spec); the
        decoder is reset so it can read a new connection's stream.
        """
        # Bytes of an unfinished character held by the UTF-8 decoder can only belong to the
        # pending line, which is discarded: they are dropped without decoding, so ``close``
        # never raises (not even ``EventTooLarge`` for the U+FFFD they would become).
        self._text.reset()
        self._after_cr = False
        self._line.clear()
        self._line_size = 0
        self._reset_event()
        self._id_buffer = self.last_event_id
        return []

    flush = close

    def _feed(self, text: str) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        if not text:
            return events
        # An LF starting this text after a CR that ended the previous one: the two are one CRLF.
        skip_lf = self._after_cr and text[0] == "\n"
        if "\r" in text:
            # A CR at the very end may be the first half of a CRLF split across chunks.
            self._after_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        else:
            self._after_cr = False
        # str.replace and str.split scan in C: each character is looked at a constant number
        # of times, whatever the chunking (a regex scan was ~7x slower on a long line).
        lines = text.split("\n")
        rest = lines.pop()  # the start of a line whose end has not arrived yet
        if skip_lf:
            del lines[0]
        if lines and self._line:
            self._line.append(lines[0])
            lines[0] = "".join(self._line)
            self._line.clear()
            self._line_size = 0
        limit = self.max_event_size
        data = self._data
        for line in lines:
            if limit is not None and len(line) + self._data_size > limit:
                raise EventTooLarge(len(line) + self._data_size, limit)
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            colon = line.find(":")
            if colon == 0:
                if self.on_comment is not None:
                    self.on_comment(line[2:] if line.startswith(" ", 1) else line[1:])
                continue
            if colon > 0:
                field = line[:colon]
                # Exactly one space after the colon is removed.
                value = line[colon + 2 :] if line.startswith(" ", colon + 1) else line[colon + 1 :]
            else:
                field, value = line, ""
            if field == "data":
                data.append(value)
                self._data_size += len(value) + 1
            elif field == "event":
                self._event_type = value
            elif field == "id":
                if "\0" not in value:
                    self._id_buffer = value
            elif field == "retry" and value and value.isascii() and value.isdigit():
                self.retry = self._pending_retry = _parse_retry(value)
        if rest:
            self._line.append(rest)
            self._line_size += len(rest)
            if limit is not None and self._line_size + self._data_size > limit:
                raise EventTooLarge(self._line_size + self._data_size, limit)
        return events

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        data = self._data
        event: ServerSentEvent | None = None
        if data:
            event = ServerSentEvent.__new__(ServerSentEvent)
            event.data = "\n".join(data)
            event._event = self._event_type or "message"
            event._id = self.last_event_id
            event._retry = self._pending_retry
            event._comment = None
            event._sep = _DEFAULT_SEP
            data.clear()
        # _reset_event, inlined: this runs once per event.
        self._data_size = 0
        self._event_type = ""
        self._pending_retry = None
        return event

    def _reset_event(self) -> None:
        self._data.clear()
        self._data_size = 0
        self._event_type = ""
        self._pending_retry = None

    def decode_all(self, chunks: Iterable[bytes]) -> list[ServerSentEvent]:
        """Decode a whole finite stream (convenience for tests and tools)."""
        events: list[ServerSentEvent] = []
        for chunk in chunks:
            events.extend(self.decode(chunk))
        self.close()
        return events
