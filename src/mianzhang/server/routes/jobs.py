"""HTTP routes of the jobs feature (``mianzhang.jobs``).

==================================  =========================================================
``POST /v1/jobs``                    ``{"type", "input"}`` -> 202, the job with ``links``
                                     (``self``, ``events``, ``cancel``) and ``Location``;
                                     400 unknown type or bad input, 404 missing file or
                                     model, 503 + ``Retry-After`` when the queue is full
``GET /v1/jobs``                     recent jobs, newest first (``?limit=``, at most 1000)
``GET /v1/jobs/{id}``                state, progress, result or error (404 if unknown)
``GET /v1/jobs/{id}/events``         live progress as SSE, resumable (``Last-Event-ID`` or
                                     ``?last_event_id=``); 204 once a finished job's events
                                     were read to the end, so ``EventSource`` stops
``POST /v1/jobs/{id}/cancel``        202 while a running job stops, 200 when cancelled,
                                     409 if it already succeeded or failed
==================================  =========================================================

Events (data is JSON): ``state`` ``{"state", "attempt"}`` (``running`` again with a higher
attempt when a job is re-run after its worker died), ``progress`` ``{"percent", "message"}``,
``partial`` ``{"data"}``, then exactly one of ``complete`` ``{"result"}``, ``error``
``{"type", "message"}`` or ``state`` ``{"state": "cancelled"}``, and the stream ends.

Auth (scope ``jobs``) is added where the router is included (``create_app``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from ..._errors import Conflict, InvalidRequest, JobNotFound, NotFound, RequestTooLarge
from ...jobs import JobRecord, JobService, JobState
from ...log import StreamState
from ...log.serve import requested_after
from .._deps import Host, Jobs
from .._errors import ErrorRoute

__all__ = ["SubmitJob", "job_json", "jobs_router"]

_JOB_ID = re.compile(r"^job_[0-9a-f]{16}$")
_MAX_BODY = 8 << 20


class SubmitJob(BaseModel):
    """``POST /v1/jobs``: the job type and its input (checked against the type's model)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)


def job_json(record: JobRecord, request: Request, *, with_input: bool = True) -> dict[str, Any]:
    """The public view of a job: its record, its event stream and its links."""
    data = record.to_dict()
    if not with_input:
        data.pop("input")
    base = request.url_for("jobs:get", job_id=record.id).path
    data["stream"] = record.stream
    data["links"] = {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}
    return data


async def _find(jobs: JobService, job_id: str) -> JobRecord:
    if not _JOB_ID.match(job_id):
        raise JobNotFound(job_id)
    return await jobs.get(job_id)


def _refuse_finished(record: JobRecord) -> None:
    """The 409 for a job that already succeeded or failed (cancelling it means nothing)."""
    if record.state in (JobState.SUCCEEDED, JobState.FAILED):
        raise Conflict(f"job {record.id!r} already {record.state.value}")


def _submission(raw: bytes) -> SubmitJob:
    if len(raw) > _MAX_BODY:
        raise RequestTooLarge(_MAX_BODY)
    try:
        return SubmitJob.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"expected {{'type', 'input'}} JSON: {exc}") from None
    except ValidationError as exc:
        problems = [
            {"loc": ".".join(str(p) for p in error["loc"]), "msg": error["msg"]}
            for error in exc.errors(include_url=False)
        ]
        raise InvalidRequest(
            f"expected {{'type', 'input'}} JSON: {exc}", problems=problems
        ) from None


jobs_router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=ErrorRoute)


@jobs_router.post("", name="jobs:submit", status_code=202)
async def submit(request: Request, jobs: Jobs) -> Response:
    """Queue a job; 202 with its id, state and links."""
    body = _submission(await request.body())
    record = await jobs.submit(body.type, body.input)
    payload = job_json(record, request, with_input=False)  # the client has it
    return JSONResponse(payload, status_code=202, headers={"Location": payload["links"]["self"]})


@jobs_router.get("", name="jobs:list")
async def recent(request: Request, jobs: Jobs, limit: int = 50) -> Response:
    """The most recent jobs still kept, newest first (without their input)."""
    records = await jobs.recent(max(1, min(limit, 1000)))
    return JSONResponse({"jobs": [job_json(r, request, with_input=False) for r in records]})


@jobs_router.get("/{job_id}", name="jobs:get")
async def get(request: Request, job_id: str, jobs: Jobs) -> Response:
    """The job's state, progress, and result or error."""
    return JSONResponse(job_json(await _find(jobs, job_id), request))


@jobs_router.get("/{job_id}/events", name="jobs:events")
async def events(request: Request, job_id: str, jobs: Jobs, host: Host) -> Response:
    """The job's events as SSE after ``Last-Event-ID``; ends after the final event."""
    record = await _find(jobs, job_id)
    after = requested_after(request)
    info = await host.log.info(record.stream)
    if info is None:
        raise NotFound(f"the events of job {job_id!r} are no longer kept")
    if info.state is not StreamState.OPEN and after is not None and after == info.last_id:
        return Response(status_code=204)
    return host.sse(request, record.stream, after, {"X-Job-Id": record.id})


@jobs_router.post("/{job_id}/cancel", name="jobs:cancel")
async def cancel(request: Request, job_id: str, jobs: Jobs) -> Response:
    """Ask the job to stop wherever it runs."""
    _refuse_finished(await _find(jobs, job_id))
    record = await jobs.cancel(job_id)
    _refuse_finished(record)  # finished meanwhile
    status = 200 if record.state.terminal else 202
    return JSONResponse(job_json(record, request, with_input=False), status_code=status)
