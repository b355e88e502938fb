"""Announced digests (RFC 9530 Repr-Digest / Content-Digest, X-Checksum-Sha256)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from mianzhang._errors import InvalidUpload
from mianzhang.files import expected_sha256, repr_digest

DIGEST = hashlib.sha256(b"x").digest()
B64 = base64.b64encode(DIGEST).decode()


def test_round_trip() -> None:
    assert repr_digest(DIGEST.hex()) == f"sha-256=:{B64}:"
    assert expected_sha256(repr_digest=repr_digest(DIGEST.hex())) == DIGEST.hex()


@pytest.mark.parametrize(
    "fields",
    [
        {"repr_digest": f"sha-256=:{B64}:"},
        {"repr_digest": f"sha-512=:AAAA:, sha-256=:{B64}:;param=1"},
        {"content_digest": f"sha-256=:{B64}:"},
        {"x_checksum_sha256": DIGEST.hex().upper()},
        {"repr_digest": f"sha-256=:{B64}:", "x_checksum_sha256": DIGEST.hex()},
    ],
)
def test_accepted(fields: dict[str, str]) -> None:
    assert expected_sha256(**fields) == DIGEST.hex()


def test_only_other_algorithms_means_no_expectation() -> None:
    assert expected_sha256(repr_digest="sha-512=:AAAA:") is None
    assert expected_sha256() is None


@pytest.mark.parametrize(
    "fields",
    [
        {"repr_digest": "sha-256"},
        {"repr_digest": "SHA-256=:AAAA:"},  # keys are lowercase (RFC 8941)
        {"repr_digest": f"sha-256={B64}"},  # not a byte sequence
        {"repr_digest": "sha-256=:not base64!:"},
        {"repr_digest": "sha-256=:AAAA:"},  # 3 bytes
        {"repr_digest": f"sha-256=:{B64}:, sha-256=:{base64.b64encode(bytes(32)).decode()}:"},
        {"x_checksum_sha256": "zz"},
        {"repr_digest": f"sha-256=:{B64}:", "x_checksum_sha256": "00" * 32},
    ],
)
def test_rejected(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidUpload):
        expected_sha256(**fields)
