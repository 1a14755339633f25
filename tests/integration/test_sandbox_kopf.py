"""A Kopf operator written here reacts to objects created with kubectl, and cleans up on deletion."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration

WIDGETS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def peering_crd(scope: str) -> dict[str, Any]:
    kind = "KopfPeering" if scope == "Namespaced" else "ClusterKopfPeering"
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


@pytest.fixture
def operator(cluster: Cluster, namespace: str) -> Iterator[dict[str, list[str]]]:
    for crd in (WIDGETS_CRD, peering_crd("Namespaced")):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s")
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "default"}}
    eventually(
        lambda: (
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(peering), check=False).returncode == 0
        ),
        timeout=20,
        message="KopfPeering created",
    )
    seen: dict[str, list[str]] = {"created": [], "updated": [], "deleted": [], "timer": [], "daemon": []}
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.create("example.com", "v1", "widgets", registry=registry)
    def created(name: str, spec: dict[str, Any], patch: kopf.Patch, body: kopf.Body, **_: Any) -> None:
        seen["created"].append(name)
        patch.status["size"] = spec.get("size")
        kopf.info(body, reason="Created", message=f"widget {name} of size {spec.get('size')}")

    @kopf.on.update("example.com", "v1", "widgets", field="spec.size", registry=registry)
    def updated(name: str, new: Any, patch: kopf.Patch, **_: Any) -> None:
        seen["updated"].append(name)
        patch.status["size"] = new

    @kopf.on.delete("example.com", "v1", "widgets", registry=registry)
    def deleted(name: str, **_: Any) -> None:
        seen["deleted"].append(name)

    @kopf.timer("example.com", "v1", "widgets", interval=0.5, registry=registry)
    def ticking(name: str, **_: Any) -> None:
        seen["timer"].append(name)

    @kopf.daemon("example.com", "v1", "widgets", registry=registry, cancellation_timeout=1)
    async def watching(name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        seen["daemon"].append(name)
        while not stopped:
            await asyncio.sleep(0.1)

    stop = threading.Event()
    # Kopf's login reads the kubeconfig from the environment; it is put back after, or every later module would
    # take this session's sandbox for a real cluster given in $KUBECONFIG.
    before = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)

    def run() -> None:
        asyncio.run(kopf.operator(registry=registry, namespaces=[namespace], peering_name="default", stop_flag=stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(30)
        if before is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = before


def test_kopf_reacts_and_cleans_up(cluster: Cluster, namespace: str, operator: dict[str, list[str]]) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "gadget"}, "spec": {"size": 3}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(widget))
    eventually(lambda: "gadget" in operator["created"], timeout=20, message="the create handler")
    status = eventually(
        lambda: cluster.kubectl_json("get", "widget", "gadget", "-n", namespace).get("status"),
        timeout=20,
        message="a status patch",
    )
    assert status["size"] == 3
    live = cluster.kubectl_json("get", "widget", "gadget", "-n", namespace)
    assert "kopf.zalando.org/KopfFinalizerMarker" in live["metadata"]["finalizers"]
    events = eventually(
        lambda: cluster.kubectl_json(
            "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=gadget"
        )["items"],
        timeout=20,
        message="the posted Event",
    )
    assert any(event["reason"] == "Created" for event in events)
    eventually(
        lambda: "gadget" in operator["timer"] and "gadget" in operator["daemon"],
        timeout=20,
        message="the timer and the daemon",
    )
    cluster.kubectl("patch", "widget", "gadget", "-n", namespace, "--type", "merge", "-p", '{"spec":{"size":5}}')
    eventually(
        lambda: cluster.kubectl_json("get", "widget", "gadget", "-n", namespace)["status"].get("size") == 5,
        timeout=20,
        message="the update handler's status",
    )
    cluster.kubectl("delete", "widget", "gadget", "-n", namespace, "--timeout=30s")
    assert "gadget" in operator["deleted"]
    assert cluster.kubectl("get", "widget", "gadget", "-n", namespace, check=False).returncode == 1
