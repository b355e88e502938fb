"""Shared pieces of the web UI tests (``tests/e2e/test_web_*.py``): the two viewports, a
Chromium page sized to one of them that records console errors, axe-core, screenshots and the
horizontal-scroll check."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Page

from tests._support.browser import chromium_page
from tests._support.node import node_modules
from tests._support.procs import ARTIFACTS

VIEWPORTS = {"wide": (1280, 800), "phone": (390, 844)}
SCREENSHOTS = ARTIFACTS / "screenshots"


@contextlib.contextmanager
def sized_page(viewport: str, *, dark: bool = False) -> Iterator[Page]:
    """A fresh Chromium page at ``VIEWPORTS[viewport]``; ``page.console_errors`` lists the
    console errors and uncaught exceptions, ``page.failed`` the ``(status, path)`` of every
    response with a status >= 400."""
    width, height = VIEWPORTS[viewport]
    with chromium_page() as page:
        failed: list[tuple[int, str]] = []
        page.on(
            "response",
            lambda r: failed.append((r.status, urlsplit(r.url).path)) if r.status >= 400 else None,
        )
        page.failed = failed  # type: ignore[attr-defined]
        page.set_viewport_size({"width": width, "height": height})
        if dark:
            page.emulate_media(color_scheme="dark")
        yield page


def page_errors(page: Page, *, allowed: tuple[str, ...] = ()) -> list[str]:
    """Console errors and uncaught exceptions, and the failed responses except those of the
    ``allowed`` paths (a page probing an optional feature, e.g. ``/v1/files``)."""
    errors: list[str] = page.console_errors  # type: ignore[attr-defined]
    failed: list[tuple[int, str]] = page.failed  # type: ignore[attr-defined]
    found = [e for e in errors if not e.startswith("Failed to load resource")]
    found += [f"HTTP {status} {path}" for status, path in failed if path not in allowed]
    return found


def open_page(page: Page, url: str, page_id: str) -> None:
    page.goto(url)
    page.wait_for_selector(f"body[data-ready='1'][data-page='{page_id}']")


def axe_path() -> Path:
    return node_modules() / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(axe_path()))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def assert_accessible(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], json.dumps(violations, indent=1)


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it does not)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def screenshot(page: Page, name: str, viewport: str) -> Path:
    """The whole page as ``test-artifacts/screenshots/{name}-{viewport}.png``. A full-page
    capture would draw the chat's sticky composer in the middle of the page (where the viewport
    ended): it is put back in the flow for the capture only."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{viewport}.png"
    page.evaluate(
        """() => { const s = document.createElement('style'); s.id = '__capture';
                   s.textContent = '.composer { position: static !important; }';
                   document.head.append(s); }"""
    )
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.evaluate("() => document.getElementById('__capture')?.remove()")
    return path
