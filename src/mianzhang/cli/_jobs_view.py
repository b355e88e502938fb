"""How jobs look in a terminal: progress, results and the list, rendered for people.

* :class:`Display` shows a job's events on stderr: on a terminal a live progress bar (rich),
  with state changes and partial results printed above it; otherwise (a pipe, a log file,
  CI) one line per event, ``[EVENT_ID] progress  42% message``, so what was shown can be
  read back and an id can be resumed after.
* :func:`result_text` renders a job's result for stdout: text as text, an object as aligned
  ``field: value`` lines (prose that is long or has several lines below its field, indented;
  a digest or an id stays on its line), nested objects inline as ``key=value``; never raw
  JSON (``--json`` asks for that).
* :func:`jobs_table` is ``mianzhang jobs list`` as a rich table.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

__all__ = ["Display", "inline", "jobs_table", "result_text"]

_LONG_TEXT = 60  # characters: prose longer than this goes below its field (a digest stays)


def inline(value: Any) -> str:
    """A value on one line: text as is, ``key=value`` pairs, comma-separated lists."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, dict):
        return " ".join(f"{key}={_quoted(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(inline(item) for item in value)
    return str(value)


def _quoted(value: Any) -> str:
    text = inline(value)
    return f'"{text}"' if isinstance(value, str) and (" " in text or not text) else text


def result_text(result: Any) -> str:
    """A job's result for people (see the module docstring); ends with a newline."""
    if isinstance(result, str):
        return result if result.endswith("\n") else result + "\n"
    if isinstance(result, list):
        return "".join(f"- {inline(item)}\n" for item in result)
    if not isinstance(result, dict):
        return inline(result) + "\n"
    width = max((len(str(key)) for key in result), default=0)
    lines: list[str] = []
    for key, value in result.items():
        if isinstance(value, str) and ("\n" in value or (len(value) > _LONG_TEXT and " " in value)):
            lines.append(f"{key}:")
            lines.extend(f"  {line}" for line in value.splitlines())
        else:
            lines.append(f"{str(key) + ':':<{width + 1}} {inline(value)}")
    return "".join(line + "\n" for line in lines)


def _percent(data: dict[str, Any]) -> float:
    value = data.get("percent")
    return float(value) if isinstance(value, int | float) else 0.0


def _note(kind: str, data: dict[str, Any]) -> str:
    """An event other than progress as a short line (``state running (attempt 2)``)."""
    if kind == "state":
        attempt = data.get("attempt")
        again = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
        return f"state {data.get('state')}{again}"
    if kind == "partial":
        return f"partial {inline(data.get('data'))}"
    if kind == "error":
        return f"error {data.get('type')}: {data.get('message')}"
    if kind == "complete":
        return "complete"
    return f"{kind} {inline(data)}"


class Display:
    """A job's events on ``err``: a live bar on a terminal, else one line per event.

    Use it as a context manager: the bar runs inside it and is stopped (left on screen at
    its last value) when the block ends, whatever ended it.
    """

    def __init__(self, err: TextIO, *, live: bool | None = None) -> None:
        self.console = Console(file=err, highlight=False)
        self.live = self.console.is_terminal if live is None else live
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Display:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[message]}"),
                console=self.console,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def begin(self, record: dict[str, Any], *, resumed_after: str | None) -> None:
        """Announce the job; when resuming, start the bar where the job is now."""
        description = f"{record.get('type')} {record.get('id')}"
        start = round(record.get("progress") or 0) if resumed_after else 0
        if self._progress is not None:
            self._task = self._progress.add_task(
                escape(description), total=100, completed=start, message=""
            )
        else:
            self.say(f"job {description}: {record.get('state')}")
        if resumed_after:
            self.say(f"resuming after event {resumed_after}")

    def show(self, event_id: str | None, kind: str, data: dict[str, Any]) -> None:
        """One event of the job's stream."""
        if kind == "progress":
            self._advance(event_id, data)
        elif self._progress is not None:
            self._progress.console.print(escape(_note(kind, data)))
        else:
            self.say(f"[{event_id}] {_note(kind, data)}")

    def _advance(self, event_id: str | None, data: dict[str, Any]) -> None:
        message = str(data.get("message") or "")
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=_percent(data), message=escape(message), refresh=True
            )
        else:
            self.say(f"[{event_id}] progress {_percent(data):3.0f}% {message}".rstrip())

    def say(self, text: str) -> None:
        """A line for people (above the bar when it runs)."""
        if self._progress is not None:
            self._progress.console.print(escape(text))
        else:
            self.console.file.write(text + "\n")
            self.console.file.flush()


def _when(created: Any) -> str:
    if not isinstance(created, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    """``mianzhang jobs list``: newest first, one row per job."""
    table = Table(box=None)
    for name in ("ID", "TYPE", "STATE", "PROGRESS", "CREATED"):
        table.add_column(name, no_wrap=True)
    table.add_column("MESSAGE", overflow="ellipsis", no_wrap=True)
    for job in jobs:
        progress = job.get("progress")
        table.add_row(
            str(job.get("id")),
            escape(str(job.get("type"))),
            str(job.get("state")),
            f"{progress:.0f}%" if isinstance(progress, int | float) else "-",
            _when(job.get("created")),
            escape(str(job.get("message") or (job.get("error") or {}).get("message") or "")),
        )
    return table
