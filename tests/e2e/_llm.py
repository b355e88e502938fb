"""Shared pieces of the LLM gateway e2e tests: the fake upstream's control API and the
gateway's environment."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson

from mianzhang import SSEDecoder
from mianzhang.auth import hash_api_key
from tests._support.wait import eventually_sync

GRACE = 1.0  # llm.grace_period of the test gateways (seconds)
API_KEY = "mz_e2e-llm-test-key"  # the key the openai SDK presents (scopes llm and streams)
NARROW_KEY = "mz_e2e-files-only-key"  # a valid key without the llm scope
UPSTREAM_KEY = "sk-fake-upstream-secret"  # what the gateway sends to the fake upstream


class UpstreamControl:
    """Drive and observe ``tests/e2e/apps/fake_upstream.py`` over its control API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def close(self) -> None:
        self.http.close()

    def reset(self) -> None:
        self.http.post("/_control/reset").raise_for_status()

    def plan(self, *steps: dict[str, Any]) -> None:
        self.http.post("/_control/plan", json={"plan": list(steps)}).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return list(self.http.get("/_control/requests").json()["requests"])

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Poll the recorded requests until ``predicate`` holds (fails after ``timeout``);
        the requests it held for."""
        seen: list[dict[str, Any]] = []

        def holds() -> bool:
            seen[:] = self.requests()
            return predicate(seen)

        eventually_sync(
            holds, timeout=timeout, interval=0.02, message="upstream never met the condition"
        )
        return seen


def sse_events(response: httpx.Response) -> Iterator[Any]:
    """The SSE events of ``response`` as they arrive (mianzhang's decoder)."""
    decoder = SSEDecoder()
    for raw in response.iter_raw():
        yield from decoder.decode(raw)


def read_stream(url: str, *, last_event_id: str | None = None) -> list[Any]:
    """Every event of ``GET url`` (a stream route) until it ends."""
    headers = {"last-event-id": last_event_id} if last_event_id else {}
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        return list(sse_events(response))


def text_of(events: list[Any]) -> str:
    """The answer text carried by chat completion chunk events."""
    out = []
    for e in events:
        if e.data in ("", "[DONE]"):
            continue
        body = orjson.loads(e.data)
        for choice in body.get("choices") or []:
            out.append(choice["delta"].get("content") or "")
    return "".join(out)


def gateway_env(upstream_url: str, **extra: str) -> dict[str, str]:
    """Environment of a mianzhang server whose models stream from the fake upstream:
    ``fake`` (the upstream), ``flaky`` (a dead upstream falling back to ``fake``) and ``demo``.
    """
    models = {
        "fake": {"provider": "openai", "upstream": "fake", "upstream_model": "fake-up"},
        "flaky": {"provider": "openai", "upstream": "dead", "fallbacks": ["fake"]},
        "demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.02, "tokens": 40},
    }
    upstreams = {
        "fake": {"base_url": f"{upstream_url}/v1", "api_key_env": "FAKE_UPSTREAM_KEY"},
        "dead": {"base_url": "http://127.0.0.1:9/v1", "connect_timeout": 1.0},
    }
    keys = {
        "sdk": {"digest": hash_api_key(API_KEY), "scopes": ["llm", "streams"]},
        "narrow": {"digest": hash_api_key(NARROW_KEY), "scopes": ["files"]},
    }
    return {
        # keys are checked when presented; requests without one (browser, CLI) are anonymous
        "MIANZHANG_AUTH__API_KEYS": json.dumps(keys),
        "MIANZHANG_AUTH__ANONYMOUS": "true",
        "FAKE_UPSTREAM_KEY": UPSTREAM_KEY,
        "MIANZHANG_LLM__MODELS": json.dumps(models),
        "MIANZHANG_LLM__UPSTREAMS": json.dumps(upstreams),
        "MIANZHANG_LLM__DEFAULT_MODEL": "demo",
        "MIANZHANG_LLM__GRACE_PERIOD": str(GRACE),
        "MIANZHANG_LLM__RETRY_INITIAL_DELAY": "0.05",
        "MIANZHANG_LLM__RETRY_MAX_DELAY": "0.2",
        "MIANZHANG_FILES__ENABLED": "false",
        **extra,
    }


APP = "mianzhang.server:create_app"  # the real server, run as a uvicorn factory
