"""Making ``import sse_starlette`` (and optionally ``fastapi.sse``) resolve to mianzhang's
drop-ins in this process.

Guarantees:

* **Before, or refused.** ``install()`` registers the aliases in ``sys.modules`` before the
  dependent code imports them. If the real ``sse_starlette`` is already imported it raises
  :class:`~mianzhang.ConfigError` instead of half-working: modules that imported it hold its
  classes, and importing it already patched uvicorn's exit handler.
* **Whole package.** ``sse_starlette``, ``sse_starlette.sse`` and ``sse_starlette.event`` all
  resolve to the drop-in, so every import form (``import sse_starlette.sse``,
  ``from sse_starlette.sse import AppStatus``, ...) gets the same objects.
* **Idempotent and reversible.** Installing twice is a no-op; :func:`uninstall` removes only
  the aliases it made (modules that imported through them keep what they got).
* ``fastapi.sse``: FastAPI is imported first, so FastAPI's own modules keep the real
  ``fastapi.sse`` (its routing recognises its own class); code importing ``fastapi.sse``
  afterwards gets :mod:`mianzhang.compat.fastapi_sse`.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .._errors import ConfigError

__all__ = ["install", "installed", "uninstall"]

_SSE_STARLETTE = {
    "sse_starlette": "mianzhang.compat.sse_starlette",
    "sse_starlette.sse": "mianzhang.compat.sse_starlette.sse",
    "sse_starlette.event": "mianzhang.compat.sse_starlette.event",
}
_FASTAPI_SSE = {"fastapi.sse": "mianzhang.compat.fastapi_sse"}
_REPLACED = "mianzhang.compat._replaced."


def install(*, sse_starlette: bool = True, fastapi_sse: bool = False) -> None:
    """Alias ``sse_starlette`` (and, with ``fastapi_sse=True``, ``fastapi.sse``) to the
    drop-ins in this process. Call it before importing the code that uses them (first thing
    in your entry point, or in a ``conftest.py``); see the module docstring."""
    if sse_starlette:
        _refuse_if_imported(_SSE_STARLETTE)
        _alias(_SSE_STARLETTE)
    if fastapi_sse:
        import fastapi.openapi.utils
        import fastapi.routing  # FastAPI binds the real fastapi.sse first

        _alias(_FASTAPI_SSE)
        fastapi.sse = sys.modules["fastapi.sse"]


def uninstall() -> None:
    """Remove the aliases :func:`install` made, putting back a module it replaced (imports
    done through the aliases are unchanged)."""
    for alias, target in {**_SSE_STARLETTE, **_FASTAPI_SSE}.items():
        module = sys.modules.get(alias)
        if module is None or module.__name__ != target:
            continue
        replaced = sys.modules.pop(_REPLACED + alias, None)
        if replaced is None:
            del sys.modules[alias]
        else:
            sys.modules[alias] = replaced
    fastapi = sys.modules.get("fastapi")
    if fastapi is not None and "fastapi.sse" in sys.modules:
        fastapi.sse = sys.modules["fastapi.sse"]  # type: ignore[attr-defined]


def installed() -> bool:
    """True while ``import sse_starlette`` resolves to the drop-in."""
    module = sys.modules.get("sse_starlette")
    return module is not None and module.__name__ == _SSE_STARLETTE["sse_starlette"]


def _refuse_if_imported(aliases: dict[str, str]) -> None:
    for alias, target in aliases.items():
        module = sys.modules.get(alias)
        if module is not None and module.__name__ != target:
            raise ConfigError(
                f"{alias} is already imported (the real package, {module.__file__}): call "
                "mianzhang.compat.install() before anything imports it, e.g. first thing in "
                "your entry point or conftest.py"
            )


def _alias(aliases: dict[str, str]) -> None:
    modules: dict[str, ModuleType] = {}
    for alias, target in aliases.items():
        modules[alias] = importlib.import_module(target)
        current = sys.modules.get(alias)
        if current is not None and current is not modules[alias]:
            # what uninstall() puts back, kept where the modules are (no state of ours)
            sys.modules[_REPLACED + alias] = current
    sys.modules.update(modules)
