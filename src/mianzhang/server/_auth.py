"""Who is calling: API keys (scoped, stored hashed) and subscriber JWTs, per route group.

Scopes: ``llm`` (gateway), ``channels:publish``, ``channels:subscribe``, ``jobs``, ``files``,
``streams`` (the generic stream routes), ``tails`` (live file tails), ``*`` (everything). A
channel subscriber may instead present a JWT whose ``mianzhang.subscribe`` claim lists the
channels it may read (header, or the ``mianzhang_token`` cookie for browsers' EventSource).

Anonymous access is allowed only when the settings say so; the embedded default (no keys, no
JWT keys configured) allows it and the server says so at start. Refusals raise
:class:`~mianzhang.Unauthorized` (401) or :class:`~mianzhang.Forbidden` (403) before any stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from .._errors import Unauthorized
from ..auth import APIKeyStore, JWTKey, JWTVerifier, extract_token

__all__ = ["AuthSettings", "Authenticator", "Principal"]


class APIKeySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digest: str  # "sha256:<hex>" (mianzhang.auth.hash_api_key)
    scopes: list[str] = Field(default_factory=lambda: ["*"])


class JWTKeySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["HS256", "RS256"]
    key: str
    kid: str | None = None


class AuthSettings(BaseModel):
    """The ``auth`` section (``MIANZHANG_AUTH__API_KEYS='{"name": {"digest": ..., ...}}'``)."""

    model_config = ConfigDict(extra="forbid")

    api_keys: dict[str, APIKeySettings] = Field(default_factory=dict)
    jwt_keys: list[JWTKeySettings] = Field(default_factory=list)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_cookie: str = "mianzhang_token"
    # None: anonymous access only when nothing at all is configured (local use).
    anonymous: bool | None = None

    @property
    def allows_anonymous(self) -> bool:
        if self.anonymous is not None:
            return self.anonymous
        return not self.api_keys and not self.jwt_keys


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: ``kind`` says how it was recognised; ``name`` keys its rate limits."""

    kind: Literal["anonymous", "api_key", "jwt"]
    name: str


ANONYMOUS = Principal("anonymous", "anonymous")


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.keys = APIKeyStore(
            {name: (k.digest, k.scopes) for name, k in settings.api_keys.items()}
        )
        self.jwt = (
            JWTVerifier(
                [JWTKey(k.algorithm, k.key, k.kid) for k in settings.jwt_keys],
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
            if settings.jwt_keys
            else None
        )

    def _token(self, request: Request) -> str | None:
        return extract_token(request.headers, request.cookies, self.settings.jwt_cookie)

    @property
    def _open(self) -> bool:
        """Nothing configured and anonymous allowed: credentials are not checked at all (the
        OpenAI SDK always sends some bearer token)."""
        return self.settings.allows_anonymous and not self.keys and self.jwt is None

    def _credentials(self, request: Request, missing: str) -> str | None:
        """The caller's token; ``None`` when it passes as anonymous (nothing configured, or
        no token where anonymous callers are allowed). No token otherwise is
        :class:`Unauthorized` saying ``missing``."""
        if self._open:
            return None
        token = self._token(request)
        if token is None and not self.settings.allows_anonymous:
            raise Unauthorized(missing)
        return token

    def _api_key(self, token: str, scope: str) -> Principal:
        """The API key ``token`` is, if it grants ``scope`` (else an auth error)."""
        key = self.keys.verify(token)
        key.require(scope)
        return Principal("api_key", key.name)

    def require(self, request: Request, scope: str) -> Principal:
        """An API key granting ``scope``, or anonymous where allowed."""
        token = self._credentials(request, f"this route needs an API key with scope {scope!r}")
        return ANONYMOUS if token is None else self._api_key(token, scope)

    def subscriber(self, request: Request, channel: str) -> Principal:
        """A JWT granting ``channel`` (or an API key with ``channels:subscribe``)."""
        token = self._credentials(
            request, "subscribing needs a token (Authorization header or cookie)"
        )
        if token is None:
            return ANONYMOUS
        if token.startswith("mz_"):  # an API key, not a JWT
            return self._api_key(token, "channels:subscribe")
        if self.jwt is None:
            raise Unauthorized("no JWT keys are configured on this server")
        claims = self.jwt.verify(token)
        claims.require_subscribe(channel)
        return Principal("jwt", claims.subject or "jwt")
