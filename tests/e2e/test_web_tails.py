"""The tails page in Chromium against a real ``mianzhang serve`` with an allow-listed file: the
last lines, then lines as they are appended; a reload shows the same lines and continues after
the last one (none twice, none lost); a truncation shows a reset marker; without configured
files the page says how to configure them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests._support.procs import ServerProcess, serve_process

from ._tails import log_with, tails_env
from ._web import VIEWPORTS, open_page, page_errors, screenshot, sized_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return log_with(tmp_path, [f"line {i}" for i in range(30)])


@pytest.fixture
def server(log_file: Path) -> Iterator[ServerProcess]:
    with serve_process(env=tails_env(log_file)) as srv:
        yield srv


def append(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.write("".join(f"{line}\n" for line in lines))


def shown(page: Page) -> list[str]:
    texts: list[str] = page.get_by_test_id("tails-line").all_inner_texts()
    return texts


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_lines_follow_and_a_reload_resumes_after_the_last_one(
    server: ServerProcess, log_file: Path, viewport: str
) -> None:
    with sized_page(viewport) as page:
        open_page(page, f"{server.url}/#/tails", "tails")
        page.wait_for_selector("#page[data-ready='1']")
        expect(page.get_by_test_id("tails-name")).to_have_value("app")
        page.get_by_test_id("tails-last-lines").fill("5")
        page.get_by_test_id("tails-follow").click()
        lines = page.get_by_test_id("tails-line")
        expect(lines).to_have_text([f"line {i}" for i in range(25, 30)], timeout=10_000)
        expect(page.get_by_test_id("tails-status")).to_contain_text("following app")
        append(log_file, "line 30", "line 31")
        expect(lines).to_have_count(7, timeout=10_000)
        assert page.url.endswith("#/tails/app")

        page.reload()
        page.wait_for_selector("#page[data-ready='1']")
        # the lines shown before, at once, then only what came after the last of them
        expect(page.get_by_test_id("tails-status")).to_contain_text("after", timeout=10_000)
        append(log_file, "line 32")
        expect(lines).to_have_count(8, timeout=10_000)
        assert shown(page) == [f"line {i}" for i in range(25, 33)]

        # truncation: a reset marker, then the file's new lines from its start
        log_file.write_text("fresh 0\n")
        marker = page.get_by_test_id("tails-marker")
        expect(marker).to_have_count(1, timeout=10_000)
        expect(marker).to_contain_text("rotated or truncated")
        expect(lines.last).to_have_text("fresh 0", timeout=10_000)
        screenshot(page, "tails-following", viewport)
        assert page_errors(page) == []


def test_without_configured_files_the_page_says_how_to_configure_them() -> None:
    with (
        serve_process(env={"MIANZHANG_FILES__ENABLED": "false"}) as server,
        sized_page("wide") as page,
    ):
        open_page(page, f"{server.url}/#/tails", "tails")
        page.wait_for_selector("#page[data-ready='1']")
        empty = page.get_by_test_id("tails-empty")
        expect(empty).to_be_visible()
        expect(empty).to_contain_text("MIANZHANG_TAILS__FILES")
        expect(page.get_by_test_id("tails-form")).to_be_hidden()
        assert page_errors(page) == []
