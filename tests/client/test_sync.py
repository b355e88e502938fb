"""The sync client mirrors the async one: the same scripted cases, blocking."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mianzhang import EventTooLarge, ReconnectExhausted, ResponseRejected
from mianzhang.client import Backoff, ResetEvent, connect_sync
from tests.client.scripted import Script, Sleeps, Stream

URL = "http://test/stream"
TOP = Backoff(max_delay=10.0, uniform=lambda lo, hi: hi)


def test_events_resume_with_last_event_id_and_end_on_204() -> None:
    script = Script(
        [
            Stream([b"retry: 500\nid: 1\ndata: a\n\nid: 2\nda"], error=httpx.ReadError("reset")),
            Stream(["id: ü\ndata: b\n\n".encode()]),
        ]
    )
    sleeps = Sleeps()
    with script.sync_client() as client, connect_sync(URL, client=client, sleep=sleeps.sync) as s:
        assert [e.data for e in s] == ["a", "b"]
        assert (s.last_event_id, s.retry, s.reconnects) == ("ü", 500, 2)
        assert not client.is_closed
    assert script.last_ids() == [None, b"1", "ü".encode()]
    assert sleeps.delays == [0.5, 0.5]
    assert script.all_closed


def test_backoff_and_exhaustion() -> None:
    script = Script([httpx.ConnectError("refused") for _ in range(5)])
    sleeps = Sleeps()
    with script.sync_client() as client:
        stream = connect_sync(
            URL, client=client, retry=1000, backoff=TOP, max_reconnects=3, sleep=sleeps.sync
        )
        with pytest.raises(ReconnectExhausted):
            stream.__enter__()
    assert sleeps.delays == [2.0, 4.0, 8.0]
    assert stream.closed


def test_rejection_is_final() -> None:
    script = Script([Stream([b"nope"], status=404, headers={"content-type": "text/plain"})])
    with script.sync_client() as client, pytest.raises(ResponseRejected) as info:
        connect_sync(URL, client=client).__enter__()
    assert (info.value.status_code, info.value.body) == (404, b"nope")
    assert len(script.requests) == 1
    assert script.all_closed


def test_event_too_large_and_control_events() -> None:
    script = Script(
        [
            Stream(
                [
                    b'event: reset\ndata: {"reason": "retention"}\n\n',
                    b"id: 1\ndata: a\n\nevent: reconnect\ndata: \nretry: 40\n\n",
                ]
            ),
            Stream([b"data: " + b"x" * 100]),
        ]
    )
    sleeps = Sleeps()
    with (
        script.sync_client() as client,
        connect_sync(URL, client=client, max_event_size=50, sleep=sleeps.sync) as stream,
    ):
        first = next(stream)
        assert isinstance(first, ResetEvent) and first.reason == "retention"
        assert next(stream).data == "a"
        with pytest.raises(EventTooLarge):
            next(stream)
        assert list(stream) == []
    assert sleeps.delays == [0.04]
    assert script.last_ids() == [None, b"1"]
    assert script.all_closed


def test_owned_client_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script([])
    created: list[httpx.Client] = []

    class Recording(httpx.Client):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport=httpx.MockTransport(script.sync_handler), **kwargs)
            created.append(self)

    monkeypatch.setattr(httpx, "Client", Recording)
    with connect_sync(URL) as stream:
        assert list(stream) == []
    assert created[0].is_closed and created[0].follow_redirects


def test_iterating_without_with_fails_loudly() -> None:
    with pytest.raises(RuntimeError):
        next(connect_sync(URL))
