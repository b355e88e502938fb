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

Modules: ``_event`` (the event and its encoding), ``_decoder`` (the incremental decoder).
"""

from ._decoder import SSEDecoder
from ._event import (
    JSONServerSentEvent,
    ServerSentEvent,
    encode_comment,
    encode_data,
    json_dumps,
)
from ._event import _check_sep as _check_sep

__all__ = [
    "JSONServerSentEvent",
    "SSEDecoder",
    "ServerSentEvent",
    "encode_comment",
    "encode_data",
    "json_dumps",
]
