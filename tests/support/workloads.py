"""Workloads and namespaces for integration tests: the manifests the tests apply, and where they apply them."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from support.cluster import Cluster

GOOD_IMAGE = "ghcr.io/upkeep-dev/shop:1.0"
"""An image of the sandbox's catalog that starts and serves."""
CRASHING_IMAGE = "ghcr.io/upkeep-dev/shop:1.1-crash"
"""An image of the sandbox's catalog whose container exits at once, so it crash-loops."""


def deployment(
    name: str, image: str, replicas: int, *, memory: str | None = None, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Deployment of one container named after it; ``memory``: its memory limit."""
    selector = {"app": name}
    container: dict[str, Any] = {"name": name, "image": image}
    if memory is not None:
        container["resources"] = {"limits": {"memory": memory}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**selector, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": {**selector, **(labels or {})}}, "spec": {"containers": [container]}},
        },
    }


def apply(cluster: Cluster, body: Mapping[str, Any], namespace: str | None = None) -> None:
    """``kubectl apply`` one object (into ``namespace`` when given)."""
    where = ["-n", namespace] if namespace else []
    cluster.kubectl("apply", *where, "-f", "-", input=json.dumps(body))


@contextlib.contextmanager
def namespace(cluster: Cluster, prefix: str, labels: Mapping[str, str] | None = None) -> Iterator[str]:
    """A fresh namespace ``<prefix>-<random>`` with ``labels`` ({"upkeep-test": its name} by default), deleted after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    for key, value in (labels if labels is not None else {"upkeep-test": name}).items():
        cluster.kubectl("label", "namespace", name, f"{key}={value}")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def incidents(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """The Incidents of a namespace, as kubectl lists them."""
    items: list[dict[str, Any]] = cluster.kubectl_json("get", "incidents", "-n", namespace)["items"]
    return items


def quick_policy(cluster: Cluster, namespace: str, *, clear_for: str = "8s") -> None:
    """A SupportPolicy for the namespace labelled ``upkeep-test=<namespace>``: incidents auto-resolve after the signal
    stays away ``clear_for`` (8 s: longer than a quick Playbook's verification, so the run mitigates first)."""
    apply(
        cluster,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": f"policy-{namespace}"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"upkeep-test": namespace}},
                "autoResolve": {"clearFor": clear_for},
            },
        },
    )


def image_pull_playbook(cluster: Cluster, namespace: str, *, mode: str = "Automatic") -> None:
    """The Playbook ``image-pull`` made quick for tests: roll back, then verify for 1 s (60 s at most)."""
    apply(
        cluster,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Playbook",
            "metadata": {"name": "image-pull"},
            "spec": {
                "mode": mode,
                "match": {"signalTypes": ["ImagePullBackOff"]},
                "steps": [{"name": "roll-back", "action": "rollbackDeployment", "timeout": "60s"}],
                "verification": {"replicasReady": True, "signalClear": True, "stableFor": "1s", "timeout": "60s"},
            },
        },
        namespace,
    )
