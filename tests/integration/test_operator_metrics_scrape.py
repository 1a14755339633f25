"""The operator's /metrics, scraped over HTTP while a crash loop opens, is acknowledged and resolves.

`upkeep run --http 127.0.0.1:<port>` runs against a simulated sandbox of this module's own;
the test scrapes the text exposition with urllib, as Prometheus would. A second operator
started on the same port must stop at once with one line naming --http.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, free_port, simulated_sandbox, start_operator
from support.workloads import CRASHING_IMAGE, apply, deployment, namespace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("operator-metrics")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    """A namespace with a SupportPolicy: crash loops are SEV2 and clear after 1 s."""
    with namespace(sim, "m") as name:
        policy = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": f"policy-{name}"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"upkeep-test": name}},
                "defaultSeverity": "SEV4",
                "severityRules": [{"severity": "SEV2", "match": {"signalTypes": ["CrashLoopBackOff"]}}],
                "sla": [{"severity": "SEV2", "acknowledgeWithin": "1h", "resolveWithin": "8h"}],
                "autoResolve": {"clearFor": "1s"},
            },
        }
        sim.kubectl("apply", "-f", "-", input=json.dumps(policy))
        yield name
        sim.kubectl("delete", "supportpolicy", f"policy-{name}", "--wait=false", check=False)


def serving(sim: Cluster, ns: str, log: Path) -> tuple[OperatorProcess, str]:
    """Start `upkeep run --http` and wait until it answers; (process, base URL)."""
    port = free_port()
    started = start_operator(sim, [ns], log, "--http", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert started.process.poll() is None, started.log()[-3000:]
        try:
            return bool(scrape(url))
        except OSError:
            return False

    eventually(up, timeout=30, interval=0.2, message="the operator serving /metrics")
    return started, url


def scrape(url: str) -> dict[str, float]:
    """The samples of a scrape of ``/metrics``: series (name and labels, as written) → value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def only_incident(sim: Cluster, ns: str) -> dict[str, Any] | None:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "incidents", "-n", ns)["items"]
    assert len(items) <= 1, [item["metadata"]["name"] for item in items]
    return items[0] if items and items[0].get("status", {}).get("phase") else None


OPEN_SEV2 = 'upkeep_incidents_open{severity="SEV2"}'
DETECTED = 'upkeep_detections_total{signal_type="CrashLoopBackOff"}'
ACKNOWLEDGED = "upkeep_incident_time_to_acknowledge_seconds_count"
RESOLVED = "upkeep_incident_time_to_resolve_seconds_count"


def test_metrics_follow_an_incident_from_detection_to_acknowledgement_and_resolution_across_a_restart(
    sim: Cluster, ns: str, tmp_path: Path
) -> None:
    first, url = serving(sim, ns, tmp_path / "operator-1.log")
    try:
        before = scrape(url)
        assert before[OPEN_SEV2] == 0
        assert before[DETECTED] == 0
        assert before[ACKNOWLEDGED] == 0

        apply(sim, deployment("shop", CRASHING_IMAGE, 2), ns)
        incident = eventually(lambda: only_incident(sim, ns), timeout=60, interval=0.2, message="an Incident")
        name = incident["metadata"]["name"]
        occurrences = incident["status"]["occurrences"]
        assert eventually(lambda: scrape(url)[OPEN_SEV2] == 1, timeout=10, message="one open SEV2 incident")
        assert eventually(
            lambda: scrape(url)[DETECTED] >= occurrences, timeout=10, message=f"at least {occurrences} detections"
        )
        assert scrape(url)['upkeep_incidents_open{severity="SEV4"}'] == 0

        patch = {"spec": {"state": "Acknowledged", "note": "on it"}}
        sim.kubectl("patch", "incident", name, "-n", ns, "--type", "merge", "-p", json.dumps(patch))
        eventually(lambda: scrape(url)[ACKNOWLEDGED] == 1, timeout=20, interval=0.2, message="time to acknowledge")
        acknowledged = scrape(url)
        assert acknowledged[OPEN_SEV2] == 1, "Acknowledged is still open"
        assert acknowledged['upkeep_incident_time_to_acknowledge_seconds_bucket{le="+Inf"}'] == 1
        assert acknowledged[RESOLVED] == 0

        taken = start_operator(sim, [ns], tmp_path / "operator-taken.log", "--http", url.removeprefix("http://"))
        code = taken.process.wait(60)
        taken.stop()
        lines = [line for line in taken.log().splitlines() if line.strip()]
        assert code != 0
        assert len(lines) == 1 and "--http" in lines[0] and url.removeprefix("http://") in lines[0], lines
    finally:
        first.stop()

    second, url = serving(sim, ns, tmp_path / "operator-2.log")
    try:
        # After a restart Kopf's listing counts the open incident again; its acknowledgement is not observed twice.
        assert eventually(lambda: scrape(url)[OPEN_SEV2] == 1, timeout=20, message="the open incident counted again")
        assert scrape(url)[ACKNOWLEDGED] == 0

        sim.kubectl("scale", "-n", ns, "deployment/shop", "--replicas=0")

        def resolved() -> dict[str, float] | None:
            samples = scrape(url)
            return samples if samples[RESOLVED] == 1 else None

        def phase() -> str:
            return str(((only_incident(sim, ns) or {}).get("status") or {}).get("phase"))

        eventually(lambda: phase() == "Resolved", timeout=60, interval=0.2, message="the incident resolved")
        timeline = ((only_incident(sim, ns) or {}).get("status") or {}).get("timeline")
        samples = eventually(resolved, timeout=10, interval=0.2, message=f"time to resolve observed; {timeline}")
        assert samples[OPEN_SEV2] == 0
        status = (only_incident(sim, ns) or {})["status"]
        assert status["phase"] == "Resolved"
        assert samples["upkeep_incident_time_to_resolve_seconds_sum"] >= 0
    finally:
        second.stop()
