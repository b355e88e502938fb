"""Expected checksums announced by a client, and the digest fields we send back.

Accepted on uploads (all optional; when several are given they must agree):

* ``Repr-Digest: sha-256=:BASE64:`` and ``Content-Digest`` (RFC 9530; an upload is sent
  without content coding, so both describe the same bytes). Other algorithms in the
  dictionary are ignored, as RFC 9530 allows.
* ``X-Checksum-Sha256: HEX`` (64 hex digits).

A malformed value is an :class:`~mianzhang.InvalidUpload` (400), never silently ignored:
a client that asked for verification must get it.
"""

from __future__ import annotations

import base64
import binascii
import re

from .._errors import InvalidUpload

__all__ = ["expected_sha256", "repr_digest"]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")


def _sha256_from_dictionary(field: str, value: str) -> str | None:
    """The sha-256 member of an RFC 9530 digest dictionary, as hex (``None`` if absent)."""
    found: str | None = None
    for member in value.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        key, eq, item = member.partition("=")
        key = key.strip(" \t")
        if not eq or _SF_KEY.fullmatch(key) is None:
            raise InvalidUpload(f"malformed {field} header")
        item = item.split(";", 1)[0].strip(" \t")  # parameters are ignored
        if key != "sha-256":
            continue
        if len(item) < 2 or item[0] != ":" or item[-1] != ":":
            raise InvalidUpload(f"{field}: sha-256 must be a byte sequence (:base64:)")
        try:
            raw = base64.b64decode(item[1:-1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidUpload(f"{field}: sha-256 is not valid base64") from exc
        if len(raw) != 32:
            raise InvalidUpload(f"{field}: sha-256 must be 32 bytes, got {len(raw)}")
        digest = raw.hex()
        if found is not None and found != digest:
            raise InvalidUpload(f"{field}: two different sha-256 values")
        found = digest
    return found


def expected_sha256(
    *,
    repr_digest: str | None = None,
    content_digest: str | None = None,
    x_checksum_sha256: str | None = None,
) -> str | None:
    """The sha-256 (hex) the client announced, or ``None``. :class:`InvalidUpload` if a field
    is malformed or two fields disagree."""
    candidates: list[str] = []
    if repr_digest is not None:
        value = _sha256_from_dictionary("Repr-Digest", repr_digest)
        if value is not None:
            candidates.append(value)
    if content_digest is not None:
        value = _sha256_from_dictionary("Content-Digest", content_digest)
        if value is not None:
            candidates.append(value)
    if x_checksum_sha256 is not None:
        text = x_checksum_sha256.strip(" \t")
        if _HEX64.fullmatch(text) is None:
            raise InvalidUpload("X-Checksum-Sha256 must be 64 hex digits")
        candidates.append(text.lower())
    if not candidates:
        return None
    if any(value != candidates[0] for value in candidates[1:]):
        raise InvalidUpload("the announced sha-256 digests disagree")
    return candidates[0]


def repr_digest(sha256_hex: str) -> str:
    """``sha-256=:BASE64:`` for a hex digest (the value of a ``Repr-Digest`` field)."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode('ascii')}:"
