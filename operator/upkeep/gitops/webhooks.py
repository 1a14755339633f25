"""Whether a push notification from a git server was made with the GitSource's shared secret.

Git servers sign the body of a push webhook with an HMAC of a shared key, each under a header of
its own; GitLab sends the key itself. Any one of these headers that checks out is enough:

| header | value | sent by |
|---|---|---|
| ``X-Hub-Signature-256`` | ``sha256=<hex HMAC-SHA256 of the body>`` | GitHub, Forgejo, others copying GitHub |
| ``X-Gitea-Signature`` | ``<hex HMAC-SHA256>`` | Gitea, Forgejo |
| ``X-Gogs-Signature`` | ``<hex HMAC-SHA256>`` | Gogs (and Gitea, for compatibility) |
| ``X-Signature`` | ``sha256=<hex HMAC-SHA256>`` | anything else: scripts, CI jobs, ``curl`` |
| ``X-Gitlab-Token`` | the shared key itself | GitLab (it does not sign bodies) |

Every comparison takes constant time (``hmac.compare_digest``), so the answer's timing says nothing
of how much of a guess was right. HMAC-SHA1 (GitHub's old ``X-Hub-Signature``) is not taken.
Pure: no I/O; the receiver passes the headers, the raw body and the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SIGNATURE_HEADERS", "Check", "check", "sign"]

SIGNATURE_HEADERS: tuple[tuple[str, bool], ...] = (
    ("x-hub-signature-256", True),
    ("x-gitea-signature", False),
    ("x-gogs-signature", False),
    ("x-signature", True),
)
"""(header, whether its value carries the ``sha256=`` prefix), lower case."""
TOKEN_HEADER = "x-gitlab-token"


@dataclass(frozen=True)
class Check:
    """The answer for one request: ``accepted``, and under which header (or why not, for the log)."""

    accepted: bool
    header: str
    """The header that matched, or "" when none did."""
    why: str
    """For the operator's log only (never for the caller): which headers were there and did not match."""


def sign(body: bytes, secret: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` under ``secret`` (what a git server puts in its header)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def check(headers: Mapping[str, str], body: bytes, secret: bytes) -> Check:
    """Whether any of the known headers proves ``body`` was sent by someone holding ``secret``.

    ``headers`` may be any mapping; names are compared without regard to case. An empty secret
    accepts nothing: an unset key must not open the receiver to everyone.
    """
    if not secret:
        return Check(False, "", "the webhook secret is empty")
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    expected = sign(body, secret)
    presented: list[str] = []
    for header, prefixed in SIGNATURE_HEADERS:
        value = lowered.get(header)
        if value is None:
            continue
        presented.append(header)
        digest = value.strip()
        if digest.lower().startswith("sha256="):
            digest = digest[len("sha256=") :]
        elif prefixed:
            continue  # "sha1=..." or no algorithm at all: not the HMAC this header promises
        if hmac.compare_digest(digest.lower().encode(), expected.encode()):
            return Check(True, header, "")
    token = lowered.get(TOKEN_HEADER)
    if token is not None:
        presented.append(TOKEN_HEADER)
        if hmac.compare_digest(token.strip().encode(), secret.strip()):
            return Check(True, TOKEN_HEADER, "")
    if not presented:
        return Check(False, "", "no signature header (X-Hub-Signature-256, X-Gitea-Signature, X-Signature, ...)")
    return Check(False, "", f"{', '.join(presented)} did not match the shared secret")
