"""Workload faults on purpose: what the admin endpoint and `upkeep sandbox fault` ask of the simulation.

``apply_fault(ctx, body)`` takes one fault as JSON and answers what it did. Faults:

- ``{"type": "crashloop"|"imagepull"|"oom"|"unready", "namespace": "shop", "workload": "deployment/web"}``
  makes every container of the workload's pods behave so from its next start: the crash of a bad
  release, a tag that is gone, a leak up to the memory limit, a readiness probe that never passes.
  A fault, like a bad release, shows when containers start, so the workload's pods are deleted at
  once and the ones its controller makes in their place start with the fault.
- the same with ``"pod": "web-7d4b9c-x2k8p"`` instead of a workload: the fault of that pod only.
  Nothing is restarted for it: its kubelet applies the fault the next time the container starts
  (after a crash, an OOM kill or a ``pod-kill``), as a real fault would show.
- ``{"type": "clear-pod-faults"}`` with ``namespace`` and ``workload`` or ``pod``, or with neither
  (every workload and pod fault, of one namespace or of all): containers behave as their image says
  again from their next start.
- ``{"type": "node-down"|"node-up", "node": "sandbox-node-2"}``: the node's kubelet stops (no
  heartbeat, no pod updates) or comes back; the control plane notices as a real one does.
- ``{"type": "pod-kill", "namespace": "shop", "pod": "web-x", "container": "web"}``: the container's
  process is killed (``kill -9`` inside it): it ends with exit code 137 and the kubelet restarts it
  as its restart policy says, so RESTARTS grows.

Bad input is a 400 naming the field; a workload, pod or node that does not exist is a 404 worded
as the API server words it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upkeep.sandbox import status
from upkeep.sandbox.simulation import faults, kubelet, runtime

__all__ = ["FAULT_TYPES", "WORKLOAD_KINDS", "apply_fault", "parse_workload"]

PODS = "/pods"
NODES = "/nodes"
FAULT_TYPES = ("crashloop", "imagepull", "oom", "unready", "clear-pod-faults", "node-down", "node-up", "pod-kill")

WORKLOAD_KINDS: dict[str, tuple[str, str, str]] = {
    "deployment": ("Deployment", "apps/deployments", "deployments"),
    "deployments": ("Deployment", "apps/deployments", "deployments"),
    "deploy": ("Deployment", "apps/deployments", "deployments"),
    "statefulset": ("StatefulSet", "apps/statefulsets", "statefulsets"),
    "statefulsets": ("StatefulSet", "apps/statefulsets", "statefulsets"),
    "sts": ("StatefulSet", "apps/statefulsets", "statefulsets"),
    "daemonset": ("DaemonSet", "apps/daemonsets", "daemonsets"),
    "daemonsets": ("DaemonSet", "apps/daemonsets", "daemonsets"),
    "ds": ("DaemonSet", "apps/daemonsets", "daemonsets"),
    "replicaset": ("ReplicaSet", "apps/replicasets", "replicasets"),
    "replicasets": ("ReplicaSet", "apps/replicasets", "replicasets"),
    "rs": ("ReplicaSet", "apps/replicasets", "replicasets"),
    "job": ("Job", "batch/jobs", "jobs"),
    "jobs": ("Job", "batch/jobs", "jobs"),
}
"""What ``workload`` may name, as kubectl spells resources: kind → (Kind, storage key, plural)."""

_FIELDS: dict[str, tuple[str, ...]] = {
    "behaviour": ("type", "namespace", "workload", "pod"),
    "clear-pod-faults": ("type", "namespace", "workload", "pod"),
    "node-down": ("type", "node"),
    "node-up": ("type", "node"),
    "pod-kill": ("type", "namespace", "pod", "container"),
}


def _bad(message: str) -> status.ApiError:
    return status.bad_request(f"invalid fault: {message}")


def _text(body: Mapping[str, Any], field: str, *, required: bool, default: str = "") -> str:
    value = body.get(field)
    if value is None:
        if required:
            raise _bad(f"{field}: required for a {body.get('type')} fault")
        return default
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{field}: must be a non-empty string, not {value!r}")
    return value.strip()


def _check_fields(body: Mapping[str, Any], group: str) -> None:
    known = _FIELDS[group]
    unknown = sorted(str(key) for key in body if key not in known)
    if unknown:
        raise _bad(f'unknown field "{unknown[0]}" for a {body.get("type")} fault; known fields: {", ".join(known)}')


def parse_workload(text: str) -> tuple[str, str, str, str]:
    """ "deployment/web" → (Kind, storage key, plural, name); 400 naming the field when it is not one."""
    kind, slash, name = text.partition("/")
    found = WORKLOAD_KINDS.get(kind.lower())
    if not slash or not name or found is None:
        raise _bad(
            f'workload: "{text}" is not KIND/NAME with KIND one of deployment, statefulset, daemonset, replicaset, job'
        )
    return found[0], found[1], found[2], name


def _owned_pods(ctx: runtime.Context, namespace: str, owner: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pods ``owner`` controls, directly or through its ReplicaSets."""
    uids = {str(owner["metadata"].get("uid"))}
    if owner.get("kind") == "Deployment":
        for replica_set in ctx.list("apps/replicasets", namespace):
            for reference in replica_set["metadata"].get("ownerReferences") or []:
                if reference.get("controller") and reference.get("uid") in uids:
                    uids.add(str(replica_set["metadata"].get("uid")))
    return [
        pod
        for pod in ctx.list(PODS, namespace)
        if any(
            reference.get("controller") and reference.get("uid") in uids
            for reference in pod["metadata"].get("ownerReferences") or []
        )
    ]


def _target(ctx: runtime.Context, body: Mapping[str, Any], *, required: bool) -> tuple[str, str, str, str] | None:
    """(namespace, "workload"|"pod", Kind or "", name) of the fault, checked to exist."""
    namespace = _text(body, "namespace", required=False, default="default")
    workload = body.get("workload")
    pod = body.get("pod")
    if workload is not None and pod is not None:
        raise _bad("workload, pod: give one of them, not both")
    if workload is None and pod is None:
        if required:
            raise _bad(f'workload: a {body.get("type")} fault needs a workload ("deployment/web") or a pod')
        return None
    if workload is not None:
        kind, resource, plural, name = parse_workload(_text(body, "workload", required=True))
        group = resource.partition("/")[0]
        if ctx.get(resource, namespace, name) is None:
            raise status.not_found(plural, group, name)
        return namespace, "workload", kind, name
    name = _text(body, "pod", required=True)
    if ctx.get(PODS, namespace, name) is None:
        raise status.not_found("pods", "", name)
    return namespace, "pod", "", name


def _behaviour(ctx: runtime.Context, body: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(body, "behaviour")
    behaviour = str(body["type"])
    target = _target(ctx, body, required=True)
    assert target is not None
    namespace, scope, kind, name = target
    table = faults.table(ctx.data)
    answer: dict[str, Any] = {"type": behaviour, "namespace": namespace}
    if scope == "pod":
        table.pods[(namespace, name)] = behaviour
        answer.update(pod=name, restarted=[], note="the pod's containers behave so from their next start")
        return answer
    table.workloads[(namespace, kind, name)] = behaviour
    owner = ctx.get(WORKLOAD_KINDS[kind.lower()][1], namespace, name)
    restarted = []
    for pod in _owned_pods(ctx, namespace, owner or {"kind": kind, "metadata": {}}):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if ctx.delete(PODS, namespace, str(pod["metadata"]["name"])):
            restarted.append(str(pod["metadata"]["name"]))
    answer.update(workload=f"{kind.lower()}/{name}", restarted=sorted(restarted))
    return answer


def _clear(ctx: runtime.Context, body: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(body, "clear-pod-faults")
    table = faults.table(ctx.data)
    target = _target(ctx, body, required=False) if ("workload" in body or "pod" in body) else None
    cleared: list[str] = []
    if target is not None:
        namespace, scope, kind, name = target
        if scope == "pod" and table.pods.pop((namespace, name), "") != "":
            cleared.append(f"{namespace}/pod/{name}")
        if scope == "workload" and table.workloads.pop((namespace, kind, name), "") != "":
            cleared.append(f"{namespace}/{kind.lower()}/{name}")
        return {"type": "clear-pod-faults", "cleared": cleared}
    only = _text(body, "namespace", required=False) or None
    for namespace, kind, name in sorted(table.workloads):
        if only is None or namespace == only:
            del table.workloads[(namespace, kind, name)]
            cleared.append(f"{namespace}/{kind.lower()}/{name}")
    for namespace, name in sorted(table.pods):
        if only is None or namespace == only:
            del table.pods[(namespace, name)]
            cleared.append(f"{namespace}/pod/{name}")
    return {"type": "clear-pod-faults", "cleared": cleared}


def _node(ctx: runtime.Context, body: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(body, str(body["type"]))
    name = _text(body, "node", required=True)
    if ctx.get(NODES, "", name) is None:
        raise status.not_found("nodes", "", name)
    table = faults.table(ctx.data)
    if body["type"] == "node-down":
        table.nodes_down.add(name)
    else:
        table.nodes_down.discard(name)
    return {"type": body["type"], "node": name, "nodesDown": sorted(table.nodes_down)}


def _kill(ctx: runtime.Context, body: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(body, "pod-kill")
    namespace = _text(body, "namespace", required=False, default="default")
    name = _text(body, "pod", required=True)
    pod = ctx.get(PODS, namespace, name)
    if pod is None:
        raise status.not_found("pods", "", name)
    containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    container = _text(body, "container", required=False, default=containers[0] if containers else "")
    if container not in containers:
        raise _bad(f"container: {container} is not valid for pod {name} (containers: {', '.join(containers)})")
    kubelet.kill_container(ctx, pod, container, 137)
    return {"type": "pod-kill", "namespace": namespace, "pod": name, "container": container, "exitCode": 137}


def apply_fault(ctx: runtime.Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """Carry out one workload fault and say what was done; status.ApiError (400/404/409) when it cannot be."""
    if not isinstance(body, Mapping):
        raise _bad("a fault is a JSON object with a type")
    kind = body.get("type")
    if kind in faults.BEHAVIOURS:
        return _behaviour(ctx, body)
    if kind == "clear-pod-faults":
        return _clear(ctx, body)
    if kind in ("node-down", "node-up"):
        return _node(ctx, body)
    if kind == "pod-kill":
        return _kill(ctx, body)
    raise _bad(f"type: {kind!r} is not one of {', '.join(FAULT_TYPES)}")
