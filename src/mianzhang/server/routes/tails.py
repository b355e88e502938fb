"""HTTP routes of the tails feature (to be completed by the tails work)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request

from .._services import Services

__all__ = ["tails_router"]


def tails_router(get_services: Callable[[Request], Services]) -> APIRouter:
    router = APIRouter(prefix="/v1/tails", tags=["tails"])
    return router
