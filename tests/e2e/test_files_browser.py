"""The files page in Chromium: a resumable upload with a live progress bar, then the download
link serves the same bytes. One PATCH is cut by the network (Playwright aborts it): the page
asks the server for the offset and finishes. The progress the server publishes to the event
log reaches the page over SSE (``upload:{id}``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Route

from tests._support.browser import chromium_page
from tests._support.procs import ServerProcess, uvicorn_process

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MiB = 1 << 20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"MZ_FILES_DIR": str(tmp_path / "files"), "MZ_FILES_WEB": "1"}
    with uvicorn_process("tests.e2e.apps.files_app:create_app", factory=True, env=env) as proc:
        yield proc


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium_page() as page:
        yield page


def test_upload_with_progress_and_resume_then_download(page: Page, server: ServerProcess) -> None:
    data = os.urandom(20 * MiB + 321)
    aborted: list[str] = []

    def cut_second_patch(route: Route) -> None:
        request = route.request
        if (
            request.method == "PATCH"
            and request.headers.get("upload-offset") != "0"
            and not aborted
        ):
            aborted.append(request.headers["upload-offset"])
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/v1/uploads/*", cut_second_patch)
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    # record every value the progress bar takes
    page.evaluate(
        """() => {
        window.__progress = [];
        new MutationObserver(() => {
          for (const bar of document.querySelectorAll("[data-testid=files-progress]"))
            window.__progress.push(bar.value);
        }).observe(document.body, {subtree: true, childList: true, attributes: true,
                                   characterData: true});
        setInterval(() => {
          for (const bar of document.querySelectorAll("[data-testid=files-progress]"))
            window.__progress.push(bar.value);
        }, 5);
      }"""
    )
    page.set_input_files(
        "[data-testid=files-input]",
        files=[{"name": "résumé.bin", "mimeType": "application/octet-stream", "buffer": data}],
    )
    page.click("[data-testid=files-upload]")
    row = page.locator("[data-testid=files-upload-row]")
    row.and_(page.locator("[data-state=complete]")).wait_for(timeout=60_000)

    assert aborted == [str(8 * MiB)]  # the second chunk was cut, and the page resumed
    # the server's own progress events (event log -> SSE) reached the page, up to "complete"
    done = page.locator("[data-testid=files-upload-row][data-server-state=complete]")
    done.wait_for(timeout=30_000)
    assert done.get_attribute("data-server-received") == str(len(data))
    assert int(done.get_attribute("data-server-events") or 0) >= 3  # start, pauses, complete
    assert page.locator("[data-testid=files-percent]").inner_text() == "100%"
    bar_max = page.locator("[data-testid=files-progress]").evaluate("bar => bar.max")
    assert bar_max == len(data)
    values = page.evaluate("window.__progress")
    assert any(0 < value < len(data) for value in values), "no intermediate progress shown"
    assert values == sorted(values)  # the bar never goes backwards

    href = page.locator("[data-testid=files-done-link]").get_attribute("href")
    assert href is not None and href.startswith("/v1/files/")
    with httpx.Client(base_url=server.url) as http:
        download = http.get(href)
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.bin" in download.headers["content-disposition"]
    # the list of files shows it with a download link
    link = page.locator(f"[data-testid=files-item][data-id='{href.rsplit('/', 1)[1]}'] a")
    link.wait_for()
    assert link.inner_text() == "résumé.bin"
