"""Operations: liveness, readiness, Prometheus metrics.

``/healthz`` answers 200 while the process serves HTTP. ``/readyz`` answers 503 once the
instance is draining (shutdown began) or when its event log cannot be reached, so a load
balancer stops sending new streams there. ``/metrics`` is the app's own registry.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ..._errors import LogError
from .._deps import Log, Metrics, Settings, Supervisor
from .._errors import ErrorRoute

__all__ = ["ops_router"]

_PROBE_STREAM = "mz:readyz-probe"

ops_router = APIRouter(tags=["ops"], include_in_schema=False, route_class=ErrorRoute)


@ops_router.get("/healthz")
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@ops_router.get("/readyz")
async def readyz(supervisor: Supervisor, log: Log, settings: Settings) -> Response:
    if supervisor.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    try:
        await log.info(_PROBE_STREAM)
    except LogError as exc:
        return JSONResponse({"status": "log unavailable", "detail": str(exc)}, 503)
    return JSONResponse({"status": "ready", "log": settings.log_backend})


@ops_router.get("/metrics")
async def metrics(registry: Metrics) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
