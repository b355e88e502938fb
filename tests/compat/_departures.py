"""Where mianzhang's drop-ins differ from the libraries they replace, on purpose.

Each entry names the section (its anchor) of docs/migrating-from-sse-starlette.md that says
what differs and why; tests that see a difference ask :func:`expect` for it by name, so every
difference a test observes is one the docs list (``test_departures.py`` checks the anchors).
"""

from __future__ import annotations

from typing import TypeVar

from tests._support.procs import ROOT

DOCS = ROOT / "docs" / "migrating-from-sse-starlette.md"

DEPARTURES = {
    "headers": "headers",
    "heartbeat": "heartbeat",
    "errors": "errors-after-the-headers",
    "shutdown": "shutdown",
    "send-timeout": "send-timeout",
    "event-fields": "event-fields",
    "fastapi-items": "fastapisse-items-and-openapi",
}

T = TypeVar("T")


def expect(lib: str, *, peer: T, ours: T, departure: str) -> T:
    """What ``lib`` (``"real"`` or ``"compat"``) must show: ``peer`` for the library itself,
    ``ours`` for the drop-in, a difference documented under ``DEPARTURES[departure]``."""
    assert departure in DEPARTURES, departure
    return peer if lib == "real" else ours


def anchors() -> set[str]:
    """The anchors of the guide's headings, as GitHub renders them."""
    found = set()
    in_code = False
    for line in DOCS.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif line.startswith("#") and not in_code:
            title = line.lstrip("#").strip().lower()
            found.add("".join(c for c in title if c.isalnum() or c in " -_").replace(" ", "-"))
    return found


__all__ = ["DEPARTURES", "DOCS", "anchors", "expect"]
