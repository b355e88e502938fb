"""Help screens that name values by their meaning, never by their Python type.

Typer prints a type tag beside each parameter (``<str>``, ``<int>``, ``<bool>``; ``TEXT``,
``INTEGER`` in older releases). Every option here has a ``metavar`` that says what the value
is (``URL``, ``N``, ``JOB_ID``); these command classes drop the tags that a ``metavar``
cannot replace: on positional arguments (whose metavar is already their name), on flags
(which take no value) and on ``--help``. Parsing is untouched.

A command's text is its docstring, wrapped at 100 columns in the source: the help screen
shows each paragraph as one, rewrapped to the terminal (Typer keeps the source's line breaks,
which broke every line in two on an 80-column terminal).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, cast

from typer.core import TyperArgument, TyperCommand, TyperGroup

__all__ = ["Command", "Group"]


class _Argument(TyperArgument):
    """A positional argument shown by its metavar alone."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _untag(params: Iterable[Any]) -> None:
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument  # same fields; only how help shows it differs
        elif getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # a flag takes no value: nothing to name


def _paragraphs(text: str) -> str:
    """``text`` with each paragraph (blank-line separated) on one line."""
    blocks = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in block.splitlines()) for block in blocks)


class _Untagged:
    """Mixed into a Typer command class: its parameters and its ``--help`` lose their type
    tags (see the module docstring)."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cast(Any, super()).__init__(*args, **kwargs)
        _untag(self.params)
        this = cast(Any, self)
        if this.help:
            this.help = _paragraphs(this.help)

    def get_help_option(self, ctx: Any) -> Any:
        option = cast(Any, super()).get_help_option(ctx)
        if option is not None:
            _untag([option])
        return option


class Command(_Untagged, TyperCommand):
    """A command whose help has no type tags (see the module docstring)."""


class Group(_Untagged, TyperGroup):
    """A command group whose help has no type tags (see the module docstring)."""
