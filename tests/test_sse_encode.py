"""Encoding side of the SSE wire format (``mianzhang._sse``), rule by rule (issue 2).

Every encoding is also decoded with :class:`SSEDecoder`, so each test checks both the exact
bytes and what a conforming client receives.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import orjson
import pytest
import sse_starlette

from mianzhang import (
    JSONServerSentEvent,
    MianzhangError,
    ServerSentEvent,
    SSEDecoder,
    SSEEncodeError,
    SSEError,
    json_dumps,
)
from mianzhang._sse import encode_comment, encode_data

SEPS = ["\n", "\r", "\r\n"]


def _decode(raw: bytes) -> list[tuple[str, str, str, int | None]]:
    decoder = SSEDecoder()
    events = decoder.decode(raw)
    decoder.close()
    return [(e.event or "", e.data, e.id or "", e.retry) for e in events]


def _comments(raw: bytes) -> list[str]:
    seen: list[str] = []
    decoder = SSEDecoder(on_comment=seen.append)
    decoder.decode(raw)
    decoder.close()
    return seen


# -- data ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("line_end", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_multiline_data_becomes_one_data_line_per_line(line_end: str) -> None:
    raw = ServerSentEvent(f"a{line_end}b{line_end}c").encode()
    assert raw == b"data: a\ndata: b\ndata: c\n\n"
    assert _decode(raw) == [("message", "a\nb\nc", "", None)]


def test_mixed_line_ends_in_data_each_end_one_line() -> None:
    raw = ServerSentEvent("a\r\nb\rc\nd\n\re").encode()
    assert raw == b"data: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n"
    assert _decode(raw) == [("message", "a\nb\nc\nd\n\ne", "", None)]


def test_empty_string_data_is_one_empty_data_line() -> None:
    raw = ServerSentEvent("").encode()
    assert raw == b"data: \n\n"
    assert _decode(raw) == [("message", "", "", None)]


def test_trailing_line_end_keeps_its_empty_last_line() -> None:
    raw = ServerSentEvent("x\n").encode()
    assert raw == b"data: x\ndata: \n\n"
    assert _decode(raw) == [("message", "x\n", "", None)]


def test_data_that_is_only_a_line_end_survives() -> None:
    raw = ServerSentEvent("\n").encode()
    assert raw == b"data: \ndata: \n\n"
    assert _decode(raw) == [("message", "\n", "", None)]


def test_leading_space_of_data_survives_the_decoder() -> None:
    raw = ServerSentEvent("  two spaces").encode()
    assert raw == b"data:   two spaces\n\n"
    assert _decode(raw) == [("message", "  two spaces", "", None)]


def test_none_data_writes_no_data_line() -> None:
    assert ServerSentEvent(event="x").encode() == b"event: x\n\n"
    assert ServerSentEvent().encode() == b"\n"


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\v", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_unicode_line_separators_are_not_line_ends_in_data(char: str) -> None:
    raw = ServerSentEvent(f"a{char}b").encode()
    assert raw == f"data: a{char}b\n\n".encode()
    assert _decode(raw) == [("message", f"a{char}b", "", None)]


def test_field_order_is_comment_id_event_data_retry() -> None:
    raw = ServerSentEvent("d", event="e", id="i", retry=10, comment="c").encode()
    assert raw == b": c\nid: i\nevent: e\ndata: d\nretry: 10\n\n"
    assert _decode(raw) == [("e", "d", "i", 10)]


def test_non_ascii_data_is_utf8() -> None:
    raw = ServerSentEvent("中文 🎉 ü").encode()
    assert raw == "data: 中文 🎉 ü\n\n".encode()
    assert _decode(raw) == [("message", "中文 🎉 ü", "", None)]


def test_bytes_data_is_utf8_text() -> None:
    raw = ServerSentEvent("中\nx".encode()).encode()
    assert raw == "data: 中\ndata: x\n\n".encode()


def test_other_data_types_use_str() -> None:
    assert ServerSentEvent(42).encode() == b"data: 42\n\n"
    assert ServerSentEvent(1.5).encode() == b"data: 1.5\n\n"


# -- dict data is JSON -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [{"a": 1, "b": "中", "c": [1, 2, None], "d": {"e": True}}, [1, "x\ny", {}], {"k": "a\nb"}],
    ids=["dict", "list", "newline-in-string"],
)
def test_dict_and_list_data_are_compact_json(value: Any) -> None:
    raw = ServerSentEvent(value).encode()
    expected = orjson.dumps(value)
    assert raw == b"data: " + expected + b"\n\n"
    (event,) = _decode(raw)
    assert orjson.loads(event[1]) == value


def test_tuple_data_is_a_json_array() -> None:
    assert ServerSentEvent((1, "a")).encode() == b'data: [1,"a"]\n\n'


def test_json_dumps_is_compact_utf8_and_accepts_non_str_keys() -> None:
    assert json_dumps({"a": [1, 2], "b": "中"}) == '{"a":[1,2],"b":"中"}'
    assert json_dumps({1: "x"}) == '{"1":"x"}'


def test_json_dumps_refuses_what_it_cannot_serialise() -> None:
    with pytest.raises(TypeError):
        json_dumps({"x": object()})


# -- JSONServerSentEvent ---------------------------------------------------------------------------
def test_json_event_serialises_every_type_including_str() -> None:
    assert JSONServerSentEvent("a\nb").encode() == b'data: "a\\nb"\n\n'
    assert JSONServerSentEvent(5).encode() == b"data: 5\n\n"
    assert JSONServerSentEvent({"a": 1}, event="e", id="1").encode() == (
        b'id: 1\nevent: e\ndata: {"a":1}\n\n'
    )
    (event,) = _decode(JSONServerSentEvent({"t": "x\r\ny"}).encode())
    assert orjson.loads(event[1]) == {"t": "x\r\ny"}


def test_json_event_none_data_writes_no_data_line() -> None:
    assert JSONServerSentEvent(None, event="x").encode() == b"event: x\n\n"


def test_json_event_nan_becomes_null() -> None:
    assert JSONServerSentEvent({"v": math.nan}).encode() == b'data: {"v":null}\n\n'


def test_json_event_unserialisable_data_raises_type_error_on_encode() -> None:
    event = JSONServerSentEvent({"x": object()})
    with pytest.raises(TypeError):
        event.encode()


def test_json_event_validates_fields_like_its_base() -> None:
    with pytest.raises(SSEEncodeError):
        JSONServerSentEvent({"a": 1}, event="a\nb")


# -- rejected fields -------------------------------------------------------------------------------
def test_sse_encode_error_is_a_value_error_in_the_project_tree() -> None:
    assert issubclass(SSEEncodeError, ValueError)
    assert issubclass(SSEEncodeError, SSEError)
    assert issubclass(SSEEncodeError, MianzhangError)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "x\r"])
def test_event_with_cr_or_lf_is_rejected(bad: str) -> None:
    with pytest.raises(SSEEncodeError, match="event"):
        ServerSentEvent("x", event=bad)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "x\r", "a\0b", "\0"])
def test_id_with_cr_lf_or_nul_is_rejected(bad: str) -> None:
    with pytest.raises(SSEEncodeError, match="id"):
        ServerSentEvent("x", id=bad)


def test_nul_in_event_name_is_allowed() -> None:
    raw = ServerSentEvent("x", event="a\0b").encode()
    assert _decode(raw) == [("a\0b", "x", "", None)]


@pytest.mark.parametrize("bad", [True, False, -1, 1.5, 2.0, "5", "-1", b"5"])
def test_retry_that_is_not_a_non_negative_int_is_rejected(bad: Any) -> None:
    with pytest.raises(SSEEncodeError, match="retry"):
        ServerSentEvent("x", retry=bad)


@pytest.mark.parametrize("good", [0, 1, 3000, 2**40])
def test_non_negative_int_retry_is_encoded(good: int) -> None:
    raw = ServerSentEvent(retry=good).encode()
    assert raw == f"retry: {good}\n\n".encode()
    decoder = SSEDecoder()
    decoder.decode(raw)
    assert decoder.retry == good


@pytest.mark.parametrize(
    ("field", "bad"), [("event", 5), ("event", b"x"), ("id", 1.5), ("id", b"1"), ("comment", 5)]
)
def test_wrongly_typed_fields_are_rejected(field: str, bad: Any) -> None:
    with pytest.raises(SSEEncodeError, match=field):
        ServerSentEvent("x", **{field: bad})


def test_int_id_is_sent_as_decimal_text_but_bool_is_rejected() -> None:
    assert ServerSentEvent("x", id=42).encode() == b"id: 42\ndata: x\n\n"
    with pytest.raises(SSEEncodeError):
        ServerSentEvent("x", id=True)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("event", "a\nb"), ("id", "a\rb"), ("id", "a\0b"), ("retry", -1), ("retry", True)],
)
def test_fields_assigned_after_construction_are_validated_too(field: str, bad: Any) -> None:
    event = ServerSentEvent("x", event="ok", id="1", retry=1)
    with pytest.raises(SSEEncodeError, match=field):
        setattr(event, field, bad)
    assert event.encode() == b"id: 1\nevent: ok\ndata: x\nretry: 1\n\n"


def test_valid_fields_can_be_assigned_after_construction() -> None:
    event = ServerSentEvent("x")
    event.event = "e"
    event.id = 7
    event.retry = 5
    event.comment = "c"
    assert event.id == "7"
    assert event.encode() == b": c\nid: 7\nevent: e\ndata: x\nretry: 5\n\n"


# -- comments --------------------------------------------------------------------------------------
def test_comment_is_a_colon_line() -> None:
    raw = ServerSentEvent(comment="hello").encode()
    assert raw == b": hello\n\n"
    assert _comments(raw) == ["hello"]
    assert _decode(raw) == []


def test_multiline_comment_becomes_one_comment_line_per_line() -> None:
    raw = ServerSentEvent(comment="a\r\nb\rc\n\nd").encode()
    assert raw == b": a\n: b\n: c\n:\n: d\n\n"
    assert _comments(raw) == ["a", "b", "c", "", "d"]


def test_comment_with_data_does_not_change_the_data() -> None:
    raw = ServerSentEvent("x", comment="note").encode()
    assert _decode(raw) == [("message", "x", "", None)]


def test_encode_comment_is_a_comment_without_blank_line() -> None:
    assert encode_comment() == b":\n"
    assert encode_comment("ping") == b": ping\n"
    assert encode_comment("a\nb", sep="\r\n") == b": a\r\n: b\r\n"
    # Between two halves of an event it neither dispatches nor alters the event.
    raw = b"data: a\n" + encode_comment("ping") + b"data: b\n\n"
    assert _decode(raw) == [("message", "a\nb", "", None)]
    assert _comments(raw) == ["ping"]


# -- separators ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sep", SEPS, ids=["LF", "CR", "CRLF"])
def test_sep_is_used_for_every_line_end(sep: str) -> None:
    raw = ServerSentEvent("a\nb", event="e", id="1", retry=3, comment="c", sep=sep).encode()
    assert (
        raw
        == (f": c{sep}id: 1{sep}event: e{sep}data: a{sep}data: b{sep}retry: 3{sep}{sep}").encode()
    )
    assert _decode(raw) == [("e", "a\nb", "1", 3)]


def test_default_sep_is_lf() -> None:
    assert ServerSentEvent("x").encode() == ServerSentEvent("x", sep="\n").encode()


@pytest.mark.parametrize("bad", ["", " ", "\t", "\n\n", "\n\r", "x"])
def test_invalid_sep_is_rejected(bad: str) -> None:
    with pytest.raises(SSEEncodeError, match="sep"):
        ServerSentEvent("x", sep=bad)
    with pytest.raises(SSEEncodeError, match="sep"):
        encode_data("x", sep=bad)
    with pytest.raises(SSEEncodeError, match="sep"):
        encode_comment("x", sep=bad)


@pytest.mark.parametrize("sep", SEPS, ids=["LF", "CR", "CRLF"])
@pytest.mark.parametrize("text", ["", "x", "x\n", "a\r\nb\rc", "中\u2028文", "\n\n"])
def test_encode_data_is_the_same_as_a_data_only_event(text: str, sep: str) -> None:
    assert encode_data(text, sep) == ServerSentEvent(text, sep=sep).encode()


# -- sse-starlette 3.x compatibility ---------------------------------------------------------------
def test_constructor_signature_matches_sse_starlette() -> None:
    def params(cls: type) -> list[tuple[str, Any, Any]]:
        sig = inspect.signature(cls.__init__)
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    assert params(ServerSentEvent) == params(sse_starlette.ServerSentEvent)


# Argument combinations whose bytes must equal sse-starlette's for the same ``sep``.
COMPAT_CASES: list[dict[str, Any]] = [
    {"data": "hello"},
    {"data": ""},
    {"data": "a\nb"},
    {"data": "a\r\nb\rc\nd"},
    {"data": "x\n"},
    {"data": "\n"},
    {"data": "  leading spaces"},
    {"data": "ünï 中文 🎉"},
    {"data": "a\u2028b\x85c\vd"},
    {"data": 42},
    {"data": None, "event": "only-event"},
    {"data": "x", "event": "update"},
    {"data": "x", "event": ""},
    {"data": "x", "id": "abc-1"},
    {"data": "x", "id": ""},
    {"data": "x", "retry": 0},
    {"data": "x", "retry": 15000},
    {"data": "x", "comment": "note"},
    {"data": None, "comment": "keepalive"},
    {"comment": "multi\nline\r\ncomment"},
    {"data": "a\nb", "event": "e", "id": "7", "retry": 100, "comment": "c"},
    {"retry": 5},
    {},
]


def _case_id(case: dict[str, Any]) -> str:
    return ",".join(f"{k}={v!r}" for k, v in case.items()) or "empty"


@pytest.mark.parametrize("sep", SEPS, ids=["LF", "CR", "CRLF"])
@pytest.mark.parametrize("kwargs", COMPAT_CASES, ids=[_case_id(c) for c in COMPAT_CASES])
def test_same_bytes_as_sse_starlette_for_the_same_sep(kwargs: dict[str, Any], sep: str) -> None:
    ours = ServerSentEvent(**kwargs, sep=sep).encode()
    theirs = sse_starlette.ServerSentEvent(**kwargs, sep=sep).encode()
    assert ours == theirs


@pytest.mark.parametrize("kwargs", COMPAT_CASES, ids=[_case_id(c) for c in COMPAT_CASES])
def test_default_sep_differs_from_sse_starlette_only_in_line_end(kwargs: dict[str, Any]) -> None:
    """Documented difference: our default line end is LF, sse-starlette's is CRLF; a client
    decodes both to the same events."""
    ours = ServerSentEvent(**kwargs).encode()
    theirs = sse_starlette.ServerSentEvent(**kwargs).encode()
    assert ours == sse_starlette.ServerSentEvent(**kwargs, sep="\n").encode()
    assert _decode(ours) == _decode(theirs)
    assert _comments(ours) == _comments(theirs)


JSON_CASES: list[Any] = [{"a": 1, "b": "中文", "c": [True, None]}, ["x", "y\nz"], "text", 7, {}]


@pytest.mark.parametrize("value", JSON_CASES, ids=repr)
def test_json_event_same_bytes_as_sse_starlette(value: Any) -> None:
    ours = JSONServerSentEvent(value, event="e", id="1", sep="\r\n").encode()
    theirs = sse_starlette.JSONServerSentEvent(value, event="e", id="1", sep="\r\n").encode()
    assert ours == theirs


def test_empty_comment_line_differs_from_sse_starlette_only_in_a_space() -> None:
    """Documented difference: we write ``:`` for an empty comment line, sse-starlette ``: ``;
    both are the comment ``""`` to a client."""
    ours = ServerSentEvent(comment="", sep="\n").encode()
    theirs = sse_starlette.ServerSentEvent(comment="", sep="\n").encode()
    assert (ours, theirs) == (b":\n\n", b": \n\n")
    assert _comments(ours) == _comments(theirs) == [""]


def test_differences_from_sse_starlette_that_are_deliberate() -> None:
    """sse-starlette strips CR/LF from id/event (an injection silently becomes another event),
    sends dict data as a Python repr and accepts negative or bool retry; we refuse or fix."""
    assert sse_starlette.ServerSentEvent("x", event="a\nb").encode() == (
        b"event: ab\r\ndata: x\r\n\r\n"
    )
    with pytest.raises(SSEEncodeError):
        ServerSentEvent("x", event="a\nb")
    assert sse_starlette.ServerSentEvent({"a": 1}, sep="\n").encode() == b"data: {'a': 1}\n\n"
    assert ServerSentEvent({"a": 1}).encode() == b'data: {"a":1}\n\n'
    assert sse_starlette.ServerSentEvent(retry=True, sep="\n").encode() == b"retry: True\n\n"
    for retry in (True, -1):
        with pytest.raises(SSEEncodeError):
            ServerSentEvent(retry=retry)
    with pytest.raises(ValueError):
        sse_starlette.JSONServerSentEvent({"v": math.nan})
    assert JSONServerSentEvent({"v": math.nan}).encode() == b'data: {"v":null}\n\n'


# -- value semantics -------------------------------------------------------------------------------
def test_events_compare_by_encoded_meaning_not_by_separator() -> None:
    assert ServerSentEvent("x", id="1") == ServerSentEvent("x", id=1, sep="\r\n")
    assert ServerSentEvent({"a": 1}) == ServerSentEvent('{"a":1}')
    assert hash(ServerSentEvent({"a": 1})) == hash(ServerSentEvent('{"a":1}'))
    assert ServerSentEvent("x") != ServerSentEvent("x", event="e")
    assert ServerSentEvent("x") != ServerSentEvent("y")
