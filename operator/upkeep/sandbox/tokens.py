"""Service-account tokens: what `kubectl create token` asks for and an in-cluster client presents.

Tokens are JWTs signed with HS256 by a key of the sandbox's own, with the claims a real
cluster puts in them (issuer, subject system:serviceaccount:<ns>:<name>, audiences, expiry and
the kubernetes.io claim naming the ServiceAccount and its uid). A token is accepted while it
has not expired and its ServiceAccount still exists with the same uid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["ISSUER", "Claims", "ServiceAccountTokens"]

ISSUER = "https://kubernetes.default.svc.cluster.local"


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    """Who a valid token speaks for."""

    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated")


class ServiceAccountTokens:
    """Issues and verifies service-account tokens with one signing key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, signing_input: bytes) -> str:
        return _encode(hmac.new(self._key, signing_input, hashlib.sha256).digest())

    def issue(
        self, namespace: str, name: str, uid: str, *, audiences: tuple[str, ...], seconds: int, now: float | None = None
    ) -> tuple[str, int]:
        """A token and its expiry (Unix seconds)."""
        issued = int(now if now is not None else time.time())
        expires = issued + seconds
        header = _encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": list(audiences),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        body = _encode(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode()
        return f"{header}.{body}.{self._sign(signing_input)}", expires

    def verify(self, token: str, *, now: float | None = None) -> Claims | None:
        """The claims of a well-signed, unexpired token, or None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        header, body, signature = parts
        if not hmac.compare_digest(self._sign(f"{header}.{body}".encode()), signature):
            return None
        try:
            payload = json.loads(_decode(body))
            account = payload["kubernetes.io"]
            claims = Claims(
                namespace=str(account["namespace"]),
                name=str(account["serviceaccount"]["name"]),
                uid=str(account["serviceaccount"]["uid"]),
                audiences=tuple(str(a) for a in payload.get("aud", [])),
                expires=int(payload["exp"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if claims.expires <= int(now if now is not None else time.time()):
            return None
        return claims
