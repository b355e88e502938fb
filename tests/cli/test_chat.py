"""Where ``mianzhang chat`` takes its prompt from (the command against a server:
``tests/e2e/test_llm_cli.py``)."""

from __future__ import annotations

import io

from mianzhang.cli._chat import prompt_from


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_piped_stdin_is_the_prompt_when_none_is_given() -> None:
    assert prompt_from(None, None, io.StringIO("  three short words\n")) == "three short words"
    assert prompt_from("-", None, io.StringIO("from stdin")) == "from stdin"
    assert prompt_from("-", "gen-1", io.StringIO("from stdin")) == "from stdin"


def test_an_argument_a_resume_or_a_terminal_leave_stdin_alone() -> None:
    piped = io.StringIO("unread")
    assert prompt_from("the argument", None, piped) == "the argument"
    assert prompt_from(None, "gen-1", piped) is None
    assert piped.read() == "unread"
    assert prompt_from(None, None, Terminal("typed")) is None
    assert prompt_from(None, None, None) is None
