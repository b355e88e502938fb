"""Subscriber tokens: JWT (HS256 or RS256) whose claims list the channels a holder may read.

As Mercure and Centrifugo do, a token carries its grants: ``{"mianzhang": {"subscribe":
["news", "user/42/*"], "publish": [...]}}``. Each configured key is bound to exactly one
algorithm (RFC 8725): a token whose header names another algorithm, ``none``, or an unknown
``kid`` is refused before any signature check, so an RS256 public key can never be used as an
HS256 secret (the classic key-confusion attack).

Refusals raise :class:`~mianzhang.Unauthorized` (401: missing, malformed, ``alg: none``,
expired, not yet valid, wrong key, wrong audience/issuer) or :class:`~mianzhang.Forbidden` (403:
valid token without the channel).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt

from .._errors import Forbidden, Unauthorized

__all__ = ["JWTKey", "JWTVerifier", "TokenClaims", "channel_allowed", "extract_token"]

Algorithm = Literal["HS256", "RS256"]


@dataclass(frozen=True, slots=True)
class JWTKey:
    """One verification key bound to one algorithm. ``key``: the HS256 secret (at least 32
    bytes, as RFC 7518 requires for HS256) or the RS256 public key in PEM."""

    algorithm: Algorithm
    key: str
    kid: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ("HS256", "RS256"):
            raise ValueError(f"unsupported JWT algorithm {self.algorithm!r}: use HS256 or RS256")
        if self.algorithm == "HS256" and len(self.key.encode()) < 32:
            raise ValueError("an HS256 secret must be at least 32 bytes")
        if self.algorithm == "RS256" and "PUBLIC KEY" not in self.key:
            raise ValueError("an RS256 key must be a PEM public key")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str | None
    subscribe: tuple[str, ...]
    publish: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)

    def require_subscribe(self, channel: str) -> None:
        if not channel_allowed(self.subscribe, channel):
            raise Forbidden(f"token does not grant subscribing to channel {channel!r}")

    def require_publish(self, channel: str) -> None:
        if not channel_allowed(self.publish, channel):
            raise Forbidden(f"token does not grant publishing to channel {channel!r}")


def channel_allowed(patterns: Iterable[str], channel: str) -> bool:
    """``True`` if any pattern matches: exact names, or shell-style globs (``user/42/*``,
    ``*`` for every channel), case-sensitive."""
    return any(p == channel or fnmatch.fnmatchcase(channel, p) for p in patterns)


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise Unauthorized(f"claim {name!r} must be a string or a list of strings")


class JWTVerifier:
    """Verifies subscriber tokens against configured keys.

    ``require_exp`` (default on) refuses tokens that never expire; ``leeway`` tolerates clock
    skew in seconds; ``claim`` names the object holding the grants.
    """

    def __init__(
        self,
        keys: Sequence[JWTKey],
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 5.0,
        require_exp: bool = True,
        claim: str = "mianzhang",
    ) -> None:
        if not keys:
            raise ValueError("JWTVerifier needs at least one key")
        self._keys = tuple(keys)
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._require = ["exp"] if require_exp else []
        self._claim = claim

    def _key_for(self, header: Mapping[str, Any]) -> JWTKey:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise Unauthorized("unsigned tokens (alg: none) are refused")
        kid = header.get("kid")
        for key in self._keys:
            if key.algorithm == alg and (key.kid is None or key.kid == kid):
                return key
        raise Unauthorized(
            f"no key accepts algorithm {alg!r}" + (f" and kid {kid!r}" if kid else "")
        )

    def verify(self, token: str | None) -> TokenClaims:
        if not token:
            raise Unauthorized("missing token: send 'Authorization: Bearer <jwt>' or the cookie")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from exc
        key = self._key_for(header)
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": self._require, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        grants = payload.get(self._claim) or {}
        if not isinstance(grants, dict):
            raise Unauthorized(f"claim {self._claim!r} must be an object")
        sub = payload.get("sub")
        return TokenClaims(
            subject=sub if isinstance(sub, str) else None,
            subscribe=_str_list(grants.get("subscribe"), "subscribe"),
            publish=_str_list(grants.get("publish"), "publish"),
            raw=payload,
        )


def extract_token(
    headers: Mapping[str, str], cookies: Mapping[str, str], cookie_name: str = "mianzhang_token"
) -> str | None:
    """The bearer token from ``Authorization``; else an ``x-api-key`` header (how the
    Anthropic SDKs send their key); else, for browsers' EventSource (which cannot set
    headers), a cookie. Query parameters are deliberately not read: they end up in logs."""
    value = headers.get("authorization")
    if value:
        scheme, _, credentials = value.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    return cookies.get(cookie_name) or None
