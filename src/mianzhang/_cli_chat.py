"""``mianzhang chat "prompt"``: stream a generation to the terminal as it is written.

The command creates a generation (``POST /v1/llm/generations``) and follows its native event
stream (``GET /v1/streams/{id}``) with the resuming client, so a dropped connection continues
where it stopped. ``--resume ID`` follows an existing generation instead (from its start, or
after ``--after EVENT_ID``). Ctrl-C detaches without stopping the generation: the server stops
it only after its grace period without readers (unless it runs in the background), and the
command prints how to resume it.

Text goes to stdout; the stream id, the model (a demo model says so) and the timings go to
stderr. Exit status: 0 complete, 1 failed or refused, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import httpx
import orjson

from ._errors import ClientError
from .client import ResetEvent, connect_sync

__all__ = ["run_chat"]


def _headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def _create(
    client: httpx.Client, prompt: str, model: str | None, max_tokens: int | None, background: bool
) -> str:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}]}
    if model:
        body["model"] = model
    if max_tokens:
        body["max_tokens"] = max_tokens
    if background:
        body["background"] = True
    response = client.post("/v1/llm/generations", json=body)
    payload = response.json()
    if response.status_code >= 400:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        raise ClientError(f"HTTP {response.status_code}: {error.get('message', payload)}")
    return str(payload["stream_id"])


def run_chat(
    prompt: str | None,
    *,
    url: str,
    model: str | None = None,
    resume: str | None = None,
    after: str | None = None,
    api_key: str | None = None,
    max_tokens: int | None = None,
    background: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    base = url.rstrip("/")
    headers = _headers(api_key)
    stream_id = resume
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30.0) as client:
            if stream_id is None:
                if not prompt:
                    err.write("mianzhang chat: give a prompt, or --resume ID\n")
                    return 1
                stream_id = _create(client, prompt, model, max_tokens, background)
            err.write(f"stream {stream_id}\n")
            return _follow(client, base, stream_id, after, out, err)
    except KeyboardInterrupt:
        out.write("\n")
        if stream_id:
            err.write(f"detached; resume with: mianzhang chat --resume {stream_id}\n")
        return 130
    except (ClientError, httpx.HTTPError) as exc:
        err.write(f"mianzhang chat: {exc}\n")
        return 1


def _follow(
    client: httpx.Client, base: str, stream_id: str, after: str | None, out: TextIO, err: TextIO
) -> int:
    with connect_sync(
        f"{base}/v1/streams/{stream_id}", client=client, last_event_id=after, max_reconnects=20
    ) as stream:
        for event in stream:
            if isinstance(event, ResetEvent):
                err.write(f"\n[history lost ({event.reason}): output continues from there]\n")
                continue
            data = orjson.loads(event.data) if event.data else {}
            if event.event == "start":
                note = " (demo model: not an LLM)" if data.get("demo") else ""
                err.write(f"model {data.get('model')}{note}\n")
            elif event.event == "content":
                out.write(data.get("text", ""))
                out.flush()
            elif event.event == "complete":
                out.write("\n")
                out.flush()
                timings = data.get("timings") or {}
                usage = data.get("usage") or {}
                err.write(
                    f"[{data.get('finish_reason')}] time to first token "
                    f"{timings.get('time_to_first_token_ms')} ms, "
                    f"{timings.get('tokens_per_second')} tokens/s, "
                    f"{usage.get('prompt_tokens')} prompt + "
                    f"{usage.get('completion_tokens')} completion tokens\n"
                )
                return 0
            elif event.event == "error":
                out.write("\n")
                out.flush()
                error = data.get("error") or {}
                err.write(f"[error: {error.get('code')}] {error.get('message')}\n")
                return 1
    err.write("the stream ended without a final event\n")
    return 1
