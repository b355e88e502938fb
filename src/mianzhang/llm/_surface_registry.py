"""The surfaces a generation can be read in, by name (``?format=`` of ``/v1/streams/{id}``).

A new surface is a module with a :class:`~mianzhang.llm.Surface` instance; adding it to
``_BUILTIN`` registers it. Every registered surface must pass
``tests/llm/test_surfaces_contract.py`` unchanged (purity, one terminal shape, exact resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._agui_surface import AGUI
from ._anthropic_surface import ANTHROPIC
from ._chat_format import CHAT
from ._native_format import NATIVE
from ._responses_format import RESPONSES
from ._surface import Surface
from ._ui_surface import UI

__all__ = ["SURFACES", "surface_named"]

_BUILTIN: tuple[Surface, ...] = (CHAT, RESPONSES, NATIVE, ANTHROPIC, UI, AGUI)

SURFACES: Mapping[str, Surface] = MappingProxyType({s.name: s for s in _BUILTIN})
"""Every registered surface by name (read-only)."""


def surface_named(name: str) -> Surface | None:
    """The surface called ``name``; ``None`` if there is none."""
    return SURFACES.get(name)
