"""Handing an uploaded file to a background job: ``POST /v1/files/{id}/jobs`` submits a job
whose input names the file; the job reads the stored bytes through the FilesService."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from mianzhang.files import FilesService, new_file_id
from mianzhang.jobs import (
    JobContext,
    JobRegistry,
    JobRunner,
    JobService,
    LocalJobPool,
    MemoryJobStore,
    job_stream,
)
from mianzhang.log import LogEvent, MemoryEventLog
from mianzhang.server._deps import get_files, get_jobs
from mianzhang.server.routes.files import file_jobs_router, files_router


@pytest.fixture
async def jobs(service: FilesService, log: MemoryEventLog) -> AsyncIterator[JobService]:
    registry = JobRegistry()

    @registry.job("checksum")
    async def checksum(ctx: JobContext) -> dict[str, Any]:
        files: FilesService = ctx.resources["files"]
        hasher = hashlib.sha256()
        size = 0
        async with aclosing(files.read(ctx.input["file"]["id"], chunk_size=10_000)) as reader:
            async for chunk in reader:
                hasher.update(chunk)
                size += len(chunk)
                await ctx.progress(100 * size / ctx.input["file"]["size"])
        return {"sha256": hasher.hexdigest(), "size": size, "note": ctx.input.get("note")}

    store = MemoryJobStore()
    runner = JobRunner(registry, store, log, resources={"files": service})
    async with LocalJobPool(runner, concurrency=1, max_queued=1) as pool:
        yield JobService(registry, store, log, pool)


@pytest.fixture
async def jobs_client(service: FilesService, jobs: JobService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(files_router)
    app.include_router(file_jobs_router)
    app.dependency_overrides[get_files] = lambda: service
    app.dependency_overrides[get_jobs] = lambda: jobs
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_an_uploaded_file_is_handed_to_a_job(
    jobs_client: httpx.AsyncClient, jobs: JobService, log: MemoryEventLog
) -> None:
    data = os.urandom(55_555)
    uploaded = await jobs_client.put("/v1/files/photo.jpg", content=data)
    assert uploaded.status_code == 201
    file_id = uploaded.json()["id"]

    submitted = await jobs_client.post(
        f"/v1/files/{file_id}/jobs",
        json={"type": "checksum", "input": {"note": "hi", "file": "ignored"}},
    )
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["type"] == "checksum"
    assert job["input"]["file"] == {**uploaded.json()}  # the server's description of the file
    assert job["input"]["note"] == "hi"
    assert job["stream"] == job_stream(job["id"])

    # follow the job's own event stream to its end (it is closed after the final event)
    events: list[LogEvent] = []
    with anyio.fail_after(10):
        async with aclosing(log.follow(job["stream"])) as followed:
            async for item in followed:
                if isinstance(item, LogEvent):
                    events.append(item)
    record = await jobs.get(job["id"])
    assert record.state.value == "succeeded", record
    assert record.result == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "note": "hi",
    }
    progress = [json.loads(e.data)["percent"] for e in events if e.event == "progress"]
    assert progress[-1] == 100 and len(progress) == 6  # 55 555 bytes in 10 000-byte chunks


async def test_handing_a_missing_file_or_an_unknown_type(
    jobs_client: httpx.AsyncClient, jobs: JobService
) -> None:
    missing = await jobs_client.post(f"/v1/files/{new_file_id()}/jobs", json={"type": "checksum"})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    uploaded = await jobs_client.put("/v1/files/a.txt", content=b"abc")
    url = f"/v1/files/{uploaded.json()['id']}/jobs"
    unknown = await jobs_client.post(url, json={"type": "nope"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["type"] == "invalid_request"
    assert "unknown job type 'nope'" in unknown.json()["error"]["message"]
    malformed = await jobs_client.post(url, json={"type": "checksum", "extra": 1})
    assert malformed.status_code == 400  # FastAPI's validation error, in mianzhang's shape
    assert malformed.json()["error"]["problems"][0]["loc"] == "extra"


async def test_no_jobs_route_without_a_job_service(client: httpx.AsyncClient) -> None:
    uploaded = await client.put("/v1/files/a.txt", content=b"abc")
    response = await client.post(
        f"/v1/files/{uploaded.json()['id']}/jobs", json={"type": "checksum"}
    )
    assert response.status_code == 404
