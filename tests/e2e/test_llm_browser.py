"""The chat page in Debian's Chromium (Playwright): tokens appear as they stream, a reload
mid-answer resumes the same generation where it was (no gap, no duplicate), and the stop
button ends the generation on the server (the chat page of ``src/mianzhang/web``).
Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from mianzhang.llm import demo_answer
from tests._support.browser import chromium_page
from tests._support.procs import ARTIFACTS, ServerProcess, uvicorn_process
from tests._support.wait import eventually_sync

from ._llm import APP, gateway_env

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TOKENS = 150
DELAY = 0.04  # 150 tokens 40 ms apart: a 6 s answer, time to act in the middle


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    models = {"demo": {"provider": "demo", "ttft": 0.2, "token_delay": DELAY, "tokens": TOKENS}}
    env = gateway_env(
        "http://127.0.0.1:9",
        MIANZHANG_LLM__MODELS=json.dumps(models),
        MIANZHANG_LLM__UPSTREAMS="{}",
        MIANZHANG_LLM__GRACE_PERIOD="10",
    )
    with uvicorn_process(APP, factory=True, env=env) as p:
        yield p


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium_page() as page:
        errors: list[str] = []
        page.on(
            "console",
            lambda m: (
                errors.append(f"{m.text} ({m.location.get('url')})")
                if m.type == "error" and not str(m.location.get("url", "")).endswith("/favicon.ico")
                else None
            ),
        )
        page.errors = errors  # type: ignore[attr-defined]
        yield page


def answer_msg(page: Page) -> Locator:
    return page.locator("[data-testid=chat-msg][data-role=assistant]").last


def answer(page: Page) -> str:
    """The answer's text as the page shows it (the streaming caret is CSS, not text)."""
    return str(answer_msg(page).get_by_test_id("chat-msg-body").inner_text())


def stored_chat(page: Page) -> dict[str, Any]:
    """The conversation as the server keeps it (the page's chat store lives there)."""
    conv_id = page.evaluate("decodeURIComponent(location.hash.split('/')[2] || '')")
    origin = page.evaluate("location.origin")
    found: dict[str, Any] = httpx.get(f"{origin}/v1/chats/{conv_id}", timeout=10).json()
    return found


def stored_answer(page: Page) -> str:
    """The text of the answer the server saved (once its generation has ended)."""
    found: list[str] = []

    def saved() -> bool:
        chat = stored_chat(page)
        if chat["running"] or chat["messages"][-1]["role"] != "assistant":
            return False
        parts = chat["messages"][-1]["parts"]
        found[:] = ["".join(p["text"] for p in parts if p["type"] == "text")]
        return True

    eventually_sync(saved, timeout=15, interval=0.05)
    return found[0]


def status(page: Page) -> str:
    return str(answer_msg(page).get_attribute("data-status"))


def open_chat(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/#/chat/new")
    page.wait_for_selector("body[data-ready='1'][data-page='chat'] #page[data-ready='1']")
    page.wait_for_selector("[data-testid=chat-model] option[value=demo]", state="attached")


def send(page: Page, prompt: str) -> None:
    page.fill("[data-testid=chat-prompt]", prompt)
    page.click("[data-testid=chat-send]")


def wait_chars(page: Page, n: int) -> None:
    page.wait_for_function(
        """n => document.querySelector('[data-role=assistant] [data-testid=chat-msg-body]')
             ?.textContent.length >= n""",
        arg=n,
        timeout=30_000,
    )


def page_errors(page: Page) -> list[str]:
    """Console errors (the browser's own favicon request aside) and uncaught exceptions."""
    console: list[str] = page.errors  # type: ignore[attr-defined]
    uncaught = [e for e in page.console_errors if not e.startswith("Failed to load")]  # type: ignore[attr-defined]
    return console + uncaught


def test_tokens_stream_in_and_a_reload_mid_answer_resumes_it(
    page: Page, server: ServerProcess
) -> None:
    prompt = "show me streaming"
    expected = "".join(demo_answer(prompt, TOKENS))
    open_chat(page, server)
    assert "Demo model" in page.get_by_test_id("chat-badge").inner_text()
    send(page, prompt)
    # tokens appear one after another while the answer is still streaming
    lengths: list[int] = []
    deadline = time.monotonic() + 30
    while len(set(lengths)) < 5 and time.monotonic() < deadline:
        page.wait_for_function(
            """n => document.querySelector('[data-role=assistant] [data-testid=chat-msg-body]')
                 ?.textContent.length > n""",
            arg=max(lengths, default=0),
            timeout=30_000,
        )
        lengths.append(len(answer(page)))
        assert status(page) == "streaming"
    assert len(set(lengths)) >= 5 and lengths == sorted(lengths)
    assert expected.startswith(answer(page))
    stream_id = answer_msg(page).get_attribute("data-stream") or ""
    assert stream_id.startswith("gen-")
    conv_url = page.url
    assert "#/chat/c_" in conv_url  # the conversation is in the URL
    wait_chars(page, 200)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "llm-chat-streaming.png"))

    page.reload()  # mid-answer
    page.wait_for_selector("body[data-ready='1'][data-page='chat'] #page[data-ready='1']")
    before = answer(page)
    assert len(before) > 0 and expected.startswith(before)  # what was shown is shown again
    assert answer_msg(page).get_attribute("data-stream") == stream_id  # the same generation
    assert status(page) == "streaming"
    assert stored_chat(page)["stream"] == stream_id  # reloaded before the end: still running

    expect(answer_msg(page)).to_have_attribute("data-status", "done", timeout=30_000)
    assert answer(page) == expected  # resumed exactly: nothing lost, nothing twice
    assert stored_answer(page) == expected
    stats = answer_msg(page)
    expect(stats.get_by_test_id("chat-tokens")).to_have_text(f"{TOKENS} tokens")
    expect(stats.get_by_test_id("chat-rate")).to_contain_text("tok/s")
    ttft = stats.get_by_test_id("chat-ttft").inner_text()
    assert ttft.endswith(" ms to first token") and float(ttft.split()[0]) > 0
    page.screenshot(path=str(ARTIFACTS / "llm-chat-resumed-done.png"))
    assert page_errors(page) == []


def test_stop_ends_the_generation_on_the_server(page: Page, server: ServerProcess) -> None:
    open_chat(page, server)
    send(page, "stop me")
    wait_chars(page, 100)  # about 17 words
    stream_id = answer_msg(page).get_attribute("data-stream")
    page.click("[data-testid=chat-stop]")
    expect(answer_msg(page)).to_have_attribute("data-status", "stopped", timeout=10_000)
    tokens = len(stored_answer(page).split())
    assert 10 <= tokens < TOKENS
    expect(page.get_by_test_id("chat-stop")).to_be_hidden()
    expect(page.get_by_test_id("chat-send")).to_be_enabled()
    info = httpx.get(f"{server.url}/v1/streams/{stream_id}/info").json()
    assert info["state"] == "cancelled"
    page.screenshot(path=str(ARTIFACTS / "llm-chat-stopped.png"))
    assert page_errors(page) == []
