"""``publish`` / ``publish_sync`` over HTTP: the envelope sent, retries under one idempotency
key, refusals are final (transport scripted with ``httpx.MockTransport``; the real server is
exercised in ``tests/e2e/test_channels_redis.py``)."""

from __future__ import annotations

import json

import httpx
import pytest

from mianzhang import ClientError
from mianzhang._errors import PublishRejected
from mianzhang.channels import publish, publish_sync


class Script:
    """Answers requests from a list: an exception is raised, a response returned."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(r.content) for r in self.requests]


def ok(event_id: str = "e-1", duplicate: bool = False) -> httpx.Response:
    status = 200 if duplicate else 201
    return httpx.Response(status, json={"channel": "c", "id": event_id, "duplicate": duplicate})


def test_sync_sends_the_envelope_and_returns_the_id() -> None:
    script = Script(ok("e-7"))
    with httpx.Client(transport=httpx.MockTransport(script)) as client:
        result = publish_sync(
            "http://hub/",
            "user/42",
            {"n": 1},
            api_key="mz_key",
            event="note",
            idempotency_key="k1",
            client=client,
        )
    assert result.id == "e-7" and result.channel == "user/42" and not result.duplicate
    [request] = script.requests
    assert request.url.path == "/v1/channels/user/42/publish"
    assert request.headers["authorization"] == "Bearer mz_key"
    assert script.bodies() == [{"data": {"n": 1}, "event": "note", "idempotency_key": "k1"}]


def test_network_errors_are_retried_under_one_generated_key() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("lost"), ok(duplicate=True))
    with httpx.Client(transport=httpx.MockTransport(script)) as client:
        result = publish_sync("http://hub", "c", "text", client=client)
    assert result.duplicate
    keys = {body["idempotency_key"] for body in script.bodies()}
    assert len(script.requests) == 3 and len(keys) == 1 and next(iter(keys))


def test_retries_run_out_as_client_error() -> None:
    script = Script(*(httpx.ConnectError("refused") for _ in range(2)))
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        pytest.raises(ClientError, match="publishing to 'c' failed"),
    ):
        publish_sync("http://hub", "c", "x", retries=1, client=client)
    assert len(script.requests) == 2


def test_a_refusal_is_final_and_carries_the_servers_message() -> None:
    refused = httpx.Response(403, json={"error": {"type": "Forbidden", "message": "no scope"}})
    script = Script(refused)
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        pytest.raises(PublishRejected) as caught,
    ):
        publish_sync("http://hub", "c", "x", client=client)
    assert caught.value.status_code == 403 and caught.value.message == "no scope"
    assert len(script.requests) == 1


def test_a_non_json_answer_is_a_refusal() -> None:
    script = Script(httpx.Response(502, text="bad gateway"))
    with (
        httpx.Client(transport=httpx.MockTransport(script)) as client,
        pytest.raises(PublishRejected, match="bad gateway"),
    ):
        publish_sync("http://hub", "c", "x", client=client)


async def test_async_publish_retries_like_the_sync_one() -> None:
    script = Script(httpx.RemoteProtocolError("dropped"), ok("e-9"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as client:
        result = await publish("http://hub", "c", [1, 2], idempotency_key="mine", client=client)
    assert result.id == "e-9"
    assert [b["idempotency_key"] for b in script.bodies()] == ["mine", "mine"]


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ValueError, match="retries"):
        publish_sync("http://hub", "c", "x", retries=-1)
