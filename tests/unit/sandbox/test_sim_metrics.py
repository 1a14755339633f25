"""The sandbox's Prometheus metrics: the exposition format, monotonic counters, kube-state metrics."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from upkeep.sandbox import apiserver
from upkeep.sandbox.simulation import metrics, runtime
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf|NaN)$'
)


def parse(text: str) -> dict[str, float]:
    """Every sample of an exposition, checked line by line against the 0.0.4 grammar."""
    samples: dict[str, float] = {}
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            declared.add(name)
            continue
        found = SAMPLE.match(line)
        assert found, f"not a sample line: {line!r}"
        assert any(found.group(1).startswith(name) for name in declared), f"no TYPE before {line!r}"
        samples[found.group(1) + (found.group(2) or "")] = float(found.group(3))
    assert text.endswith("\n")
    return samples


@pytest.fixture
def ctx() -> runtime.Context:
    store = Store()
    made = runtime.Context(apiserver.ApiServer(store), store, SimulationSettings.fast(metrics_interval=0.05))
    made.create("/namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, "t")
    deployment = made.create(
        "apps/deployments",
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "nginx"}]},
                },
            },
        },
        "t",
    )
    assert deployment is not None
    replica_set = made.create(
        "apps/replicasets",
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-abc",
                "annotations": {"deployment.kubernetes.io/revision": "3"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": deployment["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "nginx"}]},
                },
            },
        },
        "t",
    )
    assert replica_set is not None
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-abc",
        "uid": replica_set["metadata"]["uid"],
        "controller": True,
    }
    created = made.create(
        "/pods",
        "shop",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-abc-x", "ownerReferences": [owner]},
            "spec": {"containers": [{"name": "w", "image": "sandbox.local/no-such-profile:1"}]},
        },
        "t",
    )
    assert created is not None
    pod_status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "w", "restartCount": 2, "ready": True, "state": {"running": {"startedAt": "2030-01-01T00:00:00Z"}}}
        ],
    }
    made.update("/pods", {**created, "status": pod_status}, "kubelet", subresource="status")
    node = made.create("/nodes", "", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}, "t")
    assert node is not None
    made.update(
        "/nodes",
        {**node, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        "kubelet",
        subresource="status",
    )
    return made


def test_advance_in_whole_intervals_and_only_while_running() -> None:
    series = metrics.AppSeries("ns", "p", "d", "1", metrics.DEFAULT_PROFILE)
    metrics.advance(series, 100.0, True, 1.0)
    assert series.ok == 0 and series.last == 100.0
    metrics.advance(series, 102.5, True, 1.0)
    assert series.ok + series.errors == pytest.approx(20.0)
    assert series.errors == pytest.approx(0.2)
    assert series.last == 102.0
    metrics.advance(series, 110.0, False, 1.0)
    before = series.ok
    metrics.advance(series, 111.0, True, 1.0)
    assert series.ok == before, "no traffic while the container was not running"
    assert series.buckets[-1] == pytest.approx(series.ok + series.errors)


def test_render_is_the_text_format_with_application_and_state_metrics(ctx: runtime.Context) -> None:
    first = parse(metrics.render(ctx))
    time.sleep(0.3)
    text = metrics.render(ctx)
    second = parse(text)
    labels = 'namespace="shop",pod="web-abc-x",deployment="web",revision="3"'
    ok, errors = (
        second[f'http_requests_total{{{labels},code="200"}}'],
        second[f'http_requests_total{{{labels},code="500"}}'],
    )
    assert ok > first[f'http_requests_total{{{labels},code="200"}}']
    assert 0 <= errors <= ok * 0.05
    assert (
        second[f"http_request_duration_seconds_count{{{labels}}}"]
        == second[f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}}']
    )
    buckets = [value for key, value in second.items() if key.startswith("http_request_duration_seconds_bucket")]
    assert buckets == sorted(buckets), "cumulative buckets never fall"
    assert (
        second['kube_pod_status_phase{namespace="shop",pod="web-abc-x",uid="' + pod_uid(ctx) + '",phase="Running"}']
        == 1
    )
    assert (
        second['kube_pod_status_phase{namespace="shop",pod="web-abc-x",uid="' + pod_uid(ctx) + '",phase="Pending"}']
        == 0
    )
    assert (
        second['kube_pod_status_ready{namespace="shop",pod="web-abc-x",uid="' + pod_uid(ctx) + '",condition="true"}']
        == 1
    )
    assert (
        second[
            'kube_pod_container_status_restarts_total{namespace="shop",pod="web-abc-x",uid="'
            + pod_uid(ctx)
            + '",container="w"}'
        ]
        == 2
    )
    assert second['kube_deployment_spec_replicas{namespace="shop",deployment="web"}'] == 2
    assert second['kube_deployment_status_replicas_available{namespace="shop",deployment="web"}'] == 0
    assert second['kube_node_status_condition{node="node-a",condition="Ready",status="true"}'] == 1
    assert "# TYPE http_request_duration_seconds histogram\n" in text
    assert "# HELP kube_pod_status_phase [STABLE] The pods current phase.\n" in text


def pod_uid(ctx: runtime.Context) -> str:
    pod = ctx.get("/pods", "shop", "web-abc-x")
    assert pod is not None
    return str(pod["metadata"]["uid"])


def test_counters_never_fall_and_go_with_their_pod(ctx: runtime.Context) -> None:
    previous: dict[str, float] = {}
    for _ in range(5):
        current = {k: v for k, v in parse(metrics.render(ctx)).items() if k.startswith("http_requests_total")}
        for key, value in previous.items():
            assert current[key] >= value
        previous = current
        time.sleep(0.06)
    ctx.delete("/pods", "shop", "web-abc-x")
    assert "http_requests_total" not in metrics.render(ctx)


def test_label_values_are_escaped() -> None:
    assert metrics.escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
