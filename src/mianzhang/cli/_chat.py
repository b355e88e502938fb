"""``mianzhang chat "prompt"``: stream a generation to the terminal as it is written.

The prompt is the argument, or stdin when it is piped (``echo hi | mianzhang chat``) or the
argument is ``-``. The command creates a generation (``POST /v1/llm/generations``) and
follows its native event stream (``GET /v1/streams/{id}``) with the resuming client, so a
dropped connection continues where it stopped. ``--resume ID`` follows an existing
generation instead (from its start, or after ``--after EVENT_ID``). Ctrl-C detaches without
stopping the generation: the server stops it only after its grace period without readers
(unless it runs in the background), and the command prints how to resume it.

Text goes to stdout; the stream id, the model (a demo model says so) and the timings go to
stderr. Exit status: 0 complete, 1 failed or refused, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, TextIO

import httpx
import orjson
import typer

from .._errors import ClientError
from ..client import ResetEvent, connect_sync
from ._common import DEFAULT_URL, APIKey, ServerURL, bearer, refusal

__all__ = ["chat", "prompt_from", "run_chat"]


def chat(
    prompt: Annotated[
        str | None,
        typer.Argument(metavar="PROMPT", help="The user message (- or none: read stdin)."),
    ] = None,
    url: ServerURL = DEFAULT_URL,
    api_key: APIKey = None,
    model: Annotated[
        str | None, typer.Option(metavar="NAME", help="Model name (default: the server's).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(metavar="STREAM_ID", help="Follow an existing generation.")
    ] = None,
    after: Annotated[
        str | None, typer.Option(metavar="EVENT_ID", help="With --resume: after this event id.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(metavar="N", help="Stop the answer after N tokens.")
    ] = None,
    background: Annotated[
        bool, typer.Option(help="Keep generating when nobody reads (detach freely).")
    ] = False,
) -> None:
    """Stream a generation to the terminal; resumes by itself after a dropped connection.

    The prompt is PROMPT, or stdin when PROMPT is - or when stdin is piped and there is
    neither PROMPT nor --resume (echo "hello" | mianzhang chat).
    """
    prompt = prompt_from(prompt, resume, sys.stdin)
    if not prompt and resume is None:
        typer.echo("mianzhang chat: give a PROMPT (or pipe it) or --resume STREAM_ID", err=True)
        raise typer.Exit(2)
    code = run_chat(
        prompt,
        url=url,
        model=model,
        resume=resume,
        after=after,
        api_key=api_key,
        max_tokens=max_tokens,
        background=background,
    )
    raise typer.Exit(code)


def prompt_from(prompt: str | None, resume: str | None, stdin: TextIO | None) -> str | None:
    """The prompt: ``prompt``, or all of ``stdin`` when ``prompt`` is ``-``, or when it is
    missing, nothing is resumed and stdin is not a terminal (it was piped or redirected)."""
    reads_stdin = prompt == "-" or (
        prompt is None and resume is None and stdin is not None and not stdin.isatty()
    )
    if reads_stdin and stdin is not None:
        return stdin.read().strip()
    return prompt


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
    if response.status_code >= 400:
        raise ClientError(refusal(response))
    return str(response.json()["stream_id"])


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
    stream_id = resume
    try:
        with httpx.Client(base_url=base, headers=bearer(api_key), timeout=30.0) as client:
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
    """Print the generation's events until its final one; returns the exit status."""
    with connect_sync(
        f"{base}/v1/streams/{stream_id}", client=client, last_event_id=after, max_reconnects=20
    ) as stream:
        for event in stream:
            if isinstance(event, ResetEvent):
                err.write(f"\n[history lost ({event.reason}): output continues from there]\n")
                continue
            status = _show(event.event, orjson.loads(event.data) if event.data else {}, out, err)
            if status is not None:
                return status
    err.write("the stream ended without a final event\n")
    return 1


def _show(kind: str | None, data: dict[str, Any], out: TextIO, err: TextIO) -> int | None:
    """Print one event of the native stream; the exit status once it was the final one."""
    if kind == "start":
        note = " (demo model: not an LLM)" if data.get("demo") else ""
        err.write(f"model {data.get('model')}{note}\n")
    elif kind == "content":
        out.write(data.get("text", ""))
        out.flush()
    elif kind == "complete":
        _end_line(out)
        err.write(_summary(data))
        return 0
    elif kind == "error":
        _end_line(out)
        error = data.get("error") or {}
        err.write(f"[error: {error.get('code')}] {error.get('message')}\n")
        return 1
    return None


def _end_line(out: TextIO) -> None:
    out.write("\n")
    out.flush()


def _summary(data: dict[str, Any]) -> str:
    """The ``complete`` event as one line: finish reason, timings, token counts."""
    timings = data.get("timings") or {}
    usage = data.get("usage") or {}
    return (
        f"[{data.get('finish_reason')}] time to first token "
        f"{timings.get('time_to_first_token_ms')} ms, "
        f"{timings.get('tokens_per_second')} tokens/s, "
        f"{usage.get('prompt_tokens')} prompt + "
        f"{usage.get('completion_tokens')} completion tokens\n"
    )
