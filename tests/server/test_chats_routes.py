"""The chat list routes in-process: create, list (newest first), read, rename, delete (which
stops a running answer), and their refusals as JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ._chat_client import chat_body, make_client, script, user


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as http:
        yield http


def test_create_list_read_rename_delete(client: TestClient) -> None:
    first = client.post("/v1/chats", json={"title": "First", "model": "scripted"})
    assert first.status_code == 201
    one = first.json()
    assert one["id"].startswith("c_") and one["messages"] == [] and not one["running"]
    two = client.post("/v1/chats", json={"id": "my-chat"}).json()
    assert two["id"] == "my-chat" and two["title"] == ""
    listed = client.get("/v1/chats").json()["data"]
    assert [c["id"] for c in listed] == ["my-chat", one["id"]]
    assert set(listed[0]) == {
        "id",
        "kind",
        "title",
        "model",
        "created",
        "updated",
        "running",
        "stream",
    }
    renamed = client.patch(f"/v1/chats/{one['id']}", json={"title": "  Renamed  "})
    assert renamed.json()["title"] == "Renamed"
    assert [c["id"] for c in client.get("/v1/chats").json()["data"]] == ["my-chat", one["id"]]
    assert client.get(f"/v1/chats/{one['id']}").json()["title"] == "Renamed"
    assert client.get("/v1/chats?limit=1").json()["data"][0]["id"] == "my-chat"
    assert client.delete("/v1/chats/my-chat").status_code == 204
    assert client.get("/v1/chats/my-chat").status_code == 404
    assert [c["id"] for c in client.get("/v1/chats").json()["data"]] == [one["id"]]


def test_a_chat_made_here_takes_its_title_from_the_first_message(client: TestClient) -> None:
    chat = client.post("/v1/chats", json={"model": "scripted"}).json()
    client.post("/v1/ui/chat", json=chat_body(chat["id"], user("Weather in Paris?\nthanks")))
    assert client.get(f"/v1/chats/{chat['id']}").json()["title"] == "Weather in Paris?"


def test_deleting_a_chat_stops_its_running_answer(client: TestClient) -> None:
    slow = script([{"words": " ".join(["word"] * 300)}], delay=0.02)
    with client.stream(
        "POST", "/v1/ui/chat", json=chat_body("c1", user(slow), background=True)
    ) as r:
        stream_id = r.headers["x-stream-id"]
    running = client.get("/v1/chats").json()["data"][0]
    assert running["running"] and running["stream"] == stream_id
    assert client.delete("/v1/chats/c1").status_code == 204
    assert client.get(f"/v1/streams/{stream_id}/info").json()["state"] == "cancelled"
    assert client.get("/v1/chats/c1").status_code == 404


def test_refusals_are_json(client: TestClient) -> None:
    for method, url, body, status in [
        ("GET", "/v1/chats/nope", None, 404),
        ("PATCH", "/v1/chats/nope", {"title": "x"}, 404),
        ("DELETE", "/v1/chats/nope", None, 404),
        ("POST", "/v1/ui/chat/nope/stop", None, 404),
        ("POST", "/v1/chats", {"id": "bad id/with slash"}, 400),
        ("POST", "/v1/chats", {"unknown": 1}, 400),
        ("PATCH", "/v1/chats/nope", {"title": ""}, 400),
    ]:
        response = client.request(method, url, json=body)
        assert response.status_code == status, (method, url, response.text)
        assert response.json()["error"]["message"]
    client.post("/v1/chats", json={"id": "dup"})
    assert client.post("/v1/chats", json={"id": "dup"}).status_code == 409
