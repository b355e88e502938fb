"""Subscriber JWT: every refusal case, and key confusion is impossible."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mianzhang import Forbidden, Unauthorized
from mianzhang.auth import JWTKey, JWTVerifier, channel_allowed, extract_token

SECRET = "s" * 40


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[str, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    pub_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return priv_pem, pub_pem


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "alice",
        "exp": int(time.time()) + 60,
        "mianzhang": {"subscribe": ["news", "user/42/*"], "publish": ["news"]},
    }
    base.update(extra)
    return base


def test_hs256_token_grants_listed_channels() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    got = JWTVerifier([JWTKey("HS256", SECRET)]).verify(token)
    assert got.subject == "alice"
    got.require_subscribe("news")
    got.require_subscribe("user/42/inbox")
    got.require_publish("news")
    with pytest.raises(Forbidden):
        got.require_subscribe("user/43/inbox")
    with pytest.raises(Forbidden):
        got.require_publish("user/42/inbox")


def test_rs256_token_verifies_with_public_key(rsa_pair: tuple[str, str]) -> None:
    priv, pub = rsa_pair
    token = jwt.encode(claims(), priv, algorithm="RS256")
    assert JWTVerifier([JWTKey("RS256", pub)]).verify(token).subscribe == ("news", "user/42/*")


def _unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}."


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str) -> None:
    token = _unsigned(claims(), alg)
    with pytest.raises(Unauthorized, match=r"alg: none"):
        JWTVerifier([JWTKey("HS256", SECRET)]).verify(token)


def test_expired_token_is_refused() -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 3600), SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="expired"):
        JWTVerifier([JWTKey("HS256", SECRET)]).verify(token)


def test_token_without_exp_is_refused_by_default() -> None:
    payload = claims()
    del payload["exp"]
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        JWTVerifier([JWTKey("HS256", SECRET)]).verify(token)
    assert JWTVerifier([JWTKey("HS256", SECRET)], require_exp=False).verify(token).subject


def test_wrong_key_is_refused() -> None:
    token = jwt.encode(claims(), "t" * 40, algorithm="HS256")
    with pytest.raises(Unauthorized, match="invalid token"):
        JWTVerifier([JWTKey("HS256", SECRET)]).verify(token)


def test_rs256_public_key_cannot_be_used_as_hs256_secret(rsa_pair: tuple[str, str]) -> None:
    """Key confusion: an attacker signs HS256 with the (public) PEM as the secret."""
    _, pub = rsa_pair
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = hmac.new(pub.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{head}.{body}.{b64(sig)}"
    with pytest.raises(Unauthorized, match="no key accepts algorithm 'HS256'"):
        JWTVerifier([JWTKey("RS256", pub)]).verify(forged)


def test_malformed_and_missing_tokens_are_refused() -> None:
    verifier = JWTVerifier([JWTKey("HS256", SECRET)])
    for bad in ["", None, "not-a-jwt", "a.b.c"]:
        with pytest.raises(Unauthorized):
            verifier.verify(bad)


def test_audience_and_issuer_are_checked() -> None:
    verifier = JWTVerifier([JWTKey("HS256", SECRET)], audience="mz", issuer="https://idp")
    good = jwt.encode(claims(aud="mz", iss="https://idp"), SECRET, algorithm="HS256")
    assert verifier.verify(good).subject == "alice"
    for wrong in (claims(aud="other", iss="https://idp"), claims(aud="mz", iss="https://evil")):
        with pytest.raises(Unauthorized):
            verifier.verify(jwt.encode(wrong, SECRET, algorithm="HS256"))


def test_kid_selects_the_key() -> None:
    k1, k2 = "a" * 40, "b" * 40
    verifier = JWTVerifier([JWTKey("HS256", k1, kid="one"), JWTKey("HS256", k2, kid="two")])
    token = jwt.encode(claims(), k2, algorithm="HS256", headers={"kid": "two"})
    assert verifier.verify(token).subject == "alice"
    token = jwt.encode(claims(), k2, algorithm="HS256", headers={"kid": "three"})
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_grants_must_be_lists_of_strings() -> None:
    token = jwt.encode(claims(mianzhang={"subscribe": [1, 2]}), SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="subscribe"):
        JWTVerifier([JWTKey("HS256", SECRET)]).verify(token)


def test_weak_or_mismatched_keys_are_refused_at_configuration() -> None:
    with pytest.raises(ValueError):
        JWTKey("HS256", "short")
    with pytest.raises(ValueError):
        JWTKey("RS256", SECRET)
    with pytest.raises(ValueError):
        JWTKey("none", SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        JWTVerifier([])


def test_channel_patterns() -> None:
    assert channel_allowed(["*"], "anything/at/all")
    assert channel_allowed(["user/42/*"], "user/42/x")
    assert not channel_allowed(["user/42/*"], "user/420")
    assert not channel_allowed(["News"], "news")
    assert not channel_allowed([], "news")


def test_token_from_header_anthropic_s_header_or_cookie() -> None:
    assert extract_token({"authorization": "Bearer abc"}, {}) == "abc"
    assert extract_token({}, {"mianzhang_token": "xyz"}) == "xyz"
    assert extract_token({}, {}) is None
    assert extract_token({"x-api-key": " mz_k "}, {"mianzhang_token": "xyz"}) == "mz_k"
    assert extract_token({"authorization": "Bearer a", "x-api-key": "b"}, {}) == "a"
    with pytest.raises(Unauthorized):
        extract_token({"authorization": "Basic dXNlcjpwYXNz"}, {})
