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

Route groups, for auth: *read* (download, list, metadata) and *write* (uploads, tus,
delete, jobs); each gets the dependencies passed for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request, params
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..._errors import FileNotFound, JobQueueFull, UnknownJobType
from ...files import FilesService, file_json
from ...jobs import JobService

__all__ = ["FileJobRequest", "files_router"]


class FileJobRequest(BaseModel):
    """``POST /v1/files/{id}/jobs``: the job type and its input; the server adds
    ``input["file"]`` (the file's metadata and URL) and replaces any value given there."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"type": kind, "message": message}}, status_code=status, headers=headers
    )


def files_router(
    get_service: Callable[[Request], FilesService],
    *,
    get_jobs: Callable[[Request], JobService] | None = None,
    read_dependencies: Sequence[params.Depends] = (),
    write_dependencies: Sequence[params.Depends] = (),
) -> APIRouter:
    """The file routes. ``get_service(request)`` returns the application's
    :class:`~mianzhang.files.FilesService`; ``get_jobs(request)`` its
    :class:`~mianzhang.jobs.JobService` (without it there is no ``/jobs`` route).
    ``read_dependencies`` / ``write_dependencies`` guard the two route groups (auth)."""
    router = APIRouter(prefix="/v1", tags=["files"])
    read = list(read_dependencies)
    write = list(write_dependencies)

    def file_url(request: Request) -> Callable[[str], str]:
        return lambda file_id: request.url_for("files:download", file_id=file_id).path

    def upload_url(request: Request) -> Callable[[str], str]:
        return lambda upload_id: request.url_for("files:tus-upload", upload_id=upload_id).path

    # -- read ---------------------------------------------------------------------------------
    @router.api_route(
        "/files/{file_id}", methods=["GET", "HEAD"], name="files:download", dependencies=read
    )
    async def download(request: Request, file_id: str) -> Response:
        """Stream a stored file (RFC 9110 ranges and conditional requests)."""
        return get_service(request).download(file_id)

    @router.get("/files", name="files:list", dependencies=read)
    async def recent(request: Request, limit: int = 100) -> Response:
        """The most recently stored files, newest first."""
        service = get_service(request)
        metas = await service.recent(max(1, min(limit, 1000)))
        to_url = file_url(request)
        return JSONResponse({"files": [file_json(meta, to_url(meta.id)) for meta in metas]})

    @router.get("/files/{file_id}/meta", name="files:meta", dependencies=read)
    async def meta(request: Request, file_id: str) -> Response:
        """A stored file's metadata."""
        try:
            found = await get_service(request).info(file_id)
        except FileNotFound as exc:
            return FilesService.not_found(exc)
        return JSONResponse(file_json(found, file_url(request)(found.id)))

    # -- write --------------------------------------------------------------------------------
    @router.post("/files", name="files:upload", status_code=201, dependencies=write)
    async def upload(request: Request) -> Response:
        """Upload multipart/form-data files (or a raw body); 201 with their metadata."""
        return await get_service(request).upload(request, file_url(request))

    @router.put("/files", name="files:put", status_code=201, dependencies=write)
    async def put(request: Request) -> Response:
        """Upload a raw body (name from ``?name=`` or ``Content-Disposition``); 201."""
        return await get_service(request).upload_raw(request, file_url(request))

    @router.put("/files/{name}", name="files:put-named", status_code=201, dependencies=write)
    async def put_named(request: Request, name: str) -> Response:
        """Upload a raw body named ``name`` (metadata only: ``curl -T file URL/``); 201
        with ``Location`` of the generated id."""
        return await get_service(request).upload_raw(request, file_url(request), name=name)

    @router.delete("/files/{file_id}", name="files:delete", status_code=204, dependencies=write)
    async def delete(request: Request, file_id: str) -> Response:
        """Remove a stored file (204), or 404."""
        if not await get_service(request).delete(file_id):
            return FilesService.not_found(FileNotFound(file_id))
        return Response(status_code=204)

    if get_jobs is not None:
        jobs_of = get_jobs

        @router.post("/files/{file_id}/jobs", name="files:job", status_code=202, dependencies=write)
        async def hand_to_job(request: Request, file_id: str, body: FileJobRequest) -> Response:
            """Submit a job of ``type`` whose ``input["file"]`` is this file (its ``id``,
            ``name``, ``size``, ``sha256``, ``content_type`` and ``url``). The job reads it
            with ``ctx.resources["files"].read(id)``. 202 with the job record and its
            progress ``stream``; 404 if there is no such file."""
            try:
                found = await get_service(request).info(file_id)
            except FileNotFound as exc:
                return FilesService.not_found(exc)
            job_input = {**body.input, "file": file_json(found, file_url(request)(found.id))}
            try:
                record = await jobs_of(request).submit(body.type, job_input)
            except UnknownJobType as exc:
                return _error(400, str(exc), "unknown_job_type")
            except JobQueueFull as exc:
                return _error(503, str(exc), "queue_full", {"Retry-After": "1"})
            payload = {**record.to_dict(), "stream": record.stream}
            return JSONResponse(payload, status_code=202)

    @router.options("/uploads", name="files:tus-options", dependencies=write)
    async def tus_options(request: Request) -> Response:
        """tus: server capabilities."""
        return get_service(request).tus.options()

    @router.post("/uploads", name="files:tus-create", status_code=201, dependencies=write)
    async def tus_create(request: Request) -> Response:
        """tus creation: ``Upload-Length`` (+ ``Upload-Metadata``) -> 201 ``Location``."""
        return await get_service(request).tus.create(
            request, upload_url(request), file_url(request)
        )

    @router.head("/uploads/{upload_id}", name="files:tus-upload", dependencies=write)
    async def tus_head(request: Request, upload_id: str) -> Response:
        """tus: the upload's ``Upload-Offset``."""
        return await get_service(request).tus.head(request, upload_id)

    @router.patch(
        "/uploads/{upload_id}", name="files:tus-patch", status_code=204, dependencies=write
    )
    async def tus_patch(request: Request, upload_id: str) -> Response:
        """tus: append ``application/offset+octet-stream`` bytes at ``Upload-Offset``."""
        return await get_service(request).tus.patch(request, upload_id, file_url(request))

    @router.delete(
        "/uploads/{upload_id}", name="files:tus-delete", status_code=204, dependencies=write
    )
    async def tus_delete(request: Request, upload_id: str) -> Response:
        """tus termination: remove the upload."""
        return await get_service(request).tus.delete(request, upload_id)

    return router
