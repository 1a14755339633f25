"""Signals: detectors over object bodies, fingerprints, and what is clear."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from upkeep.engine import signals
from upkeep.model import resources, schemas

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
GRACE = datetime.timedelta(minutes=5)
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
FINGERPRINT = re.compile(r"^[a-z0-9][a-z0-9:._-]{0,252}$")

REPLICASET = resources.ObjectRef("ReplicaSet", "shop-6d8f7c9b54", "shop", "apps/v1")
DEPLOYMENT = resources.ObjectRef("Deployment", "shop", "shop", "apps/v1")
OWNERS = (REPLICASET, DEPLOYMENT)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str = "shop-6d8f7c9b54-x2k8p",
    *,
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    owner: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod body as the API lists it (no kind, no apiVersion)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "shop",
        "labels": labels if labels is not None else {"app": "shop", "pod-template-hash": "6d8f7c9b54"},
    }
    if owner is not None:
        metadata["ownerReferences"] = [{"controller": True, "blockOwnerDeletion": True, "uid": "u1", **owner}]
    if deleting:
        metadata["deletionTimestamp"] = _rfc3339(NOW)
    status: dict[str, Any] = {"phase": "Running", "conditions": conditions or []}
    if containers is not None:
        status["containerStatuses"] = containers
    if init_containers is not None:
        status["initContainerStatuses"] = init_containers
    return {"metadata": metadata, "spec": {}, "status": status}


def waiting(name: str, reason: str, message: str = "", *, restarts: int = 5, last: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, **({"message": message} if message else {})}},
        "lastState": last or {},
    }
    return out


def running(name: str, *, last: Any = None) -> dict[str, Any]:
    return {
        "name": name,
        "ready": True,
        "restartCount": 1,
        "state": {"running": {"startedAt": _rfc3339(NOW)}},
        "lastState": last or {},
    }


def oom(finished: datetime.datetime = NOW) -> dict[str, Any]:
    return {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": _rfc3339(finished)}}


def crashloop_message(pod_name: str) -> str:
    return f"back-off 40s restarting failed container=shop pod={pod_name}_shop(8a1b)"


def detect(
    body: Mapping[str, Any], owners: tuple[resources.ObjectRef, ...] = OWNERS, **kw: Any
) -> list[signals.Signal]:
    return signals.signals_from_pod(body, owners, NOW, unschedulable_grace=kw.pop("grace", GRACE), **kw)


# --- pods --------------------------------------------------------------------------------


def test_a_crash_looping_pod_gives_one_signal_of_its_deployment() -> None:
    body = pod(containers=[waiting("shop", "CrashLoopBackOff", crashloop_message("shop-6d8f7c9b54-x2k8p"))])

    [found] = detect(body)

    assert found.type == "CrashLoopBackOff"
    assert found.reason == "CrashLoopBackOff"
    assert found.namespace == "shop"
    assert found.affected == resources.ObjectRef("Pod", "shop-6d8f7c9b54-x2k8p", "shop", "v1")
    assert found.workload == DEPLOYMENT
    assert found.fingerprint == "crashloopbackoff:shop:deployment:shop"
    assert found.message == crashloop_message("shop-6d8f7c9b54-x2k8p")
    assert found.source == "detector/pods"
    assert found.observed_at == NOW
    assert found.observed_at.tzinfo is datetime.UTC


def test_the_shop_example_incident_has_the_fingerprint_the_detector_gives() -> None:
    example = yaml.safe_load((SHOP / "incident.yaml").read_text(encoding="utf-8"))
    body = pod(containers=[waiting("shop", "CrashLoopBackOff", "back-off")])

    [found] = detect(body)

    assert found.fingerprint == example["spec"]["signal"]["fingerprint"]
    assert found.workload is not None
    assert found.workload.to_dict() == example["spec"]["workload"]
    assert set(found.to_dict()) <= set(example["spec"]["signal"]) | {"labels"}


@given(
    names=st.lists(st.from_regex(r"[a-z0-9]{5}", fullmatch=True), min_size=1, max_size=8, unique=True),
    template_hash=st.from_regex(r"[a-z0-9]{10}", fullmatch=True),
)
def test_replacement_pods_of_one_workload_share_the_fingerprint(names: list[str], template_hash: str) -> None:
    replicaset = resources.ObjectRef("ReplicaSet", f"shop-{template_hash}", "shop", "apps/v1")
    found: set[str] = set()
    for suffix in names:
        name = f"shop-{template_hash}-{suffix}"
        body = pod(name, containers=[waiting("shop", "CrashLoopBackOff", crashloop_message(name))])
        found.update(signal.fingerprint for signal in detect(body, (replicaset, DEPLOYMENT)))
    assert found == {"crashloopbackoff:shop:deployment:shop"}


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "InvalidImageName"])
def test_image_pull_failures_are_one_signal_type(reason: str) -> None:
    body = pod(containers=[waiting("shop", reason, 'Back-off pulling image "shop:9.9.9"', restarts=0)])

    [found] = detect(body)

    assert found.type == "ImagePullBackOff"
    assert found.reason == reason
    assert found.message == 'Back-off pulling image "shop:9.9.9"'
    assert found.fingerprint == "imagepullbackoff:shop:deployment:shop"


def test_an_oom_kill_in_the_last_state_is_the_cause_of_the_crash_loop() -> None:
    body = pod(containers=[waiting("shop", "CrashLoopBackOff", "back-off 20s", last=oom())])

    [found] = detect(body)

    assert found.type == "OOMKilled"
    assert found.reason == "OOMKilled"
    assert "container shop was OOMKilled (exit code 137, 5 restarts)" in found.message
    assert found.fingerprint == "oomkilled:shop:deployment:shop"


def test_an_oom_kill_in_the_current_state_counts() -> None:
    terminated = {
        "name": "batch",
        "restartCount": 0,
        "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        "lastState": {},
    }
    assert [signal.type for signal in detect(pod(containers=[terminated]))] == ["OOMKilled"]


def test_a_crash_that_is_no_oom_stays_a_crash_loop() -> None:
    last = {"terminated": {"reason": "Error", "exitCode": 3}}
    body = pod(containers=[waiting("shop", "CrashLoopBackOff", "back-off 10s", last=last)])

    assert [signal.type for signal in detect(body)] == ["CrashLoopBackOff"]


def test_an_old_oom_kill_clears_within_the_lookback() -> None:
    old = pod(containers=[running("shop", last=oom(NOW - datetime.timedelta(hours=2)))])
    recent = pod(containers=[running("shop", last=oom(NOW - datetime.timedelta(minutes=2)))])
    hour = datetime.timedelta(hours=1)

    assert detect(old, failure_lookback=hour) == []
    assert [signal.type for signal in detect(recent, failure_lookback=hour)] == ["OOMKilled"]
    assert [signal.type for signal in detect(old)] == ["OOMKilled"]  # no lookback: any last OOM kill


def crashed(finished: datetime.datetime = NOW, *, exit_code: int = 1, reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"reason": reason, "exitCode": exit_code, "finishedAt": _rfc3339(finished)}}


def test_a_crash_loop_between_two_crashes_is_still_a_crash_loop() -> None:
    hour = datetime.timedelta(hours=1)
    started_again = running("shop", last=crashed(NOW - datetime.timedelta(seconds=5)))
    started_again["restartCount"] = 3
    body = pod(containers=[started_again])

    assert [signal.type for signal in detect(body, failure_lookback=hour)] == ["CrashLoopBackOff"]
    assert detect(body) == []  # no lookback: only the kubelet's CrashLoopBackOff counts


@pytest.mark.parametrize(
    ("restarts", "last", "expected"),
    [
        (1, crashed(NOW - datetime.timedelta(seconds=5)), []),  # one crash is no loop
        (3, crashed(NOW - datetime.timedelta(hours=2)), []),  # ran fine for longer than the lookback
        (3, crashed(NOW, exit_code=0, reason="Completed"), []),  # ended well, restarted by its policy
        (3, crashed(NOW - datetime.timedelta(seconds=5)), ["CrashLoopBackOff"]),
    ],
)
def test_between_crashes_needs_two_restarts_a_failed_run_and_a_recent_one(
    restarts: int, last: dict[str, Any], expected: list[str]
) -> None:
    container = running("shop", last=last)
    container["restartCount"] = restarts

    found = detect(pod(containers=[container]), failure_lookback=datetime.timedelta(hours=1))

    assert [signal.type for signal in found] == expected


def test_init_containers_are_watched_too() -> None:
    body = pod(init_containers=[waiting("migrate", "CrashLoopBackOff")], containers=[])

    [found] = detect(body)

    assert found.type == "CrashLoopBackOff"
    assert found.message == "init container migrate restarts in a loop (5 restarts)"


def test_one_signal_per_type_per_pod_with_the_first_container_message() -> None:
    body = pod(
        init_containers=[waiting("migrate", "CrashLoopBackOff", "first")],
        containers=[
            waiting("shop", "CrashLoopBackOff", "second"),
            waiting("sidecar", "ImagePullBackOff", "pull"),
            waiting("cache", "CrashLoopBackOff", "third", last=oom()),
        ],
    )

    found = {signal.type: signal.message for signal in detect(body)}

    assert found.keys() == {"CrashLoopBackOff", "ImagePullBackOff", "OOMKilled"}
    assert found["CrashLoopBackOff"] == "first"


def test_a_pod_signal_names_its_container_apart_from_the_labels_and_the_fingerprint() -> None:
    body = pod(
        init_containers=[waiting("migrate", "CrashLoopBackOff", "first")],
        containers=[
            running("shop"),
            waiting("sidecar", "ImagePullBackOff", "pull", restarts=0),
            waiting("cache", "CrashLoopBackOff", "back-off", last=oom()),
        ],
        labels={"app": "shop", "tier": "web", "pod-template-hash": "6d8f7c9b54"},
    )

    found = {signal.type: signal for signal in detect(body)}

    assert {kind: signal.container for kind, signal in found.items()} == {
        "CrashLoopBackOff": "migrate",
        "ImagePullBackOff": "sidecar",
        "OOMKilled": "cache",
    }
    oom_killed = found["OOMKilled"]
    assert oom_killed.to_dict()["container"] == "cache"
    # Selectors and severity rules see the workload's labels only; one incident per workload, whichever container.
    assert dict(oom_killed.labels) == {"app": "shop", "tier": "web"}
    assert oom_killed.fingerprint == "oomkilled:shop:deployment:shop"
    other = pod(containers=[waiting("shop", "CrashLoopBackOff", "back-off", last=oom())])
    [same] = detect(other)
    assert same.container == "shop" and same.fingerprint == oom_killed.fingerprint


def test_signals_without_a_container_leave_it_out_of_the_incident() -> None:
    body = pod(containers=[], conditions=[unschedulable(NOW - datetime.timedelta(minutes=6))])

    [found] = detect(body)

    assert found.type == "Unschedulable" and found.container == ""
    assert "container" not in found.to_dict()


def unschedulable(since: datetime.datetime | None) -> dict[str, Any]:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory.",
    }
    if since is not None:
        condition["lastTransitionTime"] = _rfc3339(since)
    return condition


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (NOW - datetime.timedelta(minutes=6), ["Unschedulable"]),
        (NOW - GRACE, ["Unschedulable"]),
        (NOW - datetime.timedelta(minutes=4), []),
        (None, []),
    ],
    ids=["past-grace", "at-grace", "within-grace", "unknown-since"],
)
def test_unschedulable_only_past_the_grace(since: datetime.datetime | None, expected: list[str]) -> None:
    body = pod(conditions=[unschedulable(since)])
    body["status"]["phase"] = "Pending"

    found = detect(body)

    assert [signal.type for signal in found] == expected
    if found:
        assert found[0].message == "0/3 nodes are available: 3 Insufficient memory."
        assert found[0].fingerprint == "unschedulable:shop:deployment:shop"


def test_unschedulable_with_no_grace_counts_at_once() -> None:
    body = pod(conditions=[unschedulable(None)])

    assert [signal.type for signal in detect(body, grace=datetime.timedelta(0))] == ["Unschedulable"]


def test_a_scheduled_pod_is_not_unschedulable() -> None:
    condition = {"type": "PodScheduled", "status": "True", "lastTransitionTime": _rfc3339(NOW - GRACE * 2)}
    assert detect(pod(conditions=[condition])) == []


def test_a_healthy_pod_gives_nothing() -> None:
    assert detect(pod(containers=[running("shop"), running("sidecar")])) == []


def test_a_pod_being_deleted_gives_nothing() -> None:
    assert detect(pod(containers=[waiting("shop", "CrashLoopBackOff")], deleting=True)) == []


@pytest.mark.parametrize(
    ("owner", "labels", "workload"),
    [
        (
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-6d8f7c9b54"},
            {"app": "shop", "pod-template-hash": "6d8f7c9b54"},
            resources.ObjectRef("Deployment", "shop", "shop", "apps/v1"),
        ),
        (
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "standalone"},
            {"app": "shop"},
            resources.ObjectRef("ReplicaSet", "standalone", "shop", "apps/v1"),
        ),
        (
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"},
            {"app": "db"},
            resources.ObjectRef("StatefulSet", "db", "shop", "apps/v1"),
        ),
        (
            {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate"},
            {},
            resources.ObjectRef("Job", "migrate", "shop", "batch/v1"),
        ),
        (None, {}, None),
    ],
    ids=["deployment-by-name", "replicaset", "statefulset", "job", "bare-pod"],
)
def test_without_owners_the_controller_reference_names_the_workload(
    owner: dict[str, Any] | None, labels: dict[str, str], workload: resources.ObjectRef | None
) -> None:
    body = pod("p-1", containers=[waiting("c", "CrashLoopBackOff")], owner=owner, labels=labels)

    [found] = detect(body, ())

    assert found.workload == workload
    expected = workload if workload is not None else resources.ObjectRef("Pod", "p-1")
    assert found.fingerprint == f"crashloopbackoff:shop:{expected.kind.lower()}:{expected.name}"


def test_the_outermost_owner_is_the_workload_in_the_pods_namespace() -> None:
    owners = (resources.ObjectRef("Job", "nightly-29000000"), resources.ObjectRef("CronJob", "nightly"))

    [found] = detect(pod(containers=[waiting("c", "CrashLoopBackOff")]), owners)

    assert found.workload == resources.ObjectRef("CronJob", "nightly", "shop")
    assert found.fingerprint == "crashloopbackoff:shop:cronjob:nightly"


def test_pod_signal_labels_are_the_workloads() -> None:
    body = pod(containers=[waiting("shop", "CrashLoopBackOff")])

    [from_pod] = detect(body)
    [given_labels] = detect(body, workload_labels={"app.kubernetes.io/part-of": "shop"})

    assert dict(from_pod.labels) == {"app": "shop"}  # the pod's, less pod-template-hash
    assert dict(given_labels.labels) == {"app.kubernetes.io/part-of": "shop"}


def test_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        signals.signals_from_pod(pod(), OWNERS, NOW.replace(tzinfo=None), unschedulable_grace=GRACE)


def test_other_time_zones_become_utc() -> None:
    elsewhere = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=2)))

    [found] = signals.signals_from_pod(
        pod(containers=[waiting("shop", "CrashLoopBackOff")]), OWNERS, elsewhere, unschedulable_grace=GRACE
    )

    assert found.observed_at == NOW
    assert found.observed_at.utcoffset() == datetime.timedelta(0)


# --- deployments, nodes, jobs ----------------------------------------------------------


def deployment(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "shop", "namespace": "shop", "labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {"replicas": 5},
        "status": {"conditions": conditions},
    }


PAST_DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "shop-6d8f7c9b54" has timed out progressing.',
    "lastTransitionTime": _rfc3339(NOW),
}
UNAVAILABLE = {
    "type": "Available",
    "status": "False",
    "reason": "MinimumReplicasUnavailable",
    "message": "Deployment does not have minimum availability.",
    "lastTransitionTime": _rfc3339(NOW - datetime.timedelta(minutes=1)),
}


def test_deployment_signals() -> None:
    found = {
        signal.type: signal for signal in signals.signals_from_deployment(deployment([PAST_DEADLINE, UNAVAILABLE]), NOW)
    }

    assert found.keys() == {"ProgressDeadlineExceeded", "DeploymentUnavailable"}
    late = found["ProgressDeadlineExceeded"]
    assert late.reason == "ProgressDeadlineExceeded"
    assert late.message == 'ReplicaSet "shop-6d8f7c9b54" has timed out progressing.'
    assert late.affected == late.workload == DEPLOYMENT
    assert late.fingerprint == "progressdeadlineexceeded:shop:deployment:shop"
    assert late.source == "detector/deployments"
    assert dict(late.labels) == {"app.kubernetes.io/part-of": "shop"}
    down = found["DeploymentUnavailable"]
    assert down.reason == "MinimumReplicasUnavailable"
    assert down.fingerprint == "deploymentunavailable:shop:deployment:shop"


def test_a_healthy_or_progressing_deployment_gives_nothing() -> None:
    conditions = [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
    ]
    assert signals.signals_from_deployment(deployment(conditions), NOW) == []
    paused = [{"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused"}]
    assert signals.signals_from_deployment(deployment(paused), NOW) == []


def test_unavailable_counts_after_its_grace() -> None:
    body = deployment([UNAVAILABLE])  # unavailable for one minute

    assert signals.signals_from_deployment(body, NOW, unavailable_grace=datetime.timedelta(minutes=2)) == []
    assert len(signals.signals_from_deployment(body, NOW, unavailable_grace=datetime.timedelta(seconds=30))) == 1


def node(status: str, reason: str = "KubeletNotReady", message: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": "worker-2", "labels": {"kubernetes.io/hostname": "worker-2"}},
        "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message}]},
    }


@pytest.mark.parametrize(
    ("status", "reason", "expected_reason"),
    [("False", "KubeletNotReady", "KubeletNotReady"), ("Unknown", "NodeStatusUnknown", "NodeStatusUnknown")],
)
def test_a_node_not_ready_is_its_own_workload(status: str, reason: str, expected_reason: str) -> None:
    [found] = signals.signals_from_node(node(status, reason, "Kubelet stopped posting node status."), NOW)

    assert found.type == "NodeNotReady"
    assert found.reason == expected_reason
    assert found.message == "Kubelet stopped posting node status."
    assert found.affected == found.workload == resources.ObjectRef("Node", "worker-2", "", "v1")
    assert found.namespace == "default"
    assert found.fingerprint == "nodenotready:default:node:worker-2"


def test_node_incidents_go_to_the_namespace_given() -> None:
    [found] = signals.signals_from_node(node("Unknown"), NOW, namespace="upkeep-system")

    assert found.fingerprint == "nodenotready:upkeep-system:node:worker-2"
    assert "Ready=Unknown" in found.message


def test_a_ready_node_or_one_without_ready_gives_nothing() -> None:
    assert signals.signals_from_node(node("True", "KubeletReady"), NOW) == []
    assert signals.signals_from_node({"metadata": {"name": "new"}, "status": {}}, NOW) == []


def job(failed: str = "True", *, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "nightly-29000000", "namespace": "shop", "labels": {"team": "data"}}
    if owner:
        metadata["ownerReferences"] = [{"controller": True, **owner}]
    condition = {
        "type": "Failed",
        "status": failed,
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    return {"metadata": metadata, "status": {"conditions": [condition]}}


def test_a_failed_job() -> None:
    [found] = signals.signals_from_job(job(), NOW)

    assert found.type == "JobFailed"
    assert found.reason == "BackoffLimitExceeded"
    assert found.message == "Job has reached the specified backoff limit"
    assert found.affected == found.workload == resources.ObjectRef("Job", "nightly-29000000", "shop", "batch/v1")
    assert found.fingerprint == "jobfailed:shop:job:nightly-29000000"
    assert found.source == "detector/jobs"


def test_the_runs_of_one_cronjob_share_a_fingerprint() -> None:
    [found] = signals.signals_from_job(job(owner={"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly"}), NOW)

    assert found.workload == resources.ObjectRef("CronJob", "nightly", "shop", "batch/v1")
    assert found.fingerprint == "jobfailed:shop:cronjob:nightly"


def test_a_job_not_failed_gives_nothing() -> None:
    assert signals.signals_from_job(job("False"), NOW) == []
    assert signals.signals_from_job({"metadata": {"name": "j", "namespace": "shop"}, "status": {}}, NOW) == []


# --- Alertmanager -----------------------------------------------------------------------


def alert(status: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": extra.pop("annotations", {}),
        "startsAt": "2025-03-01T11:52:26.739266876Z",
        "endsAt": extra.pop("endsAt", "0001-01-01T00:00:00Z"),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": extra.pop("fingerprint", "1a30ba71cca2921f"),
        **extra,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A webhook body as Alertmanager posts it (notify/webhook Message, version 4)."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "upkeep",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


SHOP_ALERT = {
    "alertname": "HighErrorRate",
    "namespace": "shop",
    "deployment": "shop",
    "pod": "shop-6d8f7c9b54-x2k8p",
    "instance": "10.0.0.5:8080",
    "job": "shop",
    "severity": "critical",
}


def test_one_alert_signal_per_alert_with_whether_it_fires() -> None:
    body = payload(
        alert("firing", SHOP_ALERT, annotations={"summary": "5xx above 5%", "description": "shop serves errors"}),
        alert("resolved", {"alertname": "DiskFull"}, annotations={"description": "disk at 95%"}),
    )

    [(firing, fires), (resolved, resolved_fires)] = signals.signals_from_alertmanager(body, NOW)

    assert (fires, resolved_fires) == (True, False)
    assert firing.type == "Alert"
    assert firing.reason == "HighErrorRate"
    assert firing.namespace == "shop"
    assert firing.workload == resources.ObjectRef("Deployment", "shop", "shop", "apps/v1")
    assert firing.affected == resources.ObjectRef("Pod", "shop-6d8f7c9b54-x2k8p", "shop", "v1")
    assert firing.message == "5xx above 5%: shop serves errors"
    assert firing.source == "alertmanager"
    assert dict(firing.labels) == SHOP_ALERT
    assert re.fullmatch(r"alert:shop:higherrorrate:[0-9a-f]{12}", firing.fingerprint)
    assert resolved.namespace == "default"
    assert resolved.workload is None
    assert resolved.affected == resources.ObjectRef("Alert", "DiskFull", "default")
    assert resolved.message == "disk at 95%"
    assert resolved.fingerprint.startswith("alert:default:diskfull:")


def test_the_alerts_of_each_pod_of_a_deployment_share_a_fingerprint() -> None:
    other_pod = {**SHOP_ALERT, "pod": "shop-7f00aa11bb-q9z8y", "instance": "10.0.0.9:8080"}
    other_alert = {**SHOP_ALERT, "alertname": "HighLatency"}
    other_service = {**SHOP_ALERT, "deployment": "cart"}
    body = payload(*(alert("firing", labels) for labels in (SHOP_ALERT, other_pod, other_alert, other_service)))

    prints = [signal.fingerprint for signal, _ in signals.signals_from_alertmanager(body, NOW)]

    assert prints[0] == prints[1]
    assert len({prints[0], prints[2], prints[3]}) == 3


def test_pods_of_no_known_workload_keep_apart() -> None:
    one = {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "a", "container": "c"}
    two = {**one, "pod": "b"}

    found = signals.signals_from_alertmanager(payload(alert("firing", one), alert("firing", two)), NOW)

    assert [signal.workload for signal, _ in found] == [
        resources.ObjectRef("Pod", "a", "shop", "v1"),
        resources.ObjectRef("Pod", "b", "shop", "v1"),
    ]
    assert found[0][0].fingerprint != found[1][0].fingerprint


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("statefulset", "StatefulSet"),
        ("daemonset", "DaemonSet"),
        ("cronjob", "CronJob"),
        ("job_name", "Job"),
        ("node", "Node"),
    ],
)
def test_alert_workload_labels(label: str, kind: str) -> None:
    labels = {"alertname": "X", "namespace": "shop", "job": "kube-state-metrics", label: "thing"}

    [(found, _)] = signals.signals_from_alertmanager(payload(alert("firing", labels)), NOW)

    assert found.workload is not None
    assert (found.workload.kind, found.workload.name) == (kind, "thing")


def test_the_scrape_job_label_is_no_kubernetes_job() -> None:
    labels = {"alertname": "TargetDown", "namespace": "shop", "job": "shop"}

    [(found, _)] = signals.signals_from_alertmanager(payload(alert("firing", labels)), NOW)

    assert found.workload is None


@pytest.mark.parametrize(
    ("ends", "fires"),
    [("0001-01-01T00:00:00Z", True), (_rfc3339(NOW - GRACE), False), (_rfc3339(NOW + GRACE), True)],
    ids=["no-end", "ended", "ends-later"],
)
def test_an_alert_without_status_fires_until_it_ends(ends: str, fires: bool) -> None:
    body = payload(alert("", {"alertname": "X"}, endsAt=ends))

    [(_, firing)] = signals.signals_from_alertmanager(body, NOW)

    assert firing is fires


def test_an_invalid_namespace_label_falls_back_to_default() -> None:
    body = payload(alert("firing", {"alertname": "X", "namespace": "Not A Namespace"}))

    [(found, _)] = signals.signals_from_alertmanager(body, NOW)

    assert found.namespace == "default"


def test_a_payload_without_alerts_gives_nothing() -> None:
    assert signals.signals_from_alertmanager({"version": "4", "status": "firing"}, NOW) == []
    assert signals.signals_from_alertmanager({"alerts": ["nonsense", 3]}, NOW) == []


# --- fingerprints and the Signal value --------------------------------------------------


def test_signal_types_are_the_crd_enum() -> None:
    schema = schemas.by_kind()["Incident"].schema
    enum = schema["properties"]["spec"]["properties"]["signal"]["properties"]["type"]["enum"]
    assert tuple(enum) == signals.SIGNAL_TYPES


def test_every_detectable_type_is_a_signal_type() -> None:
    for found in signals.DETECTABLE_TYPES.values():
        assert found <= set(signals.SIGNAL_TYPES)


_TEXT = st.text(min_size=1, max_size=300)


@given(
    signal_type=st.sampled_from(signals.SIGNAL_TYPES),
    namespace=_TEXT,
    kind=_TEXT,
    name=_TEXT,
    labels=st.dictionaries(_TEXT, _TEXT, max_size=5),
)
def test_fingerprints_always_match_the_crd_pattern(
    signal_type: str, namespace: str, kind: str, name: str, labels: dict[str, str]
) -> None:
    ref = resources.ObjectRef(kind, name, namespace)

    found = signals.fingerprint_for(signal_type, namespace, ref, ref, alert_labels=labels)

    assert FINGERPRINT.match(found)
    assert found == signals.fingerprint_for(signal_type, namespace, ref, ref, alert_labels=dict(labels))


def test_long_names_are_cut_and_stay_apart() -> None:
    one = resources.ObjectRef("Deployment", "a" * 250 + "x")
    two = resources.ObjectRef("Deployment", "a" * 250 + "y")

    first = signals.fingerprint_for("CrashLoopBackOff", "shop", one, one)
    second = signals.fingerprint_for("CrashLoopBackOff", "shop", two, two)

    assert len(first) == len(second) == 253
    assert first != second
    assert FINGERPRINT.match(first)


def test_the_workload_not_the_affected_object_decides() -> None:
    a = resources.ObjectRef("Pod", "shop-1", "shop")
    b = resources.ObjectRef("Pod", "shop-2", "shop")

    assert signals.fingerprint_for("OOMKilled", "shop", DEPLOYMENT, a) == signals.fingerprint_for(
        "OOMKilled", "shop", DEPLOYMENT, b
    )
    assert signals.fingerprint_for("OOMKilled", "shop", None, a) == "oomkilled:shop:pod:shop-1"


def test_an_alert_fingerprint_needs_the_labels() -> None:
    with pytest.raises(ValueError, match="labels"):
        signals.fingerprint_for("Alert", "shop", None, DEPLOYMENT)


def test_alert_fingerprints_do_not_depend_on_label_order() -> None:
    labels = {"alertname": "X", "b": "2", "a": "1"}
    reordered = {"a": "1", "alertname": "X", "b": "2"}

    assert signals.fingerprint_for("Alert", "ns", None, DEPLOYMENT, alert_labels=labels) == signals.fingerprint_for(
        "Alert", "ns", None, DEPLOYMENT, alert_labels=reordered
    )


def test_the_problem_family_prefixes_its_incidents_fingerprints() -> None:
    problem = yaml.safe_load((SHOP / "problem.yaml").read_text(encoding="utf-8"))
    incident = yaml.safe_load((SHOP / "incident.yaml").read_text(encoding="utf-8"))
    fingerprint = incident["spec"]["signal"]["fingerprint"]

    family = signals.family_of(fingerprint)

    assert family == problem["spec"]["fingerprintFamily"]
    assert fingerprint == family or fingerprint.startswith(family + ":")


def make(**changes: Any) -> signals.Signal:
    base: dict[str, Any] = {
        "type": "CrashLoopBackOff",
        "namespace": "shop",
        "affected": resources.ObjectRef("Pod", "shop-1", "shop", "v1"),
        "workload": DEPLOYMENT,
        "reason": "CrashLoopBackOff",
        "message": "back-off",
        "labels": {"app": "shop"},
        "observed_at": NOW,
        "source": "detector/pods",
        "fingerprint": "crashloopbackoff:shop:deployment:shop",
    }
    base.update(changes)
    return signals.Signal(**base)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": "Crashing"}, "signal type"),
        ({"fingerprint": "Has Spaces"}, "fingerprint"),
        ({"fingerprint": ""}, "fingerprint"),
        ({"observed_at": NOW.replace(tzinfo=None)}, "aware"),
    ],
)
def test_a_signal_refuses_what_the_crd_would(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**changes)


def test_a_signal_is_a_frozen_hashable_value() -> None:
    labels = {"app": "shop"}
    signal = make(labels=labels)
    labels["app"] = "changed"

    assert signal.labels == {"app": "shop"}
    assert hash(signal) == hash(make())
    assert signal == make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        signal.type = "OOMKilled"  # type: ignore[misc]
    with pytest.raises(TypeError):
        signal.labels["app"] = "x"  # type: ignore[index]


def test_to_dict_is_an_incident_spec_signal() -> None:
    assert make().to_dict() == {
        "type": "CrashLoopBackOff",
        "fingerprint": "crashloopbackoff:shop:deployment:shop",
        "source": "detector/pods",
        "reason": "CrashLoopBackOff",
        "message": "back-off",
        "labels": {"app": "shop"},
    }


# --- what is clear, and causes over symptoms ---------------------------------------------


def test_clear_types_are_the_kinds_types_not_seen() -> None:
    seen = [make(), make(type="OOMKilled", fingerprint="oomkilled:shop:deployment:shop")]

    assert signals.clear_types("Pod", seen) == {"ImagePullBackOff", "Unschedulable"}
    assert signals.clear_types("Pod", []) == signals.POD_TYPES
    assert signals.clear_types("Node", []) == {"NodeNotReady"}
    assert signals.clear_types("Job", []) == {"JobFailed"}
    assert signals.clear_types("Deployment", []) == {"DeploymentUnavailable", "ProgressDeadlineExceeded"}
    assert signals.clear_types("ConfigMap", []) == frozenset()


def test_clear_types_of_a_recovered_pod() -> None:
    sick = pod(containers=[waiting("shop", "CrashLoopBackOff")])
    well = pod(containers=[running("shop")])

    assert "CrashLoopBackOff" not in signals.clear_types("Pod", detect(sick))
    assert "CrashLoopBackOff" in signals.clear_types("Pod", detect(well))


def test_pod_causes_hide_their_deployments_symptoms() -> None:
    crash = detect(pod(containers=[waiting("shop", "CrashLoopBackOff")]))
    symptoms = signals.signals_from_deployment(deployment([PAST_DEADLINE, UNAVAILABLE]), NOW)
    cart = resources.ObjectRef("Deployment", "cart", "shop", "apps/v1")
    cart_down = dataclasses.replace(
        symptoms[1], affected=cart, workload=cart, fingerprint="deploymentunavailable:shop:deployment:cart"
    )

    kept = signals.without_symptoms([*symptoms, *crash, cart_down])

    assert [signal.fingerprint for signal in kept] == [
        "crashloopbackoff:shop:deployment:shop",
        "deploymentunavailable:shop:deployment:cart",
    ]
    assert signals.without_symptoms(symptoms) == symptoms
