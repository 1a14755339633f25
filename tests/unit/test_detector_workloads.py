"""The Deployment, node and Job detectors: episodes, graces and symptoms."""

from __future__ import annotations

import datetime
from typing import Any

from upkeep.detectors import deployments, jobs, nodes, sightings
from upkeep.model import resources

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
GRACE = datetime.timedelta(minutes=5)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, status: str, reason: str, since: datetime.datetime) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "lastTransitionTime": _rfc3339(since)}


def deployment(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "shop", "namespace": "shop", "uid": "d1", "labels": {"app": "shop"}},
        "status": {"conditions": list(conditions)},
    }


def test_an_unavailable_deployment_counts_after_its_grace_and_says_when() -> None:
    since = NOW - datetime.timedelta(minutes=1)
    body = deployment(condition("Available", "False", "MinimumReplicasUnavailable", since))
    early = deployments.detect(body, NOW, unavailable_grace=GRACE)
    assert early.sightings == () and early.recheck_at == since + GRACE
    late = deployments.detect(body, since + GRACE, unavailable_grace=GRACE)
    (seen,) = late.sightings
    assert seen.signal.type == "DeploymentUnavailable"
    assert (seen.instance, seen.episode) == ("d1", _rfc3339(since))
    assert late.recheck_at is None


def test_a_deployment_that_fails_again_is_a_new_occurrence() -> None:
    first = deployments.detect(
        deployment(condition("Progressing", "False", "ProgressDeadlineExceeded", NOW)), NOW, unavailable_grace=GRACE
    ).sightings[0]
    again = deployments.detect(
        deployment(condition("Progressing", "False", "ProgressDeadlineExceeded", NOW + GRACE)),
        NOW + GRACE,
        unavailable_grace=GRACE,
    ).sightings[0]
    assert first.signal.type == "ProgressDeadlineExceeded"
    assert sightings.occurrences_since(first, first) == 0
    assert sightings.occurrences_since(first, again) == 1


def test_symptoms_of_a_workload_with_a_pod_level_cause_are_left_out() -> None:
    body = deployment(
        condition("Available", "False", "MinimumReplicasUnavailable", NOW - GRACE),
        condition("Progressing", "False", "ProgressDeadlineExceeded", NOW),
    )
    detection = deployments.detect(body, NOW, unavailable_grace=GRACE)
    assert len(detection.sightings) == 2
    shop = resources.ObjectRef("Deployment", "shop", "shop", "apps/v1")
    assert deployments.symptoms(detection, lambda workload: workload == shop).sightings == ()
    assert deployments.symptoms(detection, lambda workload: False) == detection


def test_a_node_not_ready_goes_to_the_namespace_given() -> None:
    body = {
        "metadata": {"name": "worker-2", "uid": "n2"},
        "status": {"conditions": [condition("Ready", "Unknown", "NodeStatusUnknown", NOW)]},
    }
    detection = nodes.detect(body, NOW, namespace="ops")
    assert detection.subject == resources.ObjectRef("Node", "worker-2", "", "v1")
    (seen,) = detection.sightings
    assert (seen.signal.namespace, seen.fingerprint) == ("ops", "nodenotready:ops:node:worker-2")
    assert seen.episode == _rfc3339(NOW)
    body["status"]["conditions"] = [condition("Ready", "True", "KubeletReady", NOW)]
    assert nodes.detect(body, NOW, namespace="ops").sightings == ()


def test_each_failed_run_of_a_cronjob_is_one_occurrence_of_one_fingerprint() -> None:
    def job(name: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "namespace": "shop",
                "uid": f"uid-{name}",
                "ownerReferences": [
                    {"kind": "CronJob", "name": "report", "apiVersion": "batch/v1", "controller": True}
                ],
            },
            "status": {"conditions": [condition("Failed", "True", "BackoffLimitExceeded", NOW)]},
        }

    first = jobs.detect(job("report-1"), NOW).sightings[0]
    second = jobs.detect(job("report-2"), NOW).sightings[0]
    assert first.fingerprint == second.fingerprint == "jobfailed:shop:cronjob:report"
    assert sightings.occurrences_since(first, second) == 1
    assert sightings.occurrences_since(first, first) == 0


def test_earliest_ignores_the_unknown() -> None:
    assert sightings.earliest([None, NOW + GRACE, NOW, None]) == NOW
    assert sightings.earliest([None]) is None
