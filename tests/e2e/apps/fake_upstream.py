"""A fake OpenAI-compatible upstream (raw ASGI, run as a real uvicorn process).

``POST /v1/chat/completions`` streams ``chat.completion.chunk`` events like OpenAI does (role
chunk, one chunk per token, finish chunk, optional usage chunk, ``[DONE]``), or answers a JSON
completion for ``stream: false``. Tokens are ``"tok0"``, ``" tok1"``, ... so a test knows the
exact text.

Behaviour per request comes from a plan the test posts to ``POST /_control/plan`` (each request
takes the next step; when the plan is empty, the defaults apply), with these keys:

* ``status`` (int): answer this HTTP status with an OpenAI error body (``retry_after_ms``
  adds a ``retry-after-ms`` header);
* ``headers_delay`` (s): wait before sending the response headers;
* ``ttft`` (s): wait after the headers, before the first chunk;
* ``tokens`` (int), ``token_delay`` (s): how many tokens and the gap between them;
* ``drop_after`` (int): abort the connection after this many tokens (no ``[DONE]``);
* ``stall_after`` (int), ``stall`` (s): after this many tokens, send nothing for ``stall``
  seconds (then go on);
* ``usage`` (bool, default true): send the usage chunk when ``include_usage`` was asked;
* ``tool_call`` (``{"id", "name", "arguments"}``, arguments a JSON text): after the tokens,
  stream that tool call as OpenAI does (a delta with id and name, then the arguments in three
  pieces) and finish with ``tool_calls``.

Defaults come from ``FAKE_TTFT``, ``FAKE_TOKEN_DELAY``, ``FAKE_TOKENS`` (env), else 0, 0, 16.

Every chat request is recorded: ``GET /_control/requests`` returns, per request, its model,
body, ``authorization`` header, the client's TCP port (``client_port``: the same port again
means a reused keep-alive connection), when it started, how many tokens were sent, whether it
completed and when (unix time) the client disconnected before the end (``disconnected_at``).
A disconnect is noticed also while the server waits (headers delay, ttft, between tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import orjson

from tests.e2e.apps._asgi import (
    Receive,
    Scope,
    Send,
    lifespan,
    read_body,
    send_json,
    wait_disconnect,
)


class _Disconnected(Exception):
    pass


def _defaults() -> dict[str, Any]:
    return {
        "ttft": float(os.environ.get("FAKE_TTFT", "0")),
        "token_delay": float(os.environ.get("FAKE_TOKEN_DELAY", "0")),
        "tokens": int(os.environ.get("FAKE_TOKENS", "16")),
    }


class FakeUpstream:
    def __init__(self) -> None:
        self.plan: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.defaults = _defaults()
        self.record = os.environ.get("FAKE_RECORD", "1") == "1"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        body = await read_body(receive)
        if path.endswith("/chat/completions") and method == "POST":
            await self.chat(scope, body, receive, send)
        elif path == "/v1/models":
            await send_json(
                send, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]}
            )
        elif path == "/_control/plan" and method == "POST":
            self.plan.extend(orjson.loads(body)["plan"])
            await send_json(send, 200, {"queued": len(self.plan)})
        elif path == "/_control/requests":
            await send_json(send, 200, {"requests": self.requests})
        elif path == "/_control/reset" and method == "POST":
            self.plan.clear()
            self.requests.clear()
            await send_json(send, 200, {"ok": True})
        else:
            await send_json(send, 404, {"error": {"message": "not found"}})

    async def chat(self, scope: Scope, raw: bytes, receive: Receive, send: Send) -> None:
        request = orjson.loads(raw)
        step = {**self.defaults, **(self.plan.pop(0) if self.plan else {})}
        headers = dict(scope.get("headers") or [])
        client = scope.get("client")
        entry: dict[str, Any] = {
            "model": request.get("model"),
            "body": request,
            "authorization": headers.get(b"authorization", b"").decode() or None,
            "client_port": client[1] if client else None,
            "started": time.time(),
            "tokens_sent": 0,
            "completed": False,
            "disconnected_at": None,
        }
        if self.record:
            self.requests.append(entry)
        watcher = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await self._answer(request, step, entry, send, watcher)
        except _Disconnected:
            entry["disconnected_at"] = time.time()
        finally:
            if not watcher.done():
                watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher

    async def _answer(
        self,
        request: dict[str, Any],
        step: dict[str, Any],
        entry: dict[str, Any],
        send: Send,
        watcher: asyncio.Future[None],
    ) -> None:
        async def wait(seconds: float) -> None:
            if seconds <= 0:
                if watcher.done():
                    raise _Disconnected
                return
            done, _ = await asyncio.wait({watcher}, timeout=seconds)
            if done:
                raise _Disconnected

        await wait(float(step.get("headers_delay", 0)))
        if "status" in step:
            headers = []
            if "retry_after_ms" in step:
                headers.append((b"retry-after-ms", str(step["retry_after_ms"]).encode()))
            message = f"fake upstream error {step['status']}"
            await send_json(send, int(step["status"]), {"error": {"message": message}}, headers)
            entry["completed"] = True
            return
        model = request.get("model", "fake")
        tokens = int(step["tokens"])
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request["messages"])
        if not request.get("stream"):
            await wait(float(step["ttft"]))
            text = "".join(_token(i) for i in range(tokens))
            await send_json(send, 200, _completion(model, text, prompt_tokens, tokens))
            entry["completed"] = True
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        fixed = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }
        head = orjson.dumps(fixed).decode()[:-1] + ',"choices":['  # fields, then choices
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        null_usage = ',"usage":null' if include_usage else ""

        async def chunk(delta: str, finish: str | None) -> None:
            fin = "null" if finish is None else f'"{finish}"'
            choice = f'{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{fin}}}'
            data = f"{head}{choice}]{null_usage}}}"
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {data}\n\n".encode(),
                    "more_body": True,
                }
            )

        await wait(float(step["ttft"]))
        await chunk('{"role":"assistant","content":""}', None)
        drop_after = step.get("drop_after")
        delay = float(step["token_delay"])
        for i in range(tokens):
            if i:
                await wait(delay)
            if drop_after is not None and i >= int(drop_after):
                raise RuntimeError("fake upstream drops the connection mid-stream")
            if "stall_after" in step and i == int(step["stall_after"]):
                await wait(float(step.get("stall", 0)))
            await chunk(orjson.dumps({"content": _token(i)}).decode(), None)
            entry["tokens_sent"] = i + 1
        finish = "stop"
        if step.get("tool_call") is not None:
            for delta in _tool_call_deltas(step["tool_call"]):
                await chunk(orjson.dumps(delta).decode(), None)
            finish = "tool_calls"
        await chunk("{}", finish)
        if include_usage and step.get("usage", True):
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": prompt_tokens + tokens,
            }
            data = f'{head}],"usage":{orjson.dumps(usage).decode()}}}'
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {data}\n\n".encode(),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
        entry["completed"] = True


def _tool_call_deltas(call: dict[str, Any]) -> list[dict[str, Any]]:
    arguments = str(call["arguments"])
    size = max(1, -(-len(arguments) // 3))
    head = {"index": 0, "id": call["id"], "type": "function"}
    deltas = [{"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]}]
    for i in range(0, len(arguments), size):
        piece = {"index": 0, "function": {"arguments": arguments[i : i + size]}}
        deltas.append({"tool_calls": [piece]})
    return deltas


def _token(i: int) -> str:
    return f"tok{i}" if i == 0 else f" tok{i}"


def _completion(model: str, text: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


app = FakeUpstream()
