"""The scripted provider: scripts from the request or storage, echo by default, exact steps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mianzhang._errors import ConfigError
from mianzhang.llm import (
    ChatRequest,
    Chunk,
    Finished,
    Provider,
    Token,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    Usage,
)
from mianzhang.llm._scripted import BUILTIN_SCRIPTS, ScriptedProvider

from ._generations import generate


def scripted(script: Any, **options: Any) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": json.dumps({"script": script, **options})}])


async def play(
    request: ChatRequest, provider: ScriptedProvider | None = None, model: str = "scripted"
) -> list[Chunk]:
    provider = provider or ScriptedProvider()
    return [chunk async for chunk in provider.stream(model, request)]


def text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks)


def test_is_a_provider_of_kind_scripted() -> None:
    p = ScriptedProvider()
    assert isinstance(p, Provider) and p.kind == "scripted"


async def test_echo_counts_user_turns_and_quotes_the_last_message() -> None:
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second one"}]},
    ]
    chunks = await play(ChatRequest(history))
    assert text(chunks) == 'turn 2: you said "second one"'
    assert sum(1 for c in chunks if c.text) == 6  # word by word
    assert chunks[-1].finish_reason == "stop"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 6 and usage.prompt_tokens > 0


async def test_echo_of_a_tool_result_and_of_attachments() -> None:
    after_tool = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
    ]
    assert text(await play(ChatRequest(after_tool))) == 'turn 1: tool c1 returned {"temp": 21}'
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with_image = [{"role": "user", "content": [{"type": "text", "text": "look"}, image]}]
    assert text(await play(ChatRequest(with_image))) == (
        'turn 1: you said "look" and sent 1 attachment'
    )


async def test_json_without_a_script_key_is_echoed() -> None:
    chunks = await play(ChatRequest([{"role": "user", "content": '{"hello": 1}'}]))
    assert text(chunks) == 'turn 1: you said "{"hello": 1}"'


async def test_text_words_reasoning_and_finish() -> None:
    chunks = await play(
        scripted(
            [
                {"reasoning": ["think", "ing"]},
                {"text": ["Hel", "lo"]},
                {"words": "big wide world"},
                {"finish": "length"},
            ]
        )
    )
    assert [c.reasoning for c in chunks if c.reasoning] == ["think", "ing"]
    assert [c.text for c in chunks if c.text] == ["Hel", "lo", "big", " wide", " world"]
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage == Usage(chunks[-1].usage.prompt_tokens, 7)  # type: ignore[union-attr]


async def test_tool_call_arguments_stream_in_several_deltas() -> None:
    arguments = {"city": "Paris", "days": [1, 2, 3]}
    chunks = await play(
        scripted([{"tool_call": {"name": "weather", "arguments": arguments, "chunks": 4}}])
    )
    calls = [call for c in chunks for call in c.tool_calls or ()]
    head, *rest = calls
    assert head == {
        "index": 0,
        "id": "call_1_0",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert len(rest) == 4 and all(set(d) == {"index", "function"} for d in rest)
    assert json.loads("".join(d["function"]["arguments"] for d in rest)) == arguments
    assert chunks[-1].finish_reason == "tool_calls"  # the default after a tool call


async def test_two_tool_calls_get_their_own_index_and_given_ids() -> None:
    chunks = await play(
        scripted(
            [
                {"tool_call": {"name": "a", "id": "x1", "arguments": "raw text", "chunks": 1}},
                {"tool_call": {"name": "b"}},
            ]
        )
    )
    heads = [call for c in chunks for call in c.tool_calls or () if "id" in call]
    assert [(h["index"], h["id"]) for h in heads] == [(0, "x1"), (1, "call_1_1")]
    args = [call["function"]["arguments"] for c in chunks for call in c.tool_calls or ()]
    assert args == ["", "raw text", "", "{", "}"]  # "{}" in at most 3 pieces


async def test_usage_step_replaces_the_computed_usage() -> None:
    chunks = await play(
        scripted(
            [
                {"text": "hi"},
                {"finish": "stop"},
                {"usage": {"prompt_tokens": 11, "completion_tokens": 22}},
            ]
        )
    )
    assert chunks[-2].finish_reason == "stop" and chunks[-2].usage is None
    assert chunks[-1] == Chunk(usage=Usage(11, 22))


async def test_delay_and_sleep_steps_use_the_injected_sleep() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    p = ScriptedProvider(sleep=sleep)
    chunks = await play(scripted([{"sleep": 1.5}, {"text": ["a", "b", "c"]}], delay=0.1), p)
    assert text(chunks) == "abc"
    assert sleeps == [1.5, 0.1, 0.1]  # no delay before the first delta


@pytest.mark.parametrize(
    ("error", "cls", "retryable"),
    [
        ({"kind": "timeout"}, UpstreamTimeout, True),
        ({"kind": "connect"}, UpstreamConnectError, True),
        ({"kind": "protocol"}, UpstreamProtocolError, True),
        ({"status": 503}, UpstreamStatusError, True),
        ({"status": 400}, UpstreamStatusError, False),
        ({"status": 503, "retryable": False}, UpstreamStatusError, False),
        ({"status": 429, "retry_after": 2}, UpstreamStatusError, True),
    ],
)
async def test_errors_are_raised_at_their_point_as_the_right_class(
    error: dict[str, Any], cls: type[Exception], retryable: bool
) -> None:
    p = ScriptedProvider()
    seen: list[Chunk] = []
    with pytest.raises(cls) as info:
        async for chunk in p.stream(
            "m", scripted([{"text": "a"}, {"error": error}, {"text": "b"}])
        ):
            seen.append(chunk)
    assert [c.text for c in seen] == ["a"]
    assert info.value.retryable is retryable  # type: ignore[attr-defined]
    if "status" in error:
        assert info.value.status_code == error["status"]  # type: ignore[attr-defined]
    if "retry_after" in error:
        assert info.value.retry_after == error["retry_after"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ([], "script: a script needs at least one step"),
        ([{"dance": 1}], "script[0]: unknown step 'dance'"),
        ([{"text": "a", "words": "b"}], "script[0]: a step is an object with exactly one key"),
        ([{"text": 3}], "script[0].text: expected a string or a list of strings"),
        ([{"text": []}], "script[0].text: expected at least one piece"),
        ([{"tool_call": {"arguments": {}}}], "script[0].tool_call.name: Field required"),
        ([{"tool_call": {"name": "x", "chunks": 0}}], "script[0].tool_call.chunks"),
        ([{"tool_call": {"name": "x", "colour": 1}}], "script[0].tool_call.colour"),
        ([{"sleep": -1}], "script[0].sleep: expected seconds between 0 and 86400"),
        ([{"sleep": True}], "script[0].sleep: expected a number of seconds"),
        ([{"error": {"status": 200}}], "script[0].error.status"),
        ([{"error": {"kind": "boom"}}], "script[0].error.kind"),
        ([{"finish": "done"}], "script[0].finish: expected one of stop, length"),
        ([{"finish": "stop"}, {"text": "late"}], "script[1]: only usage steps may follow"),
        ("nope", "script: unknown script 'nope' (known: hostile-markdown, reasoning"),
    ],
)
async def test_an_invalid_script_is_a_400_naming_the_problem(script: Any, problem: str) -> None:
    with pytest.raises(UpstreamStatusError) as info:
        await play(scripted(script))
    assert info.value.status_code == 400 and info.value.retryable is False
    assert problem in str(info.value), str(info.value)


async def test_unknown_top_level_keys_are_rejected() -> None:
    with pytest.raises(UpstreamStatusError, match="colour"):
        await play(scripted([{"text": "a"}], colour="red"))


async def test_named_scripts_from_the_request_the_model_and_storage(tmp_path: Path) -> None:
    hostile = await play(scripted("hostile-markdown"))
    assert "<img src=x onerror=alert(1)>" in text(hostile)
    assert "javascript:alert(3)" in text(hostile) and "<script>alert(2)</script>" in text(hostile)
    # a stored script named like the model plays when the request sends none
    p = ScriptedProvider(scripts={"greeter": [{"text": "hello from a file"}]})
    assert text(await play(ChatRequest([{"role": "user", "content": "hi"}]), p, "greeter")) == (
        "hello from a file"
    )
    assert set(BUILTIN_SCRIPTS) <= set(p.scripts)
    (tmp_path / "slow.json").write_text(json.dumps({"script": [{"text": "x"}], "delay": 0.5}))
    (tmp_path / "notes.txt").write_text("not a script")
    stored = ScriptedProvider.from_directory(tmp_path)
    assert set(stored.scripts) == {*BUILTIN_SCRIPTS, "slow"}
    assert stored.scripts["slow"].delay == 0.5


def test_invalid_stored_scripts_fail_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"script 'bad': script\[0\]: unknown step"):
        ScriptedProvider(scripts={"bad": [{"dance": 1}]})
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        ScriptedProvider.from_directory(tmp_path)


async def test_max_tokens_cuts_with_length() -> None:
    request = scripted([{"words": "one two three four five"}])
    request = ChatRequest(request.messages, max_tokens=2)
    chunks = await play(request)
    assert text(chunks) == "one two" and chunks[-1].finish_reason == "length"


async def test_closing_during_a_sleep_stops_at_once() -> None:
    entered = asyncio.Event()
    released: list[bool] = []

    async def sleep(_: float) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            released.append(True)

    p = ScriptedProvider(sleep=sleep)
    stream = p.stream("m", scripted([{"text": "a"}, {"sleep": 3600}, {"text": "b"}]))
    it = aiter(stream)
    assert (await anext(it)).text == "a"
    task = asyncio.ensure_future(anext(it))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()  # type: ignore[attr-defined]
    assert released == [True]


async def test_through_the_gateway() -> None:
    events = await generate([{"words": "hi there"}, {"finish": "stop"}])
    tokens = [e.chunk.text for e in events if isinstance(e, Token) and e.chunk.text]
    assert tokens == ["hi", " there"]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.provider == "scripted" and finished.usage_reported
    assert finished.usage.completion_tokens == 2
