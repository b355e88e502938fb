"""Following a job's event stream to its end, across dropped connections and across runs.

``GET /v1/jobs/{id}/events`` is read with the resuming client (a dropped connection
continues after the last event, with ``Last-Event-ID``). Across runs the position is a
:class:`Checkpoint`: after each event is shown its id is saved in
``$XDG_CACHE_HOME/mianzhang/jobs/{job_id}`` (``~/.cache/...`` by default), so
``mianzhang jobs watch ID`` after Ctrl-C continues after the last event shown, never showing
one twice. Showing an event and saving its id happen with SIGINT held back, so Ctrl-C can
not fall between them. The checkpoint is removed once the final event was shown; watching
again then replays the job from its start. ``--after EVENT_ID`` starts after an explicit id
and ``--replay`` from the start, ignoring the checkpoint.

Exit status: 0 the job succeeded, 1 it failed (or the server refused / could not be
reached), 3 it was cancelled, 130 interrupted (the job keeps running: watching never
cancels it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

import httpx
import orjson

from .._errors import ResponseRejected
from ..client import ResetEvent, connect_sync
from ._common import call, write_line
from ._jobs_view import Display, result_text

__all__ = ["EXIT_CANCELLED", "EXIT_FAILED", "Checkpoint", "follow_job", "interrupts_deferred"]

EXIT_FAILED: Final = 1
EXIT_CANCELLED: Final = 3

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class Checkpoint:
    """The id of the last event shown for one job, in a small file (see the module doc).

    Writes are atomic (a temporary file renamed over the old one), so a process killed
    mid-write leaves the previous id, never a torn one. A job id that is not a plain name
    gets no file (``load`` gives ``None``, ``save`` does nothing).
    """

    def __init__(self, job_id: str, directory: Path | None = None) -> None:
        base = directory if directory is not None else self.default_directory()
        self.path = base / job_id if _SAFE_ID.match(job_id) else None

    @staticmethod
    def default_directory() -> Path:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(cache) / "mianzhang" / "jobs"

    def load(self) -> str | None:
        if self.path is None:
            return None
        try:
            saved = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return saved or None

    def save(self, event_id: str) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_text(event_id, encoding="utf-8")
        temporary.replace(self.path)

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT back inside the block; a Ctrl-C received there is raised as
    :class:`KeyboardInterrupt` when it ends. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def follow_job(
    client: httpx.Client,
    job_id: str,
    *,
    after: str | None,
    checkpoint: Checkpoint,
    display: Display,
    out: TextIO,
    as_json: bool = False,
) -> int:
    """Show the job's events after ``after`` until its final one, then its outcome (result
    on ``out``); returns the exit status (see the module docstring)."""
    record = call(client, "GET", f"/v1/jobs/{job_id}")
    display.begin(record, resumed_after=after)
    try:
        final = _events(client, job_id, after, checkpoint, display)
    except ResponseRejected as exc:
        if exc.status_code != 404:
            raise
        display.say("(the job's events are no longer kept)")
        final = None
    if final is None:  # nothing (more) to read: the record knows how it ended
        final = _final_of(call(client, "GET", f"/v1/jobs/{job_id}"))
    checkpoint.clear()
    return _outcome(final, display, out, as_json)


def _events(
    client: httpx.Client,
    job_id: str,
    after: str | None,
    checkpoint: Checkpoint,
    display: Display,
) -> tuple[str, dict[str, Any]] | None:
    """Show events until the final one, which is returned (``None``: the stream ended)."""
    url = f"/v1/jobs/{job_id}/events"
    with connect_sync(
        client.base_url.join(url), client=client, last_event_id=after, max_reconnects=20
    ) as stream:
        for event in stream:
            if isinstance(event, ResetEvent):
                display.say(f"[history lost ({event.reason}): continuing from there]")
                continue
            kind = event.event or "message"
            data = orjson.loads(event.data) if event.data else {}
            final = (kind, data) if _is_final(kind, data) else None
            with interrupts_deferred():
                if final is None:
                    display.show(event.id, kind, data)
                if event.id:
                    checkpoint.save(event.id)
            if final is not None:
                return final
    return None


def _is_final(kind: str, data: dict[str, Any]) -> bool:
    return kind in ("complete", "error") or (kind == "state" and data.get("state") == "cancelled")


def _final_of(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The final event a finished job's record stands for."""
    state = record.get("state")
    if state == "succeeded":
        return "complete", {"result": record.get("result")}
    if state == "failed":
        return "error", dict(record.get("error") or {})
    if state == "cancelled":
        return "state", {"state": "cancelled"}
    message = f"the event stream ended while the job was {state}"
    return "error", {"type": "StreamEnded", "message": message}


def _outcome(
    final: tuple[str, dict[str, Any]], display: Display, out: TextIO, as_json: bool
) -> int:
    """Report how the job ended (its result on ``out``); the exit status."""
    kind, data = final
    if kind == "complete":
        display.say("succeeded")
        result = data.get("result")
        if as_json:
            write_line(out, result)
        else:
            out.write(result_text(result))
            out.flush()
        return 0
    if kind == "error":
        display.say(f"failed: {data.get('type')}: {data.get('message')}")
        return EXIT_FAILED
    display.say("cancelled")
    return EXIT_CANCELLED
