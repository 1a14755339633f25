"""GitSources fetched by `upkeep run`: on their interval, on a signed push webhook, with credentials, failures
that keep the previous artifact, a force push taken only when accepted, and commit-signature verification.

Real parts only: the cluster (the sandbox, or $KUBECONFIG), the real kubectl, `upkeep run` as a process of its
own with its HTTP server, and real git repositories served over smart HTTP on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import signing
from support.cluster import Cluster, eventually
from support.gitrepos import GitServer, WorkRepo, serve
from support.operator import OperatorProcess, free_port, install_crds, running_operator
from upkeep.gitops import webhooks

pytestmark = pytest.mark.integration
TOKEN = "git-read-token-" + uuid.uuid4().hex[:8]
HOOK_KEY = "hook-key-" + uuid.uuid4().hex[:8]


class Operator:
    """The module's operator: its process and the base URL of its HTTP server."""

    def __init__(self, process: OperatorProcess, url: str) -> None:
        self.process = process
        self.url = url


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> Iterator[str]:
    install_crds(cluster)
    name = f"gs-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    folder = tmp_path_factory.mktemp("gitsource-operator")
    port = free_port()
    flags = ("--http", f"127.0.0.1:{port}", "--git-cache", str(folder / "cache"))
    with running_operator(cluster, [ns], folder / "operator.log", *flags) as process:
        url = f"http://127.0.0.1:{port}"

        def serving() -> bool:
            assert process.process.poll() is None, process.log()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        eventually(serving, timeout=30, interval=0.2, message="the operator serving HTTP")
        yield Operator(process, url)


@pytest.fixture(autouse=True)
def cleanup(cluster: Cluster, ns: str) -> Iterator[None]:
    """Each test's GitSources go at its end: the operator stops fetching servers that are gone."""
    yield
    cluster.kubectl("delete", "gitsources", "--all", "-n", ns, "--wait=false", check=False)


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    repo = WorkRepo.create(tmp_path / "app")
    repo.commit({"deploy/config.yaml": "kind: ConfigMap\n"}, "first")
    return repo


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def gitsource(cluster: Cluster, ns: str, name: str, url: str, **spec: Any) -> None:
    body = {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"url": url, "interval": "1s", "timeout": "10s", **spec},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def secret(cluster: Cluster, ns: str, name: str, data: dict[str, str]) -> None:
    """Create or replace an Opaque Secret with ``data`` as its (plain-text) values."""
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": encoded}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.kubectl_json("get", "gitsource", name, "-n", ns).get("status") or {}
    return found


def ready(found: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in found.get("conditions") or [] if c.get("type") == "Ready"), {})


def revision_is(cluster: Cluster, ns: str, name: str, revision: str) -> dict[str, Any] | None:
    found = status(cluster, ns, name)
    artifact = found.get("artifact") or {}
    return found if artifact.get("revision") == revision and ready(found).get("status") == "True" else None


def failed_with(cluster: Cluster, ns: str, name: str, reason: str) -> dict[str, Any] | None:
    found = status(cluster, ns, name)
    condition = ready(found)
    return found if (condition.get("status"), condition.get("reason")) == ("False", reason) else None


def events(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return items


def fetched(server: GitServer, name: str) -> int:
    """How many fetches of the repository ``name`` the server has answered (each starts with its ref list)."""
    return sum(1 for request in server.requests if request.startswith(f"GET /{name}/info/refs"))


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_commit_is_fetched_within_the_interval_and_a_new_commit_picked_up(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("poll")
    with serve({"app.git": repo.path}) as server:
        gitsource(cluster, ns, name, server.url("app.git"))
        first = repo.head()

        found = eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{first}"), timeout=20)
        assert found["phase"] == "Ready"
        assert found["artifact"]["commit"] == first
        assert found["artifact"]["verified"] is False
        assert ready(found)["reason"] == "Fetched"
        assert found["observedGeneration"] == 1
        assert "webhookPath" not in found

        second = repo.commit({"deploy/config.yaml": "kind: ConfigMap\ndata: {}\n"}, "second")
        eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{second}"), timeout=10)

    reasons = [event["reason"] for event in events(cluster, ns, name)]
    assert reasons.count("Fetched") == 2, reasons


def test_an_unreachable_server_keeps_the_previous_artifact(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("gone")
    with serve({"app.git": repo.path}) as server:
        gitsource(cluster, ns, name, server.url("app.git"))
        kept = eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{repo.head()}"), timeout=20)

    found = eventually(lambda: failed_with(cluster, ns, name, "Unreachable"), timeout=20)
    assert found["artifact"] == kept["artifact"]
    assert found["phase"] == "Failed"
    assert "spec.url" in ready(found)["message"]


def test_credentials_come_from_the_secret_and_a_refused_token_keeps_the_artifact(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("auth")
    secret(cluster, ns, f"{name}-git", {"token": TOKEN})
    with serve({"app.git": repo.path}, token=TOKEN) as server:
        gitsource(cluster, ns, name, server.url("app.git"), secretRef={"name": f"{name}-git"})
        kept = eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{repo.head()}"), timeout=20)

        secret(cluster, ns, f"{name}-git", {"token": "wrong-" + TOKEN})
        found = eventually(lambda: failed_with(cluster, ns, name, "AuthenticationFailed"), timeout=20)

    assert found["artifact"] == kept["artifact"]
    assert "spec.secretRef" in ready(found)["message"]
    everything = json.dumps([found, events(cluster, ns, name)])
    assert TOKEN not in everything


def test_a_missing_secret_is_reported(cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo) -> None:
    name = unique("nosecret")
    with serve({"app.git": repo.path}) as server:
        gitsource(cluster, ns, name, server.url("app.git"), secretRef={"name": "does-not-exist"})
        found = eventually(lambda: failed_with(cluster, ns, name, "SecretNotFound"), timeout=20)

    assert "does-not-exist" in ready(found)["message"]
    assert fetched(server, "app.git") == 0


def test_a_missing_branch_is_ref_not_found_and_the_artifact_stays(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("ref")
    with serve({"app.git": repo.path}) as server:
        gitsource(cluster, ns, name, server.url("app.git"))
        kept = eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{repo.head()}"), timeout=20)

        cluster.kubectl(
            "patch",
            "gitsource",
            name,
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"ref": {"branch": "nope"}}}),
        )
        found = eventually(lambda: failed_with(cluster, ns, name, "RefNotFound"), timeout=20)

    assert found["artifact"] == kept["artifact"]
    assert found["observedGeneration"] == 2


def test_a_force_push_is_refused_until_the_new_commit_is_accepted(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("rewrite")
    first = repo.head()
    second = repo.commit({"deploy/config.yaml": "kind: ConfigMap\ndata: {a: b}\n"}, "second")
    with serve({"app.git": repo.path}) as server:
        gitsource(cluster, ns, name, server.url("app.git"))
        kept = eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{second}"), timeout=20)

        repo.git("reset", "--quiet", "--hard", first)
        rewritten = repo.commit({"deploy/config.yaml": "kind: ConfigMap\ndata: {c: d}\n"}, "rewritten")
        found = eventually(
            lambda: (
                (f := failed_with(cluster, ns, name, "HistoryRewritten")) and rewritten in ready(f)["message"] and f
            ),
            timeout=20,
        )
        assert found["artifact"] == kept["artifact"]
        message = ready(found)["message"]
        assert f"upkeep.dev/accept-history-rewrite={rewritten}" in message

        cluster.kubectl("annotate", "gitsource", name, "-n", ns, f"upkeep.dev/accept-history-rewrite={rewritten}")
        eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{rewritten}"), timeout=20)

    warnings = [event["reason"] for event in events(cluster, ns, name) if event["type"] == "Warning"]
    assert warnings == ["HistoryRewritten"], warnings  # once, not at every interval that failed the same way


def test_a_signed_webhook_fetches_at_once_and_a_wrongly_signed_one_is_refused(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("hook")
    secret(cluster, ns, f"{name}-hook", {"token": HOOK_KEY})
    with serve({"app.git": repo.path}) as server:
        gitsource(
            cluster, ns, name, server.url("app.git"), interval="1h", webhook={"secretRef": {"name": f"{name}-hook"}}
        )
        found = eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{repo.head()}"), timeout=20)
        path = found["webhookPath"]
        assert path == f"/hooks/{ns}/{name}"
        hook = operator.url + path
        before = fetched(server, "app.git")
        pushed = repo.commit({"deploy/config.yaml": "kind: ConfigMap\ndata: {pushed: x}\n"}, "pushed")
        payload = json.dumps({"ref": "refs/heads/main", "after": pushed}).encode()

        forged = {"X-Hub-Signature-256": "sha256=" + webhooks.sign(payload, b"not-the-key")}
        assert post(hook, payload, forged) == 401
        assert post(operator.url + f"/hooks/{ns}/no-such-source", payload, forged) == 404
        assert fetched(server, "app.git") == before  # the 401 came after deciding not to fetch
        assert status(cluster, ns, name)["artifact"]["commit"] != pushed

        started = time.monotonic()
        signed = {"X-Hub-Signature-256": "sha256=" + webhooks.sign(payload, HOOK_KEY.encode())}
        assert post(hook, payload, signed) == 202
        eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{pushed}"), timeout=10, interval=0.02)
        took = time.monotonic() - started
        print(f"\nwebhook to new revision in status: {took * 1000:.0f} ms (bench/gitops.py measures it)")

    received = [event for event in events(cluster, ns, name) if event["reason"] == "WebhookReceived"]
    assert len(received) == 1, received


def test_a_signed_push_is_applied_by_the_release_at_once(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    """The whole path of a push: the webhook, the fetch, the Release's sync, the object in the cluster. Both the
    GitSource and the Release look only hourly by themselves, so only the webhook can bring the change in."""
    name = unique("push")
    config = unique("settings")
    secret(cluster, ns, f"{name}-hook", {"token": HOOK_KEY})

    def manifest(mode: str) -> str:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config}, "data": {"mode": mode}}
        return json.dumps(body)

    repo.commit({f"{name}/config.yaml": manifest("first")}, "first")
    with serve({"app.git": repo.path}) as server:
        gitsource(
            cluster, ns, name, server.url("app.git"), interval="1h", webhook={"secretRef": {"name": f"{name}-hook"}}
        )
        release = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"sourceRef": {"name": name}, "path": f"./{name}", "interval": "1h"},
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(release))

        def mode() -> str:
            found = cluster.kubectl("get", "configmap", config, "-n", ns, "-o", "jsonpath={.data.mode}", check=False)
            return found.stdout.strip() if found.returncode == 0 else ""

        eventually(lambda: mode() == "first", timeout=30, interval=0.1, message="the first commit applied")
        path = status(cluster, ns, name)["webhookPath"]
        pushed = repo.commit({f"{name}/config.yaml": manifest("pushed")}, "pushed")
        payload = json.dumps({"ref": "refs/heads/main", "after": pushed}).encode()
        signed = {"X-Hub-Signature-256": "sha256=" + webhooks.sign(payload, HOOK_KEY.encode())}
        started = time.monotonic()
        assert post(operator.url + path, payload, signed) == 202
        eventually(lambda: mode() == "pushed", timeout=15, interval=0.02, message="the push applied")
        print(f"\nwebhook to the object changed in the cluster: {(time.monotonic() - started) * 1000:.0f} ms")
        applied = cluster.kubectl_json("get", "release", name, "-n", ns)["status"]
        assert applied["revision"] == f"main@sha1:{pushed}"
    cluster.kubectl("delete", "release", name, "-n", ns, "--wait=false", check=False)


def test_a_gitea_signed_webhook_on_a_custom_path(cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo) -> None:
    name = unique("gitea")
    secret(cluster, ns, f"{name}-hook", {"token": HOOK_KEY})
    path = f"/push/{name}"
    with serve({"app.git": repo.path}) as server:
        webhook = {"secretRef": {"name": f"{name}-hook"}, "path": path}
        gitsource(cluster, ns, name, server.url("app.git"), interval="1h", webhook=webhook)
        eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{repo.head()}"), timeout=20)
        assert status(cluster, ns, name)["webhookPath"] == path
        pushed = repo.commit({"deploy/config.yaml": "kind: ConfigMap\ndata: {gitea: x}\n"}, "pushed")
        payload = b'{"ref": "refs/heads/main"}'

        assert (
            post(operator.url + path, payload, {"X-Gitea-Signature": webhooks.sign(payload, HOOK_KEY.encode())}) == 202
        )
        eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{pushed}"), timeout=10)


def test_an_invalid_spec_is_reported_and_never_fetched(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("invalid")
    with serve({"app.git": repo.path}) as server:
        gitsource(cluster, ns, name, server.url("app.git"), interval="0s")
        found = eventually(lambda: failed_with(cluster, ns, name, "InvalidSpec"), timeout=20)

        assert "spec.interval" in ready(found)["message"]
        accepted = next(c for c in found["conditions"] if c["type"] == "Accepted")
        assert accepted["status"] == "False"
        assert fetched(server, "app.git") == 0


def test_only_a_commit_signed_by_a_trusted_key_is_taken(
    cluster: Cluster, ns: str, operator: Operator, repo: WorkRepo
) -> None:
    name = unique("verify")
    with (
        signing.gpg_key("Alice", "alice@upkeep.invalid") as alice,
        signing.gpg_key("Mallory", "m@upkeep.invalid") as mallory,
    ):
        secret(cluster, ns, f"{name}-keys", {"alice.asc": alice.public().decode()})
        with serve({"app.git": repo.path}) as server:
            verify = {"provider": "gpg", "secretRef": {"name": f"{name}-keys"}}
            gitsource(cluster, ns, name, server.url("app.git"), verify=verify)

            found = eventually(lambda: failed_with(cluster, ns, name, "VerificationFailed"), timeout=20)
            assert "is not signed" in ready(found)["message"]
            assert "artifact" not in found

            by_mallory = signing.commit_signed(repo, mallory, {"deploy/config.yaml": "kind: ConfigMap\ndata: {m: x}\n"})
            found = eventually(
                lambda: (
                    (f := failed_with(cluster, ns, name, "VerificationFailed"))
                    and by_mallory[:12] in ready(f)["message"]
                    and f
                ),
                timeout=20,
            )
            assert "UntrustedKey" in ready(found)["message"]
            assert "artifact" not in found

            by_alice = signing.commit_signed(repo, alice, {"deploy/config.yaml": "kind: ConfigMap\ndata: {a: x}\n"})
            found = eventually(lambda: revision_is(cluster, ns, name, f"main@sha1:{by_alice}"), timeout=20)
            assert found["artifact"]["verified"] is True
            assert alice.fingerprint in ready(found)["message"]

            unsigned = repo.commit({"deploy/config.yaml": "kind: ConfigMap\ndata: {u: x}\n"}, "unsigned again")
            found = eventually(
                lambda: (
                    (f := failed_with(cluster, ns, name, "VerificationFailed"))
                    and unsigned[:12] in ready(f)["message"]
                    and f
                ),
                timeout=20,
            )
            assert found["artifact"]["commit"] == by_alice  # the verified commit stays in use
