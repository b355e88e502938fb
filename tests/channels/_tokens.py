"""Subscriber tokens for channel tests: HS256 and RS256 (keys made here with cryptography),
plus the forged kinds a server must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SECRET = "channel-tests-secret-" + "x" * 24  # HS256 needs >= 32 bytes
OTHER_SECRET = "another-secret-of-enough-length-" + "y" * 8


@dataclass(frozen=True)
class RSAKeys:
    private_pem: str
    public_pem: str


def rsa_keys() -> RSAKeys:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return RSAKeys(private_pem, public_pem)


def grant(*channels: str, expires_in: float = 300, sub: str = "tester") -> dict[str, Any]:
    return {
        "sub": sub,
        "exp": int(time.time() + expires_in),
        "mianzhang": {"subscribe": list(channels)},
    }


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def rs256(claims: dict[str, Any], private_pem: str) -> str:
    return jwt.encode(claims, private_pem, algorithm="RS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """``alg: none``: a header, the claims and an empty signature."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], public_pem: str) -> str:
    """Key confusion: HS256 'signed' with the server's RS256 public key as the secret (PyJWT
    refuses to make one, so it is made by hand)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"
