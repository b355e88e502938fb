"""The jobs page in Chromium against a real ``mianzhang serve`` with file storage: a checksum
job on an uploaded file shows its result as labelled fields (the digest the server computed,
the size, the lines), never as raw JSON."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests._support.procs import serve_process

from ._web import open_page, page_errors, screenshot, sized_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.mark.parametrize("viewport", ["wide", "phone"])
def test_a_checksum_result_is_shown_as_fields(tmp_path: Path, viewport: str) -> None:
    data = b"".join(b"row %d\n" % i for i in range(1000))
    env = {"MIANZHANG_FILES__DIRECTORY": str(tmp_path / "files")}
    with serve_process(env=env) as server, sized_page(viewport) as page:
        stored = httpx.put(f"{server.url}/v1/files/rows.txt", content=data, timeout=10)
        assert stored.status_code == 201, stored.text
        open_page(page, f"{server.url}/#/jobs", "jobs")
        expect(page.get_by_test_id("jobs-file")).to_have_value(stored.json()["id"])
        page.get_by_test_id("jobs-checksum").click()
        expect(page.get_by_test_id("jobs-state")).to_have_text("succeeded", timeout=30_000)
        fields = page.get_by_test_id("jobs-result-fields")
        expect(fields).to_be_visible()
        digest = fields.locator("dd[data-field=digest]")
        expect(digest).to_have_text(hashlib.sha256(data).hexdigest())
        expect(fields.locator("dd[data-field=lines]")).to_have_text("1000")
        expect(fields.locator("dd[data-field=name]")).to_have_text("rows.txt")
        expect(fields.locator("dd[data-field=matches_upload]")).to_have_text("yes")
        expect(fields.locator("dd[data-field=size]")).to_contain_text(f"{len(data):,} bytes")
        expect(page.get_by_test_id("jobs-result")).to_be_hidden()  # no text part: no blank box
        assert "{" not in page.get_by_test_id("jobs-result-box").inner_text()
        expect(page.get_by_test_id("jobs-percent")).to_have_text("100%")
        screenshot(page, "jobs-checksum", viewport)
        assert page_errors(page) == []
