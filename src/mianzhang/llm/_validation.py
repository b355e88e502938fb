"""Where a pydantic validation error is, written as a JSON path a client recognises. No I/O."""

from __future__ import annotations

from typing import Final

from pydantic import ValidationError

__all__ = ["first_problem"]

# the names pydantic adds to a location for the member of a union it tried
_TYPE_TAGS: Final = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def first_problem(where: str, exc: ValidationError) -> tuple[str, str]:
    """``(place, message)`` of the first error of ``exc``, below ``where``: the place reads
    ``messages[2].content`` (indexes in brackets, union member tags left out)."""
    first = exc.errors(include_url=False)[0]
    place = where
    for part in first["loc"]:
        if isinstance(part, int):
            place += f"[{part}]"
        elif part.lower() not in _TYPE_TAGS and "[" not in part:
            place += f".{part}"
    return place.lstrip(".") or "body", first["msg"]
