"""_logging.py with _middleware.RequestContext: every record of a request carries its request
id, and its stream id from the moment the response head names it (``X-Stream-Id``); the
access record carries both; nothing leaks into records after the request."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from mianzhang.server._logging import JSONFormatter, TextFormatter
from mianzhang.server._middleware import RequestContext
from tests._support.asgi import http_scope

app_logger = logging.getLogger("mianzhang.test_app")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.json: list[dict[str, Any]] = []
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.json.append(json.loads(JSONFormatter().format(record)))
        self.text.append(TextFormatter().format(record))


@pytest.fixture
def captured() -> Any:
    handler = Capture()
    loggers = [app_logger, logging.getLogger("mianzhang.access")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
    app_logger.info("before the head")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"x-stream-id", b"s-42")],
        }
    )
    app_logger.info("in the stream")
    await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": False})


async def call(headers: list[tuple[str, str]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestContext(streaming_app)(http_scope(headers=headers), receive, send)
    return sent


async def test_records_carry_the_request_id_and_the_stream_id_once_named(
    captured: Capture,
) -> None:
    sent = await call([("X-Request-ID", "client-id.1")])
    before, during, access = captured.json
    assert before["request_id"] == "client-id.1" and "stream_id" not in before
    assert during["request_id"] == "client-id.1" and during["stream_id"] == "s-42"
    assert access["logger"] == "mianzhang.access"
    assert access["request_id"] == "client-id.1" and access["stream_id"] == "s-42"
    assert access["status"] == 200 and access["bytes"] == len(b"data: x\n\n")
    assert captured.text[1].endswith("[request_id=client-id.1 stream_id=s-42]")
    head = dict(sent[0]["headers"])
    assert head[b"x-request-id"] == b"client-id.1"
    app_logger.info("after the request")
    assert "request_id" not in captured.json[-1]  # nothing leaks past the request


async def test_an_insane_client_id_is_replaced_and_requests_do_not_share_ids(
    captured: Capture,
) -> None:
    await call([("X-Request-ID", "bad id with spaces")])
    await call([])
    first, second = captured.json[0]["request_id"], captured.json[3]["request_id"]
    assert first != "bad id with spaces" and len(first) == 16
    assert second != first
