"""HTTP routes of the channels feature (to be completed by the channels work)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request

from .._services import Services

__all__ = ["channels_router"]


def channels_router(get_services: Callable[[Request], Services]) -> APIRouter:
    router = APIRouter(prefix="/v1/channels", tags=["channels"])
    return router
