"""The real ``ai`` package (``DefaultChatTransport`` and the ``Chat`` logic ``useChat`` wraps,
Node's fetch) against a real ``mianzhang serve``: a turn with reasoning, text and a tool call
(the scripted model), the same answer saved by the server; a connection cut mid-answer and
``reconnectToStream`` (``resumeStream``) ending with the message of a clean read; and, with
two instances on one redis-server, a stop from the other instance that a second reader sees
end, start on A / resume on B / stop from B while A produces."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests._support.procs import ServerProcess, serve_process
from tests._support.wait import eventually_sync

from ._ai import (
    WEATHER,
    ai_sdk,
    answer,
    info,
    kinds,
    long_text,
    saved_chat,
    text_of,
    weather,
    without_timings,
)

pytestmark = [pytest.mark.e2e]

ENV = {"MIANZHANG_FILES__ENABLED": "false", "MIANZHANG_LLM__GRACE_PERIOD": "10"}
PARTS = ["step-start", "reasoning", "text", "tool-get_weather"]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with serve_process(env=ENV) as srv:
        yield srv


def api(server: ServerProcess) -> str:
    return f"{server.url}/v1/ui/chat"


def settled(base: str, chat_id: str, count: int) -> dict[str, object]:
    """The server's chat once it holds ``count`` messages and no running answer."""
    found: dict[str, object] = {}

    def ready() -> bool:
        found.update(saved_chat(base, chat_id))
        return len(found["messages"]) == count and not found["running"]  # type: ignore[arg-type]

    eventually_sync(ready, timeout=20, interval=0.05)
    return found


def test_a_turn_with_text_and_a_tool_call_is_the_message_the_server_saves(
    server: ServerProcess,
) -> None:
    result = ai_sdk({"mode": "turn", "api": api(server), "chatId": "turn-1", "text": weather(0)})
    assert result["status"] == "ready" and result["error"] is None
    message = answer(result)
    assert kinds(message) == PARTS
    assert text_of(message) == WEATHER
    tool = message["parts"][3]
    assert tool["state"] == "input-available" and tool["input"] == {"city": "Paris"}
    assert message["metadata"]["finishReason"] == "tool-calls"
    assert message["id"].startswith("gen-")  # the server's id: the same on every read
    chat = settled(server.url, "turn-1", 2)
    assert chat["messages"] == result["messages"]  # the server saved what the client built
    # our progress reached onData (19 output tokens: after the 1st and the 16th), transient:
    # in no message, the client's or the server's
    assert [(d["type"], d["transient"]) for d in result["data"]] == [("data-progress", True)] * 2
    first, sixteenth = (d["data"] for d in result["data"])
    assert first["outputTokens"] == 1 and sixteenth["outputTokens"] == 16
    assert first["elapsedMs"] == first["timeToFirstTokenMs"] == sixteenth["timeToFirstTokenMs"]
    assert first["tokensPerSecond"] is None
    assert sixteenth["elapsedMs"] >= first["elapsedMs"]


@pytest.mark.parametrize("cut", [2, 5, 12])
def test_a_cut_connection_resumes_with_the_message_of_a_clean_read(
    server: ServerProcess, cut: int
) -> None:
    clean_job = {"mode": "turn", "api": api(server), "chatId": f"clean-{cut}"}
    clean = ai_sdk({**clean_job, "text": weather(0.05)})
    chat_id = f"cut-{cut}"
    job = {"mode": "cut", "api": api(server), "chatId": chat_id, "text": weather(0.05), "cut": cut}
    result = ai_sdk(job)
    assert result["afterCut"]["status"] == "error"  # the client saw the drop
    assert [r["method"] for r in result["requests"]] == ["POST", "GET"]
    assert result["requests"][1]["url"] == f"{api(server)}/{chat_id}/stream"
    assert result["status"] == "ready" and result["error"] is None
    assert len(result["messages"]) == 2  # one answer: no duplicate message
    assert without_timings(answer(result)) == without_timings(answer(clean))  # no duplicate parts
    # the replay handed its progress to onData again (what came before the cut comes twice)
    tokens = [d["data"]["outputTokens"] for d in result["data"]]
    assert [d["data"]["outputTokens"] for d in clean["data"]] == [1, 16] == tokens[-2:]
    assert tokens[:-2] in ([], [1], [1, 16])
    pace = clean["data"][1]["data"]  # 50 ms between tokens
    assert pace["elapsedMs"] - pace["timeToFirstTokenMs"] >= 15 * 50 * 0.9
    assert 0 < pace["tokensPerSecond"] <= 1000 / 50 / 0.9
    assert settled(server.url, chat_id, 2)["messages"] == result["messages"]


def test_resuming_a_chat_with_nothing_running_changes_nothing(server: ServerProcess) -> None:
    done = ai_sdk({"mode": "turn", "api": api(server), "chatId": "idle-1", "text": "hello"})
    settled(server.url, "idle-1", 2)
    job = {"mode": "cut", "api": api(server), "chatId": "idle-1", "text": "again", "cut": 10_000}
    again = ai_sdk(job)  # no cut happens: the GET after the end gets 204 and changes nothing
    assert [r["method"] for r in again["requests"]] == ["POST", "GET"]
    assert again["status"] == "ready" and len(again["messages"]) == 2
    assert text_of(answer(again)).startswith("turn 1: you said")
    assert done["status"] == "ready"


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {**ENV, "MIANZHANG_LOG_BACKEND": "redis", "MIANZHANG_REDIS_URL": redis_url}
    with serve_process(env=env) as a, serve_process(env=env) as b:
        yield a, b


@pytest.mark.redis
def test_stop_on_the_other_instance_cancels_and_every_reader_ends(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    job = {
        "mode": "stop",
        "api": api(a),
        "chatId": "stop-1",
        "text": long_text(),
        "readerApi": api(b),
        "after": 12,
        "stopUrl": f"{api(b)}/stop-1/stop",
    }
    result = ai_sdk(job)
    assert result["status"] == "ready" and result["error"] is None
    message = answer(result)
    stream = message["id"]
    assert result["stop"] == {
        "status": 200,
        "body": {"chat_id": "stop-1", "stream": stream, "stopped": True},
    }
    assert message["metadata"]["status"] == "stopped"
    assert 0 < len(text_of(message).split()) < 150
    # the second reader, on B, saw the same answer end with abort (no finish)
    reader = result["reader"]
    assert reader[0] == {
        "type": "start",
        "messageId": stream,
        "messageMetadata": {"model": "scripted"},
    }
    assert reader[-1] == {"type": "abort", "reason": "stopped"}
    assert not any(c["type"] == "finish" for c in reader)
    delta = "".join(c["delta"] for c in reader if c["type"] == "text-delta")
    assert delta == text_of(message)
    # the producer ran its end on A: the log says cancelled, on both instances
    assert info(a.url, stream)["state"] == info(b.url, stream)["state"] == "cancelled"
    assert settled(b.url, "stop-1", 2)["messages"][1] == message


@pytest.mark.redis
def test_start_on_a_resume_on_b_stop_from_b_while_a_produces(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    job = {
        "mode": "resume-stop",
        "api": api(a),
        "chatId": "ab-1",
        "text": long_text(),
        "cut": 8,
        "resumeApi": api(b),
        "after": 30,
        "stopUrl": f"{api(b)}/ab-1/stop",
    }
    result = ai_sdk(job)
    assert [r["url"] for r in result["requests"]] == [api(a), f"{api(b)}/ab-1/stream"]
    assert result["stop"]["body"]["stopped"] is True
    assert result["status"] == "ready" and len(result["messages"]) == 2
    message = answer(result)
    assert kinds(message) == ["step-start", "text"]  # one text part: nothing twice
    words = text_of(message).split()
    assert words == [f"word{i}" for i in range(len(words))] and 8 < len(words) < 150
    assert message["metadata"]["status"] == "stopped"
    assert info(a.url, message["id"])["state"] == "cancelled"
    served = json.dumps(settled(a.url, "ab-1", 2)["messages"][1], sort_keys=True)
    assert served == json.dumps(message, sort_keys=True)
