"""HTTP routes of the file feature (``mianzhang.files``), mounted under ``/v1``.

=============================================  ==========================================
``GET``/``HEAD /v1/files/{id}``                 download (Range, conditional requests)
``PUT /v1/files`` and ``PUT /v1/files/{name}``  upload a raw body (``curl -T f URL/``)
``POST /v1/files``                              upload multipart/form-data files (or a raw
                                                body)
``GET /v1/files``                               recent files (``?limit=``, at most 1000)
``GET /v1/files/{id}/meta``                     a file's metadata as JSON
``DELETE /v1/files/{id}``                       remove a file
``POST /v1/files/{id}/jobs``                    hand the file to a background job
``OPTIONS``/``POST /v1/uploads``                tus 1.0: capabilities / creation
``HEAD``/``PATCH``/``DELETE /v1/uploads/{id}``  tus 1.0: offset / append / termination
=============================================  ==========================================

Names are metadata only: whatever a client sends (``{name}`` of a ``PUT``, ``?name=``, a
multipart ``filename``, tus ``Upload-Metadata``) is stored in the sidecar and rendered in
``Content-Disposition``; the stored file gets a generated id, and the answer is 201 with
``Location: /v1/files/{id}``. (A ``PUT`` therefore creates a resource other than its target
URI: a deliberate departure from RFC 9110 §9.3.4, as with transfer.sh, so that ``curl -T``
works and no client text becomes a path.) Live upload progress is the event-log stream
``upload:{id}``.

Three routers, so that an app guards each group by itself where it includes it (auth):
``files_read_router`` (download, list, metadata), ``files_write_router`` (uploads, tus,
delete) and ``file_jobs_router`` (hand a file to a job: it needs the app's job service).
``files_router`` is the read and write routers together, without jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..._errors import FileNotFound
from ...files import file_json
from .._deps import Files, Jobs
from .._errors import ErrorRoute

__all__ = [
    "FileJobRequest",
    "file_jobs_router",
    "files_read_router",
    "files_router",
    "files_write_router",
]


class FileJobRequest(BaseModel):
    """``POST /v1/files/{id}/jobs``: the job type and its input; the server adds
    ``input["file"]`` (the file's metadata and URL) and replaces any value given there."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)


def _file_url(request: Request) -> Callable[[str], str]:
    return lambda file_id: request.url_for("files:download", file_id=file_id).path


def _upload_url(request: Request) -> Callable[[str], str]:
    return lambda upload_id: request.url_for("files:tus-upload", upload_id=upload_id).path


# -- read -------------------------------------------------------------------------------------
files_read_router = APIRouter(prefix="/v1", tags=["files"], route_class=ErrorRoute)


@files_read_router.api_route("/files/{file_id}", methods=["GET", "HEAD"], name="files:download")
async def download(file_id: str, files: Files) -> Response:
    """Stream a stored file (RFC 9110 ranges and conditional requests)."""
    return files.download(file_id)


@files_read_router.get("/files", name="files:list")
async def recent(request: Request, files: Files, limit: int = 100) -> Response:
    """The most recently stored files, newest first."""
    metas = await files.recent(max(1, min(limit, 1000)))
    to_url = _file_url(request)
    return JSONResponse({"files": [file_json(meta, to_url(meta.id)) for meta in metas]})


@files_read_router.get("/files/{file_id}/meta", name="files:meta")
async def meta(request: Request, file_id: str, files: Files) -> Response:
    """A stored file's metadata."""
    found = await files.info(file_id)
    return JSONResponse(file_json(found, _file_url(request)(found.id)))


# -- write ------------------------------------------------------------------------------------
files_write_router = APIRouter(prefix="/v1", tags=["files"], route_class=ErrorRoute)


@files_write_router.post("/files", name="files:upload", status_code=201)
async def upload(request: Request, files: Files) -> Response:
    """Upload multipart/form-data files (or a raw body); 201 with their metadata."""
    return await files.upload(request, _file_url(request))


@files_write_router.put("/files", name="files:put", status_code=201)
async def put(request: Request, files: Files) -> Response:
    """Upload a raw body (name from ``?name=`` or ``Content-Disposition``); 201."""
    return await files.upload_raw(request, _file_url(request))


@files_write_router.put("/files/{name}", name="files:put-named", status_code=201)
async def put_named(request: Request, name: str, files: Files) -> Response:
    """Upload a raw body named ``name`` (metadata only: ``curl -T file URL/``); 201
    with ``Location`` of the generated id."""
    return await files.upload_raw(request, _file_url(request), name=name)


@files_write_router.delete("/files/{file_id}", name="files:delete", status_code=204)
async def delete(file_id: str, files: Files) -> Response:
    """Remove a stored file (204), or 404."""
    if not await files.delete(file_id):
        raise FileNotFound(file_id)
    return Response(status_code=204)


@files_write_router.options("/uploads", name="files:tus-options")
async def tus_options(files: Files) -> Response:
    """tus: server capabilities."""
    return files.tus.options()


@files_write_router.post("/uploads", name="files:tus-create", status_code=201)
async def tus_create(request: Request, files: Files) -> Response:
    """tus creation: ``Upload-Length`` (+ ``Upload-Metadata``) -> 201 ``Location``."""
    return await files.tus.create(request, _upload_url(request), _file_url(request))


@files_write_router.head("/uploads/{upload_id}", name="files:tus-upload")
async def tus_head(request: Request, upload_id: str, files: Files) -> Response:
    """tus: the upload's ``Upload-Offset``."""
    return await files.tus.head(request, upload_id)


@files_write_router.patch("/uploads/{upload_id}", name="files:tus-patch", status_code=204)
async def tus_patch(request: Request, upload_id: str, files: Files) -> Response:
    """tus: append ``application/offset+octet-stream`` bytes at ``Upload-Offset``."""
    return await files.tus.patch(request, upload_id, _file_url(request))


@files_write_router.delete("/uploads/{upload_id}", name="files:tus-delete", status_code=204)
async def tus_delete(request: Request, upload_id: str, files: Files) -> Response:
    """tus termination: remove the upload."""
    return await files.tus.delete(request, upload_id)


# -- jobs -------------------------------------------------------------------------------------
file_jobs_router = APIRouter(prefix="/v1", tags=["files"], route_class=ErrorRoute)


@file_jobs_router.post("/files/{file_id}/jobs", name="files:job", status_code=202)
async def hand_to_job(
    request: Request, file_id: str, body: FileJobRequest, files: Files, jobs: Jobs
) -> Response:
    """Submit a job of ``type`` whose ``input["file"]`` is this file (its ``id``,
    ``name``, ``size``, ``sha256``, ``content_type`` and ``url``). The job reads it
    with ``ctx.resources["files"].read(id)``. 202 with the job record and its
    progress ``stream``; 404 if there is no such file."""
    found = await files.info(file_id)
    job_input = {**body.input, "file": file_json(found, _file_url(request)(found.id))}
    record = await jobs.submit(body.type, job_input)
    payload = {**record.to_dict(), "stream": record.stream}
    return JSONResponse(payload, status_code=202)


files_router = APIRouter(route_class=ErrorRoute)
files_router.include_router(files_read_router)
files_router.include_router(files_write_router)
