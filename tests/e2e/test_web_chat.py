"""The chat page in Debian's Chromium against a real ``mianzhang serve``, at 1280x800 and 390x844:
a three-turn conversation sends the whole history (the request bodies, and the demo model's
word count of it), Enter sends and Shift+Enter breaks the line, a reload mid-answer resumes it
with no text twice, stop marks the answer stopped on the page and on the server, an
unreachable upstream shows the server's error message with a working Retry, a hostile answer
from a model renders inert, and conversations can be created, renamed and deleted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, Request, expect

from mianzhang.llm import demo_answer
from tests._support.procs import ServerProcess, serve_process, uvicorn_process

from ._llm import read_stream
from ._web import VIEWPORTS, horizontal_overflow, page_errors, screenshot, sized_page
from .apps.hostile_upstream import HOSTILE_TEXT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SLOW_TOKENS = 120  # 40 ms apart: a ~5 s answer, time to act in the middle
MODELS = {
    "demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.005, "tokens": 20},
    "slow": {"provider": "demo", "ttft": 0.2, "token_delay": 0.04, "tokens": SLOW_TOKENS},
    "dead": {"provider": "openai", "upstream": "dead"},
    "hostile": {"provider": "openai", "upstream": "hostile"},
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with uvicorn_process("tests.e2e.apps.hostile_upstream:app") as hostile:
        upstreams = {
            "dead": {"base_url": "http://127.0.0.1:9/v1", "connect_timeout": 1.0},
            "hostile": {"base_url": f"{hostile.url}/v1"},
        }
        env = {
            "MIANZHANG_LLM__MODELS": json.dumps(MODELS),
            "MIANZHANG_LLM__UPSTREAMS": json.dumps(upstreams),
            "MIANZHANG_LLM__DEFAULT_MODEL": "demo",
            "MIANZHANG_LLM__MAX_RETRIES": "0",
            "MIANZHANG_LLM__GRACE_PERIOD": "10",
            "MIANZHANG_FILES__ENABLED": "false",
        }
        with serve_process(env=env) as srv:
            yield srv


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def page(viewport: str) -> Iterator[Page]:
    with sized_page(viewport) as opened:
        yield opened


def open_chat(page: Page, server: ServerProcess, model: str = "demo") -> None:
    page.goto(f"{server.url}/#/chat/new")
    page.wait_for_selector("body[data-ready='1'][data-page='chat'] #page[data-ready='1']")
    page.wait_for_selector("[data-testid=chat-model][data-ready='1']")
    page.select_option("[data-testid=chat-model]", model)


def answers(page: Page) -> Locator:
    return page.locator("[data-testid=chat-msg][data-role=assistant]")


def send(page: Page, text: str) -> None:
    prompt = page.get_by_test_id("chat-prompt")
    prompt.fill(text)
    prompt.press("Enter")
    expect(prompt).to_have_value("")  # the box clears on send


def conversation(page: Page) -> dict[str, Any]:
    """The current conversation as the page's store keeps it (localStorage)."""
    conv_id = page.evaluate("decodeURIComponent(location.hash.split('/')[2] || '')")
    raw = page.evaluate("(id) => localStorage.getItem('mianzhang.chat.v1.' + id)", conv_id)
    assert raw, f"no stored conversation {conv_id!r}"
    found: dict[str, Any] = json.loads(raw)
    return found


def shown(locator: Locator) -> str:
    return " ".join(locator.get_by_test_id("chat-msg-body").inner_text().split())


def generation_bodies(page: Page) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/llm/generations"):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    return bodies


def test_three_turns_send_the_whole_history(page: Page, server: ServerProcess) -> None:
    bodies = generation_bodies(page)
    open_chat(page, server)
    send(page, "first question about streaming")
    expect(answers(page).nth(0)).to_have_attribute("data-status", "done", timeout=15_000)
    # Shift+Enter breaks the line and sends nothing; Enter then sends both lines
    prompt = page.get_by_test_id("chat-prompt")
    prompt.fill("a second")
    prompt.press("Shift+Enter")
    prompt.type("question")
    expect(prompt).to_have_value("a second\nquestion")
    assert len(bodies) == 1
    prompt.press("Enter")
    expect(answers(page).nth(1)).to_have_attribute("data-status", "done", timeout=15_000)
    send(page, "third")
    expect(answers(page).nth(2)).to_have_attribute("data-status", "done", timeout=15_000)

    assert len(bodies) == 3
    stored = conversation(page)["messages"]
    sent = bodies[2]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in sent] == [m["content"] for m in stored[:5]]
    assert [m["content"] for m in sent[::2]] == [
        "first question about streaming",
        "a second\nquestion",
        "third",
    ]
    for turn, body in enumerate(bodies):  # each turn sent every earlier message, in order
        assert body["messages"] == sent[: 2 * turn + 1]
        assert body["model"] == "demo"
    # the demo model counts the words of everything it was sent: the history reached it
    for turn, body in enumerate(bodies):
        words = sum(len(m["content"].split()) for m in body["messages"])
        answer = answers(page).nth(turn)
        assert f"You wrote {words} words" in shown(answer)
        assert " ".join(stored[2 * turn + 1]["content"].split()) == shown(answer)
    # two answers of 20 words each and the three questions' 4 + 3 + 1 words
    assert sum(len(m["content"].split()) for m in sent) == 2 * 20 + 8
    convs = page.get_by_test_id("chat-conv")
    expect(convs).to_have_count(1)
    expect(convs.first).to_have_text("first question about streaming")
    expect(page.get_by_test_id("chat-title")).to_have_text("first question about streaming")
    screenshot(page, "chat-three-turns", _name(page))
    assert page_errors(page) == []


def _name(page: Page) -> str:
    size = page.viewport_size or {"width": 0}
    return "phone" if size["width"] < 800 else "wide"


def test_regenerate_replaces_the_last_answer_with_the_same_history(
    page: Page, server: ServerProcess
) -> None:
    bodies = generation_bodies(page)
    open_chat(page, server)
    send(page, "regenerate this please")
    first = answers(page).nth(0)
    expect(first).to_have_attribute("data-status", "done", timeout=15_000)
    old_stream = first.get_attribute("data-stream")
    page.get_by_test_id("chat-regenerate").click()
    expect(answers(page)).to_have_count(1)
    expect(answers(page).nth(0)).not_to_have_attribute("data-stream", old_stream or "")
    expect(answers(page).nth(0)).to_have_attribute("data-status", "done", timeout=15_000)
    assert len(bodies) == 2 and bodies[1] == bodies[0]
    assert page_errors(page) == []


def test_a_reload_mid_answer_resumes_it_with_no_text_twice(
    page: Page, server: ServerProcess
) -> None:
    prompt = "show me a resumed stream"
    expected = "".join(demo_answer(prompt, SLOW_TOKENS))
    open_chat(page, server, "slow")
    send(page, prompt)
    answer = answers(page).nth(0)
    expect(answer).to_have_attribute("data-status", "streaming", timeout=10_000)
    page.wait_for_function(
        """() => document.querySelector('[data-role=assistant] [data-testid=chat-msg-body]')
             .innerText.length > 120""",
        timeout=15_000,
    )
    stream_id = answer.get_attribute("data-stream")
    assert stream_id and stream_id.startswith("gen-")
    resumed_with: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            resumed_with.append(r.headers.get("last-event-id"))
            if f"/v1/streams/{stream_id}" in r.url and "/info" not in r.url
            else None
        ),
    )

    page.reload()
    page.wait_for_selector("body[data-ready='1'][data-page='chat'] #page[data-ready='1']")
    answer = answers(page).nth(0)
    before = conversation(page)["messages"][1]
    assert before["streamId"] == stream_id  # the same generation, not a new one
    assert 0 < len(before["content"]) < len(expected)  # reloaded mid-answer
    assert expected.startswith(before["content"])  # what was shown is kept
    expect(answer).to_have_attribute("data-status", "done", timeout=30_000)
    after = conversation(page)["messages"][1]
    assert after["content"] == expected  # nothing lost, nothing twice
    assert " ".join(expected.split()) == shown(answer)
    # the first request after the reload resumed after an event in the middle of the answer
    assert resumed_with and resumed_with[0]
    assert 1 < int(resumed_with[0].rsplit("-", 1)[1]) < SLOW_TOKENS
    assert after["stats"]["outputTokens"] == SLOW_TOKENS
    expect(answer.get_by_test_id("chat-ttft")).to_contain_text("ms to first token")
    screenshot(page, "chat-resumed", _name(page))
    assert page_errors(page) == []


def test_stop_marks_the_answer_stopped(page: Page, server: ServerProcess) -> None:
    prompt = "stop me halfway"
    expected = "".join(demo_answer(prompt, SLOW_TOKENS))
    open_chat(page, server, "slow")
    send(page, prompt)
    answer = answers(page).nth(0)
    expect(answer).to_have_attribute("data-status", "streaming", timeout=10_000)
    page.wait_for_function(
        """() => document.querySelector('[data-role=assistant] [data-testid=chat-msg-body]')
             .innerText.length > 80""",
        timeout=15_000,
    )
    expect(page.get_by_test_id("chat-send")).to_be_disabled()
    page.get_by_test_id("chat-stop").click()
    expect(answer).to_have_attribute("data-status", "stopped", timeout=10_000)
    marker = answer.get_by_test_id("chat-stopped")
    expect(marker).to_be_visible()
    expect(marker).to_contain_text("Stopped")
    expect(page.get_by_test_id("chat-stop")).to_be_hidden()
    expect(page.get_by_test_id("chat-send")).to_be_enabled()
    expect(answer.get_by_test_id("chat-regenerate")).to_be_visible()
    content = conversation(page)["messages"][1]["content"]
    assert 0 < len(content) < len(expected) and expected.startswith(content)
    stream_id = answer.get_attribute("data-stream")
    info = httpx.get(f"{server.url}/v1/streams/{stream_id}/info", timeout=10).json()
    assert info["state"] == "cancelled"
    screenshot(page, "chat-stopped", _name(page))
    assert page_errors(page) == []


def server_error(server: ServerProcess, stream_id: str) -> str:
    """The message of the native ``error`` event the server stored for ``stream_id``."""
    events = read_stream(f"{server.url}/v1/streams/{stream_id}?format=native")
    errors = [json.loads(e.data)["error"]["message"] for e in events if e.event == "error"]
    assert len(errors) == 1, events
    return str(errors[0])


def test_an_unreachable_upstream_shows_its_message_and_retry(
    page: Page, server: ServerProcess
) -> None:
    bodies = generation_bodies(page)
    open_chat(page, server, "dead")
    send(page, "will this fail")
    answer = answers(page).nth(0)
    expect(answer).to_have_attribute("data-status", "failed", timeout=20_000)
    stream_id = answer.get_attribute("data-stream") or ""
    message = server_error(server, stream_id)
    assert message
    error = answer.get_by_test_id("chat-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(answer.get_by_test_id("chat-error-message")).to_have_text(message)
    screenshot(page, "chat-failed", _name(page))
    # Retry asks again with the same history (a new generation), and shows the new failure
    answer.get_by_test_id("chat-retry").click()
    expect(answers(page)).to_have_count(1)
    expect(answers(page).nth(0)).not_to_have_attribute("data-stream", stream_id)
    expect(answers(page).nth(0)).to_have_attribute("data-status", "failed", timeout=20_000)
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[0]["messages"] == [{"role": "user", "content": "will this fail"}]
    again = answers(page).nth(0).get_attribute("data-stream") or ""
    expect(answers(page).nth(0).get_by_test_id("chat-error-message")).to_have_text(
        server_error(server, again)
    )


# What may never appear in rendered model output: active or loading elements, event handler,
# style or src attributes, links other than http(s) and mailto.
INERT = """(root) => {
    const banned = ['script', 'img', 'iframe', 'object', 'embed', 'style', 'svg', 'math',
        'form', 'input', 'button', 'link', 'meta', 'base', 'video', 'audio'];
    const bad = [];
    for (const node of root.querySelectorAll('*')) {
        const tag = node.tagName.toLowerCase();
        if (banned.includes(tag)) bad.push(tag);
        for (const attr of node.attributes) {
            const name = attr.name;
            if (name.startsWith('on') || name === 'style' || name === 'src') bad.push(name);
        }
        const href = node.getAttribute('href') || '';
        if (tag === 'a' && !/^(https?:|mailto:)/.test(href)) bad.push('href');
    }
    return bad;
}"""


def test_a_hostile_answer_from_a_model_renders_inert(page: Page, server: ServerProcess) -> None:
    page.add_init_script(
        "window.__pwned = []; window.alert = (m) => window.__pwned.push('alert ' + m);"
    )
    open_chat(page, server, "hostile")
    send(page, "say something nasty")
    answer = answers(page).nth(0)
    expect(answer).to_have_attribute("data-status", "done", timeout=15_000)
    assert conversation(page)["messages"][1]["content"] == HOSTILE_TEXT
    body = answer.get_by_test_id("chat-msg-body")
    assert body.evaluate(INERT) == []
    links = body.locator("a")
    expect(links).to_have_count(1)  # only the https link is a link
    assert links.first.get_attribute("href") == "https://example.com/ok"
    assert links.first.get_attribute("rel") == "noopener noreferrer nofollow"
    text = body.inner_text()
    # raw HTML is shown as the text it is; unsafe links keep only their label
    assert "<img src=x onerror=\"window.__pwned.push('img')\">" in text
    assert "<script>window.__pwned.push('script')</script>" in text
    assert "click me" in text and "javascript:" not in text.split("click me")[0][-5:]
    code = body.locator("pre code")
    expect(code).to_have_text("<script>window.__pwned.push('code')</script>")
    page.wait_for_timeout(300)  # let any (wrongly) created element load or fire: none may
    assert page.evaluate("window.__pwned") == []
    assert page.locator("#page img, #page iframe, #page script").count() == 0
    assert horizontal_overflow(page) == 0  # long lines and code stay inside their boxes
    screenshot(page, "chat-hostile", _name(page))


def test_the_renderer_is_inert_for_hostile_markdown(page: Page, server: ServerProcess) -> None:
    page.add_init_script(
        "window.__pwned = []; window.alert = (m) => window.__pwned.push('alert ' + m);"
    )
    page.goto(f"{server.url}/#/chat")
    page.wait_for_selector("body[data-ready='1']")
    vectors = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        "<iframe src='javascript:alert(3)'></iframe>",
        "[x](javascript:alert(4))",
        "[x](JaVaScRiPt:alert(5))",
        "[x](java\tscript:alert(6))",
        "[x](  javascript:alert(7))",
        "[x](data:text/html,<script>alert(8)</script>)",
        "[x](vbscript:msgbox(9))",
        "<javascript:alert(10)>",
        "<data:text/html,alert(11)>",
        "![y](javascript:alert(12))",
        "![y](https://example.com/track.png)",
        "[x](https://ok.example/ 'title\" onmouseover=alert(13)')",
        '<a href="javascript:alert(14)">a</a>',
        "**<svg onload=alert(15)>**",
        "`<img src=x onerror=alert(16)>`",
        "```\n<script>alert(17)</script>\n```",
        "| a |\n|---|\n| <img src=x onerror=alert(18)> |",
        "> <style>body{display:none}</style>",
        "- <object data=x></object>\n- [ok](https://example.com)",
        "# <math><mi xlink:href=javascript:alert(19)>x</mi></math>",
    ]
    found = page.evaluate(
        """async ([vectors, inert]) => {
            const { renderMarkdown } = await import('/web/lib/markdown.js');
            const check = new Function('return ' + inert)();
            const out = [];
            for (const text of vectors) {
                const box = document.createElement('div');
                box.append(renderMarkdown(text));
                document.body.append(box);  // attached: anything loadable would load now
                out.push({ text, bad: check(box), html: box.innerHTML, plain: box.textContent });
            }
            return out;
        }""",
        [vectors, INERT],
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") == []
    for item in found:
        assert item["bad"] == [], item
    by_text = {item["text"]: item for item in found}
    assert by_text["![y](https://example.com/track.png)"]["html"].startswith("<p><a href=")
    assert "image: y" in by_text["![y](https://example.com/track.png)"]["plain"]
    assert by_text["<script>alert(2)</script>"]["plain"] == "<script>alert(2)</script>"


def open_conversations(page: Page) -> None:
    side = page.locator("details.chat-side")
    if side.get_attribute("open") is None:
        side.locator("summary").click()


def test_conversations_can_be_created_renamed_and_deleted(
    page: Page, server: ServerProcess
) -> None:
    open_chat(page, server)
    send(page, "conversation one")
    expect(answers(page).nth(0)).to_have_attribute("data-status", "done", timeout=15_000)
    first_url = page.url
    open_conversations(page)
    page.get_by_test_id("chat-new").click()
    page.wait_for_url(re.compile(r"#/chat/new$"))
    expect(page.locator("[data-testid=chat-msg]")).to_have_count(0)
    send(page, "conversation two")
    expect(answers(page).nth(0)).to_have_attribute("data-status", "done", timeout=15_000)
    open_conversations(page)
    convs = page.get_by_test_id("chat-conv")
    expect(convs).to_have_text(["conversation two", "conversation one"])  # newest first
    # rename the first one from the list (keyboard: Enter saves)
    page.locator("li", has=page.get_by_text("conversation one")).get_by_test_id(
        "chat-rename"
    ).click()
    title = page.get_by_test_id("chat-rename-input")
    title.fill("Renamed chat")
    title.press("Enter")
    expect(convs).to_have_text(["conversation two", "Renamed chat"])
    # open it: its messages are there; then delete the other one
    page.locator("[data-testid=chat-conv]", has_text="Renamed chat").click()
    page.wait_for_url(first_url)
    expect(page.get_by_test_id("chat-title")).to_have_text("Renamed chat")
    user_turns = page.locator("[data-role=user] [data-testid=chat-msg-body]")
    expect(user_turns).to_have_text(["conversation one"])
    open_conversations(page)
    page.locator("li", has=page.get_by_text("conversation two")).get_by_test_id(
        "chat-delete"
    ).click()
    expect(convs).to_have_text(["Renamed chat"])
    page.reload()  # kept by the browser
    page.wait_for_selector("#page[data-ready='1']")
    open_conversations(page)
    expect(page.get_by_test_id("chat-conv")).to_have_text(["Renamed chat"])
    expect(page.get_by_test_id("chat-title")).to_have_text("Renamed chat")
    models = httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"]
    options = page.locator("[data-testid=chat-model] option")
    assert [o.get_attribute("value") for o in options.all()] == [m["id"] for m in models]
    assert page_errors(page) == []
