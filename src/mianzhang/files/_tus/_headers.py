"""The tus 1.0.0 vocabulary: version, extensions, checksum algorithms, and the parsers of the
request headers the handlers read (``Upload-Metadata``, ``Upload-Checksum``, offsets and
lengths). Pure functions, no I/O; every malformed value is an :class:`InvalidUpload` (400) or
``None`` where the caller decides, never an exception of another kind."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._errors import InvalidUpload

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "CHECKSUMS",
    "OFFSET_OCTET_STREAM",
    "TUS_EXTENSIONS",
    "TUS_VERSION",
    "parse_checksum",
    "parse_digits",
    "parse_upload_metadata",
]

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration,checksum"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
CHECKSUMS: dict[str, Callable[[], _Hash]] = {
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}
_MAX_METADATA_KEYS = 32


def parse_upload_metadata(value: str | None, max_size: int) -> dict[str, str | None]:
    """``Upload-Metadata`` (``key base64,key base64,key``) -> decoded values (UTF-8, invalid
    sequences replaced). :class:`InvalidUpload` if malformed, duplicated or too large."""
    if value is None or not value.strip():
        return {}
    if len(value) > max_size:
        raise InvalidUpload(f"Upload-Metadata exceeds {max_size} characters")
    result: dict[str, str | None] = {}
    for pair in value.split(","):
        pair = pair.strip(" \t")
        if not pair:
            continue
        key, encoded = _metadata_pair(pair)
        if key in result:
            raise InvalidUpload(f"duplicate Upload-Metadata key {key!r}")
        if len(result) >= _MAX_METADATA_KEYS:
            raise InvalidUpload(f"more than {_MAX_METADATA_KEYS} Upload-Metadata keys")
        result[key] = _metadata_value(key, encoded)
    return result


def _metadata_pair(pair: str) -> tuple[str, str]:
    """``key base64`` -> (key, base64 text); the key printable ASCII, one value at most."""
    key, _, encoded = pair.partition(" ")
    encoded = encoded.strip(" \t")
    if not key or not key.isascii() or not key.isprintable() or " " in encoded:
        raise InvalidUpload("malformed Upload-Metadata")
    return key, encoded


def _metadata_value(key: str, encoded: str) -> str | None:
    """A metadata value decoded (``None`` for a key without value)."""
    if not encoded:
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidUpload(f"Upload-Metadata value of {key!r} is not base64") from exc
    return raw.decode("utf-8", errors="replace")


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: ALGO BASE64`` -> (algorithm, digest), ``None`` if absent;
    :class:`InvalidUpload` for an algorithm not in :data:`CHECKSUMS` or bad base64."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise InvalidUpload(f"unsupported Upload-Checksum algorithm {algorithm!r}")
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidUpload("Upload-Checksum is not base64") from exc


def parse_digits(value: str | None) -> int | None:
    """A non-negative decimal of at most 19 ASCII digits (``Upload-Length``,
    ``Upload-Offset``), else ``None``."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    return int(value)
