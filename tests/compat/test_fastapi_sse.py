"""FastAPI's documented ``fastapi.sse`` examples (``tests/compat/fastapi_docs``, tutorials
001-005 as published) pass the same checks with ``fastapi.sse`` itself and, with only the
import changed, with ``mianzhang.compat.fastapi_sse``: status, content type, the events on the
wire (byte for byte), ``Last-Event-ID``, ``POST`` bodies, the keep-alive; plus what mianzhang
adds (a disconnect cancels the generator, an error after the headers is an ``error`` event).
Differences go through ``expect`` (documented departures)."""

from __future__ import annotations

import asyncio
import importlib
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import mianzhang.compat.fastapi_sse
from mianzhang import SSEDecoder
from tests.compat._departures import expect

DOCS = Path(__file__).parent / "fastapi_docs"
LIBS = ["real", "compat"]
IMPORT = "from fastapi.sse import"
COMPAT_IMPORT = "from mianzhang.compat.fastapi_sse import"


def tutorial(name: str, lib: str) -> types.ModuleType:
    """The published example, or the same text with only the import changed."""
    if lib == "real":
        return importlib.import_module(f"tests.compat.fastapi_docs.{name}")
    source = (DOCS / f"{name}.py").read_text()
    assert source.count(IMPORT) == 1
    module = types.ModuleType(f"tests.compat.fastapi_docs.{name}_compat")
    sys.modules[module.__name__] = module  # pydantic resolves the models' annotations here
    exec(compile(source.replace(IMPORT, COMPAT_IMPORT), f"{name}_compat.py", "exec"), vars(module))
    return module


@pytest.fixture(params=LIBS)
def lib(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(name: str, lib: str) -> TestClient:
    return TestClient(tutorial(name, lib).app)


def stream_of(response: Any) -> list[tuple[str | None, str, str | None, int | None]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    decoder = SSEDecoder()
    events = decoder.decode(response.content)
    decoder.close()
    # (a decoder reports the default type "message" and the last id, "" before any)
    return [
        (e.event if e.event != "message" else None, e.data, e.id or None, e.retry) for e in events
    ]


ITEMS_001 = [
    ("Plumbus", "A multi-purpose household device."),
    ("Portal Gun", "A portal opening device."),
    ("Meeseeks Box", "A box that summons a Meeseeks."),
]


@pytest.mark.parametrize("annotated", [True, False])
@pytest.mark.parametrize("is_async", [True, False])
def test_tutorial001_plain_items(lib: str, annotated: bool, is_async: bool) -> None:
    path = "/items/stream" + ("" if is_async else "-no-async")
    path += "" if annotated else "-no-annotation"
    response = client_for("tutorial001_py310", lib).get(path)
    events = stream_of(response)
    compact = [f'{{"name":"{n}","description":"{d}"}}' for n, d in ITEMS_001]
    spaced = [f'{{"name": "{n}", "description": "{d}"}}' for n, d in ITEMS_001]
    if annotated:
        datas = compact  # FastAPI validates and serialises against the annotation; we dump
    else:
        datas = expect(lib, peer=spaced, ours=compact, departure="fastapi-items")
    assert events == [(None, data, None, None) for data in datas]


def test_tutorial002_events_with_fields_and_a_comment(lib: str) -> None:
    response = client_for("tutorial002_py310", lib).get("/items/stream")
    assert response.text.startswith(": stream of item updates\n\n")
    prices = [("Plumbus", 32.99), ("Portal Gun", 999.99), ("Meeseeks Box", 49.99)]
    assert stream_of(response) == [
        ("item_update", f'{{"name":"{n}","price":{p}}}', str(i), 5000)
        for i, (n, p) in enumerate(prices, 1)
    ]
    assert "event: item_update\ndata: " in response.text  # FastAPI's field order


def test_tutorial003_raw_data(lib: str) -> None:
    response = client_for("tutorial003_py310", lib).get("/logs/stream")
    assert [data for _, data, _, _ in stream_of(response)] == [
        "2025-01-01 INFO  Application started",
        "2025-01-01 DEBUG Connected to database",
        "2025-01-01 WARN  High memory usage detected",
    ]


@pytest.mark.parametrize(("last", "ids"), [(None, ["0", "1", "2"]), ("0", ["1", "2"])])
def test_tutorial004_resumes_after_last_event_id(
    lib: str, last: str | None, ids: list[str]
) -> None:
    headers = {"last-event-id": last} if last is not None else {}
    response = client_for("tutorial004_py310", lib).get("/items/stream", headers=headers)
    assert [event_id for _, _, event_id, _ in stream_of(response)] == ids


def test_tutorial005_post_body(lib: str) -> None:
    response = client_for("tutorial005_py310", lib).post(
        "/chat/stream", json={"text": "hello mianzhang world"}
    )
    assert stream_of(response) == [
        ("token", '"hello"', None, None),
        ("token", '"mianzhang"', None, None),
        ("token", '"world"', None, None),
        ("done", "[DONE]", None, None),
    ]


def test_the_same_bytes_for_every_example(lib: str) -> None:
    requests = [
        ("tutorial001_py310", "get", "/items/stream", {}),
        ("tutorial002_py310", "get", "/items/stream", {}),
        ("tutorial003_py310", "get", "/logs/stream", {}),
        ("tutorial004_py310", "get", "/items/stream", {"headers": {"last-event-id": "1"}}),
        ("tutorial005_py310", "post", "/chat/stream", {"json": {"text": "a b"}}),
    ]
    for name, method, path, kwargs in requests:
        ours = getattr(client_for(name, lib), method)(path, **kwargs)
        theirs = getattr(client_for(name, "real"), method)(path, **kwargs)
        assert ours.content == theirs.content, name


def test_openapi_item_schema(lib: str) -> None:
    schema = client_for("tutorial001_py310", lib).get("/openapi.json").json()
    content = schema["paths"]["/items/stream"]["get"]["responses"]["200"]["content"]
    has_item_schema = "itemSchema" in content["text/event-stream"]
    assert has_item_schema is expect(lib, peer=True, ours=False, departure="fastapi-items")


# -- keep-alive, and what mianzhang adds ---------------------------------------------------------
def quiet_app(lib: str) -> FastAPI:
    """A route silent between two events, on either library."""
    module = fastapi.sse if lib == "real" else mianzhang.compat.fastapi_sse
    app = FastAPI()

    @app.get("/quiet", response_class=module.EventSourceResponse)
    async def quiet() -> AsyncIterator[module.ServerSentEvent]:  # type: ignore[name-defined]
        yield module.ServerSentEvent(data="a")
        await asyncio.sleep(0.3)
        yield module.ServerSentEvent(data="b")

    return app


def test_keep_alive_after_the_ping_interval_of_silence(
    lib: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.1)
    monkeypatch.setattr(mianzhang.compat.fastapi_sse, "_PING_INTERVAL", 0.1)
    body = TestClient(quiet_app(lib)).get("/quiet").text
    assert body.startswith('data: "a"\n\n: ping\n\n') and body.endswith('data: "b"\n\n')


def test_a_disconnect_cancels_the_generator(lib: str) -> None:
    module = fastapi.sse if lib == "real" else mianzhang.compat.fastapi_sse
    app = FastAPI()
    cleanups: list[str] = []

    @app.get("/endless", response_class=module.EventSourceResponse)
    async def endless() -> AsyncIterator[module.ServerSentEvent]:  # type: ignore[name-defined]
        try:
            yield module.ServerSentEvent(data="first")
            await asyncio.Event().wait()
        finally:
            cleanups.append("cleanup")

    with TestClient(app) as client, client.stream("GET", "/endless") as response:
        next(response.iter_raw())
    assert cleanups == ["cleanup"]


def test_an_error_after_the_headers(lib: str) -> None:
    module = fastapi.sse if lib == "real" else mianzhang.compat.fastapi_sse
    app = FastAPI()

    @app.get("/fail", response_class=module.EventSourceResponse)
    async def fail() -> AsyncIterator[module.ServerSentEvent]:  # type: ignore[name-defined]
        yield module.ServerSentEvent(data="first")
        raise RuntimeError("after the headers")

    client = TestClient(app, raise_server_exceptions=False)
    events = stream_of(client.get("/fail"))
    # the peer cuts the body (what was sent before may not even have left); we end it with
    # the first event and an error event
    ours = [(None, '"first"', None, None), "error"]
    seen = [events[0], events[1][0]] if len(events) == 2 else events
    assert (seen == ours) is expect(lib, peer=False, ours=True, departure="errors")
