"""The chat page in Debian's Chromium against a real ``mianzhang serve``, at 1280x800 and 390x844:
a three-turn conversation sends the whole history (the request bodies, and the demo model's
word count of it), Enter sends and Shift+Enter breaks the line, a reload mid-answer resumes it
with no text twice, stop marks the answer stopped on the page and on the server (the server's
live tokens/s and time to first token show while the answer is written), an
unreachable upstream shows the server's error message with a working Retry, a hostile answer
from a model renders inert, and conversations can be created, renamed and deleted. The
conversations live on the server (``/v1/chats``) and answers are AI SDK chat turns
(``/v1/ui/chat``): a conversation made in one browser shows in another, with its running
answer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, Request, expect

from mianzhang.llm import demo_answer
from tests._support.faultproxy import FaultProxy
from tests._support.procs import ServerProcess, serve_process, uvicorn_process
from tests._support.wait import eventually_sync

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


@pytest.fixture(autouse=True)
def no_chats(server: ServerProcess) -> None:
    """Every test starts with no conversation (they live on the server, which the tests of
    this module share, as one anonymous owner)."""
    forget_chats(server)


def forget_chats(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for chat in http.get("/v1/chats?limit=200").json()["data"]:
            assert http.delete(f"/v1/chats/{chat['id']}").status_code == 204


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


def text_of(message: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


def conversation(page: Page) -> dict[str, Any]:
    """The current conversation as the server keeps it (``GET /v1/chats/{id}``), its messages
    with their ``content`` (the text parts) beside the UIMessage."""
    conv_id = page.evaluate("decodeURIComponent(location.hash.split('/')[2] || '')")
    origin = page.evaluate("location.origin")
    found: dict[str, Any] = httpx.get(f"{origin}/v1/chats/{conv_id}", timeout=10).json()
    assert "messages" in found, f"no stored conversation {conv_id!r}: {found}"
    for message in found["messages"]:
        message["content"] = text_of(message)
    return found


def saved_answers(page: Page, count: int) -> list[dict[str, Any]]:
    """The server's messages once it holds ``count`` of them and nothing runs (the answer is
    saved when its generation ends, just after the page has read its end)."""
    found: list[dict[str, Any]] = []

    def ready() -> bool:
        chat = conversation(page)
        found[:] = chat["messages"]
        return len(found) == count and not chat["running"]

    eventually_sync(ready, timeout=15, interval=0.05)
    return found


def shown(locator: Locator) -> str:
    return " ".join(locator.get_by_test_id("chat-msg-body").inner_text().split())


def generation_bodies(page: Page) -> list[dict[str, Any]]:
    """The bodies of the page's chat turns (``POST /v1/ui/chat``), recorded from now on."""
    bodies: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/ui/chat"):
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
    stored = saved_answers(page, 6)
    sent = bodies[2]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert [text_of(m) for m in sent] == [m["content"] for m in stored[:5]]
    assert [m["id"] for m in sent] == [m["id"] for m in stored[:5]]  # the server's own ids
    assert [text_of(m) for m in sent[::2]] == [
        "first question about streaming",
        "a second\nquestion",
        "third",
    ]
    for turn, body in enumerate(bodies):  # each turn sent every earlier message, in order
        assert body["messages"] == sent[: 2 * turn + 1]
        assert body["model"] == "demo" and body["trigger"] == "submit-message"
        assert len({body["id"] for body in bodies}) == 1  # one chat
    # the demo model counts the words of everything it was sent: the history reached it
    for turn, body in enumerate(bodies):
        words = sum(len(text_of(m).split()) for m in body["messages"])
        answer = answers(page).nth(turn)
        assert f"You wrote {words} words" in shown(answer)
        assert " ".join(stored[2 * turn + 1]["content"].split()) == shown(answer)
    # two answers of 20 words each and the three questions' 4 + 3 + 1 words
    assert sum(len(text_of(m).split()) for m in sent) == 2 * 20 + 8
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
    assert len(bodies) == 2 and bodies[1]["messages"] == bodies[0]["messages"]
    assert bodies[1]["trigger"] == "regenerate-message" and bodies[1]["messageId"] == old_stream
    assert [m["role"] for m in saved_answers(page, 2)] == ["user", "assistant"]
    assert page_errors(page) == []


def slow_answer_under_way(
    page: Page, server: ServerProcess, prompt: str, shown_chars: int
) -> Locator:
    """Send ``prompt`` to the slow model; the answer's locator once it is streaming and shows
    more than ``shown_chars`` characters."""
    open_chat(page, server, "slow")
    send(page, prompt)
    answer = answers(page).nth(0)
    expect(answer).to_have_attribute("data-status", "streaming", timeout=10_000)
    page.wait_for_function(
        """n => document.querySelector('[data-role=assistant] [data-testid=chat-msg-body]')
             ?.innerText.length > n""",
        arg=shown_chars,
        timeout=15_000,
    )
    return answer


def test_a_reload_mid_answer_resumes_it_with_no_text_twice(
    page: Page, server: ServerProcess
) -> None:
    prompt = "show me a resumed stream"
    expected = "".join(demo_answer(prompt, SLOW_TOKENS))
    answer = slow_answer_under_way(page, server, prompt, shown_chars=120)
    stream_id = answer.get_attribute("data-stream")
    assert stream_id and stream_id.startswith("gen-")
    conv_id = page.evaluate("decodeURIComponent(location.hash.split('/')[2])")
    resumed: list[str] = []
    page.on("request", lambda r: resumed.append(r.url) if "/v1/ui/chat" in r.url else None)

    page.reload()
    page.wait_for_selector("body[data-ready='1'][data-page='chat'] #page[data-ready='1']")
    answer = answers(page).nth(0)
    expect(answer).to_have_attribute("data-stream", stream_id)  # the same generation
    before = conversation(page)
    assert before["running"] and before["stream"] == stream_id  # reloaded mid-answer
    assert len(before["messages"]) == 1  # the answer is saved when it ends
    expect(answer).to_have_attribute("data-status", "done", timeout=30_000)
    assert " ".join(expected.split()) == shown(answer)  # nothing lost, nothing twice
    after = saved_answers(page, 2)[1]
    assert after["content"] == expected and after["id"] == stream_id
    # after the reload the page asked for the chat's running answer (a full replay)
    assert resumed and resumed[0].endswith(f"/v1/ui/chat/{conv_id}/stream")
    assert after["metadata"]["usage"]["outputTokens"] == SLOW_TOKENS
    expect(answer.get_by_test_id("chat-ttft")).to_contain_text("ms to first token")
    expect(answer.get_by_test_id("chat-tokens")).to_have_text(f"{SLOW_TOKENS} tokens")
    screenshot(page, "chat-resumed", _name(page))
    assert page_errors(page) == []


def test_stop_marks_the_answer_stopped(page: Page, server: ServerProcess) -> None:
    prompt = "stop me halfway"
    expected = "".join(demo_answer(prompt, SLOW_TOKENS))
    answer = slow_answer_under_way(page, server, prompt, shown_chars=80)
    # the server's live figures while the answer is written (the stream's data-progress)
    page.wait_for_function(
        r"""() => {
             const a = document.querySelector('[data-testid=chat-msg][data-role=assistant]');
             const text = (id) => a?.querySelector(`[data-testid=${id}]`)?.innerText ?? '';
             return a?.dataset.status === 'streaming'
               && /^\d+\.\d tok\/s$/.test(text('chat-rate'))
               && / ms to first token$/.test(text('chat-ttft'))
               && /^\d+ tokens$/.test(text('chat-tokens'));
           }""",
        timeout=10_000,
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
    stopped = saved_answers(page, 2)[1]
    content = stopped["content"]
    assert 0 < len(content) < len(expected) and expected.startswith(content)
    assert stopped["metadata"]["status"] == "stopped"
    assert " ".join(content.split()) == shown(answer)
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
    assert len(bodies) == 2 and bodies[0]["messages"] == bodies[1]["messages"]
    [question] = bodies[0]["messages"]
    assert question["role"] == "user" and text_of(question) == "will this fail"
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
    assert saved_answers(page, 2)[1]["content"] == HOSTILE_TEXT
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
    page.reload()  # kept by the server
    page.wait_for_selector("#page[data-ready='1']")
    open_conversations(page)
    expect(page.get_by_test_id("chat-conv")).to_have_text(["Renamed chat"])
    expect(page.get_by_test_id("chat-title")).to_have_text("Renamed chat")
    models = httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"]
    options = page.locator("[data-testid=chat-model] option")
    assert [o.get_attribute("value") for o in options.all()] == [m["id"] for m in models]
    assert page_errors(page) == []


def other_browser(page: Page) -> Page:
    """A page in a new browser context of ``page``'s browser: its own storage and
    connections (another browser, as far as the server can tell), errors recorded."""
    browser = page.context.browser
    assert browser is not None
    other = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    errors: list[str] = []
    failed: list[tuple[int, str]] = []
    other.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    other.on("pageerror", lambda exc: errors.append(str(exc)))
    other.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    other.console_errors = errors  # type: ignore[attr-defined]
    other.failed = failed  # type: ignore[attr-defined]
    return other


def test_a_conversation_made_in_one_browser_shows_in_another_with_its_running_answer(
    server: ServerProcess,
) -> None:
    prompt = "share this conversation"
    expected = " ".join("".join(demo_answer(prompt, SLOW_TOKENS)).split())
    with sized_page("wide") as first:
        second = other_browser(first)
        open_chat(first, server, "slow")
        send(first, prompt)
        expect(answers(first).nth(0)).to_have_attribute("data-status", "streaming", timeout=10_000)
        conv_id = first.evaluate("decodeURIComponent(location.hash.split('/')[2])")
        # another browser (its own storage, its own connection) opens the chat page
        second.goto(f"{server.url}/#/chat")
        second.wait_for_selector("#page[data-ready='1']")
        open_conversations(second)
        expect(second.get_by_test_id("chat-conv")).to_have_text([prompt])
        expect(second.get_by_test_id("chat-title")).to_have_text(prompt)
        assert second.evaluate("decodeURIComponent(location.hash.split('/')[2])") == conv_id
        # it follows the answer while the first browser is still receiving it
        theirs = answers(second).nth(0)
        expect(theirs).to_have_attribute("data-status", "streaming", timeout=10_000)
        expect(answers(first).nth(0)).to_have_attribute("data-status", "streaming")
        for page in (first, second):
            expect(answers(page).nth(0)).to_have_attribute("data-status", "done", timeout=30_000)
            assert shown(answers(page).nth(0)) == expected
        user_turns = second.locator("[data-role=user] [data-testid=chat-msg-body]")
        expect(user_turns).to_have_text([prompt])
        assert page_errors(first) == [] and page_errors(second) == []


def test_a_dropped_connection_resumes_after_the_last_event(
    page: Page, server: ServerProcess
) -> None:
    prompt = "drop my connection"
    expected = "".join(demo_answer(prompt, SLOW_TOKENS))
    with FaultProxy(server.port) as proxy:  # the page talks to the server through it
        page.goto(f"{proxy.url('http')}/#/chat/new")
        page.wait_for_selector("#page[data-ready='1'] [data-testid=chat-model][data-ready='1']")
        page.select_option("[data-testid=chat-model]", "slow")
        resumed_with: list[str | None] = []
        page.on(
            "request",
            lambda r: (
                resumed_with.append(r.headers.get("last-event-id"))
                if r.url.endswith("/stream")
                else None
            ),
        )
        send(page, prompt)
        answer = answers(page).nth(0)
        page.wait_for_function(
            """() => document.querySelector('[data-role=assistant] [data-testid=chat-msg-body]')
                 ?.innerText.length > 80""",
            timeout=15_000,
        )
        assert proxy.reset_all() >= 1  # the answer's connection is cut (RST) mid-answer
        expect(answer).to_have_attribute("data-status", "done", timeout=30_000)
        assert saved_answers(page, 2)[1]["content"] == expected
    assert " ".join(expected.split()) == shown(answer)  # nothing lost, nothing twice
    # the page reconnected asking for what came after the last event it received
    assert resumed_with and resumed_with[0]
    assert 1 < int(resumed_with[0].rsplit("-", 1)[1].split(".")[0]) < SLOW_TOKENS
    assert page_errors(page) == []
