"""The chat page in Debian's Chromium (Playwright): tokens appear as they stream, a reload
mid-answer resumes the same generation where it was (no gap, no duplicate), and the stop
button ends the generation on the server. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from mianzhang.llm import demo_answer
from tests._support.browser import chromium_page
from tests._support.procs import ARTIFACTS, ServerProcess, uvicorn_process

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


def text(page: Page, testid: str) -> str:
    return page.locator(f"[data-testid={testid}]").inner_text()


def answer(page: Page) -> str:
    # the typewriter caret is a child of the answer element: leave it out
    return str(
        page.evaluate(
            """() => [...document.querySelector('[data-testid=chat-answer]').childNodes]
                 .filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.data).join('')"""
        )
    )


def open_chat(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/#/chat")
    page.wait_for_selector("body[data-ready='1'][data-page='chat']")
    page.wait_for_selector("[data-testid=chat-model] option[value=demo]", state="attached")


def send(page: Page, prompt: str) -> None:
    page.fill("[data-testid=chat-prompt]", prompt)
    page.click("[data-testid=chat-send]")


def wait_tokens(page: Page, n: int) -> None:
    page.wait_for_function(
        f"() => Number(document.querySelector('[data-testid=chat-tokens]').textContent) >= {n}",
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
    assert "demo model" in text(page, "chat-badge")
    send(page, prompt)
    # tokens appear one after another while the answer is still streaming
    lengths: list[int] = []
    deadline = time.monotonic() + 30
    while len(set(lengths)) < 5 and time.monotonic() < deadline:
        page.wait_for_function(
            "n => document.querySelector('[data-testid=chat-answer]').textContent.length > n",
            arg=max(lengths, default=0),
            timeout=30_000,
        )
        lengths.append(len(answer(page)))
        assert text(page, "chat-status") == "streaming"
    assert len(set(lengths)) >= 5 and lengths == sorted(lengths)
    assert expected.startswith(answer(page))
    ttft = text(page, "chat-ttft")
    assert ttft.endswith(" ms") and float(ttft.split()[0]) > 0
    stream_id = text(page, "chat-stream-id")
    assert stream_id.startswith("gen-") and f"stream={stream_id}" in page.url
    wait_tokens(page, 30)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "llm-chat-streaming.png"))

    page.reload()  # mid-answer
    page.wait_for_selector("body[data-ready='1'][data-page='chat']")
    before = answer(page)
    assert len(before) > 0 and expected.startswith(before)  # what was shown is shown again
    assert text(page, "chat-stream-id") == stream_id  # the same generation, not a new one
    assert text(page, "chat-status") == "streaming"
    assert int(text(page, "chat-tokens")) < TOKENS  # reloaded before the end

    page.wait_for_function(
        "() => document.querySelector('[data-testid=chat-status]').textContent === 'done'",
        timeout=30_000,
    )
    page.wait_for_function(
        "n => document.querySelector('[data-testid=chat-answer]').textContent.length === n",
        arg=len(expected),
        timeout=10_000,
    )
    assert answer(page) == expected  # resumed exactly: nothing lost, nothing twice
    assert text(page, "chat-tokens") == str(TOKENS)
    assert text(page, "chat-rate").endswith("tok/s")
    page.screenshot(path=str(ARTIFACTS / "llm-chat-resumed-done.png"))
    assert page_errors(page) == []


def test_stop_ends_the_generation_on_the_server(page: Page, server: ServerProcess) -> None:
    open_chat(page, server)
    send(page, "stop me")
    wait_tokens(page, 10)
    stream_id = text(page, "chat-stream-id")
    page.click("[data-testid=chat-stop]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=chat-status]').textContent === 'stopped'",
        timeout=10_000,
    )
    tokens = int(text(page, "chat-tokens"))
    assert 10 <= tokens < TOKENS
    assert page.locator("[data-testid=chat-stop]").is_disabled()
    assert page.locator("[data-testid=chat-send]").is_enabled()
    info = httpx.get(f"{server.url}/v1/streams/{stream_id}/info").json()
    assert info["state"] == "cancelled"
    page.screenshot(path=str(ARTIFACTS / "llm-chat-stopped.png"))
    assert page_errors(page) == []
