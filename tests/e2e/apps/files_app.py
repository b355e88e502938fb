"""The file routes alone in a real server, for e2e tests and the benchmark:
``python -m uvicorn --factory tests.e2e.apps.files_app:create_app``.

Environment: ``MZ_FILES_DIR`` (storage directory, required), ``MZ_FILES_CHUNK`` (download
chunk size in bytes), ``MZ_FILES_FSYNC`` (``0`` to skip fsync), ``MZ_FILES_MAX`` (upload
limit in bytes), ``MZ_FILES_WINDOW`` / ``MZ_FILES_MIN_RATE`` (upload body deadline),
``MZ_FILES_WEB=1`` (serve the files page at ``/``).

Besides the file routes it serves ``GET /v1/streams/{stream}``: a minimal SSE view of the
event log (``Last-Event-ID`` honoured), standing in for the server's own stream route so the
page can show the upload progress the server publishes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request as StarletteRequest
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from mianzhang._sse import ServerSentEvent
from mianzhang.files import FilesService, FilesSettings
from mianzhang.log import MemoryEventLog, Reset
from mianzhang.server._deps import get_files
from mianzhang.server.routes.files import files_router


def create_app() -> FastAPI:
    settings = FilesSettings(
        directory=os.environ["MZ_FILES_DIR"],
        chunk_size=int(os.environ.get("MZ_FILES_CHUNK", 256 * 1024)),
        fsync=os.environ.get("MZ_FILES_FSYNC", "1") != "0",
        max_upload_size=int(os.environ.get("MZ_FILES_MAX", 8 << 30)),
        upload_idle_timeout=float(os.environ.get("MZ_FILES_WINDOW", 60)),
        upload_min_rate=float(os.environ.get("MZ_FILES_MIN_RATE", 1024)),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with MemoryEventLog() as log:
            files = FilesService(settings, log)
            app.state.files = files
            app.state.log = log
            try:
                yield
            finally:
                await files.aclose()

    app = FastAPI(lifespan=lifespan)

    def service(request: Request) -> FilesService:
        files: FilesService = request.app.state.files
        return files

    app.include_router(files_router)
    app.dependency_overrides[get_files] = service

    @app.get("/v1/streams/{stream}")
    async def stream(request: Request, stream: str) -> Response:
        log: MemoryEventLog = request.app.state.log
        if await log.info(stream) is None:
            return JSONResponse({"error": {"type": "not_found"}}, status_code=404)
        after = request.headers.get("last-event-id")

        async def events() -> AsyncIterator[bytes]:
            async with aclosing(log.follow(stream, after)) as followed:
                async for item in followed:
                    if isinstance(item, Reset):
                        continue
                    yield ServerSentEvent(data=item.data, event=item.event, id=item.id).encode()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    if os.environ.get("MZ_FILES_WEB") == "1":  # the files page alone, for browser tests
        web = Path(__file__).resolve().parents[3] / "src" / "mianzhang" / "web"
        app.mount("/web", StaticFiles(directory=web), name="web")
        app.add_api_route("/", lambda: HTMLResponse(_HARNESS), include_in_schema=False)
    return app


_HARNESS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mianzhang files</title></head>
<body><main id="root"></main>
<script type="module">
import page from "/web/pages/files.js";
page.mount(document.getElementById("root"), { api: "" });
document.body.dataset.ready = "1";
</script></body></html>
"""


def create_starlette_peer() -> Starlette:
    """The peer for ``bench/files_bench.py``: Starlette's own tools on the same directory.

    ``GET /files/{name}`` is ``FileResponse`` (ranges, 64 KiB chunks); ``POST /stream`` writes
    ``request.stream()`` to a file; ``POST /form`` is ``await request.form()`` (python-multipart,
    spooled) and copies the upload to a file.
    """
    directory = Path(os.environ["MZ_FILES_DIR"])

    async def download(request: StarletteRequest) -> FileResponse:
        return FileResponse(directory / Path(request.path_params["name"]).name)

    async def stream(request: StarletteRequest) -> JSONResponse:
        target = directory / f"peer-{uuid.uuid4().hex}"
        with target.open("wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
        return JSONResponse({"size": target.stat().st_size}, status_code=201)

    async def form(request: StarletteRequest) -> JSONResponse:
        async with request.form(max_part_size=1 << 40) as data:
            upload = data["file"]
            assert isinstance(upload, UploadFile)
            target = directory / f"peer-{uuid.uuid4().hex}"
            with target.open("wb") as handle:
                while chunk := await upload.read(1 << 20):
                    handle.write(chunk)
        return JSONResponse({"size": target.stat().st_size}, status_code=201)

    return Starlette(
        routes=[
            Route("/files/{name}", download),
            Route("/stream", stream, methods=["POST"]),
            Route("/form", form, methods=["POST"]),
        ]
    )
