"""Encoding: one Server-Sent Event as bytes, its fields checked when it is made.

Guarantees:

* Encoding never changes meaning silently: CR/LF in ``event`` or ``id``, NUL in ``id`` and a
  ``retry`` that is not a non-negative ``int`` raise :class:`SSEEncodeError`, at construction and
  on assignment to the attribute (sse-starlette strips CR/LF, which turns an injection into a
  different event).
* Multi-line data (CR, LF or CRLF) becomes one ``data:`` line per line, so a decoder yields the
  same text back with every line end normalised to LF.
* The separator is LF, CR or CRLF and nothing else.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from .._errors import SSEEncodeError

__all__ = [
    "JSONServerSentEvent",
    "ServerSentEvent",
    "encode_comment",
    "encode_data",
    "json_dumps",
]

_LINE_END: Final = re.compile(r"\r\n|\r|\n")
_DEFAULT_SEP: Final = "\n"
_VALID_SEPS: Final = frozenset({"\n", "\r", "\r\n"})


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
