"""The notifications page in Chromium against a real server: subscribe (EventSource), publish
from the page's form and over HTTP, and see each event appear once; the subscriber count
shows the page's subscription; a refused subscription shows the server's reason."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests._support.browser import chromium_page
from tests._support.procs import ServerProcess, uvicorn_process
from tests.channels._tokens import SECRET, grant, hs256

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

APP = "mianzhang.server:create_app"


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    env = {"MIANZHANG_FILES__ENABLED": "false"}
    with uvicorn_process(APP, factory=True, env=env) as proc:
        yield proc


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium_page() as opened:
        yield opened


def test_subscribe_then_events_from_the_form_and_from_http_appear(
    page: Page, server: ServerProcess
) -> None:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(f"{server.url}/#/notifications")
    page.wait_for_selector("body[data-ready='1']")
    page.get_by_test_id("notif-channel").fill("alerts")
    page.get_by_test_id("notif-history").uncheck()
    page.get_by_test_id("notif-subscribe").click()
    expect(page.get_by_test_id("notif-status")).to_have_text("live", timeout=10_000)
    expect(page.get_by_test_id("notif-subscribers")).to_have_text("1", timeout=10_000)

    # publish from the page's form, with an event type
    page.get_by_test_id("notif-data").fill('{"text": "from the form"}')
    page.get_by_test_id("notif-json").check()
    page.get_by_test_id("notif-event-type").fill("alert")
    page.get_by_test_id("notif-publish").click()
    expect(page.get_by_test_id("notif-result")).to_contain_text("published as", timeout=10_000)
    form_id = page.get_by_test_id("notif-result").get_attribute("data-id")
    events = page.get_by_test_id("notif-event")
    expect(events).to_have_count(1, timeout=10_000)
    first = events.nth(0)
    expect(first).to_have_attribute("data-event-type", "alert")
    expect(first).to_have_attribute("data-id", form_id or "?")
    expect(first).to_contain_text('"text": "from the form"')

    # publish over HTTP: it appears too (newest first), and nothing is shown twice
    response = httpx.post(
        f"{server.url}/v1/channels/alerts/publish",
        content="from curl",
        headers={"content-type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 201
    expect(events).to_have_count(2, timeout=10_000)
    expect(events.nth(0)).to_have_attribute("data-id", response.json()["id"])
    expect(events.nth(0)).to_have_attribute("data-event-type", "message")
    expect(events.nth(0)).to_contain_text("from curl")

    # an idempotent repeat from the form is stored once and shown once
    page.get_by_test_id("notif-idem").fill("once")
    page.get_by_test_id("notif-json").uncheck()
    page.get_by_test_id("notif-event-type").fill("")
    page.get_by_test_id("notif-data").fill("only once")
    page.get_by_test_id("notif-publish").click()
    expect(page.get_by_test_id("notif-result")).to_contain_text("published as", timeout=10_000)
    page.get_by_test_id("notif-publish").click()
    expect(page.get_by_test_id("notif-result")).to_contain_text("stored once", timeout=10_000)
    expect(events).to_have_count(3, timeout=10_000)
    info = httpx.get(f"{server.url}/v1/channels/alerts", timeout=10).json()
    assert info["length"] == 3 and info["subscribers"] == 1

    # unsubscribing closes the EventSource: the server's count drops to 0
    page.get_by_test_id("notif-subscribe").click()
    expect(page.get_by_test_id("notif-status")).to_have_text("closed")
    for _ in range(200):
        if httpx.get(f"{server.url}/v1/channels/alerts", timeout=10).json()["subscribers"] == 0:
            break
        page.wait_for_timeout(25)  # poll (bounded) until the server saw the close
    else:
        raise AssertionError("the subscription was not closed on the server")
    # the browser's own favicon request is the only failed load (the shell has no icon)
    assert all(url.endswith("/favicon.ico") for url in failed), failed
    errors = page.console_errors  # type: ignore[attr-defined]
    assert [e for e in errors if "Failed to load resource" not in e] == []


def test_a_refused_subscription_shows_why_and_a_token_cookie_is_accepted(page: Page) -> None:
    env = {
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_AUTH__JWT_KEYS": json.dumps([{"algorithm": "HS256", "key": SECRET}]),
    }
    with uvicorn_process(APP, factory=True, env=env) as server:
        page.goto(f"{server.url}/#/notifications?channel=private")
        page.wait_for_selector("body[data-ready='1']")
        expect(page.get_by_test_id("notif-channel")).to_have_value("private")
        page.get_by_test_id("notif-subscribe").click()
        expect(page.get_by_test_id("notif-status")).to_contain_text(
            "refused: subscribing needs a token", timeout=10_000
        )
        page.get_by_test_id("notif-token").fill(hs256(grant("other")))
        page.get_by_test_id("notif-subscribe").click()
        expect(page.get_by_test_id("notif-status")).to_contain_text(
            "refused: token does not grant", timeout=10_000
        )
        page.get_by_test_id("notif-token").fill(hs256(grant("private")))
        page.get_by_test_id("notif-subscribe").click()
        expect(page.get_by_test_id("notif-status")).to_have_text("live", timeout=10_000)
