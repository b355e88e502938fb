"""Every documented departure the compat tests rely on has its section in the migration
guide, and the guide pins the versions the drop-ins were matched against."""

from __future__ import annotations

from importlib.metadata import version

from tests.compat._departures import DEPARTURES, DOCS, anchors


def test_every_departure_names_a_section_of_the_guide() -> None:
    assert set(DEPARTURES.values()) <= anchors(), set(DEPARTURES.values()) - anchors()


def test_the_guide_pins_the_matched_versions() -> None:
    text = DOCS.read_text()
    assert f"sse-starlette {version('sse-starlette')}" in text
    assert f"mcp {version('mcp')}" in text
    assert "sse-starlette 3.7.1" in text and "mcp 2.3.0" in text
