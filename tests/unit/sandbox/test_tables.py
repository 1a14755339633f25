"""Server-side tables: the columns and cells a real API server sends to `kubectl get`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from upkeep.sandbox import kinds, tables

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
TYPES = {(rtype.group, rtype.kind): rtype for rtype in kinds.BUILTIN}


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rtype(kind: str, group: str = "") -> kinds.ResourceType:
    return TYPES[(group, kind)]


def cells(kind: str, obj: Mapping[str, Any], group: str = "") -> list[Any]:
    row = tables.table_row(rtype(kind, group), obj, now=NOW)
    return list(row["cells"])


def names(rt: kinds.ResourceType) -> list[tuple[str, str, int]]:
    return [(column["name"], column["type"], column["priority"]) for column in tables.column_definitions(rt)]


# ----------------------------------------------------------------------------------------------------------------
# human_duration


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=-5), "<invalid>"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-1.5), "0s"),  # clock skew under 2 s is "now"
        (timedelta(0), "0s"),
        (timedelta(milliseconds=999), "0s"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=119.9), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(seconds=121), "2m1s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10), "10m"),
        (timedelta(minutes=10, seconds=59), "10m"),
        (timedelta(minutes=179, seconds=59), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=1), "3h1m"),
        (timedelta(hours=7, minutes=59, seconds=59), "7h59m"),
        (timedelta(hours=8), "8h"),
        (timedelta(hours=47, minutes=59), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(hours=49), "2d1h"),
        (timedelta(days=7, hours=23, minutes=59), "7d23h"),
        (timedelta(days=8), "8d"),
        (timedelta(days=729, hours=23), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=731), "2y1d"),
        (timedelta(days=365 * 8 - 1), "7y364d"),
        (timedelta(days=365 * 8), "8y"),
        (timedelta(days=365 * 9 + 100), "9y"),
        (45, "45s"),
        (150.5, "2m30s"),
    ],
)
def test_human_duration_boundaries(delta: timedelta | float, text: str) -> None:
    assert tables.human_duration(delta) == text


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


@given(st.integers(min_value=0, max_value=20 * 365 * 86400))
def test_human_duration_truncates_never_rounds_up(seconds: int) -> None:
    text = tables.human_duration(timedelta(seconds=seconds))
    parts = re.fullmatch(r"(\d+)([smhdy])(?:(\d+)([smhdy]))?", text)
    assert parts is not None, text
    shown = int(parts[1]) * UNITS[parts[2]] + (int(parts[3]) * UNITS[parts[4]] if parts[3] else 0)
    assert shown <= seconds
    finest = UNITS[parts[4] or parts[2]]
    assert seconds - shown < finest


# ----------------------------------------------------------------------------------------------------------------
# Pods


def pod(
    *,
    phase: str = "Running",
    containers: int = 1,
    statuses: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if reason:
        status["reason"] = reason
    metadata: dict[str, Any] = {"name": "shop-7f9c", "namespace": "shop", "creationTimestamp": ago(minutes=5)}
    if deleting:
        metadata["deletionTimestamp"] = ago(seconds=3)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [{"name": f"c{index}", "image": "nginx:1.27"} for index in range(containers)],
            "initContainers": init or [],
        },
        "status": status,
    }


def container(state: dict[str, Any], *, ready: bool = False, restarts: int = 0, last: Any = None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "c0", "ready": ready, "restartCount": restarts, "state": state}
    if last is not None:
        status["lastState"] = {"terminated": last}
    return status


def running(*, ready: bool = True, restarts: int = 0, last: Any = None) -> dict[str, Any]:
    return container({"running": {"startedAt": ago(hours=1)}}, ready=ready, restarts=restarts, last=last)


def waiting(reason: str, restarts: int = 0, last: Any = None) -> dict[str, Any]:
    return container({"waiting": {"reason": reason}}, restarts=restarts, last=last)


def terminated(
    reason: str | None, exit_code: int, *, signal: int = 0, restarts: int = 0, last: Any = None
) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return container({"terminated": state}, restarts=restarts, last=last)


READY = [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]
LAST_OOM = {"reason": "OOMKilled", "exitCode": 137, "finishedAt": ago(minutes=2)}


@pytest.mark.parametrize(
    ("obj", "ready", "status", "restarts"),
    [
        pytest.param(pod(phase="Pending"), "0/1", "Pending", "0", id="pending-unscheduled"),
        pytest.param(
            pod(phase="Pending", statuses=[waiting("ContainerCreating")]),
            "0/1",
            "ContainerCreating",
            "0",
            id="container-creating",
        ),
        pytest.param(pod(statuses=[running()], conditions=READY), "1/1", "Running", "0", id="running"),
        pytest.param(pod(statuses=[running(ready=False)]), "0/1", "Running", "0", id="running-not-ready"),
        pytest.param(
            pod(phase="Succeeded", statuses=[terminated("Completed", 0)]), "0/1", "Completed", "0", id="completed"
        ),
        pytest.param(pod(phase="Failed", statuses=[terminated("Error", 1)]), "0/1", "Error", "0", id="error"),
        pytest.param(
            pod(statuses=[waiting("CrashLoopBackOff", restarts=5, last=LAST_OOM)]),
            "0/1",
            "CrashLoopBackOff",
            "5 (2m ago)",
            id="crashloop",
        ),
        pytest.param(
            pod(phase="Pending", statuses=[waiting("ImagePullBackOff")]),
            "0/1",
            "ImagePullBackOff",
            "0",
            id="image-pull-backoff",
        ),
        pytest.param(
            pod(phase="Pending", statuses=[waiting("ErrImagePull")]), "0/1", "ErrImagePull", "0", id="err-image-pull"
        ),
        pytest.param(
            pod(statuses=[terminated("OOMKilled", 137, restarts=1, last=LAST_OOM)]),
            "0/1",
            "OOMKilled",
            "1 (2m ago)",
            id="oomkilled",
        ),
        pytest.param(pod(statuses=[terminated(None, 3)]), "0/1", "ExitCode:3", "0", id="exit-code-without-reason"),
        pytest.param(pod(statuses=[terminated(None, 0, signal=9)]), "0/1", "Signal:9", "0", id="signal"),
        pytest.param(
            pod(statuses=[running()], conditions=READY, deleting=True), "1/1", "Terminating", "0", id="terminating"
        ),
        pytest.param(
            pod(phase="Succeeded", statuses=[terminated("Completed", 0)], deleting=True),
            "0/1",
            "Completed",
            "0",
            id="deleting-a-finished-pod-is-not-terminating",
        ),
        pytest.param(
            pod(statuses=[running()], deleting=True, reason="NodeLost"), "1/1", "Unknown", "0", id="node-lost"
        ),
        pytest.param(pod(phase="Pending", reason="Evicted"), "0/1", "Evicted", "0", id="status-reason-wins-over-phase"),
        pytest.param(
            pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
            "0/1",
            "SchedulingGated",
            "0",
            id="scheduling-gated",
        ),
        pytest.param(
            pod(containers=2, statuses=[terminated("Completed", 0), {**running(), "name": "c1"}]),
            "1/2",
            "NotReady",
            "0",
            id="one-completed-one-running-not-ready",
        ),
        pytest.param(
            pod(containers=2, statuses=[terminated("Completed", 0), {**running(), "name": "c1"}], conditions=READY),
            "1/2",
            "Running",
            "0",
            id="one-completed-one-running-ready",
        ),
        pytest.param(
            pod(
                containers=2,
                statuses=[waiting("CrashLoopBackOff", 2), {**waiting("ImagePullBackOff", 1), "name": "c1"}],
            ),
            "0/2",
            "CrashLoopBackOff",
            "3",
            id="first-container-reason-wins",
        ),
    ],
)
def test_pod_status(obj: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    name, ready_cell, status_cell, restarts_cell, age, *_ = cells("Pod", obj)
    assert (name, ready_cell, status_cell, restarts_cell, age) == ("shop-7f9c", ready, status, restarts, "5m")


INIT_SPECS = [{"name": "migrate", "image": "migrate"}, {"name": "seed", "image": "seed"}]


@pytest.mark.parametrize(
    ("init_statuses", "status", "restarts"),
    [
        pytest.param(
            [{**waiting("PodInitializing"), "name": "migrate"}, {**waiting("PodInitializing"), "name": "seed"}],
            "Init:0/2",
            "0",
            id="init-0-of-2",
        ),
        pytest.param(
            [{**terminated("Completed", 0), "name": "migrate"}, {**running(), "name": "seed"}],
            "Init:1/2",
            "0",
            id="init-1-of-2",
        ),
        pytest.param(
            [{**waiting("CrashLoopBackOff", 4), "name": "migrate"}], "Init:CrashLoopBackOff", "4", id="init-crashloop"
        ),
        pytest.param([{**terminated("Error", 1), "name": "migrate"}], "Init:Error", "0", id="init-error"),
        pytest.param([{**terminated(None, 2), "name": "migrate"}], "Init:ExitCode:2", "0", id="init-exit-code"),
        pytest.param(
            [{**terminated(None, 143, signal=15), "name": "migrate"}], "Init:Signal:15", "0", id="init-signal"
        ),
    ],
)
def test_pod_init_status(init_statuses: list[dict[str, Any]], status: str, restarts: str) -> None:
    obj = pod(phase="Pending", init=INIT_SPECS, init_statuses=init_statuses, statuses=[waiting("PodInitializing")])
    assert cells("Pod", obj)[1:4] == ["0/1", status, restarts]


def test_pod_sidecar_counts_as_a_container_and_its_restarts() -> None:
    sidecar = {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
    proxy_status = {
        "name": "proxy",
        "ready": True,
        "started": True,
        "restartCount": 2,
        "state": {"running": {"startedAt": ago(hours=1)}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=30)}},
    }
    obj = pod(init=[sidecar], init_statuses=[proxy_status], statuses=[running(restarts=1)], conditions=READY)
    assert cells("Pod", obj)[1:4] == ["2/2", "Running", "3 (30m ago)"]


def test_pod_wide_cells() -> None:
    obj = pod(statuses=[running()], conditions=[*READY, {"type": "example.com/gate", "status": "True"}])
    obj["spec"].update(
        nodeName="node-1",
        readinessGates=[{"conditionType": "example.com/gate"}, {"conditionType": "example.com/other"}],
    )
    obj["status"].update(podIPs=[{"ip": "10.0.0.7"}], nominatedNodeName="node-2")
    assert cells("Pod", obj)[5:] == ["10.0.0.7", "node-1", "node-2", "1/2"]
    assert cells("Pod", pod())[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_finished_pods_carry_a_completed_row_condition() -> None:
    succeeded = tables.table_row(rtype("Pod"), pod(phase="Succeeded"), now=NOW)
    failed = tables.table_row(rtype("Pod"), pod(phase="Failed"), now=NOW)
    running_row = tables.table_row(rtype("Pod"), pod(), now=NOW)
    assert succeeded["conditions"] == [
        {"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}
    ]
    assert failed["conditions"][0]["reason"] == "Failed"
    assert "conditions" not in running_row


# ----------------------------------------------------------------------------------------------------------------
# Columns of the built-in kinds


# Each column is "Name" or "Name:type" (string when not said); the ones after "|" are wide (priority 1).
COLUMNS = {
    ("", "Pod"): "Name, Ready, Status, Restarts, Age | IP, Node, Nominated Node, Readiness Gates",
    ("apps", "Deployment"): "Name, Ready, Up-to-date, Available, Age | Containers, Images, Selector",
    ("apps", "ReplicaSet"): "Name, Desired:integer, Current:integer, Ready:integer, Age | Containers, Images, Selector",
    ("apps", "StatefulSet"): "Name, Ready, Age | Containers, Images",
    ("apps", "DaemonSet"): "Name, Desired:integer, Current:integer, Ready:integer, Up-to-date:integer, "
    "Available:integer, Node Selector, Age | Containers, Images, Selector",
    ("batch", "Job"): "Name, Status, Completions, Duration, Age | Containers, Images, Selector",
    ("batch", "CronJob"): "Name, Schedule, Timezone, Suspend:boolean, Active:integer, Last Schedule, Age "
    "| Containers, Images, Selector",
    ("", "Node"): "Name, Status, Roles, Age, Version | Internal-IP, External-IP, OS-Image, Kernel-Version, "
    "Container-Runtime",
    ("", "Service"): "Name, Type, Cluster-IP, External-IP, Port(s), Age | Selector",
    ("", "Namespace"): "Name, Status, Age",
    ("", "ConfigMap"): "Name, Data, Age",
    ("", "Secret"): "Name, Type, Data, Age",
    ("", "ServiceAccount"): "Name, Secrets, Age",
    ("", "Endpoints"): "Name, Endpoints, Age",
    ("discovery.k8s.io", "EndpointSlice"): "Name, AddressType, Ports, Endpoints, Age",
    ("coordination.k8s.io", "Lease"): "Name, Holder, Age",
    ("policy", "PodDisruptionBudget"): "Name, Min Available, Max Unavailable, Allowed Disruptions:integer, Age",
    ("rbac.authorization.k8s.io", "RoleBinding"): "Name, Role, Age | Users, Groups, ServiceAccounts",
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): "Name, Role, Age | Users, Groups, ServiceAccounts",
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): "Name, Webhooks:integer, Age",
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): "Name, Webhooks:integer, Age",
    ("rbac.authorization.k8s.io", "Role"): "Name, Created At:date",
    ("rbac.authorization.k8s.io", "ClusterRole"): "Name, Created At:date",
    ("apiextensions.k8s.io", "CustomResourceDefinition"): "Name, Created At:date",
}


def expected_columns(spec: str) -> list[tuple[str, str, int]]:
    found = []
    for priority, part in enumerate(spec.split("|")):
        for column in part.split(","):
            name, _, kind = column.strip().partition(":")
            found.append((name, kind or "string", priority))
    return found


@pytest.mark.parametrize(("group", "kind"), list(COLUMNS))
def test_columns(group: str, kind: str) -> None:
    assert names(rtype(kind, group)) == expected_columns(COLUMNS[group, kind])


def test_event_columns_keep_the_printer_order() -> None:
    # the wide columns are interleaved: kubectl -o wide shows them in this order
    assert names(rtype("Event")) == [
        ("Last Seen", "string", 0),
        ("Type", "string", 0),
        ("Reason", "string", 0),
        ("Object", "string", 0),
        ("Subobject", "string", 1),
        ("Source", "string", 1),
        ("Message", "string", 0),
        ("First Seen", "string", 1),
        ("Count", "string", 1),
        ("Name", "string", 1),
    ]


def test_column_definitions_have_the_server_fields_and_descriptions() -> None:
    definitions = tables.column_definitions(rtype("Pod"))
    assert list(definitions[0]) == ["name", "type", "format", "description", "priority"]
    assert definitions[0]["format"] == "name"
    assert definitions[0]["description"].startswith("Name must be unique within a namespace.")
    assert definitions[4]["description"].startswith("CreationTimestamp is a timestamp")
    assert definitions[5]["description"].startswith("podIP address allocated to the pod.")
    assert all(definition["description"] for rt in kinds.BUILTIN for definition in tables.column_definitions(rt))


def test_events_k8s_io_prints_like_core_events() -> None:
    assert names(rtype("Event", "events.k8s.io")) == names(rtype("Event"))


# ----------------------------------------------------------------------------------------------------------------
# Cells of the built-in kinds

TEMPLATE = {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "fluentbit"}]}}
META = {"name": "shop", "namespace": "shop", "creationTimestamp": ago(minutes=5)}


def test_deployment_cells() -> None:
    obj = {
        "metadata": META,
        "spec": {
            "replicas": 3,
            "template": TEMPLATE,
            "selector": {
                "matchLabels": {"app": "shop"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["web", "api"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert cells("Deployment", obj, "apps") == [
        "shop",
        "2/3",
        3,
        2,
        "5m",
        "nginx,log",
        "nginx:1.27,fluentbit",
        "app=shop,!canary,tier in (api,web)",
    ]
    fresh = {"metadata": META, "spec": {"template": TEMPLATE}}
    assert cells("Deployment", fresh, "apps")[1:4] == ["0/1", 0, 0]


def test_replicaset_statefulset_daemonset_cells() -> None:
    selector = {"matchLabels": {"app": "shop", "pod-template-hash": "7f9c"}}
    replicaset = {
        "metadata": META,
        "spec": {"replicas": 3, "selector": selector, "template": TEMPLATE},
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    assert cells("ReplicaSet", replicaset, "apps") == [
        "shop",
        3,
        3,
        1,
        "5m",
        "nginx,log",
        "nginx:1.27,fluentbit",
        "app=shop,pod-template-hash=7f9c",
    ]
    statefulset = {"metadata": META, "spec": {"replicas": 3, "template": TEMPLATE}, "status": {"readyReplicas": 1}}
    assert cells("StatefulSet", statefulset, "apps") == ["shop", "1/3", "5m", "nginx,log", "nginx:1.27,fluentbit"]
    daemon_template = {"spec": {**TEMPLATE["spec"], "nodeSelector": {"kubernetes.io/os": "linux"}}}
    daemonset = {
        "metadata": META,
        "spec": {"template": daemon_template, "selector": {}},
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert cells("DaemonSet", daemonset, "apps") == [
        "shop",
        3,
        3,
        2,
        3,
        2,
        "kubernetes.io/os=linux",
        "5m",
        "nginx,log",
        "nginx:1.27,fluentbit",
        "<none>",
    ]


def job(conditions: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": dict(META),
        "spec": {"template": TEMPLATE, **spec},
        "status": {"succeeded": 1, "conditions": conditions or []},
    }


@pytest.mark.parametrize(
    ("obj", "status", "completions"),
    [
        (job([{"type": "Complete", "status": "True"}], completions=1), "Complete", "1/1"),
        (job([{"type": "Failed", "status": "True"}], completions=3), "Failed", "1/3"),
        (job([{"type": "Suspended", "status": "True"}], parallelism=3), "Suspended", "1/1 of 3"),
        (job([{"type": "FailureTarget", "status": "True"}]), "FailureTarget", "1/1"),
        (job([{"type": "SuccessCriteriaMet", "status": "True"}]), "SuccessCriteriaMet", "1/1"),
        (job([{"type": "Complete", "status": "False"}], completions=2), "Running", "1/2"),
        (job(completions=2) | {"metadata": {**META, "deletionTimestamp": ago(seconds=1)}}, "Terminating", "1/2"),
    ],
)
def test_job_status_and_completions(obj: dict[str, Any], status: str, completions: str) -> None:
    assert cells("Job", obj, "batch")[1:3] == [status, completions]


def test_job_duration() -> None:
    obj = job()
    assert cells("Job", obj, "batch")[3] == ""
    obj["status"]["startTime"] = ago(minutes=4)
    assert cells("Job", obj, "batch")[3] == "4m"
    obj["status"]["completionTime"] = ago(minutes=3, seconds=30)
    assert cells("Job", obj, "batch")[3] == "30s"
    assert cells("Job", obj, "batch")[5:] == ["nginx,log", "nginx:1.27,fluentbit", "<none>"]


def test_cronjob_cells() -> None:
    obj = {
        "metadata": META,
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}},
        "status": {"active": [{"name": "shop-1"}], "lastScheduleTime": ago(hours=9)},
    }
    assert cells("CronJob", obj, "batch") == [
        "shop",
        "0 3 * * *",
        "<none>",
        "False",
        1,
        "9h",
        "5m",
        "nginx,log",
        "nginx:1.27,fluentbit",
        "<none>",
    ]
    obj = {"metadata": META, "spec": {"schedule": "@daily", "timeZone": "Europe/Berlin", "suspend": True}}
    assert cells("CronJob", obj, "batch")[2:6] == ["Europe/Berlin", "True", 0, "<none>"]


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (
            {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "shop"},
            },
            {},
            ["ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "5m", "app=shop"],
        ),
        (
            {"type": "NodePort", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80, "nodePort": 30080}]},
            {},
            ["NodePort", "10.96.0.11", "<none>", "80:30080/TCP", "5m", "<none>"],
        ),
        (
            {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 443, "nodePort": 31443}]},
            {},
            ["LoadBalancer", "10.96.0.12", "<pending>", "443:31443/TCP", "5m", "<none>"],
        ),
        (
            {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "externalIPs": ["192.0.2.9"]},
            {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}, {"hostname": "lb.example.com"}]}},
            ["LoadBalancer", "10.96.0.12", "203.0.113.5,lb.example.com,192.0.2.9", "<none>", "5m", "<none>"],
        ),
        (
            {"type": "ExternalName", "externalName": "db.example.com"},
            {},
            ["ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"],
        ),
        (
            {"clusterIP": "None", "ports": [{"port": 5432}]},
            {},
            ["ClusterIP", "None", "<none>", "5432/TCP", "5m", "<none>"],
        ),
    ],
)
def test_service_cells(spec: dict[str, Any], status: dict[str, Any], expected: list[Any]) -> None:
    assert cells("Service", {"metadata": META, "spec": spec, "status": status}) == ["shop", *expected]


def node(
    *conditions: dict[str, str], unschedulable: bool = False, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "node-1", "creationTimestamp": ago(days=12), "labels": labels or {}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": list(conditions),
            "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian"},
            "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "172.18.0.2"}],
        },
    }


@pytest.mark.parametrize(
    ("obj", "status", "roles"),
    [
        (node({"type": "Ready", "status": "True"}), "Ready", "<none>"),
        (node({"type": "Ready", "status": "False"}), "NotReady", "<none>"),
        (node({"type": "Ready", "status": "Unknown"}), "NotReady", "<none>"),
        (node({"type": "MemoryPressure", "status": "False"}), "Unknown", "<none>"),
        (
            node(
                {"type": "Ready", "status": "True"},
                unschedulable=True,
                labels={
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/": "x",
                    "kubernetes.io/role": "master",
                },
            ),
            "Ready,SchedulingDisabled",
            "control-plane,master",
        ),
    ],
)
def test_node_cells(obj: dict[str, Any], status: str, roles: str) -> None:
    assert cells("Node", obj) == [
        "node-1",
        status,
        roles,
        "12d",
        "v1.37.0",
        "172.18.0.2",
        "<none>",
        "Debian",
        "<unknown>",
        "<unknown>",
    ]


def test_core_event_cells() -> None:
    event = {
        "metadata": {"name": "shop-7f9c.17a", "namespace": "shop"},
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "count": 7,
        "firstTimestamp": ago(minutes=30),
        "lastTimestamp": ago(seconds=40),
        "involvedObject": {"kind": "Pod", "name": "shop-7f9c", "fieldPath": "spec.containers{nginx}"},
        "source": {"component": "kubelet", "host": "node-1"},
    }
    assert cells("Event", event) == [
        "40s",
        "Warning",
        "BackOff",
        "pod/shop-7f9c",
        "spec.containers{nginx}",
        "kubelet, node-1",
        "Back-off restarting failed container",
        "30m",
        7,
        "shop-7f9c.17a",
    ]


def test_event_without_timestamps_or_count_uses_event_time_and_series() -> None:
    event = {
        "metadata": {"name": "e"},
        "type": "Normal",
        "reason": "Opened",
        "message": "opened",
        "eventTime": "2026-07-01T11:57:30.123456Z",
        "reportingComponent": "upkeep",
        "reportingInstance": "pod-0",
        "involvedObject": {"kind": "Incident"},
    }
    assert cells("Event", event) == [
        "2m29s",
        "Normal",
        "Opened",
        "incident",
        "",
        "upkeep, pod-0",
        "opened",
        "2m29s",
        1,
        "e",
    ]
    event["series"] = {"count": 4, "lastObservedTime": "2026-07-01T11:59:30.000000Z"}
    assert cells("Event", event)[0] == "30s"
    assert cells("Event", event)[8] == 4


def test_events_k8s_io_event_cells() -> None:
    event = {
        "metadata": {"name": "e2"},
        "type": "Warning",
        "reason": "Failed",
        "note": "pull failed",
        "eventTime": "2026-07-01T11:55:00.000000Z",
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
        "regarding": {"kind": "Pod", "name": "shop-1"},
    }
    assert cells("Event", event, "events.k8s.io") == [
        "5m",
        "Warning",
        "Failed",
        "pod/shop-1",
        "",
        "kubelet, node-1",
        "pull failed",
        "5m",
        1,
        "e2",
    ]


def test_small_kinds_cells() -> None:
    namespace = {"metadata": META, "status": {"phase": "Terminating"}}
    assert cells("Namespace", namespace) == ["shop", "Terminating", "5m"]
    assert cells("Namespace", {"metadata": META}) == ["shop", "Active", "5m"]
    configmap = {"metadata": META, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert cells("ConfigMap", configmap) == ["shop", 3, "5m"]
    secret = {"metadata": META, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert cells("Secret", secret) == ["shop", "kubernetes.io/tls", 2, "5m"]
    assert cells("Secret", {"metadata": META}) == ["shop", "Opaque", 0, "5m"]
    assert cells("ServiceAccount", {"metadata": META, "secrets": [{"name": "t"}]}) == ["shop", 1, "5m"]
    lease = {"metadata": META, "spec": {"holderIdentity": "upkeep-0"}}
    assert cells("Lease", lease, "coordination.k8s.io") == ["shop", "upkeep-0", "5m"]
    webhooks = {"metadata": META, "webhooks": [{"name": "a"}, {"name": "b"}]}
    assert cells("MutatingWebhookConfiguration", webhooks, "admissionregistration.k8s.io") == ["shop", 2, "5m"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [({"minAvailable": 2}, ["2", "N/A"]), ({"maxUnavailable": "25%"}, ["N/A", "25%"]), ({}, ["N/A", "N/A"])],
)
def test_pdb_cells(spec: dict[str, Any], expected: list[str]) -> None:
    obj = {"metadata": META, "spec": spec, "status": {"disruptionsAllowed": 1}}
    assert cells("PodDisruptionBudget", obj, "policy") == ["shop", *expected, 1, "5m"]


def test_endpoints_cells() -> None:
    subsets = [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
        {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]},
    ]
    assert cells("Endpoints", {"metadata": META, "subsets": subsets}) == [
        "shop",
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...",
        "5m",
    ]
    headless = [{"addresses": [{"ip": "fd00::1"}]}]
    assert cells("Endpoints", {"metadata": META, "subsets": headless})[1] == "fd00::1"
    assert cells("Endpoints", {"metadata": META})[1] == "<none>"
    one = [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]
    assert cells("Endpoints", {"metadata": META, "subsets": one})[1] == "[fd00::1]:80"


def test_endpointslice_cells() -> None:
    obj = {
        "metadata": META,
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}],
    }
    assert cells("EndpointSlice", obj, "discovery.k8s.io") == [
        "shop",
        "IPv4",
        "80,metrics,* + 1 more...",
        "10.0.0.1,10.0.0.2,10.0.0.3",
        "5m",
    ]
    assert cells("EndpointSlice", {"metadata": META, "addressType": "IPv4"}, "discovery.k8s.io")[2:4] == [
        "<unset>",
        "<unset>",
    ]


def test_bindings_cells() -> None:
    obj = {
        "metadata": META,
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "jane"},
            {"kind": "User", "name": "joe"},
            {"kind": "Group", "name": "ops"},
            {"kind": "ServiceAccount", "name": "upkeep", "namespace": "upkeep-system"},
        ],
    }
    expected = ["shop", "ClusterRole/view", "5m", "jane, joe", "ops", "upkeep-system/upkeep"]
    assert cells("RoleBinding", obj, "rbac.authorization.k8s.io") == expected
    assert cells("ClusterRoleBinding", obj, "rbac.authorization.k8s.io") == expected


def test_kinds_without_a_printer_show_the_creation_time() -> None:
    role = {"metadata": {"name": "reader", "creationTimestamp": "2026-06-30T10:00:00Z"}}
    assert cells("Role", role, "rbac.authorization.k8s.io") == ["reader", "2026-06-30T10:00:00Z"]
    assert cells("ClusterRole", {"metadata": {"name": "x"}}, "rbac.authorization.k8s.io") == [
        "x",
        "0001-01-01T00:00:00Z",
    ]


def test_missing_creation_timestamp_is_unknown_age() -> None:
    assert cells("ConfigMap", {"metadata": {"name": "x"}}) == ["x", 0, "<unknown>"]


# ----------------------------------------------------------------------------------------------------------------
# Custom resources


def incident_type() -> kinds.ResourceType:
    crd = yaml.safe_load((REPO / "crds" / "incidents.upkeep.dev.yaml").read_text(encoding="utf-8"))
    (version,) = kinds.from_crd(crd)
    return version


INCIDENT = {
    "apiVersion": "upkeep.dev/v1alpha1",
    "kind": "Incident",
    "metadata": {"name": "shop-crashloop-7f3c", "namespace": "shop", "creationTimestamp": ago(minutes=7)},
    "spec": {"severity": "SEV2", "service": "shop"},
    "status": {
        "phase": "Mitigating",
        "occurrences": 4,
        "conditions": [
            {"type": "Reconciling", "status": "True", "reason": "Progressing"},
            {"type": "Ready", "status": "False", "reason": "RemediationRunning"},
        ],
    },
}


def test_crd_printer_columns_from_the_repo() -> None:
    rt = incident_type()
    assert names(rt) == [
        ("Name", "string", 0),
        ("Severity", "string", 0),
        ("Phase", "string", 0),
        ("Service", "string", 0),
        ("Occurrences", "integer", 0),
        ("Ready", "string", 0),
        ("Reason", "string", 1),
        ("Age", "date", 0),
    ]
    definitions = tables.column_definitions(rt)
    assert definitions[1]["description"] == "Severity of the incident, SEV1 (worst) to SEV4."
    assert tables.table_row(rt, INCIDENT, now=NOW)["cells"] == [
        "shop-crashloop-7f3c",
        "SEV2",
        "Mitigating",
        "shop",
        4,
        "False",
        "RemediationRunning",
        "7m",
    ]
    fresh = {"metadata": {"name": "new", "creationTimestamp": ago(seconds=20)}, "spec": {"severity": "SEV4"}}
    assert tables.table_row(rt, fresh, now=NOW)["cells"] == ["new", "SEV4", None, None, None, None, None, "20s"]


def custom_type(columns: list[dict[str, Any]]) -> kinds.ResourceType:
    return kinds.ResourceType(
        "example.com", "v1", "Widget", "widgets", True, printer_columns=tuple(columns), crd_name="widgets.example.com"
    )


def test_crd_without_columns_gets_name_and_age() -> None:
    rt = custom_type([])
    definitions = tables.column_definitions(rt)
    assert [(d["name"], d["type"], d["format"]) for d in definitions] == [
        ("Name", "string", "name"),
        ("Age", "date", ""),
    ]
    assert definitions[1]["description"].startswith("CreationTimestamp is a timestamp")
    widget = {"metadata": {"name": "w", "creationTimestamp": ago(hours=26)}}
    assert tables.table_row(rt, widget, now=NOW)["cells"] == ["w", "26h"]


def test_crd_column_defaults_description_and_keeps_format_and_priority() -> None:
    rt = custom_type([{"name": "Size", "type": "integer", "format": "int32", "jsonPath": ".spec.size", "priority": 2}])
    assert tables.column_definitions(rt)[1] == {
        "name": "Size",
        "type": "integer",
        "format": "int32",
        "description": "Custom resource definition column (in JSONPath format): .spec.size",
        "priority": 2,
    }


@pytest.mark.parametrize(
    ("column_type", "value", "cell"),
    [
        ("string", "up", "up"),
        ("string", 3, "3"),
        ("string", 1.5, "1.5"),
        ("string", 3.0, "3"),
        ("string", 1e6, "1e+06"),
        ("string", 123456.0, "123456"),
        ("string", 0.00001, "1e-05"),
        ("string", True, "true"),
        ("string", None, "<no value>"),
        ("string", {"b": 1, "a": [1.0, "<x>", None]}, '{"a":[1,"\\u003cx\\u003e",null],"b":1}'),
        ("string", [1e21, 1e-7, 0.5], "[1e+21,1e-7,0.5]"),
        ("integer", 7, 7),
        ("integer", 2.9, 2),
        ("integer", "7", None),
        ("integer", True, None),
        ("number", 2, 2.0),
        ("number", 2.5, 2.5),
        ("number", "2.5", None),
        ("boolean", False, False),
        ("boolean", "true", None),
        ("date", ago(minutes=3), "3m"),
        ("date", "2026-07-01T11:58:00.5+00:00", "119s"),
        ("date", "", "<unknown>"),
        ("date", "yesterday", "<invalid>"),
        ("date", 5, None),
        ("date", None, None),
    ],
)
def test_crd_cell_types(column_type: str, value: Any, cell: Any) -> None:
    rt = custom_type([{"name": "X", "type": column_type, "jsonPath": ".spec.x"}])
    row = tables.table_row(rt, {"metadata": {"name": "w"}, "spec": {"x": value}}, now=NOW)
    assert row["cells"] == ["w", cell]
    assert type(row["cells"][1]) is type(cell)


DOC = {
    "metadata": {"name": "w", "labels": {"app.kubernetes.io/name": "shop"}, "annotations": {"a.b": "dotted"}},
    "spec": {
        "items": [
            {"name": "a", "n": 1, "type": "Ready"},
            {"name": "b", "n": 2, "type": "Other"},
            {"name": "c", "n": 3},
        ],
        "map": {"x": {"name": "deep"}},
    },
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        (".metadata.name", ["w"]),
        ("$.metadata.name", ["w"]),
        (".spec.items[0].name", ["a"]),
        (".spec.items[-1].name", ["c"]),
        (".spec.items[1:].name", ["b", "c"]),
        (".spec.items[0:3:2].name", ["a", "c"]),
        (".spec.items[*].name", ["a", "b", "c"]),
        (".spec.items.*.name", ["a", "b", "c"]),
        (".spec.map.*.name", ["deep"]),
        ('.spec.items[?(@.type=="Ready")].name', ["a"]),
        (".spec.items[?(@.type == 'Other')].name", ["b"]),
        ('.spec.items[?(@.type!="Ready")].name', ["b"]),
        (".spec.items[?(@.n>1)].name", ["b", "c"]),
        (".spec.items[?(@.n<=2)].name", ["a", "b"]),
        (".spec.items[?(@.type)].name", ["a", "b"]),
        (".metadata.labels.app\\.kubernetes\\.io/name", ["shop"]),
        (".metadata.annotations['a.b']", ["dotted"]),
        ('.metadata.annotations["a.b"]', ["dotted"]),
        ("..name", ["w", "a", "b", "c", "deep"]),
        (".spec.missing.name", []),
        ('.spec.items[?(@.type=="None")].name', []),
        (".spec.items[1:1]", []),
    ],
)
def test_json_path(path: str, found: list[Any]) -> None:
    assert tables.compile_json_path(path).find(DOC) == found


@pytest.mark.parametrize(
    "path", ["status.phase", ".a[", ".a[x]", ".a[1:2:3:4]", ".a[?(@.b=~x)]", ".a[?(b==1)]", ".a[?(@.b==unquoted)]"]
)
def test_json_path_rejects(path: str) -> None:
    with pytest.raises(tables.JSONPathError):
        tables.compile_json_path(path)


@pytest.mark.parametrize(
    "path", [".spec.map[0]", ".spec.items[9]", ".spec.map[?(@.a==1)]", '.spec.items[?(@.n=="1")].name']
)
def test_json_path_errors_leave_the_cell_empty(path: str) -> None:
    rt = custom_type([{"name": "X", "type": "string", "jsonPath": path}])
    assert tables.table_row(rt, DOC, now=NOW)["cells"] == ["w", None]


def test_unparseable_column_path_gives_empty_cells() -> None:
    rt = custom_type([{"name": "X", "type": "string", "jsonPath": "spec.x"}])
    assert tables.table_row(rt, {"metadata": {"name": "w"}, "spec": {"x": 1}}, now=NOW)["cells"] == ["w", None]


# ----------------------------------------------------------------------------------------------------------------
# The Table


def test_table_shape_and_include_object() -> None:
    pods = [pod(), pod(phase="Succeeded")]
    result = tables.table(
        rtype("Pod"), pods, now=NOW, list_metadata={"resourceVersion": "42", "continue": "", "remainingItemCount": 3}
    )
    assert list(result) == ["kind", "apiVersion", "metadata", "columnDefinitions", "rows"]
    assert result["kind"] == "Table"
    assert result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {"resourceVersion": "42", "remainingItemCount": 3}
    assert len(result["columnDefinitions"]) == 9
    first = result["rows"][0]
    assert list(first) == ["cells", "object"]
    assert first["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": pods[0]["metadata"],
    }
    assert list(result["rows"][1]) == ["cells", "conditions", "object"]

    assert tables.table(rtype("Pod"), pods, now=NOW, include_object="Object")["rows"][0]["object"] is pods[0]
    assert tables.table(rtype("Pod"), pods, now=NOW, include_object="None")["rows"][0]["object"] is None
    assert tables.table(rtype("Pod"), pods, now=NOW, include_object="")["rows"][0]["object"]["kind"] == (
        "PartialObjectMetadata"
    )
    beta = tables.table(rtype("Pod"), pods, now=NOW, api_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


def test_invalid_include_object_is_a_bad_request() -> None:
    with pytest.raises(tables.InvalidTableOptions) as caught:
        tables.table(rtype("Pod"), [], now=NOW, include_object="Everything")
    assert str(caught.value) == (
        "Unable to convert to Table as requested: includeObject: Invalid value: "
        "\"Everything\": must be 'Metadata', 'Object', 'None', or empty"
    )
    with pytest.raises(tables.InvalidTableOptions):
        tables.table_row(rtype("Pod"), pod(), now=NOW, include_object="all")


def test_watch_event_tables() -> None:
    obj = pod()
    obj["metadata"]["resourceVersion"] = "77"
    first = tables.object_table(rtype("Pod"), obj, now=NOW)
    later = tables.object_table(rtype("Pod"), obj, now=NOW, headers=False)
    assert first["metadata"] == later["metadata"] == {"resourceVersion": "77"}
    assert first["columnDefinitions"] and later["columnDefinitions"] is None
    assert first["rows"] == later["rows"] == [tables.table_row(rtype("Pod"), obj, now=NOW)]
    assert tables.table(rtype("Pod"), [], now=NOW)["rows"] == []


def test_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert tables.table_row(rtype("ConfigMap"), {"metadata": META}, now=naive)["cells"][2] == "5m"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)
FIELDS = [
    "metadata",
    "spec",
    "status",
    "data",
    "subsets",
    "endpoints",
    "ports",
    "involvedObject",
    "series",
    "roleRef",
    "subjects",
    "webhooks",
    "regarding",
    "type",
    "count",
    "containerStatuses",
    "conditions",
]
GARBAGE = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6)
ALL_TYPES = [*kinds.BUILTIN, incident_type()]


@settings(max_examples=150, deadline=None)
@given(GARBAGE, st.sampled_from(ALL_TYPES))
def test_any_object_gets_one_cell_per_column(obj: dict[str, Any], rt: kinds.ResourceType) -> None:
    row = tables.table_row(rt, obj, now=NOW)
    assert len(row["cells"]) == len(tables.column_definitions(rt))


STATES = st.sampled_from(
    [
        {"running": {"startedAt": "2026-07-01T11:00:00Z"}},
        {"waiting": {"reason": "CrashLoopBackOff"}},
        {"waiting": {}},
        {"terminated": {"exitCode": 0, "reason": "Completed"}},
        {"terminated": {"exitCode": 2}},
        {},
    ]
)
CONTAINER_STATUS = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["c0", "c1", "proxy"]),
        "ready": st.booleans(),
        "started": st.booleans(),
        "restartCount": st.integers(0, 3),
        "state": STATES,
    },
    optional={"lastState": st.just({"terminated": {"exitCode": 1, "finishedAt": "2026-07-01T11:30:00Z"}})},
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(CONTAINER_STATUS, max_size=3),
    st.lists(CONTAINER_STATUS, max_size=2),
    st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown"]),
    st.booleans(),
)
def test_pod_cells_are_well_formed(
    statuses: list[dict[str, Any]], init_statuses: list[dict[str, Any]], phase: str, deleting: bool
) -> None:
    obj = pod(
        phase=phase,
        containers=2,
        statuses=statuses,
        init_statuses=init_statuses,
        deleting=deleting,
        init=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
    )
    _, ready, status, restarts, *_ = cells("Pod", obj)
    assert re.fullmatch(r"\d+/3", ready)
    assert status
    assert re.fullmatch(r"\d+( \(\S+ ago\))?", restarts)
    if deleting and phase not in ("Succeeded", "Failed"):
        assert status == "Terminating"
