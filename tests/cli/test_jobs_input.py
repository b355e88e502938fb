"""``mianzhang jobs submit``'s input options become the JSON object the jobs API takes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mianzhang.cli._jobs import build_input, run_submit


def test_input_fields_and_files(tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("a long document\n", encoding="utf-8")
    spec = tmp_path / "input.json"
    spec.write_text('{"chunk_chars": 500, "model": "demo"}', encoding="utf-8")
    assert build_input(None, []) == {}
    assert build_input('{"text": "hi", "n": [1, 2]}', []) == {"text": "hi", "n": [1, 2]}
    assert build_input(f"@{spec}", [f"text=@{doc}", "chunk_chars:=300", "model=x=y"]) == {
        "chunk_chars": 300,
        "model": "x=y",
        "text": "a long document\n",
    }
    assert build_input(None, ["n=300", "flag:=true", "empty="]) == {
        "n": "300",
        "flag": True,
        "empty": "",
    }


@pytest.mark.parametrize(
    ("input_json", "fields", "message"),
    [
        ("{nope", [], "--input is not JSON"),
        ("[1, 2]", [], "--input must be a JSON object"),
        ("@/nonexistent/input.json", [], "cannot read /nonexistent/input.json"),
        (None, ["novalue"], "expected KEY=VALUE"),
        (None, ["=x"], "expected KEY=VALUE"),
        (None, [":=1"], "expected KEY=VALUE"),
        (None, ["n:=nope"], "--set n is not JSON"),
        (None, ["text=@/nonexistent/doc.txt"], "cannot read /nonexistent/doc.txt"),
    ],
)
def test_bad_input_exits_2_before_any_request(
    input_json: str | None, fields: list[str], message: str
) -> None:
    err = io.StringIO()
    # the URL is unroutable: a request would fail with status 1, not 2
    url = "http://127.0.0.1:9"
    assert run_submit("summarize", url=url, input_json=input_json, fields=fields, err=err) == 2
    assert message in err.getvalue()
