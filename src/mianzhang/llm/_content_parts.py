"""Attachments of front-end messages as OpenAI chat content parts. No I/O.

Shared by the AI SDK (``file`` parts, a data URL or a URL) and AG-UI (``image``/``audio``/
``document`` parts with a ``data`` or ``url`` source) conversions. What OpenAI's chat API takes:

* images: ``image_url`` with an ``http(s):`` or ``data:`` URL;
* audio (wav, mp3): ``input_audio`` with the base64 data (a data URL is required);
* any other file (PDF, text, ...): ``file`` with ``file_data`` as a data URL.

Everything else (a non-data URL for a document, video, provider file handles) is rejected
with :class:`~mianzhang.InvalidLLMRequest` naming the place (``param``) and the reason.
"""

from __future__ import annotations

import re
from typing import Any, Final

from .._errors import InvalidLLMRequest

__all__ = ["file_part", "parse_data_url"]

_DATA_URL: Final = re.compile(r"data:([^;,]*)((?:;[^;,]*)*),(.*)", re.DOTALL)
_AUDIO_FORMATS: Final = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}


def parse_data_url(url: str) -> tuple[str, bool, str] | None:
    """``(media type, is base64, payload)`` of a ``data:`` URL, ``None`` for another URL."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return None
    params = [p for p in match.group(2).split(";") if p]
    return match.group(1) or "text/plain", "base64" in params, match.group(3)


def file_part(media_type: str, url: str, filename: str | None, where: str) -> dict[str, Any]:
    """The OpenAI content part for a file of ``media_type`` at ``url`` (see the docstring)."""
    media_type = media_type.strip().lower()
    data = parse_data_url(url)
    if media_type.startswith("image/"):
        if data is None and not url.startswith(("https://", "http://")):
            raise InvalidLLMRequest(
                f"{where}: an image must be an http(s): or data: URL", param=where
            )
        return {"type": "image_url", "image_url": {"url": url}}
    if data is None:
        scheme = url.split(":", 1)[0] if ":" in url else "no scheme"
        raise InvalidLLMRequest(
            f"{where}: a file of type {media_type or 'unknown'} must be sent as a data: URL "
            f"(got {scheme[:20]!r})",
            param=where,
        )
    audio = _AUDIO_FORMATS.get(media_type)
    if audio is not None:
        if not data[1]:
            raise InvalidLLMRequest(f"{where}: audio must be a base64 data: URL", param=where)
        return {"type": "input_audio", "input_audio": {"data": data[2], "format": audio}}
    return {"type": "file", "file": {"file_data": url, "filename": filename or "file"}}
