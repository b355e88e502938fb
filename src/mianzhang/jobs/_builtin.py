"""The job types every mianzhang server and worker knows, and the resources they need.

``builtin_jobs()`` builds a new registry each call (no module-level registry to mutate):

* ``summarize``: a document summarised chunk by chunk through the LLM gateway
  (``resources["llm"]``, a :class:`~mianzhang.llm.Gateway`), see ``_summarize.py``;
* ``checksum``: an uploaded file hashed and its lines counted, read from file storage
  (``resources["files"]``, a :class:`~mianzhang.files.FilesService`), see ``_checksum.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from .._errors import ConfigError
from ..files import FilesService
from ..llm import Gateway
from ._checksum import ChecksumInput, checksum, prepare_checksum
from ._registry import JobRegistry
from ._summarize import SummarizeInput, prepare_summarize, summarize

__all__ = ["builtin_jobs", "job_registry", "job_resources"]


def builtin_jobs() -> JobRegistry:
    """A new registry holding the built-in job types."""
    registry = JobRegistry()
    registry.job(
        "summarize",
        input=SummarizeInput,
        prepare=prepare_summarize,
        description="Summarise a text chunk by chunk through the LLM gateway, then combine.",
    )(summarize)
    registry.job(
        "checksum",
        input=ChecksumInput,
        prepare=prepare_checksum,
        description="Hash an uploaded file and count its lines (progress by bytes).",
    )(checksum)
    return registry


def job_registry(include: Iterable[str] = ()) -> JobRegistry:
    """The built-in types plus each ``"package.module:attribute"`` registry in ``include``
    (``JobsSettings.include``); :class:`ConfigError` if one cannot be loaded or names a type
    twice. The server and ``mianzhang worker`` both build their registry this way."""
    registry = builtin_jobs()
    for path in include:
        module_name, _, attribute = path.partition(":")
        try:
            found: Any = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"jobs.include {path!r}: {exc}") from exc
        if not isinstance(found, JobRegistry):
            raise ConfigError(f"jobs.include {path!r} is not a JobRegistry")
        try:
            registry.include(found)
        except ValueError as exc:
            raise ConfigError(f"jobs.include {path!r}: {exc}") from exc
    return registry


def job_resources(llm: Gateway | None, files: FilesService | None) -> dict[str, Any]:
    """What the built-in jobs reach through ``ctx.resources``: ``"llm"`` and ``"files"``
    (each only when present)."""
    resources: dict[str, Any] = {}
    if llm is not None:
        resources["llm"] = llm
    if files is not None:
        resources["files"] = files
    return resources
