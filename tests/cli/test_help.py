"""Every command's help names its values by meaning (no ``<str>``/``TEXT`` type tags), every
option says what it does, and ``--version`` prints the package version."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mianzhang import __version__
from mianzhang.cli import app

COMMANDS = [
    [],
    ["serve"],
    ["run"],
    ["chat"],
    ["publish"],
    ["subscribe"],
    ["tail"],
    ["worker"],
    ["jobs"],
    ["jobs", "submit"],
    ["jobs", "watch"],
    ["jobs", "cancel"],
    ["jobs", "list"],
]
TYPE_TAG = re.compile(
    r"<(str|int|float|bool|path|Path|list\[str\])>|\b(TEXT|INTEGER|BOOLEAN|FLOAT)\b"
)
runner = CliRunner()


def leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Every command under ``command`` (itself included), by its path."""
    found = [(" ".join(path) or "mianzhang", command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += leaves(sub, (*path, name))
    return found


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mianzhang")
def test_help_has_no_type_tags(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert not TYPE_TAG.search(result.output), result.output


def test_every_command_is_covered_and_every_option_is_explained() -> None:
    commands = leaves(typer.main.get_command(app))
    assert {name for name, _ in commands} == {" ".join(c) or "mianzhang" for c in COMMANDS}
    for name, command in commands:
        assert command.help, name
        for param in command.params:
            assert getattr(param, "help", None), (name, param.name)
            if param.param_type_name == "option" and not getattr(param, "is_flag", False):
                assert param.metavar, (name, param.name)


def test_url_and_api_key_mean_the_same_everywhere() -> None:
    for name, command in leaves(typer.main.get_command(app)):
        options = {param.name: param for param in command.params}
        if "url" in options:
            assert options["url"].envvar == "MIANZHANG_URL", name
            assert options["url"].default == "http://127.0.0.1:8000", name
        if "api_key" in options:
            assert options["api_key"].envvar == "MIANZHANG_API_KEY", name


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"mianzhang {__version__}\n"


def test_each_paragraph_of_a_commands_text_is_rewrapped_as_one() -> None:
    """The docstring's source line breaks are not kept: on a wide terminal a paragraph is
    one line, and none of its lines ends early."""
    result = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert any(
        line.startswith("Reads the same MIANZHANG_* settings")
        and line.endswith("Exit status 2 on bad settings.")
        for line in lines
    ), result.output
