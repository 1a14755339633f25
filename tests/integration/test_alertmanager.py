"""A real Alertmanager routes alerts to the operator: a firing alert opens an Incident, resolving it resolves it.

Alertmanager is the Debian package's /usr/bin/prometheus-alertmanager on 127.0.0.1, with no
cluster gossip; its route sends every group at once (group_wait 0s, group_interval 1s) to
``http://127.0.0.1:<operator port>/webhooks/alertmanager`` with ``send_resolved`` and the
bearer token of ``$UPKEEP_WEBHOOK_TOKEN_FILE`` (``http_config.authorization``), exactly as
docs/alerts.md tells users to configure it. The test posts alerts to Alertmanager's own API
(``/api/v2/alerts``), as Prometheus does.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, free_port, simulated_sandbox, start_operator
from support.workloads import namespace

pytestmark = [pytest.mark.integration, pytest.mark.alertmanager]

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
TOKEN = "token-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A sandbox of this module's own, with Upkeep's CRDs; alerts need no simulated workloads."""
    with simulated_sandbox(tmp_path_factory.mktemp("alertmanager-sandbox"), simulation=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ns(sandbox: Cluster) -> Iterator[str]:
    """The watched namespace, with a SupportPolicy: alerts labelled severity=page are SEV2, clear after 1 s."""
    with namespace(sandbox, "am") as name:
        yield from _with_policy(sandbox, name)


def _with_policy(sandbox: Cluster, name: str) -> Iterator[str]:
    policy = {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "SupportPolicy",
        "metadata": {"name": f"policy-{name}"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"upkeep-test": name}},
            "defaultSeverity": "SEV4",
            "severityRules": [
                {
                    "severity": "SEV2",
                    "match": {"signalTypes": ["Alert"], "selector": {"matchLabels": {"severity": "page"}}},
                }
            ],
            "autoResolve": {"clearFor": "1s"},
        },
    }
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(policy))
    yield name
    sandbox.kubectl("delete", "supportpolicy", f"policy-{name}", "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(sandbox: Cluster, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`upkeep run` on the namespace, serving HTTP with a bearer token; yields (base URL, token file)."""
    folder = tmp_path_factory.mktemp("alertmanager-operator")
    token_file = folder / "webhook-token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UPKEEP_WEBHOOK_TOKEN_FILE", str(token_file))  # the operator's environment is the test's
        started = start_operator(sandbox, [ns], folder / "operator.log", "--http", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: healthy(url, started), timeout=30, interval=0.2, message="the operator serving HTTP")
        yield url, token_file
    finally:
        started.stop()


def healthy(url: str, process: OperatorProcess) -> bool:
    assert process.process.poll() is None, process.log()[-3000:]
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def alertmanager(operator: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real Alertmanager whose only receiver is the operator's webhook."""
    binary = str(ALERTMANAGER) if ALERTMANAGER.exists() else shutil.which("prometheus-alertmanager")
    if binary is None:
        pytest.skip(
            "the Alertmanager binary is not installed: /usr/bin/prometheus-alertmanager comes with the Debian "
            "package prometheus-alertmanager (apt-get install -y prometheus-alertmanager)"
        )
    operator_url, token_file = operator
    folder = tmp_path_factory.mktemp("alertmanager")
    config = folder / "alertmanager.yml"
    config.write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "upkeep",
                    "group_by": ["alertname", "namespace"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1m",
                },
                "receivers": [
                    {
                        "name": "upkeep",
                        "webhook_configs": [
                            {
                                "url": f"{operator_url}/webhooks/alertmanager",
                                "send_resolved": True,
                                "http_config": {
                                    "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                                },
                            }
                        ],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    log = (folder / "alertmanager.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert process.poll() is None, (folder / "alertmanager.log").read_text(encoding="utf-8")[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        eventually(up, timeout=20, interval=0.2, message="Alertmanager ready")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def post_alert(alertmanager: str, labels: dict[str, str], *, ends: datetime.datetime | None = None) -> None:
    """Post one alert to Alertmanager's API, as Prometheus does; ``ends`` in the past resolves it."""
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": "checkout answers 5xx for 3% of requests"},
        "generatorURL": "http://prometheus.example/graph",
    }
    if ends is not None:
        alert["endsAt"] = ends.isoformat().replace("+00:00", "Z")
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def incidents(sandbox: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sandbox.kubectl_json("get", "incidents", "-n", ns)["items"]
    return items


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_an_alert_opens_an_incident_and_resolving_it_resolves_the_incident(
    sandbox: Cluster, ns: str, operator: tuple[str, Path], alertmanager: str
) -> None:
    labels = {"alertname": "CheckoutErrors", "namespace": ns, "severity": "page", "service": "checkout"}
    post_alert(alertmanager, labels)

    def opened() -> dict[str, Any] | None:
        found = incidents(sandbox, ns)
        return found[0] if found and found[0].get("status", {}).get("phase") == "Triggered" else None

    incident = eventually(opened, timeout=30, interval=0.2, message="an Incident for the alert")
    spec = incident["spec"]
    assert spec["signal"]["type"] == "Alert"
    assert spec["signal"]["source"] == "alertmanager"
    assert spec["signal"]["fingerprint"].startswith(f"alert:{ns}:checkouterrors:")
    assert spec["signal"]["labels"] == labels
    assert spec["severity"] == "SEV2", "the SupportPolicy rule, not the default SEV4 nor the label"
    assert spec["service"] == "checkout"
    name = incident["metadata"]["name"]
    opened_events = sandbox.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name},reason=Opened"
    )["items"]
    assert opened_events and "spec.severityRules[0]" in opened_events[0]["message"]

    post_alert(alertmanager, labels, ends=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1))

    def resolved() -> dict[str, Any] | None:
        found = incidents(sandbox, ns)
        return found[0] if found and found[0]["status"].get("phase") == "Resolved" else None

    done = eventually(resolved, timeout=30, interval=0.2, message="the Incident resolved after the alert resolved")
    assert [item["metadata"]["name"] for item in incidents(sandbox, ns)] == [name]
    assert done["status"]["occurrences"] == 1
    assert done["status"]["timeline"][-1]["by"] == "upkeep/auto-resolve"

    text = scrape(operator[0])
    assert sample(text, 'upkeep_alerts_received_total{status="firing"}') >= 1
    assert sample(text, 'upkeep_alerts_received_total{status="resolved"}') >= 1
    assert sample(text, 'upkeep_webhook_requests_rejected_total{reason="unauthorized"}') == 0


def test_alerts_of_a_namespace_not_watched_are_counted_and_ignored(
    sandbox: Cluster, ns: str, operator: tuple[str, Path], alertmanager: str
) -> None:
    elsewhere = f"other-{uuid.uuid4().hex[:6]}"
    sandbox.kubectl("create", "namespace", elsewhere)
    post_alert(alertmanager, {"alertname": "DiskFull", "namespace": elsewhere, "severity": "page"})

    def counted() -> float:
        return sample(scrape(operator[0]), 'upkeep_alerts_ignored_total{reason="namespace_not_watched"}')

    assert eventually(counted, timeout=30, interval=0.2, message="the foreign alert counted as ignored") >= 1
    assert incidents(sandbox, elsewhere) == []
    assert all(item["spec"]["signal"]["labels"].get("alertname") != "DiskFull" for item in incidents(sandbox, ns))


def test_a_webhook_without_the_bearer_token_is_refused(operator: tuple[str, Path]) -> None:
    body = json.dumps({"version": "4", "alerts": []}).encode()
    request = urllib.request.Request(f"{operator[0]}/webhooks/alertmanager", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["field"] == "Authorization"
