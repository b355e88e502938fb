"""The AI SDK routes in-process (the app's own lifespan, memory log and chat store, the
scripted model): the UI message stream and its headers, the chat kept by the server with the
final answer saved, resume (204, full replay, Last-Event-ID), stop, and every refusal as JSON
before a stream starts. Real clients and processes are in ``tests/e2e``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mianzhang._sse import SSEDecoder
from mianzhang.auth import generate_api_key, hash_api_key
from tests._support.wait import eventually_sync

from ._chat_client import chat_body, chunks, events, make_client, script, user

TEXT = [{"words": "It is sunny in Paris today."}]
SLOW = [{"words": " ".join(f"w{i}" for i in range(200))}]
ALICE = generate_api_key()
BOB = generate_api_key()


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as http:
        yield http


def saved(http: TestClient, chat_id: str, count: int) -> dict[str, Any]:
    """The chat once it holds ``count`` messages and no running answer (bounded wait)."""
    found: dict[str, Any] = {}

    def ready() -> bool:
        found.update(http.get(f"/v1/chats/{chat_id}").json())
        return len(found["messages"]) == count and not found["running"]

    eventually_sync(ready, timeout=20, interval=0.02)
    return found


def test_a_chat_streams_ui_chunks_and_the_answer_is_saved(client: TestClient) -> None:
    response = client.post("/v1/ui/chat", json=chat_body("c1", user(script(TEXT))))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["x-accel-buffering"] == "no"
    stream_id = response.headers["x-stream-id"]
    out = chunks(response)
    assert out[0] == {
        "type": "start",
        "messageId": stream_id,
        "messageMetadata": {"model": "scripted"},
    }
    assert out[-1] == "[DONE]" and out[-2]["type"] == "finish"
    text = "".join(c["delta"] for c in out if isinstance(c, dict) and c["type"] == "text-delta")
    assert text == "It is sunny in Paris today."
    assert all(e.id for e in events(response)[:-1])  # every chunk can be resumed after
    chat = saved(client, "c1", 2)
    assert chat["messages"][0] == user(script(TEXT))
    answer = chat["messages"][1]
    assert answer["id"] == stream_id and answer["role"] == "assistant"
    assert answer["parts"][1] == {"type": "text", "text": text, "state": "done"}
    assert answer["metadata"]["finishReason"] == "stop"
    assert chat["title"] == script(TEXT)[:47] + "…" and chat["model"] == "scripted"
    assert chat["last_stream"] == stream_id
    # nothing runs any more: the resume GET says so
    assert client.get("/v1/ui/chat/c1/stream").status_code == 204


def test_the_next_turn_sends_the_history_and_replaces_the_saved_answer(
    client: TestClient,
) -> None:
    first = client.post("/v1/ui/chat", json=chat_body("c1", user("hello")))
    assert first.status_code == 200
    answer = saved(client, "c1", 2)["messages"][1]
    second = client.post(
        "/v1/ui/chat", json=chat_body("c1", user("hello"), answer, user("again", "u2"))
    )
    text = "".join(
        c["delta"] for c in chunks(second) if isinstance(c, dict) and c["type"] == "text-delta"
    )
    assert text.startswith("turn 2: you said")  # the scripted echo counts the user turns
    chat = saved(client, "c1", 4)
    assert [m["id"] for m in chat["messages"]][:3] == ["u1", answer["id"], "u2"]


def test_resume_is_204_without_a_running_answer(client: TestClient) -> None:
    assert client.get("/v1/ui/chat/never-seen/stream").status_code == 204


def first_events(http: TestClient, url: str, count: int, **headers: str) -> list[Any]:
    """The first ``count`` events of ``GET url`` (then the connection is closed)."""
    decoder = SSEDecoder()
    got: list[Any] = []
    with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        for chunk in response.iter_bytes():
            got += decoder.decode(chunk)
            if len(got) >= count:
                break
    return got[:count]


def test_resume_replays_the_running_answer_and_honours_last_event_id(
    client: TestClient,
) -> None:
    body = chat_body("c1", user(script(SLOW, delay=0.02)), background=True)
    with client.stream("POST", "/v1/ui/chat", json=body) as response:
        stream_id = response.headers["x-stream-id"]  # dropped at once: the answer goes on
    url = "/v1/ui/chat/c1/stream"
    head = first_events(client, url, 12)  # a replay from the first event, while it runs
    assert head[0].data.startswith('{"type":"start"') and stream_id in head[0].data
    rest = first_events(client, url, 5, **{"Last-Event-ID": head[8].id})
    foreign = first_events(client, url, 3, **{"Last-Event-ID": "other-epoch-3"})
    assert client.post("/v1/ui/chat/c1/stop").json()["stopped"] is True  # it was running
    full = events(client.get(f"/v1/streams/{stream_id}?format=ui"))
    assert [e.data for e in full[:12]] == [e.data for e in head]
    assert [(e.id, e.data) for e in rest] == [(e.id, e.data) for e in full[9:14]]
    # an id that is not one of this answer's: a full replay (useChat rebuilds from `start`)
    assert [e.data for e in foreign] == [e.data for e in full[:3]]


def test_stop_cancels_the_generation_and_saves_the_stopped_answer(client: TestClient) -> None:
    body = chat_body("c1", user(script(SLOW, delay=0.02)), background=True)
    with client.stream("POST", "/v1/ui/chat", json=body) as response:
        stream_id = response.headers["x-stream-id"]
    stopped = client.post("/v1/ui/chat/c1/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {"chat_id": "c1", "stream": stream_id, "stopped": True}
    assert client.get(f"/v1/streams/{stream_id}/info").json()["state"] == "cancelled"
    out = chunks(client.get(f"/v1/streams/{stream_id}?format=ui"))
    assert out[-2] == {"type": "abort", "reason": "stopped"} and out[-1] == "[DONE]"
    answer = saved(client, "c1", 2)["messages"][1]
    assert answer["metadata"]["status"] == "stopped"
    assert client.get("/v1/ui/chat/c1/stream").status_code == 204
    again = client.post("/v1/ui/chat/c1/stop")  # nothing runs: still 200, said so
    assert again.json()["stopped"] is False


def test_a_turn_while_an_answer_runs_is_409(client: TestClient) -> None:
    body = chat_body("c1", user(script(SLOW, delay=0.02)), background=True)
    with client.stream("POST", "/v1/ui/chat", json=body):
        pass
    refused = client.post("/v1/ui/chat", json=chat_body("c1", user("more")))
    assert refused.status_code == 409 and refused.json()["error"]["type"] == "invalid_request_error"
    client.post("/v1/ui/chat/c1/stop")


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "body"),
    ("no messages", {"id": "c1", "messages": []}, "messages"),
    (
        "a message without parts",
        {"id": "c1", "messages": [{"id": "m", "role": "user"}]},
        "messages[0].parts",
    ),
    (
        "a bad role",
        {"id": "c1", "messages": [{"id": "m", "role": "robot", "parts": []}]},
        "messages[0].role",
    ),
    (
        "an unknown part type",
        {"id": "c1", "messages": [{"id": "m", "role": "user", "parts": [{"type": "hologram"}]}]},
        "messages[0].parts[0].type",
    ),
    (
        "a text part without text",
        {"id": "c1", "messages": [{"id": "m", "role": "user", "parts": [{"type": "text"}]}]},
        "messages[0].parts[0].text",
    ),
    ("a bad model field", {**chat_body("c1", user("x")), "model": 5}, "model"),
    ("a bad background field", {**chat_body("c1", user("x")), "background": "yes"}, "background"),
]


@pytest.mark.parametrize(("case", "body", "param"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_malformed_requests_are_400_json_before_any_stream(
    client: TestClient, case: str, body: Any, param: str
) -> None:
    response = client.post("/v1/ui/chat", json=body)
    assert response.status_code == 400, (case, response.text)
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["param"] == param, error
    assert client.get("/v1/chats/c1").status_code == 404  # nothing was kept


def test_invalid_json_oversized_bodies_and_unknown_models_are_refused(
    client: TestClient,
) -> None:
    bad = client.post("/v1/ui/chat", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["message"]
    huge = chat_body("c1", user("x" * (4 << 20)))
    too_large = client.post("/v1/ui/chat", json=huge)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["type"] == "invalid_request_error"
    unknown = client.post("/v1/ui/chat", json={**chat_body("c2", user("x")), "model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"


def test_a_body_that_lies_about_its_length_is_cut_at_the_limit() -> None:
    with make_client(chats={"max_body": 2048}) as http:

        def chunked() -> Iterator[bytes]:
            yield b'{"id": "c1", "messages": [' + b" " * 4096 + b"]}"

        response = http.post("/v1/ui/chat", content=chunked())
        assert response.status_code == 413


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    keys = {"alice": {"digest": hash_api_key(ALICE)}, "bob": {"digest": hash_api_key(BOB)}}
    with make_client(auth={"api_keys": keys}) as http:
        yield http


def test_a_chat_of_another_principal_is_403_everywhere(keyed: TestClient) -> None:
    alice = {"Authorization": f"Bearer {ALICE}"}
    bob = {"Authorization": f"Bearer {BOB}"}
    mine = keyed.post("/v1/ui/chat", json=chat_body("c1", user("hi")), headers=alice)
    assert mine.status_code == 200
    for method, url, body in [
        ("POST", "/v1/ui/chat", chat_body("c1", user("hijack"))),
        ("GET", "/v1/ui/chat/c1/stream", None),
        ("POST", "/v1/ui/chat/c1/stop", None),
        ("GET", "/v1/chats/c1", None),
        ("PATCH", "/v1/chats/c1", {"title": "mine now"}),
        ("DELETE", "/v1/chats/c1", None),
    ]:
        response = keyed.request(method, url, json=body, headers=bob)
        assert response.status_code == 403, (method, url, response.text)
        # OpenAI's shape under /v1/ui/chat, mianzhang's under /v1/chats (docs/errors.md)
        expected = "forbidden" if url.startswith("/v1/chats") else "permission_error"
        assert response.json()["error"]["type"] == expected
    assert keyed.get("/v1/chats", headers=bob).json()["data"] == []
    assert [c["id"] for c in keyed.get("/v1/chats", headers=alice).json()["data"]] == ["c1"]
    assert keyed.post("/v1/ui/chat", json=chat_body("c2", user("x"))).status_code == 401
