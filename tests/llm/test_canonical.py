"""The canonical log form of a generation: every gateway event survives serializing and
parsing (property-based), errors come back as the same class with the same wire description,
and what is not a generation event, or comes from a newer writer, is handled."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mianzhang.llm import (
    Cancelled,
    Chunk,
    Failed,
    Finished,
    GenerationCancelled,
    InvalidLLMRequest,
    LLMError,
    ModelNotFound,
    Started,
    Timings,
    Token,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    Usage,
    error_payload,
)
from mianzhang.llm._canonical import (
    StartRecord,
    event_entry,
    parse_event,
    record_from_meta,
    start_entry,
    start_meta,
)

seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10**9)
usages = st.builds(Usage, counts, counts, st.booleans())
timings = st.builds(Timings, st.none() | seconds, seconds, counts)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
tool_calls = st.lists(
    st.fixed_dictionaries(
        {"index": st.integers(0, 8)},
        optional={
            "id": st.text(min_size=1),
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {}, optional={"name": st.text(), "arguments": st.text()}
            ),
        },
    ),
    max_size=3,
)
chunks = st.builds(
    Chunk,
    text=st.text(),
    finish_reason=st.none() | st.sampled_from(["stop", "length", "tool_calls"]),
    usage=st.none() | usages,
    raw=st.none() | st.text(),
    role=st.none() | st.just("assistant"),
    tool_calls=st.none() | tool_calls,
    reasoning=st.text(),
)
tokens = st.builds(Token, chunks, st.none() | seconds)
finisheds = st.builds(
    Finished,
    st.sampled_from(["stop", "length", "tool_calls"]),
    usages,
    timings,
    provider=st.text(),
    upstream_model=st.text(),
    usage_reported=st.booleans(),
    completed_at=st.none() | st.integers(0, 2**40),
)
statuses = st.integers(400, 599)
errors: st.SearchStrategy[LLMError] = st.one_of(
    st.builds(GenerationCancelled, st.text()),
    st.builds(ModelNotFound, st.text()),
    st.builds(InvalidLLMRequest, st.text(), param=st.none() | st.text()),
    st.builds(UpstreamTimeout, st.text()),
    st.builds(UpstreamProtocolError, st.text()),
    st.builds(UpstreamConnectError, st.text()),
    st.builds(
        UpstreamStatusError,
        statuses,
        st.text(),
        retryable=st.booleans(),
        retry_after=st.none() | seconds,
        body=st.text(),
    ),
    st.builds(
        UpstreamError,
        st.text(),
        retryable=st.booleans(),
        status_code=st.none() | statuses,
        retry_after=st.none() | seconds,
    ),
    st.builds(LLMError, st.text()),
)
faileds = st.builds(Failed, errors, usages, timings, partial=st.booleans())
cancelleds = st.builds(Cancelled, st.text(), usages, timings, partial=st.booleans())


def same_error(a: LLMError, b: LLMError) -> None:
    assert type(a) is type(b)
    assert error_payload(a) == error_payload(b)
    for name in ("retryable", "status_code", "retry_after", "param", "model", "reason"):
        assert getattr(a, name, None) == getattr(b, name, None), name


def roundtrip(event: Any) -> Any:
    entry = event_entry(event)
    record, newline, raw = entry.data.partition("\n")
    assert isinstance(orjson.loads(record), dict)  # one line of compact JSON
    if newline:  # then an upstream chunk's text, verbatim
        assert isinstance(event, Token) and raw == event.chunk.raw
    return parse_event(entry.event, entry.data)


@given(tokens)
def test_tokens_round_trip(token: Token) -> None:
    assert roundtrip(token) == token


@given(finisheds)
def test_finished_round_trips(event: Finished) -> None:
    assert roundtrip(event) == event


@given(cancelleds)
def test_cancelled_round_trips(event: Cancelled) -> None:
    assert roundtrip(event) == event


@given(faileds)
def test_failures_round_trip_with_the_same_error(event: Failed) -> None:
    back = roundtrip(event)
    assert isinstance(back, Failed)
    assert (back.usage, back.timings, back.partial) == (event.usage, event.timings, event.partial)
    same_error(back.error, event.error)


@given(
    st.builds(Started, st.text(), st.integers(0, 2**40), st.text(), st.text()),
    st.sampled_from(["chat", "responses", "native"]),
    st.dictionaries(st.text(), json_scalars, max_size=4),
)
def test_the_start_round_trips_with_surface_and_options(
    started: Started, surface: str, options: dict[str, Any]
) -> None:
    entry = start_entry(started, surface, options)
    record = StartRecord(started, surface, options)
    assert entry.event == "gen.start"
    assert parse_event(entry.event, entry.data) == record
    assert record_from_meta(start_meta(record)) == record


def test_an_upstream_chunk_is_kept_byte_for_byte_after_the_record() -> None:
    raw = '{"id":"x",\n"choices":[{"index":0,"delta":{"content":"é\\n\\"q\\""}}]}'
    token = Token(Chunk(text='é\n"q"', raw=raw), 0.25)
    entry = event_entry(token)
    assert entry.data == '{"t":0.25,"text":"é\\n\\"q\\""}\n' + raw  # not escaped again
    back = roundtrip(token)
    assert isinstance(back, Token) and back.chunk.raw == raw


def test_events_that_are_not_part_of_a_generation_are_none() -> None:
    assert parse_event(None, "x") is None
    assert parse_event("reset", "{}") is None


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("gen.token", "not json"),
        ("gen.finish", '{"finish_reason":"stop"}'),
        ("gen.start", "[]"),
        ("gen.error", '{"usage":{"prompt_tokens":1}}'),
    ],
)
def test_malformed_generation_events_raise_value_error(name: str, data: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_event(name, data)


def test_keys_of_a_newer_writer_are_ignored() -> None:
    token = parse_event("gen.token", '{"t":1.5,"text":"a","logprobs":[1],"future":true}')
    assert token == Token(Chunk(text="a"), 1.5)


def test_the_runners_error_event_reads_as_a_failure() -> None:
    failed = parse_event("error", '{"type":"internal_error","message":"the producer failed"}')
    assert isinstance(failed, Failed) and str(failed.error) == "the producer failed"
    assert type(failed.error) is LLMError


def test_metadata_of_other_streams_is_not_a_generation() -> None:
    assert record_from_meta({}) is None
    assert record_from_meta({"kind": "job", "model": "m"}) is None
    assert record_from_meta({"kind": "llm.chat", "model": "m", "created": "x"}) is None
