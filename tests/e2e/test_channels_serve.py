"""A channel's fan-out under ``mianzhang serve`` itself (its protocol offers streams their
transport: every push runs the connection's acknowledgement watchdog and is written directly
to the connection, ``_transport.direct_body``): every subscriber gets every event exactly
once, in order, in a well-framed chunked body; each stream's access record counts every byte
of it; the server logs no error.

The fan-out pushes to caught-up readers from a loop callback, not from their tasks; a push
path that needs a task (a per-loop object looked up there) failed once per reader, and the
reader re-read the event on its own path: a repeat for every subscriber, seen only by the
fan-out bench. Plain uvicorn offers no transport, so the other channel tests cannot see it.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests._support.procs import serve_process
from tests._support.wait import eventually
from tests.e2e._channels import read_until

pytestmark = [pytest.mark.e2e]

SUBSCRIBERS = 40
EVENTS = 30


async def test_every_subscriber_gets_every_event_once_in_order() -> None:
    env = {
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
        "MIANZHANG_LOG_FORMAT": "json",
    }
    with serve_process(env=env, args=("--log-level", "info")) as server:
        url = f"{server.url}/v1/channels/news/events"
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            live = {"history": "false"}
            last = f"m{EVENTS - 1}"
            readers = [
                asyncio.create_task(read_until(url, last, params=live)) for _ in range(SUBSCRIBERS)
            ]

            async def all_subscribed() -> bool:
                answer = await http.get("/v1/channels/news")
                return bool(answer.json()["subscribers"] == SUBSCRIBERS)

            await eventually(all_subscribed, timeout=20)
            for i in range(EVENTS):
                answer = await http.post("/v1/channels/news/publish", json={"data": f"m{i}"})
                assert answer.status_code == 201, answer.text
            async with asyncio.timeout(30):
                results = await asyncio.gather(*readers)
    log = server.output()  # the whole log: the server has stopped
    expected = [f"m{i}" for i in range(EVENTS)]
    for got in results:
        assert [event.data for event in got] == expected  # once each, in order
        ids = [event.id for event in got]
        assert len(set(ids)) == EVENTS
    assert '"level": "error"' not in log.replace('":"', '": "'), log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "mianzhang.access"]
    streams = [r for r in access if r["path"].endswith("/events")]
    assert len(streams) == SUBSCRIBERS
    # every event's bytes (id, data, the blank line) at least, pushed ones included
    least = sum(len(f"id: x\ndata: m{i}\n\n") for i in range(EVENTS))
    assert all(r["status"] == 200 and r["bytes"] >= least for r in streams), streams[:2]
