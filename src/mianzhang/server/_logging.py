"""Logging of the server: one line per record, text or JSON, carrying the request id and the
stream id of the request it belongs to (from :mod:`._middleware`'s context variable)."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from ._middleware import request_ids_var

__all__ = ["JSONFormatter", "TextFormatter", "log_config"]

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    ids = request_ids_var.get()
    if ids is not None:
        fields["request_id"] = ids.request
        if ids.stream:
            fields["stream_id"] = ids.stream
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class JSONFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", request_id?, stream_id?, ...extras, exc?}``."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message [request_id=… stream_id=…]``."""

    def format(self, record: logging.LogRecord) -> str:
        context = _context(record)
        ids = " ".join(f"{k}={context[k]}" for k in ("request_id", "stream_id") if k in context)
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        if ids:
            line += f" [{ids}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_config(log_format: str, level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's ``log_config``: every logger (uvicorn's
    too) through one handler on stderr; uvicorn's own access log is replaced by ours."""
    formatter = JSONFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }
