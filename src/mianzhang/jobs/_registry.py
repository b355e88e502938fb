"""Job types: async functions registered by name with a decorator.

jobs = JobRegistry()

class ResizeInput(BaseModel):
    width: int

@jobs.job("resize", timeout=60, input=ResizeInput)
async def resize(ctx: JobContext) -> dict:
    await ctx.progress(50, "half way")
    return {"ok": True}

``input`` (a pydantic model) is checked when the job is submitted: bad input is refused with
:class:`~mianzhang.InvalidJobInput` before anything is stored, and the job receives the
validated input (defaults filled in) as JSON in ``ctx.input``. ``prepare`` (an async function
``(input, resources) -> input``) runs after that, at submission, in the submitting process: it
may check what the input refers to (a file exists, a model is configured) and raise a
:class:`~mianzhang.MianzhangError` that becomes a 4xx before the job is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .._errors import InvalidJobInput

if TYPE_CHECKING:
    from ._context import JobContext

__all__ = ["JobFunction", "JobPrepare", "JobRegistry", "JobSpec"]

JobFunction = Callable[["JobContext"], Awaitable[Any]]
JobPrepare = Callable[[dict[str, Any], Mapping[str, Any]], Awaitable[dict[str, Any]]]
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    func: JobFunction
    timeout: float | None = None
    description: str = ""
    input: type[BaseModel] | None = None
    prepare: JobPrepare | None = None

    def validate_input(self, job_input: dict[str, Any]) -> dict[str, Any]:
        """``job_input`` checked against ``input`` (a new dict; the caller's is not changed),
        or :class:`InvalidJobInput` listing every problem."""
        if self.input is None:
            return dict(job_input)
        try:
            model = self.input.model_validate(job_input)
        except ValidationError as exc:
            problems = [
                {"loc": ".".join(str(part) for part in err["loc"]), "msg": err["msg"]}
                for err in exc.errors(include_url=False, include_input=False)
            ]
            raise InvalidJobInput(self.name, problems) from None
        dumped: dict[str, Any] = model.model_dump(mode="json")
        return dumped


class JobRegistry:
    """Name -> job function. Registries can be merged (``include``) so apps add their own
    types to the built-in ones."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}

    def job(
        self,
        name: str,
        *,
        timeout: float | None = None,
        description: str = "",
        input: type[BaseModel] | None = None,
        prepare: JobPrepare | None = None,
    ) -> Callable[[JobFunction], JobFunction]:
        if not _NAME.match(name):
            raise ValueError(f"job name {name!r} must match {_NAME.pattern}")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")

        def register(func: JobFunction) -> JobFunction:
            if name in self._specs:
                raise ValueError(f"job type {name!r} is already registered")
            doc = description or (func.__doc__ or "").strip().split("\n")[0]
            self._specs[name] = JobSpec(name, func, timeout, doc, input, prepare)
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
