"""A page built with ``@ai-sdk/react``'s ``useChat({ resume: true })`` (``tests/node/use_chat``,
bundled here with esbuild from the pinned npm packages, served by the test on the server's
origin) in Chromium against a real ``mianzhang serve``: a reload in the middle of an answer
continues it with no text twice (the server's live progress, read with ``onData``, shows
before and after it), and the page's Stop button (the stop endpoint) stops the generation,
which the server's log records as cancelled."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from mianzhang import SSEDecoder
from tests._support.browser import chromium_page
from tests._support.node import node_modules
from tests._support.procs import ServerProcess, serve_process

from ._ai import long_text

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WORDS = 120
EXPECTED = " ".join(f"word{i}" for i in range(WORDS))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``use_chat/page.jsx`` bundled with React, ``@ai-sdk/react`` and ``ai``."""
    root = node_modules()
    out = tmp_path_factory.mktemp("use_chat")
    done = subprocess.run(
        [
            str(root / "node_modules" / ".bin" / "esbuild"),
            "use_chat/page.jsx",
            "--bundle",
            "--format=esm",
            "--jsx=automatic",
            "--define:process.env.NODE_ENV='production'",
            f"--outfile={out / 'page.js'}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (out / "index.html").write_bytes((root / "use_chat" / "index.html").read_bytes())
    return out


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"MIANZHANG_FILES__ENABLED": "false", "MIANZHANG_LLM__GRACE_PERIOD": "10"}
    with serve_process(env=env) as srv:
        yield srv


@pytest.fixture
def page(bundle: Path, server: ServerProcess) -> Iterator[Page]:
    with chromium_page() as opened:

        def serve(route: Route) -> None:
            name = route.request.url.split("/usechat/")[1].split("#")[0]
            kind = "text/html" if name.endswith(".html") else "text/javascript"
            route.fulfill(body=(bundle / name).read_bytes(), content_type=kind)

        opened.route(f"{server.url}/usechat/*", serve)
        failed: list[str] = []
        opened.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        opened.failed = failed  # type: ignore[attr-defined]
        yield opened


def errors(page: Page, chat_id: str) -> list[str]:
    """Console errors and failed responses, but the 404 of the new chat's saved messages (the
    page asks before the chat exists) and of the favicon."""
    allowed = {f"/v1/chats/{chat_id}", "/favicon.ico"}
    failed = [u for u in page.failed if urlsplit(u).path not in allowed]  # type: ignore[attr-defined]
    console = [e for e in page.console_errors if not e.startswith("Failed to load")]  # type: ignore[attr-defined]
    return failed + console


def open_chat(page: Page, server: ServerProcess, chat_id: str) -> None:
    page.goto(f"{server.url}/usechat/index.html#chat={chat_id}")
    page.wait_for_selector("#app[data-status]")


def answer_text(page: Page) -> str:
    return str(page.locator("article[data-role=assistant] [data-part=text]").inner_text())


def words_shown(page: Page, at_least: int) -> None:
    page.wait_for_function(
        """(n) => {
            const p = document.querySelector('article[data-role=assistant] [data-part=text]');
            return p && p.innerText.split(' ').length >= n;
        }""",
        arg=at_least,
        timeout=20_000,
    )


def progress_shown(page: Page, at_least: int) -> None:
    """The page shows the server's progress (``onData``) for ``at_least`` tokens, with a rate,
    while the answer is written."""
    page.wait_for_function(
        r"""(n) => {
            const p = document.querySelector('#progress');
            return document.querySelector('#app')?.dataset.status === 'streaming'
              && p && Number(p.dataset.tokens) >= n && /\d tok\/s$/.test(p.innerText);
        }""",
        arg=at_least,
        timeout=20_000,
    )


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def test_a_reload_mid_answer_continues_it_with_no_text_twice(
    page: Page, server: ServerProcess
) -> None:
    open_chat(page, server, "reload-1")
    send(page, long_text(WORDS, delay=0.04))
    words_shown(page, 15)
    progress_shown(page, 16)
    resumed: list[str] = []
    page.on("request", lambda r: resumed.append(r.url) if r.url.endswith("/stream") else None)
    page.reload()
    page.wait_for_selector("#app[data-status]")
    progress_shown(page, 16)  # and again after the reload, from the resumed stream
    expect(page.locator("#app")).to_have_attribute("data-status", "ready", timeout=30_000)
    assert answer_text(page) == EXPECTED  # continued to the end, nothing twice
    expect(page.locator("#progress")).to_have_count(0)
    expect(page.locator("article")).to_have_count(2)
    assert resumed == [f"{server.url}/v1/ui/chat/reload-1/stream"]  # useChat resumed on mount
    assert errors(page, "reload-1") == []
    # the server saved the answer the page shows
    saved = httpx.get(f"{server.url}/v1/chats/reload-1", timeout=10).json()
    texts = [p["text"] for p in saved["messages"][-1]["parts"] if p["type"] == "text"]
    assert texts == [EXPECTED]


def test_the_stop_button_stops_the_generation(page: Page, server: ServerProcess) -> None:
    open_chat(page, server, "stop-1")
    send(page, long_text(WORDS, delay=0.04))
    words_shown(page, 10)
    page.click("#stop")
    expect(page.locator("#app")).to_have_attribute("data-status", "ready", timeout=15_000)
    expect(page.locator("[data-marker=stopped]")).to_be_visible()
    shown = answer_text(page)
    assert EXPECTED.startswith(shown) and 10 <= len(shown.split()) < WORDS
    stream = page.locator("article[data-role=assistant]").get_attribute("data-id")
    info = httpx.get(f"{server.url}/v1/streams/{stream}/info", timeout=10).json()
    assert info["state"] == "cancelled"
    events = SSEDecoder().decode(httpx.get(f"{server.url}/v1/streams/{stream}?format=ui").content)
    assert [e.data for e in events[-2:]] == ['{"type":"abort","reason":"stopped"}', "[DONE]"]
    assert errors(page, "stop-1") == []
