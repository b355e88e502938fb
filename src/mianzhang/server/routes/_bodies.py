"""Request bodies of the chat routes (AI SDK, AG-UI, chats): read with a size limit, as JSON.

A body over the limit is refused with :class:`~mianzhang.RequestTooLarge` (413) as soon as
its declared length or the bytes received pass the limit (the rest is not read); a body that
is not JSON with :class:`~mianzhang.InvalidLLMRequest` (400). Both are answered as JSON by the
app's error handler, before any stream starts.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from ..._errors import InvalidLLMRequest, RequestTooLarge

__all__ = ["json_body", "title_from"]


async def json_body(request: Request, limit: int) -> Any:
    """The request's JSON body, at most ``limit`` bytes (see the module docstring)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(limit)
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise InvalidLLMRequest("the request body is not valid JSON", param="body") from None


def title_from(text: str) -> str:
    """A chat title from its first message: the first line, at most 48 characters."""
    line = text.strip().split("\n")[0].strip()
    return f"{line[:47]}…" if len(line) > 48 else line
