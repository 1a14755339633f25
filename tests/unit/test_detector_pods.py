"""The pod detector: owner chains through a lookup, restarts as occurrences, when to look again."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from upkeep.detectors import pods, sightings
from upkeep.model import resources

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
GRACE = datetime.timedelta(minutes=5)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def owner(kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}


def meta(name: str, namespace: str = "shop", *, owners: list[dict[str, Any]] | None = None, **labels: str) -> Any:
    out: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": dict(labels)}
    if owners:
        out["ownerReferences"] = owners
    return out


def crashing_pod(name: str = "shop-6d8f7c9b54-x2k8p", *, restarts: int = 3, owned_by: Any = None) -> dict[str, Any]:
    return {
        "metadata": meta(
            name,
            owners=[owned_by or owner("ReplicaSet", "shop-6d8f7c9b54")],
            app="shop",
            **{"pod-template-hash": "6d8f7c9b54"},
        ),
        "spec": {},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "shop",
                    "restartCount": restarts,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                },
                {"name": "sidecar", "restartCount": 1, "state": {"running": {}}},
            ],
        },
    }


CACHE: dict[tuple[str, str, str], Mapping[str, Any]] = {
    ("ReplicaSet", "shop", "shop-6d8f7c9b54"): {
        "metadata": meta("shop-6d8f7c9b54", owners=[owner("Deployment", "shop")], app="shop")
    },
    ("Deployment", "shop", "shop"): {"metadata": meta("shop", app="shop", tier="web")},
    ("Job", "shop", "report-29000"): {
        "metadata": meta("report-29000", owners=[owner("CronJob", "report", "batch/v1")])
    },
}


def lookup(ref: resources.ObjectRef) -> Mapping[str, Any] | None:
    return CACHE.get((ref.kind, ref.namespace, ref.name))


def nothing(ref: resources.ObjectRef) -> Mapping[str, Any] | None:
    return None


def test_the_chain_goes_from_the_pod_up_to_its_deployment() -> None:
    chain = pods.owner_chain(crashing_pod(), lookup)
    assert [(ref.kind, ref.name) for ref in chain] == [("ReplicaSet", "shop-6d8f7c9b54"), ("Deployment", "shop")]
    assert all(ref.namespace == "shop" for ref in chain)


def test_a_crash_looping_pod_is_a_sighting_of_its_deployment_with_its_labels() -> None:
    detection = pods.detect(crashing_pod(), lookup, NOW, unschedulable_grace=GRACE)
    assert detection.subject == resources.ObjectRef("Pod", "shop-6d8f7c9b54-x2k8p", "shop", "v1")
    (seen,) = detection.sightings
    assert seen.signal.type == "CrashLoopBackOff"
    assert seen.fingerprint == "crashloopbackoff:shop:deployment:shop"
    assert seen.signal.workload is not None and seen.signal.workload.name == "shop"
    assert dict(seen.signal.labels) == {"app": "shop", "tier": "web"}
    assert (seen.instance, seen.failures) == ("uid-shop-6d8f7c9b54-x2k8p", 4)
    assert detection.recheck_at is None


def test_an_unknown_replicaset_leaves_the_deployment_to_its_name() -> None:
    assert pods.owner_chain(crashing_pod(), nothing) == []
    (seen,) = pods.detect(crashing_pod(), nothing, NOW, unschedulable_grace=GRACE).sightings
    assert seen.fingerprint == "crashloopbackoff:shop:deployment:shop"
    assert dict(seen.signal.labels) == {"app": "shop"}


def test_the_pods_of_a_cronjob_belong_to_the_cronjob() -> None:
    pod = crashing_pod("report-29000-abcde", owned_by=owner("Job", "report-29000", "batch/v1"))
    assert [ref.kind for ref in pods.owner_chain(pod, lookup)] == ["Job", "CronJob"]
    (seen,) = pods.detect(pod, lookup, NOW, unschedulable_grace=GRACE).sightings
    assert seen.fingerprint == "crashloopbackoff:shop:cronjob:report"


def test_an_unknown_owner_that_is_a_workload_is_kept() -> None:
    pod = crashing_pod("db-0", owned_by=owner("StatefulSet", "db"))
    assert [(ref.kind, ref.name) for ref in pods.owner_chain(pod, nothing)] == [("StatefulSet", "db")]


def test_a_loop_in_owner_references_ends() -> None:
    looping = {
        ("ReplicaSet", "shop", "shop-6d8f7c9b54"): {
            "metadata": meta("shop-6d8f7c9b54", owners=[owner("ReplicaSet", "shop-6d8f7c9b54")])
        }
    }
    chain = pods.owner_chain(crashing_pod(), lambda ref: looping.get((ref.kind, ref.namespace, ref.name)))
    assert [ref.name for ref in chain] == ["shop-6d8f7c9b54"]


def test_a_healthy_pod_shows_nothing() -> None:
    pod = crashing_pod()
    pod["status"]["containerStatuses"][0]["state"] = {"running": {}}
    assert pods.detect(pod, lookup, NOW, unschedulable_grace=GRACE).sightings == ()


def test_an_unschedulable_pod_is_looked_at_again_when_its_grace_ends() -> None:
    since = NOW - datetime.timedelta(minutes=2)
    pod = crashing_pod()
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": _rfc3339(since),
            }
        ],
    }
    detection = pods.detect(pod, lookup, NOW, unschedulable_grace=GRACE)
    assert detection.sightings == ()
    assert detection.recheck_at == since + GRACE
    later = pods.detect(pod, lookup, since + GRACE, unschedulable_grace=GRACE)
    assert [seen.signal.type for seen in later.sightings] == ["Unschedulable"]
    assert later.recheck_at is None


def test_an_oom_kill_is_looked_at_again_when_it_leaves_the_lookback() -> None:
    finished = NOW - datetime.timedelta(minutes=1)
    lookback = datetime.timedelta(minutes=10)
    pod = crashing_pod()
    pod["status"]["containerStatuses"][0] = {
        "name": "shop",
        "restartCount": 2,
        "state": {"running": {}},
        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": _rfc3339(finished)}},
    }
    detection = pods.detect(pod, lookup, NOW, unschedulable_grace=GRACE, failure_lookback=lookback)
    assert [seen.signal.type for seen in detection.sightings] == ["OOMKilled"]
    assert detection.recheck_at == finished + lookback
    gone = pods.detect(pod, lookup, finished + lookback + datetime.timedelta(seconds=1), unschedulable_grace=GRACE)
    assert [seen.signal.type for seen in gone.sightings] == ["OOMKilled"]  # without a lookback it stays
    aged = pods.detect(
        pod,
        lookup,
        finished + lookback + datetime.timedelta(seconds=1),
        unschedulable_grace=GRACE,
        failure_lookback=lookback,
    )
    assert aged.sightings == () and aged.recheck_at is None


def test_restarts_count_init_containers_and_ignore_garbage() -> None:
    pod = crashing_pod(restarts=2)
    pod["status"]["initContainerStatuses"] = [{"name": "init", "restartCount": 4}, {"name": "x", "restartCount": "?"}]
    assert pods.restarts(pod) == 2 + 1 + 4
    assert pods.restarts({}) == 0


def test_each_restart_is_one_more_occurrence_and_a_new_pod_one() -> None:
    first = pods.detect(crashing_pod(restarts=3), lookup, NOW, unschedulable_grace=GRACE).sightings[0]
    again = pods.detect(crashing_pod(restarts=3), lookup, NOW, unschedulable_grace=GRACE).sightings[0]
    later = pods.detect(crashing_pod(restarts=6), lookup, NOW, unschedulable_grace=GRACE).sightings[0]
    other = pods.detect(crashing_pod("shop-6d8f7c9b54-zzzzz"), lookup, NOW, unschedulable_grace=GRACE).sightings[0]
    assert sightings.occurrences_since(None, first) == 1
    assert sightings.occurrences_since(first, again) == 0
    assert sightings.occurrences_since(first, later) == 3
    assert sightings.occurrences_since(later, first) == 0
    assert sightings.occurrences_since(first, other) == 1
    assert other.fingerprint == first.fingerprint
