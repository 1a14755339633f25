"""gitops.webhooks: the HMAC of a push body under each git server's header, and what is refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from upkeep.gitops import webhooks

SECRET = b"shared-hook-key"
BODY = b'{"ref": "refs/heads/main", "after": "0123456789abcdef"}'
DIGEST = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_sign_is_the_hex_hmac_sha256_of_the_body() -> None:
    assert webhooks.sign(BODY, SECRET) == DIGEST


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Hub-Signature-256", f"sha256={DIGEST}"),
        ("X-Gitea-Signature", DIGEST),
        ("X-Gogs-Signature", DIGEST),
        ("X-Signature", f"sha256={DIGEST}"),
        ("x-hub-signature-256", f"sha256={DIGEST.upper()}"),
        ("X-Gitea-Signature", f"sha256={DIGEST}"),
    ],
)
def test_each_servers_signature_header_is_accepted(header: str, value: str) -> None:
    verdict = webhooks.check({header: value, "Content-Type": "application/json"}, BODY, SECRET)

    assert verdict.accepted
    assert verdict.header == header.lower()


def test_gitlabs_token_header_equal_to_the_secret_is_accepted() -> None:
    assert webhooks.check({"X-Gitlab-Token": SECRET.decode()}, BODY, SECRET).accepted
    assert not webhooks.check({"X-Gitlab-Token": "guess"}, BODY, SECRET).accepted


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature-256": "sha256=" + webhooks.sign(BODY, b"another key")},
        {"X-Hub-Signature-256": "sha256=" + webhooks.sign(BODY + b" ", SECRET)},
        {"X-Hub-Signature-256": DIGEST},  # the header promises a prefix
        {"X-Hub-Signature-256": "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest()},
        {"X-Hub-Signature": "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest()},
        {"X-Signature": "sha256="},
        {"X-Gitea-Signature": "not hex at all"},
        {},
    ],
    ids=["other-key", "other-body", "no-prefix", "sha1-in-sha256-header", "sha1-header", "empty", "junk", "none"],
)
def test_a_wrong_missing_or_weak_signature_is_refused(headers: dict[str, str]) -> None:
    verdict = webhooks.check(headers, BODY, SECRET)

    assert not verdict.accepted
    assert verdict.header == ""


def test_one_good_header_among_wrong_ones_is_enough() -> None:
    headers = {"X-Gitea-Signature": "0" * 64, "X-Hub-Signature-256": f"sha256={DIGEST}"}

    assert webhooks.check(headers, BODY, SECRET).accepted


def test_an_empty_secret_accepts_nothing() -> None:
    assert not webhooks.check({"X-Signature": "sha256=" + webhooks.sign(BODY, b"")}, BODY, b"").accepted
    assert not webhooks.check({"X-Gitlab-Token": ""}, BODY, b"").accepted


def test_the_reason_for_the_log_names_headers_but_never_the_secret_or_digest() -> None:
    verdict = webhooks.check({"X-Hub-Signature-256": "sha256=" + "0" * 64}, BODY, SECRET)

    assert "x-hub-signature-256" in verdict.why
    assert SECRET.decode() not in verdict.why
    assert DIGEST not in verdict.why
