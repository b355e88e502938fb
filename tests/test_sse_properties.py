"""Property tests of the SSE wire format (hypothesis).

* encode -> decode is the identity (data up to line-end normalisation, which the format cannot
  carry) for arbitrary text, event names, ids and retry values, under arbitrary chunk splits;
* decoding arbitrary bytes never raises, does not depend on the chunking, and agrees with a
  plain whole-stream reference implementation of the WHATWG algorithm written here.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mianzhang import EventTooLarge, ServerSentEvent, SSEDecoder
from mianzhang._sse import encode_comment

# No Phase.explain: it imports libcst, whose DeprecationWarning (filterwarnings=error) would
# turn a failure report into a pytest INTERNALERROR.
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)

_LINE_END = re.compile(r"\r\n|\r|\n")
_MAX_RETRY = 2**63 - 1

# Characters a sloppy encoder or decoder gets wrong, mixed into arbitrary unicode text.
_TRICKY = ["\r", "\n", "\r\n", "\u2028", "\u2029", "\x85", "\v", "\x0c", "\x1c", "\x1d", "\x1e"]
_TRICKY += ["\0", "\ufeff", "\ufffd", ":", " ", "data:", "id: ", "event:", "retry:"]


def _text(exclude: str = "") -> st.SearchStrategy[str]:
    chars = st.characters(exclude_categories=["Cs"], exclude_characters=exclude)
    tricky = st.sampled_from([t for t in _TRICKY if not set(t) & set(exclude)])
    return st.lists(st.one_of(chars, tricky), max_size=30).map("".join)


@dataclass(frozen=True)
class Spec:
    data: str | None
    event: str | None
    id: str | None
    retry: int | None
    comment: str | None


specs = st.builds(
    Spec,
    data=st.none() | _text(),
    event=st.none() | _text(exclude="\r\n"),
    id=st.none() | _text(exclude="\r\n\0"),
    retry=st.none() | st.integers(min_value=0, max_value=2**62),
    comment=st.none() | _text(),
)

Event = tuple[str, str, str, int | None]


def _decode_chunks(chunks: list[bytes]) -> tuple[list[Event], str, int | None, list[str]]:
    comments: list[str] = []
    decoder = SSEDecoder(on_comment=comments.append)
    events: list[Event] = []
    for chunk in chunks:
        events.extend((e.event or "", e.data, e.id or "", e.retry) for e in decoder.decode(chunk))
    state = (decoder.last_event_id, decoder.retry)
    assert decoder.close() == []
    return events, *state, comments


def _split(raw: bytes, data: st.DataObject) -> list[bytes]:
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12), label="cuts")
    bounds = [0, *sorted(cuts), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def _expected(
    stream: list[Spec],
) -> tuple[list[Event], str, int | None, list[str]]:
    events: list[Event] = []
    comments: list[str] = []
    last_id = ""
    retry: int | None = None
    for spec in stream:
        if spec.comment is not None:
            comments.extend(_LINE_END.split(spec.comment))
        if spec.id is not None:
            last_id = spec.id
        if spec.retry is not None:
            retry = spec.retry
        if spec.data is not None:
            data = _LINE_END.sub("\n", spec.data)
            events.append((spec.event or "message", data, last_id, spec.retry))
    return events, last_id, retry, comments


@PROPERTY_SETTINGS
@given(
    stream=st.lists(specs, max_size=6),
    sep=st.sampled_from(["\n", "\r", "\r\n"]),
    bom=st.booleans(),
    data=st.data(),
)
def test_encode_then_decode_is_identity_under_any_chunking(
    stream: list[Spec], sep: str, bom: bool, data: st.DataObject
) -> None:
    raw = b"\xef\xbb\xbf" if bom else b""
    for spec in stream:
        event = ServerSentEvent(
            spec.data, event=spec.event, id=spec.id, retry=spec.retry, comment=spec.comment, sep=sep
        )
        raw += event.encode()
    assert _decode_chunks(_split(raw, data)) == _expected(stream)


@PROPERTY_SETTINGS
@given(text=_text(), heartbeat=_text(), sep=st.sampled_from(["\n", "\r", "\r\n"]), data=st.data())
def test_heartbeat_comment_between_events_changes_nothing(
    text: str, heartbeat: str, sep: str, data: st.DataObject
) -> None:
    one = ServerSentEvent(text, sep=sep).encode()
    raw = encode_comment(heartbeat, sep) + one + encode_comment(heartbeat, sep) + one
    events, _, _, comments = _decode_chunks(_split(raw, data))
    normalised = _LINE_END.sub("\n", text)
    assert events == [("message", normalised, "", None)] * 2
    assert comments == _LINE_END.split(heartbeat) * 2


# -- arbitrary bytes -------------------------------------------------------------------------------
_TOKENS = [b"data", b"id", b"event", b"retry", b":", b" ", b"\r", b"\n", b"\r\n", b"\x00"]
_TOKENS += [b"\xef\xbb\xbf", b"\xef\xbb", b"\xff", b"\xe4\xb8", b"\xad", b"\xf0\x9f", b"\x8e\x89"]
_TOKENS += [b"\xe2\x80\xa8", b"\xc2\x85", b"\x0b", b"1", b"12", b"-", b"x", b"\xd9\xa1"]

stream_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(_TOKENS), max_size=80).map(b"".join),
)


def _reference(raw: bytes) -> tuple[list[Event], str, int | None, list[str]]:
    """The WHATWG algorithm on the whole stream at once, written as plainly as possible."""
    text = raw.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_END.split(text)[:-1]  # the text after the last line end never completes
    events: list[Event] = []
    comments: list[str] = []
    data: list[str] = []
    event_type = ""
    id_buffer = last_id = ""
    retry: int | None = None
    event_retry: int | None = None
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data:
                events.append((event_type or "message", "\n".join(data), last_id, event_retry))
            data, event_type, event_retry = [], "", None
            continue
        name, colon, value = line.partition(":")
        value = value.removeprefix(" ")
        if colon and name == "":
            comments.append(value)
        elif name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            id_buffer = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            # Documented saturation: a reconnection time beyond 2**63-1 ms is 2**63-1 ms.
            retry = event_retry = min(int(value), _MAX_RETRY)
    return events, last_id, retry, comments


@PROPERTY_SETTINGS
@given(raw=stream_bytes, data=st.data())
def test_decoding_arbitrary_bytes_never_raises_and_ignores_chunking(
    raw: bytes, data: st.DataObject
) -> None:
    whole = _decode_chunks([raw])
    assert _decode_chunks(_split(raw, data)) == whole
    assert _decode_chunks([raw[i : i + 1] for i in range(len(raw))]) == whole


@PROPERTY_SETTINGS
@given(raw=stream_bytes)
def test_decoding_matches_the_reference_algorithm(raw: bytes) -> None:
    assert _decode_chunks([raw]) == _reference(raw)


@PROPERTY_SETTINGS
@given(raw=stream_bytes, limit=st.integers(1, 64), data=st.data())
def test_max_event_size_raises_only_event_too_large_and_never_loses_order(
    raw: bytes, limit: int, data: st.DataObject
) -> None:
    """With a limit, decoding either gives the unlimited result or stops with EventTooLarge,
    in every chunking the same way; events delivered before the error are a prefix."""
    unlimited = _decode_chunks([raw])[0]

    def run(chunks: list[bytes]) -> tuple[list[Event], bool]:
        decoder = SSEDecoder(max_event_size=limit)
        got: list[Event] = []
        try:
            for chunk in chunks:
                got.extend(
                    (e.event or "", e.data, e.id or "", e.retry) for e in decoder.decode(chunk)
                )
        except EventTooLarge:
            return got, True
        finally:
            assert decoder.close() == []
        return got, False

    whole_events, whole_raised = run([raw])
    split_events, split_raised = run([raw[i : i + 1] for i in range(len(raw))])
    assert whole_raised == split_raised
    assert split_events == unlimited[: len(split_events)]
    assert whole_events == unlimited[: len(whole_events)]
    if not whole_raised:
        assert whole_events == split_events == unlimited
    any_events, any_raised = run(_split(raw, data))
    assert any_raised == whole_raised
    assert any_events == unlimited[: len(any_events)]
