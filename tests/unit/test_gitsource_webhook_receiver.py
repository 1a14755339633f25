"""controllers.gitsources without a cluster: credentials from a Secret, webhook paths, and the receiver's answers
on a real HTTP server (the operator's, with the metrics route beside it)."""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import pytest

from upkeep import settings
from upkeep.controllers import gitsources, http, metrics
from upkeep.gitops import webhooks

KEY = "the-hook-key"


class Secrets:
    """The Secrets the controller reads, by (namespace, name); status patches are recorded."""

    def __init__(self, secrets: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        self.secrets = {
            key: {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
            for key, data in secrets.items()
        }
        self.patches: list[Mapping[str, Any]] = []

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get((namespace, name))

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        self.patches.append(patch)
        return dict(patch)


def source(name: str = "app", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": name, "namespace": "shop", "generation": 1},
        "spec": {"url": "https://git.example/app.git", **spec},
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"token": "t0k\n"}, gitsources.FetchAuth("t0k")),
        ({"token": "t0k", "username": "bot"}, gitsources.FetchAuth("t0k", "bot")),
        ({"username": "bot", "password": "pw"}, gitsources.FetchAuth("pw", "bot")),
        ({"identity": "KEY", "known_hosts": "HOSTS"}, gitsources.FetchAuth(None, None, b"KEY", b"HOSTS")),
    ],
)
def test_credentials_are_read_from_the_secret_of_spec_secret_ref(
    data: dict[str, str], expected: gitsources.FetchAuth
) -> None:
    cluster = Secrets({("shop", "git"): data})
    body = source(secretRef={"name": "git"})

    assert asyncio.run(gitsources.fetch_auth(cluster, "shop", body)) == expected
    assert asyncio.run(gitsources.credentials(cluster, "shop", body)) == expected.token


def test_no_secret_ref_means_no_credentials() -> None:
    assert asyncio.run(gitsources.credentials(Secrets({}), "shop", source())) is None


def test_a_missing_or_unusable_secret_is_a_source_error_naming_it() -> None:
    with pytest.raises(gitsources.SourceError) as missing:
        asyncio.run(gitsources.fetch_auth(Secrets({}), "shop", source(secretRef={"name": "git"})))
    with pytest.raises(gitsources.SourceError) as unusable:
        asyncio.run(
            gitsources.fetch_auth(Secrets({("shop", "git"): {"x": "y"}}), "shop", source(secretRef={"name": "git"}))
        )

    assert missing.value.reason == "SecretNotFound"
    assert "'git'" in missing.value.message
    assert unusable.value.reason == "InvalidSecret"


def test_the_repr_of_credentials_hides_the_token_and_the_key() -> None:
    text = repr(gitsources.FetchAuth("t0k-secret", "bot", b"PRIVATE", b"hosts"))

    assert "t0k-secret" not in text
    assert "PRIVATE" not in text
    assert "bot" in text


def test_the_webhook_path_is_the_default_or_the_spec_and_none_without_a_webhook() -> None:
    assert gitsources.webhook_path(source(webhook={"secretRef": {"name": "h"}})) == "/hooks/shop/app"
    assert gitsources.webhook_path(source(webhook={"secretRef": {"name": "h"}, "path": "/push/x"})) == "/push/x"
    assert gitsources.webhook_path(source()) is None


def test_the_receiver_answers_404_401_and_202_and_kicks_only_a_signed_push() -> None:
    cluster = Secrets({("shop", "hook"): {"token": KEY}})
    controller = gitsources.GitSourceController(settings.OperatorSettings(), cluster)
    controller.observe(source(webhook={"secretRef": {"name": "hook"}}))
    controller.observe(source("plain"))
    measured = metrics.OperatorMetrics()
    payload = b'{"ref": "refs/heads/main"}'

    def call(base: str, method: str, path: str, headers: Mapping[str, str] | None = None) -> int:
        request = urllib.request.Request(base + path, data=payload if method == "POST" else None, method=method)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            assert error.read() == b"" or error.code != 401  # a refusal says nothing of why
            return int(error.code)

    async def scenario() -> dict[str, Any]:
        server = http.HttpServer("127.0.0.1", 0, [*metrics.routes(measured), *controller.routes()])
        await server.start()
        wake = controller._sources[("shop", "app")].wake
        try:
            good = {"X-Hub-Signature-256": "sha256=" + webhooks.sign(payload, KEY.encode())}
            bad = {"X-Hub-Signature-256": "sha256=" + webhooks.sign(payload, b"guess")}
            answers: dict[str, Any] = {
                "unknown": await asyncio.to_thread(call, server.url, "POST", "/hooks/shop/nothing", good),
                "no-webhook": await asyncio.to_thread(call, server.url, "POST", "/hooks/shop/plain", good),
                "get-unknown": await asyncio.to_thread(call, server.url, "GET", "/nothing"),
                "get-hook": await asyncio.to_thread(call, server.url, "GET", "/hooks/shop/app"),
                "metrics": await asyncio.to_thread(call, server.url, "GET", metrics.PATH),
                "bad": await asyncio.to_thread(call, server.url, "POST", "/hooks/shop/app", bad),
                "unsigned": await asyncio.to_thread(call, server.url, "POST", "/hooks/shop/app"),
            }
            answers["woken-before"] = wake.is_set()
            answers["good"] = await asyncio.to_thread(call, server.url, "POST", "/hooks/shop/app", good)
            answers["woken-after"] = wake.is_set()
            return answers
        finally:
            await server.stop()

    answers = asyncio.run(scenario())

    assert answers == {
        "unknown": 404,
        "no-webhook": 404,
        "get-unknown": 404,
        "get-hook": 405,
        "metrics": 200,
        "bad": 401,
        "unsigned": 401,
        "woken-before": False,
        "good": 202,
        "woken-after": True,
    }
    assert controller._sources[("shop", "app")].pushes == ["x-hub-signature-256"]
