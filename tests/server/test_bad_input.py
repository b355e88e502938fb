"""Bad input to the routes that take a body: every required field missing or of the wrong
type is a 400 in the route's error shape (Anthropic's under ``/v1/messages``, OpenAI's under
the other ``/v1/`` LLM routes, mianzhang's on the others), before anything starts; and random
JSON bodies (hypothesis) never get a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mianzhang.server import Settings, create_app
from mianzhang.server._errors import shape_for

from .test_errors import SHAPED

HI = [{"role": "user", "content": "hi"}]
VALID: dict[str, dict[str, Any]] = {
    "/v1/messages": {"model": "scripted", "max_tokens": 16, "messages": HI},
    "/v1/messages/count_tokens": {"model": "scripted", "messages": HI},
    "/v1/chat/completions": {"model": "scripted", "messages": HI},
    "/v1/responses": {"model": "scripted", "input": "hi"},
    "/v1/llm/generations": {"model": "scripted", "messages": HI},
    "/v1/jobs": {"type": "summarize", "input": {"text": "some text"}},
}
REQUIRED = {
    "/v1/messages": ["model", "max_tokens", "messages"],
    "/v1/messages/count_tokens": ["model", "messages"],
    "/v1/chat/completions": ["messages"],
    "/v1/responses": ["input"],
    "/v1/llm/generations": ["messages"],
    "/v1/jobs": ["type"],
}
WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("/v1/messages", "model", 7),
    ("/v1/messages", "max_tokens", "many"),
    ("/v1/messages", "max_tokens", 0),
    ("/v1/messages", "max_tokens", 10**12),
    ("/v1/messages", "messages", "hi"),
    ("/v1/messages", "messages", []),
    ("/v1/messages", "messages", [{"role": "robot", "content": "hi"}]),
    ("/v1/messages", "messages", [{"role": "user", "content": [{"type": "text"}]}]),
    ("/v1/messages", "system", 5),
    ("/v1/messages", "stream", "yes"),
    ("/v1/messages", "tools", [{"name": "f"}]),
    ("/v1/messages", "tool_choice", {"type": "tool"}),
    ("/v1/messages", "temperature", "hot"),
    ("/v1/messages", "stop_sequences", "END"),
    ("/v1/messages", "unknown_field", 1),
    ("/v1/messages/count_tokens", "model", None),
    ("/v1/messages/count_tokens", "messages", {}),
    ("/v1/chat/completions", "messages", "hi"),
    ("/v1/chat/completions", "messages", [{"content": "no role"}]),
    ("/v1/chat/completions", "model", 7),
    ("/v1/chat/completions", "stream", "yes"),
    ("/v1/chat/completions", "max_tokens", 10**12),
    ("/v1/chat/completions", "max_completion_tokens", -1),
    ("/v1/chat/completions", "n", 2),
    ("/v1/responses", "input", 5),
    ("/v1/responses", "input", [{"type": "function_call_output", "output": "x"}]),
    ("/v1/responses", "max_output_tokens", 10**12),
    ("/v1/responses", "tools", [{"type": "function"}]),
    ("/v1/responses", "tools", [{"type": "file_search"}]),
    ("/v1/responses", "tool_choice", "sometimes"),
    ("/v1/responses", "background", "no"),
    ("/v1/llm/generations", "messages", 5),
    ("/v1/llm/generations", "max_tokens", 10**12),
    ("/v1/jobs", "type", 5),
    ("/v1/jobs", "input", "text"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(files={"enabled": False}, web=False)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as http:
        yield http


def refused_in_shape(client: TestClient, path: str, content: bytes) -> dict[str, Any]:
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400, (path, content, response.text)
    body: dict[str, Any] = response.json()
    assert SHAPED[shape_for(path)](body), body
    return body


def message_of(body: dict[str, Any]) -> str:
    return str(body["error"]["message"])


@pytest.mark.parametrize("path", list(VALID))
def test_a_valid_body_is_accepted(client: TestClient, path: str) -> None:
    response = client.post(path, json=VALID[path])
    assert response.status_code in (200, 201, 202), response.text


@pytest.mark.parametrize(
    ("path", "field"), [(path, field) for path, fields in REQUIRED.items() for field in fields]
)
def test_a_missing_required_field(client: TestClient, path: str, field: str) -> None:
    body = {k: v for k, v in VALID[path].items() if k != field}
    refused = refused_in_shape(client, path, json.dumps(body).encode())
    assert field in message_of(refused)


@pytest.mark.parametrize(("path", "field", "value"), WRONG_TYPES)
def test_a_field_of_the_wrong_type(client: TestClient, path: str, field: str, value: Any) -> None:
    refused = refused_in_shape(client, path, json.dumps({**VALID[path], field: value}).encode())
    assert field in message_of(refused) or field in json.dumps(refused)


@pytest.mark.parametrize("path", list(VALID))
@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'"text"', b"null"])
def test_a_body_that_is_not_a_json_object(client: TestClient, path: str, content: bytes) -> None:
    refused_in_shape(client, path, content)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@pytest.mark.parametrize("path", list(VALID))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(
        st.sampled_from(
            [
                "model",
                "messages",
                "max_tokens",
                "input",
                "stream",
                "tools",
                "system",
                "type",
                "n",
                "tool_choice",
                "metadata",
            ]
        ),
        JSON,
        max_size=3,
    )
)
def test_random_fields_never_get_a_500(
    client: TestClient, path: str, changes: dict[str, Any]
) -> None:
    body = {**VALID[path], **changes, "stream": False}
    response = client.post(path, json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert SHAPED[shape_for(path)](response.json()), response.json()
