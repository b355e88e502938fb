"""Decoding side of the SSE wire format: one test per rule of WHATWG "interpret an event stream".

Every input goes through :func:`decode`, which feeds it to :class:`SSEDecoder` as one chunk,
byte by byte (with empty chunks in between) and split in two at every position, and asserts
that all of them give the same events, comments and final state: the rules hold in any chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mianzhang import EventTooLarge, SSEDecodeError, SSEDecoder

Event = tuple[str, str, str, int | None]
"""(event type, data, last event id, retry carried by the event)"""


@dataclass(frozen=True)
class Decoded:
    events: list[Event]
    comments: list[str]
    last_event_id: str
    retry: int | None


def _run(chunks: list[bytes]) -> Decoded:
    comments: list[str] = []
    decoder = SSEDecoder(on_comment=comments.append)
    events = []
    for chunk in chunks:
        events.extend(decoder.decode(chunk))
    assert decoder.close() == []
    return Decoded(
        [(e.event or "", e.data, e.id or "", e.retry) for e in events],
        comments,
        decoder.last_event_id,
        decoder.retry,
    )


def _chunkings(raw: bytes) -> list[list[bytes]]:
    byte_by_byte = [raw[i : i + 1] for i in range(len(raw))]
    with_empty = [part for byte in byte_by_byte for part in (byte, b"")]
    splits = [[raw[:i], raw[i:]] for i in range(1, len(raw))]
    return [byte_by_byte, with_empty, *splits]


def decode(raw: bytes) -> Decoded:
    """Decode ``raw`` in every chunking; assert they agree; return the result."""
    whole = _run([raw])
    for chunks in _chunkings(raw):
        assert _run(chunks) == whole, chunks
    return whole


def events(raw: bytes) -> list[Event]:
    return decode(raw).events


def msg(data: str, *, event: str = "message", id: str = "", retry: int | None = None) -> Event:
    return (event, data, id, retry)


# -- rule 1: BOM --------------------------------------------------------------------------------
def test_leading_bom_is_stripped() -> None:
    assert events(b"\xef\xbb\xbfdata: x\n\n") == [msg("x")]


def test_bom_is_stripped_once_only() -> None:
    # The second BOM is part of the first line's field name: "\ufeffdata" is an unknown field.
    assert events(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [msg("y")]


def test_bom_later_in_the_stream_is_data() -> None:
    assert events(b"data: \xef\xbb\xbfx\n\n") == [msg("\ufeffx")]


def test_partial_bom_at_stream_start_is_not_a_bom() -> None:
    assert events(b"\xef\xbbdata: x\n\ndata: y\n\n") == [msg("y")]


def test_each_new_stream_after_close_strips_its_own_bom() -> None:
    decoder = SSEDecoder()
    assert [e.data for e in decoder.decode(b"\xef\xbb\xbfdata: 1\n\n")] == ["1"]
    decoder.close()
    assert [e.data for e in decoder.decode(b"\xef\xbb")] == []
    assert [e.data for e in decoder.decode(b"\xbfdata: 2\n\n")] == ["2"]


# -- rule 2: line ends ----------------------------------------------------------------------------
@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_lf_cr_and_crlf_each_end_a_line(end: bytes) -> None:
    raw = b"data: a" + end + b"data: b" + end + end + b"data: c" + end + end
    assert events(raw) == [msg("a\nb"), msg("c")]


def test_mixed_line_ends_in_one_stream() -> None:
    assert events(b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r") == [msg("a\nb\nc"), msg("d")]


def test_cr_at_end_of_one_chunk_and_lf_at_start_of_next_are_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    # Were CR and LF two line ends, this LF would be a blank line dispatching "a" alone.
    assert decoder.decode(b"\ndata: b\r") == []
    assert [e.data for e in decoder.decode(b"\n\r\n")] == ["a\nb"]


def test_cr_then_empty_chunk_then_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    assert decoder.decode(b"") == []
    assert decoder.decode(b"\n") == []
    assert [e.data for e in decoder.decode(b"data: b\n\n")] == ["a\nb"]


def test_cr_at_end_of_chunk_followed_by_other_text_is_a_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    assert [e.data for e in decoder.decode(b"\rdata: b\r\r")] == ["a", "b"]


def test_cr_at_end_of_chunk_then_split_multibyte_character() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    assert decoder.decode(b"data: \xe4") == []  # decodes to no text yet
    assert [e.data for e in decoder.decode(b"\xb8\xad\n\n")] == ["a\n中"]


def test_cr_cr_lf_is_two_line_ends_and_lf_cr_is_two() -> None:
    assert events(b"data: a\r\r\ndata: b\n\r") == [msg("a"), msg("b")]


@pytest.mark.parametrize(
    "char",
    ["\u2028", "\u2029", "\x85", "\v", "\x0c", "\x1c", "\x1d", "\x1e"],
    ids=["U+2028", "U+2029", "U+0085", "VT", "FF", "FS", "GS", "RS"],
)
def test_only_cr_and_lf_end_lines_never_unicode_separators(char: str) -> None:
    raw = f"event: e{char}1\nid: i{char}2\ndata: a{char}b\n\n".encode()
    assert events(raw) == [msg(f"a{char}b", event=f"e{char}1", id=f"i{char}2")]


# -- rule 3: dispatch on blank line, discard at EOF ------------------------------------------------
def test_blank_line_dispatches() -> None:
    assert events(b"data: 1\n\ndata: 2\n\n") == [msg("1"), msg("2")]


@pytest.mark.parametrize(
    "raw",
    [b"data: x", b"data: x\n", b"data: x\r", b"data: x\r\n", b"event: e\ndata: x\nid: 3\n"],
    ids=["no-line-end", "LF", "CR", "CRLF", "fields"],
)
def test_pending_event_is_discarded_at_eof(raw: bytes) -> None:
    result = decode(b"data: before\n\n" + raw)
    assert result.events == [msg("before")]
    assert result.last_event_id == ""


def test_close_returns_nothing_and_resets_for_the_next_stream() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"id: 1\ndata: a\n\nevent: e\ndata: pending")
    assert decoder.close() == []
    assert decoder.flush == decoder.close
    (event,) = decoder.decode(b"data: b\n\n")
    assert (event.event, event.data, event.id) == ("message", "b", "1")


def test_id_of_an_unterminated_event_is_not_kept_after_close() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"id: 1\ndata: a\n\nid: 2\ndata: pending\n")
    decoder.close()
    assert decoder.last_event_id == "1"
    (event,) = decoder.decode(b"data: b\n\n")
    assert event.id == "1"


def test_decode_all_is_decode_of_every_chunk_then_close() -> None:
    decoder = SSEDecoder()
    got = decoder.decode_all([b"data: a\n", b"\ndata: b", b"\n\ndata: c\n"])
    assert [e.data for e in got] == ["a", "b"]


# -- rule 4: comments ------------------------------------------------------------------------------
def test_comment_lines_go_to_on_comment_and_do_not_dispatch() -> None:
    result = decode(b":hello\n: world\n:\n:  two\n: \n\n")
    assert result.events == []
    assert result.comments == ["hello", "world", "", " two", ""]


def test_comment_inside_an_event_does_not_split_it() -> None:
    result = decode(b"data: a\n: ping\ndata: b\n\n")
    assert result.events == [msg("a\nb")]
    assert result.comments == ["ping"]


def test_comments_without_callback_are_ignored() -> None:
    decoder = SSEDecoder()
    assert [e.data for e in decoder.decode(b": c\ndata: x\n\n")] == ["x"]


def test_colon_inside_comment_is_kept() -> None:
    assert decode(b": a: b\n").comments == ["a: b"]


# -- rule 5: field without colon -------------------------------------------------------------------
def test_data_without_colon_appends_an_empty_line() -> None:
    assert events(b"data\n\n") == [msg("")]
    assert events(b"data\ndata\n\n") == [msg("\n")]
    assert events(b"data: a\ndata\n\n") == [msg("a\n")]


def test_event_and_id_without_colon_are_empty_values() -> None:
    assert events(b"event: e\nevent\ndata: x\n\n") == [msg("x")]
    assert events(b"id: 5\ndata: a\n\nid\ndata: b\n\n") == [msg("a", id="5"), msg("b")]


def test_retry_without_colon_is_ignored() -> None:
    assert decode(b"retry: 10\nretry\n").retry == 10


# -- rule 6: one space removed ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"data:x", "x"),
        (b"data: x", "x"),
        (b"data:  x", " x"),
        (b"data:   x ", "  x "),
        (b"data:\tx", "\tx"),
        (b"data: ", ""),
        (b"data:", ""),
        (b"data: a:b", "a:b"),
        (b"data:: x", ": x"),
    ],
)
def test_exactly_one_leading_space_is_removed_after_the_first_colon(
    line: bytes, value: str
) -> None:
    assert events(line + b"\n\n") == [msg(value)]


def test_one_space_rule_applies_to_event_and_id() -> None:
    assert events(b"event:  e\nid:  7\ndata: x\n\n") == [msg("x", event=" e", id=" 7")]


# -- rule 7: names are case-sensitive, unknown fields ignored --------------------------------------
def test_field_names_are_case_sensitive_and_unknown_fields_ignored() -> None:
    raw = b"Data: a\nDATA: b\n\nEvent: e\nID: 9\nfoo: bar\ndata : c\ndata: x\n\n"
    assert events(raw) == [msg("x")]


# -- rule 8: data lines joined ---------------------------------------------------------------------
def test_data_lines_are_joined_with_lf_and_one_trailing_lf_removed() -> None:
    assert events(b"data: a\ndata: b\ndata: c\n\n") == [msg("a\nb\nc")]
    assert events(b"data: a\ndata:\n\n") == [msg("a\n")]
    assert events(b"data:\ndata:\ndata:\n\n") == [msg("\n\n")]


def test_data_lines_can_be_interleaved_with_other_fields() -> None:
    assert events(b"data: a\nevent: e\ndata: b\nid: 1\ndata: c\n\n") == [
        msg("a\nb\nc", event="e", id="1")
    ]


# -- rule 9: empty data does not dispatch, id still updates ----------------------------------------
def test_event_without_data_does_not_dispatch_but_updates_last_event_id() -> None:
    result = decode(b"id: 7\n\n")
    assert result.events == []
    assert result.last_event_id == "7"
    assert events(b"id: 7\n\ndata: x\n\n") == [msg("x", id="7")]


def test_event_type_without_data_is_dropped_with_it() -> None:
    assert events(b"event: e\n\ndata: x\n\n") == [msg("x")]


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert events(b"\n\n\r\n\r\r") == []


# -- rule 10: event type resets --------------------------------------------------------------------
def test_event_type_resets_after_each_dispatch() -> None:
    assert events(b"event: a\ndata: 1\n\ndata: 2\n\n") == [msg("1", event="a"), msg("2")]


def test_empty_event_type_means_message() -> None:
    assert events(b"event:\ndata: x\n\n") == [msg("x")]


def test_last_event_type_line_wins() -> None:
    assert events(b"event: a\nevent: b\ndata: x\n\n") == [msg("x", event="b")]


# -- rule 11/12: id --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_id", [b"a\x00b", b"\x00", b"1\x00"])
def test_id_containing_nul_is_ignored(bad_id: bytes) -> None:
    raw = b"id: 1\ndata: a\n\nid: " + bad_id + b"\ndata: b\n\n"
    result = decode(raw)
    assert result.events == [msg("a", id="1"), msg("b", id="1")]
    assert result.last_event_id == "1"


@pytest.mark.parametrize("empty", [b"id", b"id:", b"id: "])
def test_empty_id_clears_the_last_event_id(empty: bytes) -> None:
    result = decode(b"id: 1\ndata: a\n\n" + empty + b"\ndata: b\n\n")
    assert result.events == [msg("a", id="1"), msg("b")]
    assert result.last_event_id == ""


def test_last_event_id_persists_across_events() -> None:
    result = decode(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\ndata: d\n\n")
    assert [e[2] for e in result.events] == ["1", "1", "2", "2"]
    assert result.last_event_id == "2"


def test_id_applies_to_the_event_it_is_in_whatever_the_line_order() -> None:
    assert events(b"data: a\nid: 5\n\n") == [msg("a", id="5")]


def test_last_event_id_changes_only_at_dispatch() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"id: 1\ndata: a\n\nid: 2\n")
    assert decoder.last_event_id == "1"
    decoder.decode(b"\n")
    assert decoder.last_event_id == "2"


# -- rule 13: retry --------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "ms"), [(b"0", 0), (b"1500", 1500), (b"007", 7)])
def test_retry_of_ascii_digits_sets_the_reconnection_time_at_once(value: bytes, ms: int) -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"retry: " + value + b"\n") == []
    assert decoder.retry == ms  # before (and without) any dispatch
    assert decode(b"retry: " + value + b"\n").retry == ms


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "+5",
        "1.5",
        " 5",
        "5 ",
        "5ms",
        "0x10",
        "1e3",
        "",
        "١٢",  # Arabic-Indic digits: str.isdigit() is True, but they are not ASCII
        "１２",  # fullwidth digits
        "²",  # superscript two: isdigit() is True
        "1_000",
    ],
)
def test_retry_other_than_ascii_digits_is_ignored(value: str) -> None:
    result = decode(b"retry: 1000\nretry: " + value.encode() + b"\ndata: x\n\n")
    assert result.retry == 1000
    assert result.events == [msg("x", retry=1000)]


def test_retry_is_carried_by_the_event_it_came_with_only() -> None:
    result = decode(b"retry: 5\ndata: a\n\ndata: b\n\n")
    assert result.events == [msg("a", retry=5), msg("b")]
    assert result.retry == 5


def test_retry_of_an_undispatched_event_still_applies() -> None:
    assert decode(b"retry: 5\n\nretry: 6\n").retry == 6


def test_retry_with_thousands_of_digits_does_not_raise() -> None:
    # int() refuses more than 4300 digits; the decoder must never raise on input.
    huge = decode(b"retry: " + b"9" * 5000 + b"\n")
    assert huge.retry == 2**63 - 1  # documented saturation
    assert decode(b"retry: " + b"0" * 5000 + b"42\n").retry == 42


# -- rule 14: UTF-8 --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"a\xffb", "a\ufffdb"),  # byte that never occurs in UTF-8
        (b"\x80", "\ufffd"),  # lone continuation byte
        (b"\xe4\xb8x", "\ufffdx"),  # truncated 3-byte sequence: one U+FFFD
        (b"\xc0\xaf", "\ufffd\ufffd"),  # overlong encoding
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # encoded surrogate
        (b"\xf4\x90\x80\x80", "\ufffd" * 4),  # beyond U+10FFFF
        (b"\xf0\x9f\x8e", "\ufffd"),  # truncated 4-byte sequence at end of line
    ],
    ids=["ff", "continuation", "truncated3", "overlong", "surrogate", "too-big", "truncated4"],
)
def test_invalid_utf8_becomes_replacement_characters(raw: bytes, text: str) -> None:
    assert events(b"data: " + raw + b"\n\n") == [msg(text)]


@pytest.mark.parametrize("char", ["é", "中", "🎉"], ids=["2-byte", "3-byte", "4-byte"])
def test_multibyte_character_split_across_chunks(char: str) -> None:
    encoded = char.encode()
    for cut in range(1, len(encoded)):
        decoder = SSEDecoder()
        assert decoder.decode(b"data: " + encoded[:cut]) == []
        (event,) = decoder.decode(encoded[cut:] + b"\n\n")
        assert event.data == char
    assert events(b"event: " + encoded + b"\nid: " + encoded + b"\ndata: " + encoded + b"\n\n") == [
        msg(char, event=char, id=char)
    ]


def test_invalid_utf8_in_field_name_makes_it_unknown() -> None:
    assert events(b"dat\xffa: x\n\ndata: y\n\n") == [msg("y")]


# -- max_event_size --------------------------------------------------------------------------------
def _feed_all(decoder: SSEDecoder, chunks: list[bytes]) -> int:
    """Feed chunks until one raises; return how many were fed completely."""
    for done, chunk in enumerate(chunks):
        try:
            decoder.decode(chunk)
        except EventTooLarge:
            return done
    return len(chunks)


def test_event_larger_than_max_event_size_raises_event_too_large() -> None:
    raw = b"data: " + b"x" * 100 + b"\n\n"
    for chunks in [[raw], *_chunkings(raw)[:2]]:
        decoder = SSEDecoder(max_event_size=50)
        with pytest.raises(EventTooLarge) as info:
            for chunk in chunks:
                decoder.decode(chunk)
        assert info.value.limit == 50
        assert info.value.size > 50
        assert "max_event_size" in str(info.value)


def test_event_too_large_is_a_decode_error_and_a_value_error() -> None:
    assert issubclass(EventTooLarge, SSEDecodeError)
    assert issubclass(EventTooLarge, ValueError)


def test_many_data_lines_add_up_to_the_limit() -> None:
    raw = b"data: 0123456789\n" * 20 + b"\n"
    decoder = SSEDecoder(max_event_size=100)
    with pytest.raises(EventTooLarge):
        decoder.decode(raw)


def test_events_below_the_limit_pass_and_the_limit_is_per_event() -> None:
    one = b"data: " + b"x" * 40 + b"\n\n"
    decoder = SSEDecoder(max_event_size=50)
    for _ in range(100):
        assert [len(e.data) for e in decoder.decode(one)] == [40]
        assert [len(e.data) for e in decoder.decode(one[:10])] == []
        assert [len(e.data) for e in decoder.decode(one[10:])] == [40]


def test_an_endless_line_raises_before_it_is_all_received() -> None:
    chunks = [b"data: "] + [b"x" * 1024] * 1024  # 1 MiB, never terminated
    decoder = SSEDecoder(max_event_size=64 * 1024)
    fed = _feed_all(decoder, chunks)
    assert fed == 64  # raised on the chunk that crossed 64 KiB


def test_close_never_raises_even_with_a_partial_character_at_the_limit() -> None:
    decoder = SSEDecoder(max_event_size=4)
    decoder.decode(b"data\xe4")  # "data" is exactly the limit; \xe4 waits for more bytes
    assert decoder.close() == []
    assert [e.data for e in decoder.decode(b"data\n\n")] == [""]


def test_max_event_size_must_be_positive() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_event_size"):
            SSEDecoder(max_event_size=bad)


def test_no_limit_by_default() -> None:
    raw = b"data: " + b"x" * (1 << 20) + b"\n\n"
    assert [len(e.data) for e in SSEDecoder().decode(raw)] == [1 << 20]
