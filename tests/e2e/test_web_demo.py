"""The first quick-start command's promise: the web UI at / shows a live stream in Chromium,
and a reload resumes after the last event id (the browser's own EventSource)."""

from __future__ import annotations

import pytest

from tests._support.browser import chromium_page
from tests._support.procs import serve_process

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_the_home_page_streams_live_ticks_and_lists_every_page() -> None:
    with serve_process(env={"MIANZHANG_FILES__ENABLED": "false"}) as srv, chromium_page() as page:
        page.goto(srv.url + "/")
        page.wait_for_selector("body[data-ready='1']")
        nav = page.locator("#nav a").all_inner_texts()
        assert nav[:2] == ["Live demo", "Chat"]
        assert {"Notifications", "Jobs", "Files"} <= set(nav)
        page.wait_for_function(
            "Number(document.getElementById('demo-count').dataset.n || 0) >= 3", timeout=15_000
        )
        assert page.locator("#demo-status").get_attribute("data-state") == "open"
        ticks = page.locator("#demo-ticks div").all_inner_texts()
        assert ticks[0].startswith("#") and len(ticks) >= 3
        shown = [int(t.split()[0][1:]) for t in ticks]
        assert shown == sorted(shown, reverse=True)  # newest first, no gaps
        assert shown == list(range(shown[0], shown[0] - len(shown), -1))
        assert page.console_errors == []  # type: ignore[attr-defined]
