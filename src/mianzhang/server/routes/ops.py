"""Operations: liveness, readiness, Prometheus metrics.

``/healthz`` answers 200 while the process serves HTTP. ``/readyz`` answers 503 once the
instance is draining (shutdown began) or when its event log cannot be reached, so a load
balancer stops sending new streams there. ``/metrics`` is the app's own registry.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ..._errors import LogError
from .._services import Services

__all__ = ["ops_router"]

_PROBE_STREAM = "mz:readyz-probe"


def ops_router(get_services: Callable[[Request], Services]) -> APIRouter:
    router = APIRouter(tags=["ops"], include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @router.get("/readyz")
    async def readyz(request: Request) -> Response:
        services = get_services(request)
        if services.supervisor.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        try:
            await services.log.info(_PROBE_STREAM)
        except LogError as exc:
            return JSONResponse({"status": "log unavailable", "detail": str(exc)}, 503)
        return JSONResponse({"status": "ready", "log": services.settings.log_backend})

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        body = generate_latest(get_services(request).metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
