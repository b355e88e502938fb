"""HTTP routes of the jobs feature (to be completed by the jobs work)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request

from .._services import Services

__all__ = ["jobs_router"]


def jobs_router(get_services: Callable[[Request], Services]) -> APIRouter:
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
    return router
