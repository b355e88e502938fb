"""The AG-UI routes in-process: a run streams AG-UI events (each with an SSE id, validated
against ``ag-ui-protocol``'s models, no ``[DONE]``), resumes by ``Last-Event-ID`` or by count
as a continuation, stops, and refuses bad input with JSON before any stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from ag_ui.core import Event
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from mianzhang.llm._agui_surface import agui_reopen

from ._chat_client import events, make_client, script

EVENT: TypeAdapter[Any] = TypeAdapter(Event)
RUN = [
    {"reasoning": "Let me think."},
    {"words": "I will check the weather."},
    {"tool_call": {"name": "get_weather", "id": "call_1", "arguments": {"city": "Paris"}}},
]


def run_input(text: str, thread: str = "t1", run: str = "r1", **extra: Any) -> dict[str, Any]:
    return {
        "threadId": thread,
        "runId": run,
        "state": {},
        "messages": [{"id": "m1", "role": "user", "content": text}],
        "tools": [{"name": "get_weather", "description": "weather", "parameters": {}}],
        "context": [],
        "forwardedProps": {"model": "scripted", **extra},
    }


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as http:
        yield http


def test_a_run_streams_valid_ag_ui_events_with_ids(client: TestClient) -> None:
    response = client.post("/v1/agui", json=run_input(script(RUN)))
    assert response.status_code == 200, response.text
    got = events(response)
    assert all(e.id for e in got) and len({e.id for e in got}) == len(got)
    payloads = [json.loads(e.data) for e in got]  # no [DONE]: every data is an event
    for payload in payloads:
        assert not EVENT.validate_python(payload).model_extra, payload
    kinds = [p["type"] for p in payloads]
    assert kinds[0] == "RUN_STARTED" and kinds[-1] == "RUN_FINISHED"
    assert payloads[0] == {"type": "RUN_STARTED", "threadId": "t1", "runId": "r1"}
    assert {"TEXT_MESSAGE_CONTENT", "TOOL_CALL_ARGS", "REASONING_MESSAGE_CONTENT"} <= set(kinds)
    assert payloads[-1]["outcome"] == {"type": "success", "pendingToolCallIds": ["call_1"]}


def test_a_dropped_run_resumes_by_id_or_count_as_a_continuation(client: TestClient) -> None:
    full = events(client.post("/v1/agui", json=run_input(script(RUN))))
    wire = [(None, e.data) for e in full]
    for p in (1, 3, len(full) // 2, len(full) - 1):
        expected = [d for _, d in agui_reopen(wire[:p]) + wire[p:]]
        by_id = client.get("/v1/agui/t1/runs/r1", headers={"Last-Event-ID": full[p - 1].id})
        by_count = client.get(f"/v1/agui/t1/runs/r1?after={p}")
        assert [e.data for e in events(by_id)] == expected, p
        assert [e.data for e in events(by_count)] == expected, p
    assert client.get("/v1/agui/t1/runs/other").status_code == 404
    assert client.get("/v1/agui/nope/runs/r1").status_code == 404


def test_stop_ends_the_run_cancelled(client: TestClient) -> None:
    slow = script([{"words": " ".join(["w"] * 300)}], delay=0.02)
    with client.stream("POST", "/v1/agui", json=run_input(slow, background=True)) as r:
        stream_id = r.headers["x-stream-id"]
    stopped = client.post("/v1/agui/t1/stop").json()
    assert stopped == {"thread_id": "t1", "run_id": "r1", "stream": stream_id, "stopped": True}
    rest = [json.loads(e.data) for e in events(client.get("/v1/agui/t1/runs/r1"))]
    assert rest[-1]["type"] == "RUN_FINISHED" and rest[-1]["outcome"] == {"type": "cancelled"}
    assert client.get(f"/v1/streams/{stream_id}/info").json()["state"] == "cancelled"


def test_bad_input_is_400_json(client: TestClient) -> None:
    for body, param in [
        ({"threadId": "t1"}, "runId"),
        (
            {**run_input("x"), "messages": [{"id": "m", "role": "robot", "content": "x"}]},
            "messages[0].role",
        ),
        ({**run_input("x"), "tools": [{"name": "bad name!"}]}, "tools[0].name"),
    ]:
        response = client.post("/v1/agui", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    too_large = client.post("/v1/agui", json=run_input("x" * (4 << 20)))
    assert too_large.status_code == 413
