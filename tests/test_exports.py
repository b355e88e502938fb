"""The public API is small and explicit: every name in ``__all__`` exists, nothing private
leaks, and the subpackages users import from stay importable without optional extras."""

from __future__ import annotations

import importlib

import pytest

import mianzhang

PUBLIC_PACKAGES = [
    "mianzhang",
    "mianzhang.log",
    "mianzhang.client",
    "mianzhang.llm",
    "mianzhang.channels",
    "mianzhang.chats",
    "mianzhang.jobs",
    "mianzhang.files",
    "mianzhang.tails",
    "mianzhang.auth",
    "mianzhang.server",
    "mianzhang.compat",
    "mianzhang.compat.sse_starlette",
    "mianzhang.compat.sse_starlette.sse",
    "mianzhang.compat.sse_starlette.event",
    "mianzhang.compat.fastapi_sse",
    "mianzhang.compat.mcp",
]


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_exported_name_exists_and_none_is_private(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    for item in exported:
        assert not item.startswith("_") or item == "__version__", item
        assert getattr(module, item) is not None


def test_the_top_level_api() -> None:
    expected = {
        "ServerSentEvent",
        "JSONServerSentEvent",
        "SSEDecoder",
        "EventSourceResponse",
        "NDJSONResponse",
        "TextStreamResponse",
        "StreamSupervisor",
        "MianzhangError",
    }
    assert expected <= set(mianzhang.__all__)


def test_every_exception_descends_from_one_base() -> None:
    errors = [getattr(mianzhang, n) for n in mianzhang.__all__ if n.endswith(("Error", "Found"))]
    for error in errors:
        assert issubclass(error, mianzhang.MianzhangError), error
    assert issubclass(mianzhang.SSEEncodeError, ValueError)
