"""API faults on purpose: 503 and 429 with Retry-After, latency, dropped watches, compaction."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox(cluster: Cluster) -> Iterator[Cluster]:
    if cluster.sandbox is None:
        pytest.skip("faults are injected into the sandbox; a real cluster has its own")
    yield cluster
    from upkeep.sandbox import runner

    runner.post_fault(cluster.sandbox.url, cluster.sandbox.token, {"type": "clear"})


def fault(cluster: Cluster, **body: object) -> dict[str, object]:
    from upkeep.sandbox import runner

    return runner.post_fault(cluster.sandbox.url, cluster.sandbox.token, dict(body))


@pytest.fixture
def core(sandbox: Cluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def raw_get(cluster: Cluster, path: str) -> tuple[int, dict[str, str], dict[str, object]]:
    """One GET without any client retry logic."""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        cluster.sandbox.url + path, headers={"Authorization": f"Bearer {cluster.sandbox.token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.parametrize(
    ("kind", "code", "reason"), [("unavailable", 503, "ServiceUnavailable"), ("throttle", 429, "TooManyRequests")]
)
def test_refusals_carry_retry_after_and_end_on_time(
    sandbox: Cluster, core: client.CoreV1Api, namespace: str, kind: str, code: int, reason: str
) -> None:
    fault(sandbox, type=kind, seconds=1.5)
    answered, headers, body = raw_get(sandbox, f"/api/v1/namespaces/{namespace}/configmaps")
    assert answered == code
    assert headers["Retry-After"] in ("1", "2")
    assert (body["kind"], body["reason"], body["code"]) == ("Status", reason, code)
    started = time.monotonic()
    listed = core.list_namespaced_config_map(namespace)  # the client honours Retry-After and tries again
    assert listed.items == []
    assert time.monotonic() - started >= 0.5
    assert raw_get(sandbox, f"/api/v1/namespaces/{namespace}/configmaps")[0] == 200


def test_kubectl_waits_out_a_throttle(sandbox: Cluster, namespace: str) -> None:
    fault(sandbox, type="throttle", seconds=1)
    started = time.monotonic()
    out = sandbox.kubectl("get", "configmaps", "-n", namespace, "-o", "name").stdout
    assert time.monotonic() - started >= 0.5  # client-go honoured Retry-After rather than failing
    assert out == "" or "configmap/" in out


def test_latency(sandbox: Cluster, core: client.CoreV1Api, namespace: str) -> None:
    fault(sandbox, type="latency", seconds=5, latencyMs=300)
    started = time.monotonic()
    core.list_namespaced_config_map(namespace)
    assert time.monotonic() - started >= 0.3
    fault(sandbox, type="clear")


def test_dropped_watches_end_the_stream(sandbox: Cluster, core: client.CoreV1Api, namespace: str) -> None:
    ended = threading.Event()

    def follow() -> None:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=30):
            pass
        ended.set()

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    eventually(lambda: fault(sandbox, type="drop-watches")["dropped"], timeout=10, message="an open watch to drop")
    assert ended.wait(10)


def test_cli_needs_admin_and_injects(tmp_path: Path) -> None:
    home = tmp_path / "home"
    upkeep = [sys.executable, "-m", "upkeep.cli", "sandbox"]
    subprocess.run(
        [*upkeep, "up", "--detach", "--admin", "--home", str(home)], check=True, capture_output=True, timeout=60
    )
    try:
        done = subprocess.run(
            [*upkeep, "fault", "api", "unavailable", "--seconds", "2", "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "type=unavailable" in done.stdout
        refused = Cluster(home / "kubeconfig").kubectl("get", "namespaces", "--request-timeout=1s", check=False)
        assert refused.returncode != 0
    finally:
        subprocess.run([*upkeep, "down", "--home", str(home)], capture_output=True, timeout=30, check=False)
    plain = tmp_path / "plain"
    subprocess.run([*upkeep, "up", "--detach", "--home", str(plain)], check=True, capture_output=True, timeout=60)
    try:
        done = subprocess.run(
            [*upkeep, "fault", "api", "compact", "--home", str(plain)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 1
        assert "--admin" in done.stderr
    finally:
        subprocess.run([*upkeep, "down", "--home", str(plain)], capture_output=True, timeout=30, check=False)
