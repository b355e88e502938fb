"""Every page of the web UI in Chromium, with content on it, at 1280x800 and 390x844, light and
dark: no horizontal scroll, the navigation inside the header, no serious or critical axe-core
violations, a screenshot in ``test-artifacts/screenshots/``; keyboard use: a skip link, a
visible focus ring, the chat usable without a mouse."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests._support.procs import ServerProcess, serve_process

from ._web import (
    VIEWPORTS,
    assert_accessible,
    horizontal_overflow,
    open_page,
    page_errors,
    screenshot,
    sized_page,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MODELS = {"demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.005, "tokens": 40}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("layout")
    log = root / "app.log"
    log.write_text(
        "".join(
            f"2025-01-01T00:00:{i:02d} INFO request handled path=/v1/x status=200\n"
            for i in range(12)
        )
    )
    env = {
        "MIANZHANG_LLM__MODELS": json.dumps(MODELS),
        "MIANZHANG_FILES__DIRECTORY": str(root / "files"),
        "MIANZHANG_TAILS__FILES": json.dumps({"app": str(log)}),
    }
    with serve_process(env=env) as srv:
        stored = httpx.put(f"{srv.url}/v1/files/report.csv", content=b"a,b\n1,2\n", timeout=10)
        assert stored.status_code == 201
        yield srv


def fill_demo(page: Page) -> None:
    page.wait_for_function("Number(document.getElementById('demo-count').dataset.n || 0) >= 2")


def fill_chat(page: Page) -> None:
    page.wait_for_selector("#page[data-ready='1']")
    prompt = page.get_by_test_id("chat-prompt")
    prompt.fill("How do I resume a stream after a reload?")
    prompt.press("Enter")
    answer = page.locator("[data-role=assistant]").last
    expect(answer).to_have_attribute("data-status", "done", timeout=15_000)


def fill_notifications(page: Page) -> None:
    page.get_by_test_id("notif-subscribe").click()
    expect(page.get_by_test_id("notif-status")).to_have_text("live", timeout=10_000)
    page.get_by_test_id("notif-data").fill('{"text": "deploy finished", "build": 42}')
    page.get_by_test_id("notif-json").check()
    page.get_by_test_id("notif-publish").click()
    expect(page.get_by_test_id("notif-event").first).to_be_visible(timeout=10_000)


def fill_jobs(page: Page) -> None:
    page.get_by_test_id("jobs-submit").click()
    expect(page.get_by_test_id("jobs-state")).to_have_text("succeeded", timeout=30_000)


def fill_files(page: Page) -> None:
    expect(page.get_by_test_id("files-item").first).to_be_visible(timeout=10_000)


def fill_tails(page: Page) -> None:
    page.wait_for_selector("#page[data-ready='1']")
    page.get_by_test_id("tails-follow").click()
    expect(page.get_by_test_id("tails-line").first).to_be_visible(timeout=10_000)


def fill_inspect(page: Page) -> None:
    expect(page.get_by_test_id("inspect-state")).to_have_text("finished", timeout=15_000)


def nothing(page: Page) -> None:
    del page


# (screenshot name, page id, route, how to put content on it)
PAGES: list[tuple[str, str, str, Callable[[Page], None]]] = [
    ("demo", "demo", "#/demo", fill_demo),
    ("chat", "chat", "#/chat/new", fill_chat),
    ("notifications", "notifications", "#/notifications", fill_notifications),
    ("jobs", "jobs", "#/jobs", fill_jobs),
    ("files", "files", "#/files", fill_files),
    ("tails", "tails", "#/tails", fill_tails),
    ("inspect-home", "inspect", "#/inspect", nothing),
    ("inspect", "inspect", "", fill_inspect),  # the stream of the chat answer, set below
]


def check_layout(page: Page, name: str) -> None:
    assert horizontal_overflow(page) == 0, f"{name} scrolls sideways"
    header = page.locator("header.top").bounding_box()
    nav = page.locator("#nav").bounding_box()
    assert header and nav
    assert nav["y"] >= header["y"] and nav["y"] + nav["height"] <= header["y"] + header["height"]
    assert nav["x"] + nav["width"] <= (page.viewport_size or {"width": 0})["width"]
    assert_accessible(page)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_fits_is_accessible_and_is_photographed(
    server: ServerProcess, viewport: str, scheme: str
) -> None:
    suffix = "" if scheme == "light" else "-dark"
    with sized_page(viewport, dark=scheme == "dark") as page:
        background = None
        for name, page_id, route, fill in PAGES:
            if name == "inspect":
                stream = page.evaluate(
                    """async () => {
                         const chats = (await (await fetch('/v1/chats')).json()).data;
                         return chats.find((c) => c.stream || c.id).id;
                       }"""
                )
                stream = page.evaluate(
                    """async (id) => {
                         const chat = await (await fetch('/v1/chats/' + id)).json();
                         return chat.stream || chat.last_stream;
                       }""",
                    stream,
                )
                route = f"#/inspect/{stream}?format=native"
            open_page(page, f"{server.url}/{route}", page_id)
            fill(page)
            check_layout(page, name)
            shot = screenshot(page, f"page-{name}{suffix}", viewport)
            assert shot.stat().st_size > 0
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        # the system's colour scheme is followed
        rgb = [int(c) for c in str(background)[4:-1].split(",")[:3]]
        assert (sum(rgb) / 3 < 60) if scheme == "dark" else (sum(rgb) / 3 > 200)
        assert page_errors(page) == []


def test_keyboard_only_use_with_a_visible_focus(server: ServerProcess) -> None:
    with sized_page("wide") as page:
        open_page(page, f"{server.url}/#/demo", "demo")
        page.keyboard.press("Tab")
        skip = page.locator("a.skip")
        expect(skip).to_be_focused()
        assert skip.evaluate("(el) => el.getBoundingClientRect().left >= 0")  # shown on focus
        page.keyboard.press("Tab")
        expect(page.locator("a.brand")).to_be_focused()
        page.keyboard.press("Tab")
        first = page.locator("#nav a").first
        expect(first).to_be_focused()
        ring = first.evaluate(
            "(el) => { const s = getComputedStyle(el); return [s.outlineStyle, s.outlineWidth]; }"
        )
        assert ring[0] == "solid" and float(ring[1].removesuffix("px")) >= 2
        # to the chat by keyboard: the page puts the focus in its prompt
        page.keyboard.press("Tab")
        expect(page.locator("#nav a[data-page=chat]")).to_be_focused()
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-page='chat'] #page[data-ready='1']")
        # every control has a name a screen reader can say
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea, button')]
                .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label')
                                && !c.textContent.trim())
                .map((c) => c.outerHTML)"""
        )
        assert unnamed == []
        # the chat page put the focus in its prompt: type, and send with Enter
        expect(page.get_by_test_id("chat-prompt")).to_be_focused()
        page.keyboard.type("typed without a mouse")
        page.keyboard.press("Enter")
        answer = page.locator("[data-role=assistant]").last
        expect(answer).to_have_attribute("data-status", "done", timeout=15_000)
        # Tab reaches the answer's actions (Regenerate) from the conversation
        for _ in range(40):
            if page.evaluate("document.activeElement.dataset.testid") == "chat-regenerate":
                break
            page.keyboard.press("Tab")
        expect(page.get_by_test_id("chat-regenerate")).to_be_focused()
        assert page_errors(page) == []
