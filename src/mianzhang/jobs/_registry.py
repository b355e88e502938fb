"""Job types: async functions registered by name with a decorator.

jobs = JobRegistry()

@jobs.job("resize", timeout=60)
async def resize(ctx: JobContext) -> dict:
    await ctx.progress(50, "half way")
    return {"ok": True}
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._context import JobContext

__all__ = ["JobFunction", "JobRegistry", "JobSpec"]

JobFunction = Callable[["JobContext"], Awaitable[Any]]
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    func: JobFunction
    timeout: float | None = None
    description: str = ""


class JobRegistry:
    """Name -> job function. Registries can be merged (``include``) so apps add their own
    types to the built-in ones."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}

    def job(
        self, name: str, *, timeout: float | None = None, description: str = ""
    ) -> Callable[[JobFunction], JobFunction]:
        if not _NAME.match(name):
            raise ValueError(f"job name {name!r} must match {_NAME.pattern}")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")

        def register(func: JobFunction) -> JobFunction:
            if name in self._specs:
                raise ValueError(f"job type {name!r} is already registered")
            doc = description or (func.__doc__ or "").strip().split("\n")[0]
            self._specs[name] = JobSpec(name, func, timeout, doc)
            return func

        return register

    def include(self, other: JobRegistry) -> None:
        for spec in other:
            if spec.name in self._specs:
                raise ValueError(f"job type {spec.name!r} is already registered")
            self._specs[spec.name] = spec

    def get(self, name: str) -> JobSpec | None:
        return self._specs.get(name)

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs
