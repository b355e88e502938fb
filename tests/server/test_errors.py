"""One error shape per surface, produced in one place (``server/_errors``): OpenAI's under
``/v1/``, Anthropic's under ``/v1/messages``, mianzhang's own on every other route; every
exception of the tree, every framework error (unknown route, wrong method, validation) and
every middleware refusal in the shape of the request's path; routers answer their own errors
when mounted in a plain app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from mianzhang import (
    Conflict,
    Draining,
    Forbidden,
    InvalidRequest,
    JobQueueFull,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    RequestTimeout,
    RequestTooLarge,
    StreamNotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from mianzhang.llm import (
    InvalidLLMRequest,
    LLMService,
    LLMSettings,
    ModelNotFound,
    UpstreamStatusError,
)
from mianzhang.log import MemoryEventLog
from mianzhang.log.serve import StreamHost
from mianzhang.server import Settings, create_app
from mianzhang.server._deps import get_budget, get_host, get_llm
from mianzhang.server._errors import SHAPES, render, shape_for
from mianzhang.server.routes.anthropic import anthropic_router
from mianzhang.server.routes.streams import streams_router
from tests._support.asgi import http_scope


def anthropic_shaped(body: Any) -> bool:
    return (
        set(body) == {"type", "error"}
        and body["type"] == "error"
        and set(body["error"]) == {"type", "message"}
    )


def openai_shaped(body: Any) -> bool:
    return set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])


def mianzhang_shaped(body: Any) -> bool:
    error = body.get("error") if set(body) == {"error"} else None
    return error is not None and {"type", "message"} <= set(error) and "param" not in error


SHAPED = {"anthropic": anthropic_shaped, "openai": openai_shaped, "mianzhang": mianzhang_shaped}


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/messages", "anthropic"),
        ("/v1/messages/count_tokens", "anthropic"),
        ("/v1/messages-and-more", "openai"),
        ("/v1/chat/completions", "openai"),
        ("/v1/responses/resp_1/cancel", "openai"),
        ("/v1/models/a/b", "openai"),
        ("/v1/embeddings", "openai"),
        ("/v1", "openai"),
        ("/v1/streams/x", "mianzhang"),
        ("/v1/jobs", "mianzhang"),
        ("/v1/uploads/u", "mianzhang"),
        ("/v1/demo/ticks", "mianzhang"),
        ("/healthz", "mianzhang"),
        ("/v2/anything", "mianzhang"),
    ],
)
def test_the_shape_is_chosen_by_the_path(path: str, shape: str) -> None:
    assert shape_for(path) == shape
    assert {s for _, s in SHAPES} == set(SHAPED)


ERRORS = [
    (InvalidRequest("x: bad", problems=[{"loc": "x", "msg": "bad"}]), 400, 400),
    (NotFound("no such thing"), 404, 404),
    (MethodNotAllowed("GET: not allowed", ["POST"]), 405, 405),
    (RequestTimeout("slow body"), 408, 408),
    (Conflict("already ended"), 409, 409),
    (RequestTooLarge(10), 413, 413),
    (UnsupportedMediaType("send JSON"), 415, 415),
    (Unauthorized("who are you"), 401, 401),
    (Forbidden("not for you"), 403, 403),
    (RateLimited("tokens", 10, 60, 5), 429, 429),
    (StreamNotFound("s"), 404, 404),
    (JobQueueFull("full"), 503, 503),
    (Draining("bye"), 503, 529),  # Anthropic's overloaded_error is 529
    (ModelNotFound("m"), 404, 404),
    (InvalidLLMRequest("messages: missing", param="messages"), 400, 400),
    (UpstreamStatusError(429, "slow down", retryable=True), 429, 429),
    (RuntimeError("secret internals"), 500, 500),
]


@pytest.mark.parametrize(("error", "status", "anthropic_status"), ERRORS)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/jobs"])
def test_every_error_renders_in_the_path_s_shape(
    error: Exception, status: int, anthropic_status: int, path: str
) -> None:
    response = render(http_scope("POST", path), error)
    body = json.loads(response.body)
    shape = shape_for(path)
    assert SHAPED[shape](body), body
    assert response.status_code == (anthropic_status if shape == "anthropic" else status)
    text = json.dumps(body)
    assert "secret" not in text  # an unexpected exception's text is never shown
    if isinstance(error, RateLimited):
        assert response.headers["retry-after"] == "5" and "ratelimit-policy" in response.headers
    if isinstance(error, MethodNotAllowed):
        assert response.headers["allow"] == "POST"
    if isinstance(error, Unauthorized):
        assert response.headers["www-authenticate"] == "Bearer"


def test_invalid_input_names_the_field_in_each_shape() -> None:
    error = InvalidRequest("limit: not a number", problems=[{"loc": "limit", "msg": "nan"}])
    openai = json.loads(render(http_scope(path="/v1/responses/r"), error).body)["error"]
    assert openai["param"] == "limit" and openai["type"] == "invalid_request_error"
    own = json.loads(render(http_scope(path="/v1/jobs"), error).body)["error"]
    assert own == {
        "type": "invalid_request",
        "message": "limit: not a number",
        "problems": [{"loc": "limit", "msg": "nan"}],
    }


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(files={"enabled": False}, web=False)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as http:
        yield http


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/embeddings", 404),
        ("POST", "/v1/completions", 404),
        ("GET", "/v1/chat/completions", 405),
        ("DELETE", "/v1/models", 405),
        ("GET", "/v1/messages", 405),
        ("GET", "/v1/messages/batches", 404),
        ("GET", "/v1/messages/count_tokens", 405),
        ("GET", "/v1/streams", 404),
        ("PUT", "/v1/streams/s/cancel", 405),
        ("GET", "/v1/jobs/job_1/cancel", 405),
        ("GET", "/nowhere", 404),
    ],
)
def test_unknown_routes_and_wrong_methods(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert SHAPED[shape_for(path)](response.json()), response.json()
    if status == 405:
        assert response.headers["allow"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/responses/resp_x", {"stream": "true", "starting_after": "x"}),
        ("/v1/jobs", {"limit": "many"}),
        ("/v1/files", {"limit": "many"}),
    ],
)
def test_validation_errors_are_400_in_the_path_s_shape(
    client: TestClient, path: str, query: dict[str, str]
) -> None:
    response = client.get(path, params=query)
    assert response.status_code in (400, 404), response.text  # files may be disabled: 404
    assert SHAPED[shape_for(path)](response.json()), response.json()


def test_a_stream_slot_refusal_is_in_the_path_s_shape() -> None:
    settings = Settings(files={"enabled": False}, limits={"concurrent_streams": 1})  # type: ignore[arg-type]
    slow = json.dumps({"script": [{"words": "a b c d e f g h"}], "delay": 0.2})
    body = {"model": "scripted", "max_tokens": 50, "stream": True, "messages": []}
    body["messages"] = [{"role": "user", "content": slow}]
    with (
        TestClient(create_app(settings)) as http,
        http.stream("GET", "/v1/demo/ticks?interval=0.05&count=100") as first,
    ):
        assert first.status_code == 200
        refused = http.post("/v1/messages", json=body)
        assert refused.status_code == 429 and anthropic_shaped(refused.json())
        assert refused.json()["error"]["type"] == "rate_limit_error"
        ticks = http.get("/v1/demo/ticks?interval=0.05&count=2")
        assert ticks.status_code == 429 and mianzhang_shaped(ticks.json())


async def test_routers_answer_their_own_errors_in_a_plain_app() -> None:
    def only_admins() -> None:
        raise HTTPException(403, "admins only")

    llm = LLMService(LLMSettings(), metrics_registry=CollectorRegistry())
    app = FastAPI()  # no create_app: no app-wide handlers, services from overrides
    app.include_router(anthropic_router)
    app.include_router(streams_router, dependencies=[Depends(only_admins)])
    async with MemoryEventLog() as log:
        host = StreamHost(log)
        app.dependency_overrides[get_llm] = lambda: llm
        app.dependency_overrides[get_host] = lambda: host
        app.dependency_overrides[get_budget] = lambda: None  # no token limits
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                bad = await http.post("/v1/messages", content=b"{not json")
                assert bad.status_code == 400 and anthropic_shaped(bad.json())
                body = {
                    "model": "scripted",
                    "max_tokens": 9,
                    "messages": [{"role": "user", "content": "hi"}],
                }
                good = await http.post("/v1/messages", json=body)
                assert good.json()["content"][0]["text"] == 'turn 1: you said "hi"'
                refused = await http.get("/v1/streams/s/info")
                assert refused.status_code == 403
                assert refused.json() == {"error": {"type": "forbidden", "message": "admins only"}}
        finally:
            await host.aclose()
            await llm.aclose()
