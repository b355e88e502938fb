"""API keys: stored hashed, scoped, compared in constant time."""

from __future__ import annotations

import pytest

from mianzhang import Forbidden, Unauthorized
from mianzhang.auth import APIKeyStore, generate_api_key, hash_api_key


def test_generated_keys_are_unique_and_long() -> None:
    keys = {generate_api_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("mz_") and len(k) >= 40 for k in keys)


def test_store_verifies_by_hash_and_never_holds_the_key() -> None:
    key = generate_api_key()
    store = APIKeyStore({"ci": (hash_api_key(key), ["channels:publish", "llm"])})
    got = store.verify(key)
    assert got.name == "ci"
    assert key not in repr(got) and key not in got.digest
    assert got.allows("llm") and got.allows("channels:publish")
    assert not got.allows("files")
    with pytest.raises(Forbidden):
        got.require("jobs")


def test_parent_scope_and_wildcard() -> None:
    key = generate_api_key()
    store = APIKeyStore(
        {"admin": (hash_api_key(key), ["*"]), "ch": (hash_api_key("k2" * 20), ["channels"])}
    )
    assert store.verify(key).allows("anything")
    assert store.verify("k2" * 20).allows("channels:publish")
    assert not store.verify("k2" * 20).allows("channelsx")


def test_unknown_and_missing_keys_are_unauthorized() -> None:
    store = APIKeyStore({"ci": (hash_api_key(generate_api_key()), ["llm"])})
    for bad in [None, "", "mz_wrong"]:
        with pytest.raises(Unauthorized):
            store.verify(bad)


def test_malformed_digest_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="digest"):
        APIKeyStore({"x": ("plain-text-key", ["*"])})
