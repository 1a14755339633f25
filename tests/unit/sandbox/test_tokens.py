"""Service-account tokens: signed, expiring, and naming their ServiceAccount."""

from __future__ import annotations

from upkeep.sandbox import tokens

SIGNER = tokens.ServiceAccountTokens(b"k" * 32)


def test_a_token_verifies_to_its_service_account() -> None:
    token, expires = SIGNER.issue("shop", "operator", "uid-1", audiences=("api",), seconds=3600, now=1000)
    claims = SIGNER.verify(token, now=2000)
    assert claims is not None
    assert claims.username == "system:serviceaccount:shop:operator"
    assert claims.groups == ("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated")
    assert (claims.uid, claims.audiences, claims.expires) == ("uid-1", ("api",), expires)


def test_expired_forged_and_garbled_tokens_are_refused() -> None:
    token, _ = SIGNER.issue("shop", "operator", "uid-1", audiences=("api",), seconds=600, now=1000)
    assert SIGNER.verify(token, now=1600) is None
    assert tokens.ServiceAccountTokens(b"x" * 32).verify(token, now=1100) is None
    header, body, signature = token.split(".")
    assert SIGNER.verify(f"{header}.{body}x.{signature}", now=1100) is None
    assert SIGNER.verify("not-a-token", now=1100) is None
