"""``mianzhang jobs submit|watch|cancel|list``: background jobs from the terminal.

``submit TYPE`` queues a job (``POST /v1/jobs``, or ``POST /v1/files/{id}/jobs`` after
uploading ``--file PATH``) with its input built from ``--input JSON|@FILE`` and ``--set``
fields; it prints the job id, or with ``--watch`` follows it like ``watch``. ``watch ID``
shows the job's progress (a live bar on a terminal, one line per event otherwise) until it
ends, prints its result readably on stdout and resumes where it stopped after Ctrl-C (see
``_jobs_watch.py``). ``cancel ID`` asks the job to stop wherever it runs. ``list`` shows the
recent jobs as a table.

Exit status: 0 done (for a watched job: it succeeded), 1 failed or refused, 2 bad arguments,
3 the watched job was cancelled, 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TextIO
from urllib.parse import quote

import httpx
import orjson
import typer
from rich.console import Console

from .._errors import ClientError, MianzhangError
from ._common import (
    DEFAULT_URL,
    APIKey,
    ServerURL,
    call,
    http_client,
    refusal,
    write_line,
)
from ._help import Command, Group
from ._jobs_view import Display, jobs_table
from ._jobs_watch import Checkpoint, follow_job

__all__ = ["build_input", "jobs_app", "run_submit", "run_watch"]

JobID = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id (job_...).")]


def _as_json(what: str) -> Any:
    return typer.Option("--json", help=f"Print {what} as JSON instead of text.")


class _BadInput(ValueError):
    """The job input given on the command line is not usable (exit status 2)."""


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _BadInput(f"cannot read {path}: {exc}") from None


def _json(text: str, what: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _BadInput(f"{what} is not JSON ({exc})") from None


def build_input(input_json: str | None, fields: list[str]) -> dict[str, Any]:
    """The job's input: ``--input`` (a JSON object, ``@PATH`` to read it from a file), then
    each ``--set``: ``KEY=VALUE`` (text), ``KEY=@PATH`` (the file's text) or ``KEY:=JSON``."""
    value: Any = {}
    if input_json is not None:
        text = _read(input_json[1:]) if input_json.startswith("@") else input_json
        value = _json(text, "--input")
        if not isinstance(value, dict):
            raise _BadInput("--input must be a JSON object")
    for field in fields:
        key, sep, raw = field.partition("=")
        if not sep or not key.rstrip(":"):
            raise _BadInput(f"--set {field!r}: expected KEY=VALUE")
        if key.endswith(":"):
            value[key[:-1]] = _json(raw, f"--set {key[:-1]}")
        else:
            value[key] = _read(raw[1:]) if raw.startswith("@") else raw
    return dict(value)


def _upload(client: httpx.Client, path: Path) -> str:
    """Store ``path`` on the server (``PUT /v1/files/{name}``); its file id."""
    with path.open("rb") as body:
        stored = call(client, "PUT", f"/v1/files/{quote(path.name, safe='')}", content=body)
    return str(stored["id"])


def _submit(
    client: httpx.Client, job_type: str, job_input: dict[str, Any], file: Path | None
) -> dict[str, Any]:
    body = {"type": job_type, "input": job_input}
    if file is None:
        record: dict[str, Any] = call(client, "POST", "/v1/jobs", json=body)
    else:
        record = call(client, "POST", f"/v1/files/{_upload(client, file)}/jobs", json=body)
    return record


def _follow(
    client: httpx.Client, job_id: str, after: str | None, out: TextIO, err: TextIO, as_json: bool
) -> int:
    """Watch one job; Ctrl-C detaches (exit 130) and says how to resume."""
    checkpoint = Checkpoint(job_id)
    try:
        with Display(err) as display:
            return follow_job(
                client,
                job_id,
                after=after,
                checkpoint=checkpoint,
                display=display,
                out=out,
                as_json=as_json,
            )
    except KeyboardInterrupt:
        err.write(
            f"\ndetached (the job keeps running); resume with: mianzhang jobs watch {job_id}\n"
        )
        return 130


def _failure(command: str, exc: Exception, err: TextIO) -> int:
    err.write(f"mianzhang jobs {command}: {exc}\n")
    return 1


def run_submit(
    job_type: str,
    *,
    url: str,
    api_key: str | None = None,
    input_json: str | None = None,
    fields: list[str] | None = None,
    file: Path | None = None,
    watch: bool = False,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """``jobs submit``; returns the exit status (see the module docstring)."""
    try:
        job_input = build_input(input_json, fields or [])
    except _BadInput as exc:
        err.write(f"mianzhang jobs submit: {exc}\n")
        return 2
    try:
        with http_client(url, api_key) as client:
            record = _submit(client, job_type, job_input, file)
            if watch:
                return _follow(client, record["id"], None, out, err, as_json)
    except KeyboardInterrupt:  # before the job was queued, or while uploading its file
        err.write("\ninterrupted (if the job was queued, `mianzhang jobs list` shows it)\n")
        return 130
    except (MianzhangError, httpx.HTTPError) as exc:
        return _failure("submit", exc, err)
    if as_json:
        write_line(out, record)
    else:
        out.write(f"{record['id']}\n")
        err.write(f"watch it with: mianzhang jobs watch {record['id']}\n")
    return 0


def run_watch(
    job_id: str,
    *,
    url: str,
    api_key: str | None = None,
    after: str | None = None,
    replay: bool = False,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """``jobs watch``; returns the exit status (see the module docstring)."""
    if after is None and not replay:
        after = Checkpoint(job_id).load()
    try:
        with http_client(url, api_key) as client:
            return _follow(client, job_id, after, out, err, as_json)
    except (MianzhangError, httpx.HTTPError) as exc:
        return _failure("watch", exc, err)


def submit(
    job_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Job type, e.g. summarize or checksum.")
    ],
    url: ServerURL = DEFAULT_URL,
    api_key: APIKey = None,
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input", metavar="JSON|@FILE", help="The job's input object, or @PATH to read it."
        ),
    ] = None,
    fields: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Input field KEY=VALUE (text), KEY=@PATH (a file's text) or KEY:=JSON; repeat.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            exists=True,
            dir_okay=False,
            help="Upload PATH and give it to the job as its input file (e.g. for checksum).",
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the job's progress until it ends.")
    ] = False,
    as_json: Annotated[bool, _as_json("the job (with --watch: its result)")] = False,
) -> None:
    """Queue a job; prints its id, or with --watch follows it to the end."""
    raise typer.Exit(
        run_submit(
            job_type,
            url=url,
            api_key=api_key,
            input_json=input_json,
            fields=fields,
            file=file,
            watch=watch,
            as_json=as_json,
        )
    )


def watch(
    job_id: JobID,
    url: ServerURL = DEFAULT_URL,
    api_key: APIKey = None,
    after: Annotated[
        str | None,
        typer.Option(metavar="EVENT_ID", help="Start after this event (default: where you left)."),
    ] = None,
    replay: Annotated[
        bool, typer.Option("--replay", help="Show every event from the start.")
    ] = False,
    as_json: Annotated[bool, _as_json("the result")] = False,
) -> None:
    """Show a job's progress until it ends, then its result; resumes after Ctrl-C."""
    raise typer.Exit(
        run_watch(job_id, url=url, api_key=api_key, after=after, replay=replay, as_json=as_json)
    )


def cancel(job_id: JobID, url: ServerURL = DEFAULT_URL, api_key: APIKey = None) -> None:
    """Ask a job to stop, wherever it runs."""
    try:
        with http_client(url, api_key) as client:
            response = client.post(f"/v1/jobs/{quote(job_id, safe='')}/cancel")
            if response.status_code >= 400:
                raise ClientError(refusal(response))
    except (MianzhangError, httpx.HTTPError) as exc:
        raise typer.Exit(_failure("cancel", exc, sys.stderr)) from None
    state = "cancelled" if response.status_code == 200 else "cancelling: it stops where it runs"
    typer.echo(f"{job_id} {state}")


def list_jobs(
    url: ServerURL = DEFAULT_URL,
    api_key: APIKey = None,
    limit: Annotated[int, typer.Option(metavar="N", min=1, max=1000, help="At most N jobs.")] = 20,
    as_json: Annotated[bool, _as_json("the jobs")] = False,
) -> None:
    """The most recent jobs, newest first."""
    try:
        with http_client(url, api_key) as client:
            jobs = call(client, "GET", "/v1/jobs", params={"limit": limit})["jobs"]
    except (MianzhangError, httpx.HTTPError) as exc:
        raise typer.Exit(_failure("list", exc, sys.stderr)) from None
    if as_json:
        write_line(sys.stdout, jobs)
    elif not jobs:
        typer.echo("no jobs", err=True)
    else:
        console = Console()
        if not console.is_terminal:  # a pipe: whole rows, for grep and awk
            console = Console(width=1000)
        console.print(jobs_table(jobs))


jobs_app = typer.Typer(
    cls=Group,
    name="jobs",
    help="Background jobs: submit, watch (with a progress bar), cancel, list.",
    no_args_is_help=True,
)
jobs_app.command(cls=Command)(submit)
jobs_app.command(cls=Command)(watch)
jobs_app.command(cls=Command)(cancel)
jobs_app.command("list", cls=Command)(list_jobs)
