"""``@ag-ui/client``'s ``HttpAgent`` (Node) against a real ``mianzhang serve``: a run with
reasoning, text and a tool call, every event over the wire carrying an SSE id and validating
against ``ag-ui-protocol``'s models (Python), no ``[DONE]``; a run whose connection drops is
resumed by the agent after the last event it applied (by its count, or by its SSE id as
``Last-Event-ID``), and ends with the messages of a clean run (nothing twice, nothing lost)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from ag_ui.core import Event
from pydantic import TypeAdapter

from tests._support.node import run_node
from tests._support.procs import ServerProcess, serve_process

from ._ai import WEATHER, weather

pytestmark = [pytest.mark.e2e]

EVENT: TypeAdapter[Any] = TypeAdapter(Event)
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with serve_process(env={"MIANZHANG_FILES__ENABLED": "false"}) as srv:
        yield srv


def agent(
    server: ServerProcess, thread: str, text: str, cut: int | None = None, by: str = "count"
) -> Any:
    job = {
        "resumeBy": by,
        "url": f"{server.url}/v1/agui",
        "threadId": thread,
        "runId": f"{thread}-run",
        "text": text,
        "tools": TOOLS,
        "forwardedProps": {"model": "scripted"},
        "cut": cut,
    }
    return run_node("agui_live.mjs", job, timeout=60)


def test_http_agent_runs_a_turn_with_text_and_a_tool_call(server: ServerProcess) -> None:
    result = agent(server, "thread-1", weather(0))
    [run] = result["runs"]
    assert run["error"] is None
    raw = run["raw"]
    assert all(e["id"] for e in raw) and len({e["id"] for e in raw}) == len(raw)
    payloads = [json.loads(e["data"]) for e in raw]  # every event JSON: no [DONE]
    for payload in payloads:
        model = EVENT.validate_python(payload)
        assert not model.model_extra, payload
        assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == payload
    assert payloads[0]["type"] == "RUN_STARTED"
    assert payloads[0]["threadId"] == "thread-1" and payloads[0]["runId"] == "thread-1-run"
    assert [e["type"] for e in run["events"]] == [p["type"] for p in payloads]
    user, reasoning, answer = result["messages"]
    assert user["role"] == "user" and reasoning["role"] == "reasoning"
    assert reasoning["content"] == "The user wants the weather."
    assert answer["role"] == "assistant" and answer["content"] == WEATHER
    [call] = answer["toolCalls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert payloads[-1]["outcome"] == {"type": "success", "pendingToolCallIds": [call["id"]]}


@pytest.mark.parametrize("by", ["count", "id"])
@pytest.mark.parametrize("cut", [2, 6, 15, 22])
def test_a_dropped_run_resumes_with_nothing_twice(server: ServerProcess, cut: int, by: str) -> None:
    clean = agent(server, f"clean-{cut}-{by}", weather(0.03))
    thread = f"cut-{cut}-{by}"
    result = agent(server, thread, weather(0.03), cut=cut, by=by)
    first, second = result["runs"]
    assert first["error"] == "network error"  # the drop was seen
    assert set(result["unhandled"]) <= {"network error"}
    assert second["error"] is None
    applied = first["applied"]
    assert 0 <= applied <= len(first["events"]) <= cut
    assert result["requests"][1]["method"] == "GET"
    url = result["requests"][1]["url"]
    resumed = f"/v1/agui/{thread}/runs/{thread}-run"
    if by == "id" and applied:  # Last-Event-ID: the id of the last event applied
        assert url.endswith(resumed)
    else:
        assert url.endswith(f"{resumed}?after={applied}")
    # a continuation opens with the run started again (no id); from 0 it is the whole run
    assert (second["raw"][0]["id"] is None) == (applied > 0)
    for event in second["raw"]:
        assert not EVENT.validate_python(json.loads(event["data"])).model_extra

    def shape(messages: list[dict[str, Any]]) -> list[Any]:
        return [(m["role"], m.get("content"), m.get("toolCalls")) for m in messages]

    assert shape(result["messages"]) == shape(clean["messages"])
