"""API keys: stored only as SHA-256 digests, each with a set of scopes.

Keys are long random strings (``mz_`` + 32 random bytes, URL-safe), so one SHA-256 is a
sufficient verifier (no password stretching needed for high-entropy secrets); the store never
holds a key in clear. Lookup is by digest; the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .._errors import Forbidden, Unauthorized

__all__ = ["APIKey", "APIKeyStore", "generate_api_key", "hash_api_key"]

_PREFIX = "sha256:"


def generate_api_key() -> str:
    return "mz_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The stored form of a key: ``sha256:<hex digest>``."""
    return _PREFIX + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class APIKey:
    name: str
    digest: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """``*`` grants everything; ``channels`` grants ``channels:publish`` and the like."""
        if "*" in self.scopes or scope in self.scopes:
            return True
        return any(scope.startswith(s + ":") for s in self.scopes)

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            raise Forbidden(f"API key {self.name!r} lacks scope {scope!r}")


class APIKeyStore:
    """Verifies presented keys against digests configured as ``{name: (digest, scopes)}``."""

    def __init__(self, keys: Mapping[str, tuple[str, Iterable[str]]]) -> None:
        self._by_digest: dict[str, APIKey] = {}
        for name, (digest, scopes) in keys.items():
            if not digest.startswith(_PREFIX) or len(digest) != len(_PREFIX) + 64:
                raise ValueError(f"API key {name!r}: digest must be 'sha256:' + 64 hex digits")
            self._by_digest[digest] = APIKey(name, digest, frozenset(scopes))

    def __len__(self) -> int:
        return len(self._by_digest)

    def verify(self, presented: str | None) -> APIKey:
        if not presented:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        digest = hash_api_key(presented)
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise Unauthorized("unknown API key")
        return key
