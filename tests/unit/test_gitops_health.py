"""Health per kind: a table of live objects and the verdict a person reading kubectl would reach."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from upkeep.gitops import health


def obj(
    kind: str, *, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    metadata = {"name": "web", "namespace": "shop", "generation": 2, **meta}
    return {"apiVersion": "v1", "kind": kind, "metadata": metadata, "spec": spec or {}, "status": status or {}}


def conditions(**states: str) -> list[dict[str, str]]:
    return [{"type": kind, "status": state, "reason": f"{kind}Reason"} for kind, state in states.items()]


def pod(phase: str, *, ready: str = "True", waiting: str | None = None, **status: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "state": {"running": {}}}
    if waiting is not None:
        container["state"] = {"waiting": {"reason": waiting, "message": "back-off 40s"}}
    return obj(
        "Pod",
        status={"phase": phase, "conditions": conditions(Ready=ready), "containerStatuses": [container], **status},
    )


ROLLED_OUT = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}


class Case(NamedTuple):
    id: str
    live: dict[str, Any]
    status: str
    words: str
    """Text the message must contain."""


CASES = [
    Case("deployment-rolled-out", obj("Deployment", spec={"replicas": 3}, status=ROLLED_OUT), "Healthy", "3 of 3"),
    Case(
        "deployment-old-generation",
        obj("Deployment", spec={"replicas": 3}, status={**ROLLED_OUT, "observedGeneration": 1}),
        "Progressing",
        "latest spec",
    ),
    Case(
        "deployment-updating",
        obj("Deployment", spec={"replicas": 3}, status={**ROLLED_OUT, "updatedReplicas": 1}),
        "Progressing",
        "1 of 3 new replicas",
    ),
    Case(
        "deployment-not-available",
        obj("Deployment", spec={"replicas": 3}, status={**ROLLED_OUT, "availableReplicas": 2}),
        "Progressing",
        "2 of 3",
    ),
    Case(
        "deployment-past-deadline",
        obj(
            "Deployment",
            spec={"replicas": 3},
            status={
                **ROLLED_OUT,
                "updatedReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
            },
        ),
        "Degraded",
        "progress deadline",
    ),
    Case(
        "statefulset-ready",
        obj(
            "StatefulSet",
            spec={"replicas": 2},
            status={"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2},
        ),
        "Healthy",
        "2 pods ready",
    ),
    Case(
        "statefulset-rolling",
        obj(
            "StatefulSet",
            spec={"replicas": 2},
            status={"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 2},
        ),
        "Progressing",
        "1 of 2",
    ),
    Case(
        "daemonset-done",
        obj(
            "DaemonSet",
            status={
                "observedGeneration": 2,
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 3,
                "numberAvailable": 3,
            },
        ),
        "Healthy",
        "rolled out",
    ),
    Case(
        "daemonset-unavailable",
        obj(
            "DaemonSet",
            status={
                "observedGeneration": 2,
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 3,
                "numberAvailable": 1,
            },
        ),
        "Progressing",
        "1 of 3",
    ),
    Case("job-complete", obj("Job", status={"conditions": conditions(Complete="True")}), "Healthy", "completed"),
    Case(
        "job-failed",
        obj("Job", status={"conditions": conditions(Failed="True")}),
        "Degraded",
        "failed: FailedReason",
    ),
    Case(
        "job-running",
        obj("Job", spec={"completions": 3}, status={"active": 1, "succeeded": 1}),
        "Progressing",
        "1 active, 1 of 3 succeeded",
    ),
    Case("job-suspended", obj("Job", spec={"suspend": True}), "Progressing", "suspended"),
    Case("pod-ready", pod("Running"), "Healthy", "running and ready"),
    Case("pod-not-ready", pod("Running", ready="False"), "Progressing", "not ready"),
    Case("pod-succeeded", pod("Succeeded", ready="False"), "Healthy", "completed"),
    Case("pod-failed", pod("Failed", ready="False", reason="Evicted"), "Degraded", "Evicted"),
    Case(
        "pod-crash-looping",
        pod("Running", ready="False", waiting="CrashLoopBackOff"),
        "Degraded",
        "container web: CrashLoopBackOff (back-off 40s)",
    ),
    Case("pod-image-pull", pod("Pending", ready="False", waiting="ImagePullBackOff"), "Degraded", "ImagePullBackOff"),
    Case("pod-creating", pod("Pending", ready="False", waiting="ContainerCreating"), "Progressing", "Pending"),
    Case(
        "pod-unschedulable",
        obj(
            "Pod",
            status={
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}
                ],
            },
        ),
        "Progressing",
        "Unschedulable: 0/1 nodes",
    ),
    Case("pod-unknown", pod("Unknown", ready="Unknown"), "Unknown", "stopped reporting"),
    Case("service-cluster-ip", obj("Service", spec={"type": "ClusterIP"}), "Healthy", "exists"),
    Case("service-lb-waiting", obj("Service", spec={"type": "LoadBalancer"}), "Progressing", "load balancer"),
    Case(
        "service-lb-ready",
        obj("Service", spec={"type": "LoadBalancer"}, status={"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}),
        "Healthy",
        "exists",
    ),
    Case("pvc-bound", obj("PersistentVolumeClaim", status={"phase": "Bound"}), "Healthy", "bound"),
    Case("pvc-pending", obj("PersistentVolumeClaim", status={"phase": "Pending"}), "Progressing", "Pending"),
    Case("pvc-lost", obj("PersistentVolumeClaim", status={"phase": "Lost"}), "Degraded", "lost"),
    Case(
        "replicaset-available",
        obj(
            "ReplicaSet",
            spec={"replicas": 2},
            status={"observedGeneration": 2, "readyReplicas": 2, "availableReplicas": 2},
        ),
        "Healthy",
        "2 of 2",
    ),
    Case("configmap-exists", obj("ConfigMap"), "Healthy", "ConfigMap web exists"),
    Case("custom-ready", obj("Database", status={"conditions": conditions(Ready="True")}), "Healthy", "is Ready"),
    Case(
        "custom-available",
        obj("Certificate", status={"conditions": conditions(Available="True")}),
        "Healthy",
        "is Available",
    ),
    Case(
        "custom-not-ready", obj("Database", status={"conditions": conditions(Ready="False")}), "Degraded", "not Ready"
    ),
    Case(
        "custom-not-ready-but-progressing",
        obj("Database", status={"conditions": conditions(Ready="False", Progressing="True")}),
        "Progressing",
        "not Ready yet",
    ),
    Case(
        "custom-ready-unknown",
        obj("Database", status={"conditions": conditions(Ready="Unknown")}),
        "Progressing",
        "not Ready yet",
    ),
    Case(
        "custom-stalled",
        obj("Database", status={"conditions": conditions(Stalled="True", Ready="False")}),
        "Degraded",
        "stalled",
    ),
    Case(
        "custom-reconciling",
        obj("Database", status={"conditions": conditions(Reconciling="True", Ready="True")}),
        "Progressing",
        "reconciling",
    ),
    Case(
        "custom-status-behind-spec",
        obj("Database", status={"observedGeneration": 1, "conditions": conditions(Ready="True")}),
        "Progressing",
        "latest spec",
    ),
    Case("custom-no-conditions", obj("Database"), "Healthy", "exists"),
    Case(
        "custom-other-conditions-only",
        obj("Database", status={"conditions": conditions(Synced="False")}),
        "Healthy",
        "exists",
    ),
    Case("being-deleted", obj("ConfigMap", deletionTimestamp="2026-01-01T00:00:00Z"), "Progressing", "being deleted"),
    Case("no-kind", {"metadata": {"name": "x"}}, "Unknown", "cannot be assessed"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_health_per_kind(case: Case) -> None:
    found = health.assess(case.live)

    assert found.status == case.status, found.message
    assert case.words in found.message


def test_display_name_of_namespaced_and_cluster_scoped_objects() -> None:
    assert health.display_name(obj("Deployment")) == "Deployment/shop/web"
    assert health.display_name({"kind": "Namespace", "metadata": {"name": "shop"}}) == "Namespace/shop"


def test_summary_of_nothing_is_healthy() -> None:
    assert health.summarize([]).status == "Healthy"


def test_summary_counts_healthy_objects() -> None:
    fine = health.Health("Healthy", "ok")

    summary = health.summarize([("ConfigMap/shop/a", fine), ("Service/shop/b", fine)])

    assert summary == health.Health("Healthy", "2 objects healthy")


def test_the_worst_wins_and_is_named() -> None:
    healths = [
        ("ConfigMap/shop/a", health.Health("Healthy", "exists")),
        ("Deployment/shop/web", health.Health("Progressing", "1 of 3 updated")),
        ("Pod/shop/web-1", health.Health("Degraded", "CrashLoopBackOff")),
        ("Database/shop/db", health.Health("Unknown", "?")),
    ]

    summary = health.summarize(healths)

    assert summary.status == "Degraded"
    assert summary.message == "Pod/shop/web-1: CrashLoopBackOff"


@pytest.mark.parametrize(
    ("statuses", "worst"),
    [
        (("Healthy", "Progressing"), "Progressing"),
        (("Progressing", "Unknown"), "Unknown"),
        (("Unknown", "Degraded", "Healthy"), "Degraded"),
    ],
)
def test_severity_order(statuses: tuple[health.HealthStatus, ...], worst: str) -> None:
    summary = health.summarize([(f"ConfigMap/shop/{index}", health.Health(s, s)) for index, s in enumerate(statuses)])

    assert summary.status == worst


def test_summary_names_at_most_three_and_counts_the_rest() -> None:
    healths = [(f"Pod/shop/p{index}", health.Health("Degraded", "failed")) for index in range(5)]

    summary = health.summarize(healths)

    assert summary.message.count("failed") == 3
    assert summary.message.endswith("and 2 more")
