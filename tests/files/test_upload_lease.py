"""Upload progress streams have a live producer (issue 15): the request receiving an upload
holds its ``upload:{id}`` stream's producer lease. In one process (the memory log) "the
instance died" is a request whose lease renewals stop while it never ends: a plain upload's
readers then get an ``error`` of type ``producer_lost`` and the stream ends ``failed``; a tus
``PATCH``'s get ``paused`` (reason ``producer_lost``) and the stream stays open for the next
``PATCH``. Uploads that end normally leave no lease and no ``producer_lost``."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import orjson
import pytest

from mianzhang.files import FilesService, FilesSettings, progress_stream
from mianzhang.log import LeaseHolder, LogEvent, MemoryEventLog, StreamState
from mianzhang.log._protocol import PRODUCER_LOST
from tests._support.asgi import StalledClient, http_scope
from tests._support.wait import eventually
from tests.log._util import drain

from .conftest import make_app

TTL = 0.3
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def leased(tmp_path: Path, log: MemoryEventLog) -> FilesService:
    settings = FilesSettings(directory=tmp_path / "files", fsync=False, progress_interval=0.0)
    return FilesService(settings, log, lease_ttl=TTL)


@pytest.fixture
async def http(leased: FilesService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(leased))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def no_renewals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lease renewals never happen: the request is alive, its instance looks dead."""

    async def renew_nothing(self: LeaseHolder) -> None:
        return None

    monkeypatch.setattr(LeaseHolder, "_renew", renew_nothing)


def upload_streams(log: MemoryEventLog) -> list[str]:
    return [name for name in log._streams if name.startswith("upload:")]


async def state(log: MemoryEventLog, stream: str) -> StreamState | None:
    info = await log.info(stream)
    return None if info is None else info.state


def progress(events: list[LogEvent]) -> list[dict[str, object]]:
    return [json.loads(e.data) for e in events if e.event == "progress"]


async def test_a_plain_upload_whose_instance_dies_ends_failed_with_producer_lost(
    leased: FilesService, log: MemoryEventLog, no_renewals: None
) -> None:
    app = make_app(leased)
    stalled = StalledClient(os.urandom(50_000))
    headers = {"Content-Length": "200000"}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(app, http_scope("PUT", "/v1/files", headers=headers.items()),
                             stalled.receive, stalled.send)  # fmt: skip
            await stalled.taken.wait()
            await eventually(lambda: len(upload_streams(log)) == 1)
            (stream,) = upload_streams(log)
            got = [e for e in await drain(log.follow(stream)) if isinstance(e, LogEvent)]
            group.cancel_scope.cancel()  # the request itself never ends by itself
    assert got[-1].event == "error"
    assert orjson.loads(got[-1].data)["type"] == PRODUCER_LOST
    assert sum(e.event == "error" for e in got) == 1
    assert progress(got)[0]["state"] == "receiving"
    assert await state(log, stream) is StreamState.FAILED
    _, events = await log.read(stream)
    assert [e.id for e in events] == [e.id for e in got]  # the cancelled request added nothing
    assert leased.storage.temp_count() == 0


async def test_a_plain_upload_that_ends_leaves_no_lease_and_no_producer_lost(
    http: httpx.AsyncClient, log: MemoryEventLog
) -> None:
    data = os.urandom(300_000)

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 50_000):
            yield data[start : start + 50_000]
            await anyio.sleep(TTL / 2)  # the upload outlasts the lease ttl: renewals keep it

    response = await http.put("/v1/files", content=body())
    assert response.status_code == 201, response.text
    stream = progress_stream(response.json()["id"])
    _, events = await log.read(stream)
    assert progress(events)[-1]["state"] == "complete"
    assert all(e.event == "progress" for e in events)
    assert await state(log, stream) is StreamState.CLOSED
    assert await log.expire_lease(stream) is None
    assert await log.sweep_leases() == 0


async def test_a_plain_upload_whose_lease_is_lost_is_stopped_with_503(
    leased: FilesService, log: MemoryEventLog
) -> None:
    app = make_app(leased)
    stalled = StalledClient(os.urandom(50_000))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(app, http_scope("PUT", "/v1/files", headers=[]),
                             stalled.receive, stalled.send)  # fmt: skip
            await stalled.taken.wait()
            await eventually(lambda: len(upload_streams(log)) == 1)
            (stream,) = upload_streams(log)
            lease = log._streams[stream].lease
            assert lease is not None
            # presumed dead: another instance applied its lease
            assert await log.release_lease(stream, lease.owner, apply=True)
    start, body = stalled.sent[0], stalled.sent[1]
    assert start["status"] == 503
    assert json.loads(body["body"])["error"]["type"] == "producer_lost"
    assert await state(log, stream) is StreamState.FAILED
    assert leased.stats.uploads_failed == 1
    assert leased.storage.temp_count() == 0


async def create_tus(http: httpx.AsyncClient, length: int) -> str:
    created = await http.post("/v1/uploads", headers={**TUS, "Upload-Length": str(length)})
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


async def test_a_paused_tus_upload_keeps_its_stream_open_without_a_lease(
    http: httpx.AsyncClient, log: MemoryEventLog
) -> None:
    data = os.urandom(100_000)
    url = await create_tus(http, len(data))
    stream = progress_stream(url.rsplit("/", 1)[1])
    first = await http.patch(url, content=data[:40_000], headers={**OCTETS, "Upload-Offset": "0"})
    assert first.status_code == 204
    assert await log.expire_lease(stream) is None  # released: a pause is not a death
    assert await state(log, stream) is StreamState.OPEN
    _, events = await log.read(stream)
    assert progress(events)[-1]["state"] == "paused"
    rest = await http.patch(
        url, content=data[40_000:], headers={**OCTETS, "Upload-Offset": "40000"}
    )
    assert rest.status_code == 204
    _, events = await log.read(stream)
    assert [p["state"] for p in progress(events)][-1] == "complete"
    assert all("reason" not in p for p in progress(events))
    assert await state(log, stream) is StreamState.CLOSED


async def test_a_tus_patch_whose_instance_dies_says_paused_and_the_upload_resumes(
    leased: FilesService, http: httpx.AsyncClient, log: MemoryEventLog, no_renewals: None
) -> None:
    data = os.urandom(200_000)
    url = await create_tus(http, len(data))
    stream = progress_stream(url.rsplit("/", 1)[1])
    app = make_app(leased)
    stalled = StalledClient(data[:60_000])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            scope = http_scope("PATCH", url, headers={**OCTETS, "Upload-Offset": "0"}.items())
            group.start_soon(app, scope, stalled.receive, stalled.send)
            await stalled.taken.wait()
            follower = log.follow(stream)
            lost = None
            async for item in follower:
                if isinstance(item, LogEvent) and '"producer_lost"' in item.data:
                    lost = json.loads(item.data)
                    break
            await follower.aclose()
            group.cancel_scope.cancel()
    assert lost == {"id": url.rsplit("/", 1)[1], "state": "paused", "received": 0,
                    "total": len(data), "reason": PRODUCER_LOST}  # fmt: skip
    assert await state(log, stream) is StreamState.OPEN  # resumable: not failed
    head = await http.head(url, headers=TUS)
    offset = int(head.headers["upload-offset"])
    rest = await http.patch(
        url, content=data[offset:], headers={**OCTETS, "Upload-Offset": str(offset)}
    )
    assert rest.status_code == 204
    _, events = await log.read(stream)
    assert progress(events)[-1]["state"] == "complete"
    assert await state(log, stream) is StreamState.CLOSED
