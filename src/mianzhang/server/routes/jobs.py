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

from ..._errors import InvalidJobInput, JobNotFound, JobQueueFull
from ...jobs import JobRecord, JobService, JobState
from ...log import StreamState
from ...log.serve import requested_after
from .._deps import Host, Jobs

__all__ = ["SubmitJob", "job_json", "jobs_router"]

_JOB_ID = re.compile(r"^job_[0-9a-f]{16}$")
_MAX_BODY = 8 << 20


class SubmitJob(BaseModel):
    """``POST /v1/jobs``: the job type and its input (checked against the type's model)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


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


def _already_finished(record: JobRecord) -> JSONResponse | None:
    """The 409 for a job that already succeeded or failed (cancelling it means nothing)."""
    if record.state in (JobState.SUCCEEDED, JobState.FAILED):
        return _error(409, "conflict", f"job {record.id!r} already {record.state.value}")
    return None


jobs_router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@jobs_router.post("", name="jobs:submit", status_code=202)
async def submit(request: Request, jobs: Jobs) -> Response:
    """Queue a job; 202 with its id, state and links."""
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        return _error(413, "too_large", f"the request body exceeds {_MAX_BODY} bytes")
    try:
        body = SubmitJob.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        return _error(400, "invalid_request", f"expected {{'type', 'input'}} JSON: {exc}")
    try:
        record = await jobs.submit(body.type, body.input)
    except InvalidJobInput as exc:
        return _error(400, "InvalidJobInput", str(exc), problems=exc.problems)
    except JobQueueFull as exc:
        return _error(503, "JobQueueFull", str(exc), {"Retry-After": "1"})
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
        return _error(404, "not_found", f"the events of job {job_id!r} are no longer kept")
    if info.state is not StreamState.OPEN and after is not None and after == info.last_id:
        return Response(status_code=204)
    return host.sse(request, record.stream, after, {"X-Job-Id": record.id})


@jobs_router.post("/{job_id}/cancel", name="jobs:cancel")
async def cancel(request: Request, job_id: str, jobs: Jobs) -> Response:
    """Ask the job to stop wherever it runs."""
    refused = _already_finished(await _find(jobs, job_id))
    if refused is not None:
        return refused
    record = await jobs.cancel(job_id)
    refused = _already_finished(record)  # finished meanwhile
    if refused is not None:
        return refused
    status = 200 if record.state.terminal else 202
    return JSONResponse(job_json(record, request, with_input=False), status_code=status)
