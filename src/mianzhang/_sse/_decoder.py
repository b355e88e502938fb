"""Decoding: bytes, in any chunking, into events exactly as a browser's ``EventSource`` sees them.

Guarantees:

* The decoder never raises on any input (only :class:`EventTooLarge` when ``max_event_size`` is
  set) and gives the same events whatever the chunking of the bytes.
* The decoder runs in time linear in its input: a line is collected as a list of pieces and
  joined once, never re-scanned. An 8 MiB single-line event decodes in tens of milliseconds.
* Only CR, LF and CRLF end a line; U+2028, U+0085, ``\\v`` and ``\\x1c`` are ordinary characters
  (``str.splitlines`` is wrong for SSE and is not used).
* An event is dispatched only by the blank line that ends it: one cut off by the end of the
  stream is discarded, and so is its ``id``.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable
from typing import Final

from .._errors import EventTooLarge
from ._event import _DEFAULT_SEP, ServerSentEvent

__all__ = ["SSEDecoder"]

_MAX_RETRY: Final = 2**63 - 1  # decoded ``retry:`` saturates here (~292 million years)
_MAX_RETRY_DIGITS: Final = len(str(_MAX_RETRY))


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
        if not text:
            return []
        lines, rest = self._complete_lines(text)
        events = self._interpret(lines) if lines else []
        if rest:
            self._hold(rest)
        return events

    def _complete_lines(self, text: str) -> tuple[list[str], str]:
        """The lines ``text`` completes (the first one joined to the line held from earlier
        chunks) and the start of a line whose end has not arrived yet."""
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
        return lines, rest

    def _interpret(self, lines: list[str]) -> list[ServerSentEvent]:
        """Complete lines, in order: a blank line dispatches the pending event, a comment goes
        to ``on_comment``, a field updates the pending event. Returns the events dispatched."""
        events: list[ServerSentEvent] = []
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
            match field:  # any other field is ignored
                case "data":
                    data.append(value)
                    self._data_size += len(value) + 1
                case "event":
                    self._event_type = value
                case "id" if "\0" not in value:
                    self._id_buffer = value
                case "retry" if value and value.isascii() and value.isdigit():
                    self.retry = self._pending_retry = _parse_retry(value)
        return events

    def _hold(self, rest: str) -> None:
        """Keep the start of an unfinished line; it counts toward ``max_event_size``."""
        self._line.append(rest)
        self._line_size += len(rest)
        limit = self.max_event_size
        if limit is not None and self._line_size + self._data_size > limit:
            raise EventTooLarge(self._line_size + self._data_size, limit)

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
