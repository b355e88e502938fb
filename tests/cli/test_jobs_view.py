"""How jobs are shown: results as fields and text (never raw JSON), progress as lines in a
pipe and as a bar on a terminal."""

from __future__ import annotations

import io

from mianzhang.cli._jobs_view import Display, inline, jobs_table, result_text

DIGEST = "c141d2b3dc45071a03e28382aa0fc56142b7ba38a63401381f51cb81b12a0563"


def test_a_result_object_is_aligned_fields() -> None:
    result = {
        "name": "f.txt",
        "size": 600000,
        "digest": DIGEST,
        "matches_upload": True,
        "previous": None,
        "usage": {"prompt_tokens": 716, "completion_tokens": 100},
        "tags": ["a", "b c"],
    }
    assert result_text(result) == (
        "name:           f.txt\n"
        "size:           600000\n"
        f"digest:         {DIGEST}\n"
        "matches_upload: yes\n"
        "previous:       -\n"
        "usage:          prompt_tokens=716 completion_tokens=100\n"
        "tags:           a, b c\n"
    )


def test_prose_goes_below_its_field_and_text_stays_text() -> None:
    summary = "This document says many things about streams. " * 3
    assert result_text({"summary": summary.strip(), "chunks": 4}) == (
        f"summary:\n  {summary.strip()}\nchunks:  4\n"
    )
    assert result_text({"poem": "one\ntwo"}) == "poem:\n  one\n  two\n"
    assert result_text("plain text") == "plain text\n"
    assert result_text("ends with a newline\n") == "ends with a newline\n"
    assert result_text([1, {"a": 1}]) == "- 1\n- a=1\n"
    assert result_text(42) == "42\n"
    assert inline({"summary": "two words", "empty": ""}) == 'summary="two words" empty=""'


def test_in_a_pipe_each_event_is_one_line_with_its_id() -> None:
    err = io.StringIO()
    with Display(err) as display:
        assert not display.live
        display.begin({"id": "job_1", "type": "checksum", "state": "queued"}, resumed_after=None)
        display.show("e-1", "state", {"state": "running", "attempt": 1})
        display.show("e-2", "progress", {"percent": 41.6, "message": "some bytes"})
        display.show("e-3", "partial", {"data": {"stage": "chunk", "index": 1}})
        display.show("e-4", "state", {"state": "running", "attempt": 2})
        display.show("e-5", "progress", {"percent": 100})
    assert err.getvalue().splitlines() == [
        "job checksum job_1: queued",
        "[e-1] state running",
        "[e-2] progress  42% some bytes",
        "[e-3] partial stage=chunk index=1",
        "[e-4] state running (attempt 2)",
        "[e-5] progress 100%",
    ]


def test_a_resumed_watch_says_where_it_resumes() -> None:
    err = io.StringIO()
    with Display(err) as display:
        display.begin({"id": "job_1", "type": "t", "state": "running"}, resumed_after="e-7")
    assert err.getvalue().splitlines()[-1] == "resuming after event e-7"


def test_on_a_terminal_a_bar_runs_to_its_last_value() -> None:
    err = io.StringIO()
    with Display(err, live=True) as display:
        display.begin({"id": "job_1", "type": "summarize", "progress": 55.0}, resumed_after="e-9")
        display.show("e-10", "partial", {"data": {"index": 2}})
        display.show("e-11", "progress", {"percent": 100.0, "message": "combined"})
    shown = err.getvalue()
    assert "summarize job_1" in shown and "100%" in shown and "combined" in shown
    assert "partial index=2" in shown and "resuming after event e-9" in shown
    assert "[e-11]" not in shown  # ids are for logs, not for the bar


def test_the_jobs_table() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=140).print(
        jobs_table(
            [
                {
                    "id": "job_a",
                    "type": "checksum",
                    "state": "running",
                    "progress": 41.6,
                    "created": 0,
                    "message": "reading",
                },
                {
                    "id": "job_b",
                    "type": "summarize",
                    "state": "failed",
                    "progress": None,
                    "created": None,
                    "error": {"message": "upstream down"},
                },
            ]
        )
    )
    rows = out.getvalue().splitlines()
    assert rows[0].split() == ["ID", "TYPE", "STATE", "PROGRESS", "CREATED", "MESSAGE"]
    assert rows[1].split()[:4] == ["job_a", "checksum", "running", "42%"]
    assert rows[2].split() == ["job_b", "summarize", "failed", "-", "-", "upstream", "down"]
