"""Credentials: API keys with scopes (publishers, API users) and JWT for subscribers."""

from ._jwt import JWTKey, JWTVerifier, TokenClaims, channel_allowed, extract_token
from ._keys import APIKey, APIKeyStore, generate_api_key, hash_api_key

__all__ = [
    "APIKey",
    "APIKeyStore",
    "JWTKey",
    "JWTVerifier",
    "TokenClaims",
    "channel_allowed",
    "extract_token",
    "generate_api_key",
    "hash_api_key",
]
