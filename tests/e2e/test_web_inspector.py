"""The stream inspector in Chromium against a real ``mianzhang serve``: opened from a chat answer
it shows the generation's events as they arrive (ids in order, none twice), a time to first
token equal to the one the server's metrics recorded, an inter-token latency chart, readers, and
replays after any id; the channels, jobs and tails pages link to it (a tail's reset is counted
and shown)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests._support.procs import ServerProcess, serve_process

from ._llm import read_stream
from ._web import VIEWPORTS, horizontal_overflow, open_page, page_errors, screenshot, sized_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TOKENS = 120  # 50 ms apart: six seconds of live tokens
MODELS = {
    "demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.01, "tokens": 10},
    # one model per viewport: each one's metrics then hold exactly that test's generation
    **{
        f"inspected-{viewport}": {
            "provider": "demo",
            "ttft": 0.3,
            "token_delay": 0.05,
            "tokens": TOKENS,
        }
        for viewport in VIEWPORTS
    },
}


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tails") / "app.log"
    path.write_text("".join(f"boot line {i}\n" for i in range(3)))
    return path


@pytest.fixture(scope="module")
def server(log_file: Path) -> Iterator[ServerProcess]:
    env = {
        "MIANZHANG_LLM__MODELS": json.dumps(MODELS),
        "MIANZHANG_LLM__DEFAULT_MODEL": "demo",
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_TAILS__FILES": json.dumps({"app": str(log_file)}),
    }
    with serve_process(env=env) as srv:
        yield srv


def metrics_ttft_ms(server: ServerProcess, model: str) -> float:
    """The sum of the TTFT histogram for ``model`` in ``/metrics``, in ms (one generation)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    pattern = (
        r"^gen_ai_server_time_to_first_token_seconds_sum\{[^}]*"
        rf'gen_ai_request_model="{model}"[^}}]*\}} (\S+)$'
    )
    found = re.findall(pattern, text, re.MULTILINE)
    assert len(found) == 1, text
    count = re.findall(
        rf'^gen_ai_server_time_to_first_token_seconds_count\{{[^}}]*"{model}"[^}}]*\}} (\S+)$',
        text,
        re.MULTILINE,
    )
    assert count == ["1.0"]  # exactly one generation of this model: the sum is its TTFT
    return round(float(found[0]) * 1000, 3)


def position(event_id: str) -> tuple[int, float]:
    """Where an SSE id of a generation stands (``llm/_reader.py``): ``{epoch}-{seq}`` is the
    last wire event of log event ``seq``, ``{epoch}-{seq}.{k}`` the k-th one before it."""
    seq, _, sub = event_id.rsplit("-", 1)[1].partition(".")
    return int(seq), int(sub) if sub else float("inf")


def event_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("[data-testid=inspect-rows] tr[data-kind=event]").evaluate_all(
        "rows => rows.map((r) => r.dataset.id)"
    )
    return ids


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_live_generation_in_the_inspector(server: ServerProcess, viewport: str) -> None:
    with sized_page(viewport) as page:
        _run_live(page, server, f"inspected-{viewport}", viewport)


def _run_live(page: Page, server: ServerProcess, model: str, viewport: str) -> None:
    open_page(page, f"{server.url}/#/chat/new", "chat")
    page.wait_for_selector("[data-testid=chat-model][data-ready='1']")
    page.select_option("[data-testid=chat-model]", model)
    page.get_by_test_id("chat-prompt").fill("inspect me")
    page.get_by_test_id("chat-prompt").press("Enter")
    link = page.get_by_test_id("chat-inspect")
    expect(link).to_be_visible(timeout=10_000)
    stream = page.locator("[data-role=assistant]").get_attribute("data-stream") or ""
    link.click()
    page.wait_for_selector("body[data-page='inspect']")
    expect(page.get_by_test_id("inspect-stream")).to_have_text(stream)

    # events arrive while the generation runs: the count grows step by step
    counts: list[int] = []
    while len(set(counts)) < 5:
        page.wait_for_function(
            "n => Number(document.getElementById('page').dataset.events || 0) > n",
            arg=max(counts, default=0),
            timeout=15_000,
        )
        count, state = page.evaluate(
            """() => [Number(document.getElementById('page').dataset.events),
                      document.querySelector('[data-testid=inspect-state]').textContent]"""
        )
        assert state not in ("finished", "ended")  # seen while the generation runs
        counts.append(count)
    assert counts == sorted(counts) and counts[-1] < TOKENS
    readers = page.get_by_test_id("inspect-readers")
    expect(readers).to_have_text(re.compile(r"^[1-9]\d*$"), timeout=5_000)
    expect(page.get_by_test_id("inspect-state")).to_have_text("finished", timeout=30_000)

    # every event once, in order: start, a content event per token (plus progress), complete
    ids = event_ids(page)
    positions = [position(i) for i in ids]
    assert positions == sorted(set(positions))  # strictly increasing: nothing twice
    # from the first log event to the last (a log event that encodes to nothing in this
    # surface, like the usage-only chunk, has no wire event and so no id)
    info = httpx.get(f"{server.url}/v1/streams/{stream}/info").json()
    assert positions[0][0] == 1 and ids[-1] == info["last_id"]
    epoch = info["epoch"]
    types = page.locator("[data-testid=inspect-rows] tr[data-kind=event] td.c-type")
    kinds = types.all_inner_texts()
    assert kinds[0] == "start" and kinds[-1] == "complete" and kinds.count("content") == TOKENS

    # the time to first token shown is the one the server measured and its metrics recorded
    shown = page.get_by_test_id("inspect-ttft")
    ttft = float(shown.get_attribute("data-ms") or "nan")
    assert ttft == metrics_ttft_ms(server, model)
    assert shown.inner_text() == f"{shown.get_attribute('data-ms')} ms"
    # the model's configured 0.3 s (the event loop may fire a timer a clock tick early)
    assert ttft >= 290
    # the mean time per token is the server's (its tokens_per_second), not this page's view
    native = read_stream(f"{server.url}/v1/streams/{stream}?format=native")
    timings = json.loads(native[-1].data)["timings"]
    per_token = f"{1000 / timings['tokens_per_second']:.1f} ms"
    expect(page.get_by_test_id("inspect-tpot")).to_have_text(per_token)
    chart = page.get_by_test_id("inspect-chart")
    assert chart.locator("svg rect.bar").count() >= 40
    expect(page.get_by_test_id("inspect-itl")).to_contain_text(" ms")
    assert horizontal_overflow(page) == 0  # the timeline scrolls inside its own box
    screenshot(page, "inspect-live", viewport)

    # replay after id N: the next event shown is N + 1, and the rest follows in order
    total = len(ids)
    expected = [i for i in ids if position(i)[0] > 10]  # after the whole of log event 10
    page.get_by_test_id("inspect-after").fill("10")
    page.get_by_test_id("inspect-replay").click()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=inspect-rows] tr[data-kind=event]').length"
        " >= n",
        arg=total + len(expected),
        timeout=10_000,
    )
    replayed = event_ids(page)[total:]
    assert replayed == expected
    opens = page.locator("[data-testid=inspect-rows] tr[data-kind=open]")
    assert f"{epoch}-10" in opens.evaluate_all("rows => rows.map((r) => r.dataset.id)")
    assert page_errors(page) == []


def test_channels_jobs_and_tails_pages_link_to_the_inspector(
    server: ServerProcess, log_file: Path
) -> None:
    published = httpx.post(f"{server.url}/v1/channels/news/publish", json={"data": "hello"})
    assert published.status_code == 201
    with sized_page("wide") as page:
        # channels
        open_page(page, f"{server.url}/#/notifications?channel=news", "notifications")
        link = page.get_by_test_id("notif-inspect")
        expect(link).to_have_attribute("href", "#/inspect/channel%3Anews")
        link.click()
        expect(page.get_by_test_id("inspect-stream")).to_have_text("channel:news")
        expect(page.locator("tr[data-kind=event]")).to_have_count(1, timeout=10_000)
        assert (
            page.locator("tr[data-kind=event]").first.get_attribute("data-id")
            == (published.json()["id"])
        )
        expect(page.get_by_test_id("inspect-readers")).to_have_text("1", timeout=5_000)

        # jobs
        open_page(page, f"{server.url}/#/jobs", "jobs")
        page.get_by_test_id("jobs-submit").click()
        expect(page.get_by_test_id("jobs-state")).to_have_text("succeeded", timeout=30_000)
        job_id = page.get_by_test_id("jobs-id").inner_text()
        page.get_by_test_id("jobs-inspect").click()
        expect(page.get_by_test_id("inspect-stream")).to_have_text(f"job:{job_id}")
        last = page.locator("tr[data-kind=event] td.c-type").last
        expect(last).to_have_text("complete", timeout=10_000)

        # tails: the inspector reads the same lines the tails page shows
        open_page(page, f"{server.url}/#/tails/app", "tails")
        expect(page.get_by_test_id("tails-line")).to_have_count(3, timeout=10_000)
        page.get_by_test_id("tails-inspect").click()
        expect(page.get_by_test_id("inspect-stream")).to_have_text("tail app")
        rows = page.locator("tr[data-kind=event] td.c-data")
        expect(rows).to_have_text([f"boot line {i}" for i in range(3)], timeout=10_000)
        with log_file.open("a") as f:
            f.write("a new line\n")
        expect(rows).to_have_count(4, timeout=10_000)
        expect(page.get_by_test_id("inspect-readers")).to_have_text("not tracked for tails")
        # a truncated file: the reset is counted and shown, then the new content follows
        log_file.write_text("after truncation\n")
        expect(page.get_by_test_id("inspect-resets")).to_have_text("1", timeout=10_000)
        expect(page.locator("tr.row-reset[data-type=reset]")).to_have_count(1)
        expect(rows.last).to_have_text("after truncation", timeout=10_000)
        assert page_errors(page, allowed=("/v1/files",)) == []  # the jobs page probes files
