"""A tiny OpenAI-compatible upstream whose every answer is hostile Markdown (raw ASGI, run as a
real uvicorn process): ``POST /v1/chat/completions`` streams :data:`HOSTILE_PIECES` as
``chat.completion.chunk`` events, cut so that tags and links span several chunks, then a finish
chunk and ``[DONE]``. The web UI must render it inert."""

from __future__ import annotations

from typing import Any

import orjson

from tests.e2e.apps._asgi import Receive, Scope, Send, lifespan

HOSTILE_PIECES = [
    "Hostile Markdown follows.\n\n<img src=x oner",
    "ror=\"window.__pwned.push('img')\"> and <scr",
    "ipt>window.__pwned.push('script')</script>\n\n",
    "[click me](javascript:window.__pwned.push('link')) and <javascript:alert(4)>\n\n",
    "![pic](javascript:window.__pwned.push('image')) ",
    "<iframe src=\"javascript:window.__pwned.push('iframe')\"></iframe>\n\n",
    '<a href="data:text/html,<script>alert(7)</script>">data link</a> ',
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) ",
    "[tab](java\tscript:alert(9)) [safe](https://example.com/ok)\n\n",
    '<div style="position:fixed;inset:0" onclick="window.__pwned.push(\'div\')">overlay</div>\n\n',
    "```html\n<script>window.__pwned.push('code')</script>\n```\n",
]
HOSTILE_TEXT = "".join(HOSTILE_PIECES)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass  # the request body is not needed
    if not scope["path"].endswith("/chat/completions"):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )

    async def chunk(delta: dict[str, Any], finish: str | None) -> None:
        body = {
            "id": "chatcmpl-hostile",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "hostile",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        data = b"data: " + orjson.dumps(body) + b"\n\n"
        await send({"type": "http.response.body", "body": data, "more_body": True})

    await chunk({"role": "assistant", "content": ""}, None)
    for piece in HOSTILE_PIECES:
        await chunk({"content": piece}, None)
    await chunk({}, "stop")
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
