"""Benchmark of detection: failure → Incident latency with 1,000 running pods; operator RSS at 1,000 and 10,000.

Starts `upkeep sandbox up --detach --admin` (real-time settings), runs 50 Deployments of 20
replicas (1,000 pods) in namespace `bench`, starts `upkeep run -n bench` as a process and
measures, from this process:

- failure → Incident latency for 50 failures injected at once, one per Deployment: the
  sandbox's fault API makes one pod of each Deployment OOM at its next start and kills its
  container; the failure's moment is when this process's own pod watch sees the OOM kill in
  the pod's status, the Incident's moment is when its incident watch sees the Incident added.
  Both watches are this process's, so the figure is what the operator adds to a watch.
- the sandbox's raw watch delivery latency: a ConfigMap is patched 50 times and the time
  from sending each patch to its watch event is taken (a write seen through a watch); the
  detection latency is also given as a ratio to it (p50 to p50, p99 to p99).
- the operator's RSS with 1,000 pods (after the failures) and with 10,000 pods (the 50
  Deployments scaled to 200 replicas, once every pod is Ready and the operator's CPU is idle
  again, with its peak RSS too; `--skip-10k` leaves this out).

Figures go to stdout and, as one JSON line, to bench/results/detection.jsonl. Targets (issue 5):
p99 < 1 s; RSS < 250 MB at 10,000 pods.

    .venv/bin/python bench/detection.py [--skip-10k] [--deployments 50] [--replicas 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import REPO, Api, kubectl, peak_rss_mib, percentile, record, rss_mib, shut_down, wait_for, wait_idle

RESULTS = REPO / "bench" / "results" / "detection.jsonl"
NAMESPACE = "bench"
IMAGE = "nginx:1.27"


def deployment(index: int, replicas: int) -> dict[str, Any]:
    labels = {"app": f"svc-{index:02d}"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"svc-{index:02d}", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": IMAGE}]},
            },
        },
    }


def available_pods(api: Api) -> int:
    """Pods that are Ready (listed, not taken from the Deployments' status)."""
    found = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
    return sum(
        1
        for item in found["items"]
        if any(
            condition.get("type") == "Ready" and condition.get("status") == "True"
            for condition in item.get("status", {}).get("conditions") or []
        )
    )


def oom_killed(pod: dict[str, Any]) -> bool:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            if (state.get("terminated") or {}).get("reason") == "OOMKilled":
                return True
    return False


def workload_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"].get("labels", {}).get("app", ""))


def raw_watch_latencies(api: Api, samples: int) -> list[float]:
    """Seconds from sending a ConfigMap patch to its watch event, ``samples`` times."""
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    api.request("POST", path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}, "data": {}})
    arrivals: dict[str, float] = {}
    done = threading.Condition()

    def seen(event: dict[str, Any], arrival: float) -> None:
        value = (event.get("object", {}).get("data") or {}).get("n")
        if event.get("type") == "MODIFIED" and value is not None:
            with done:
                arrivals.setdefault(value, arrival)
                done.notify_all()

    stop = threading.Event()
    api.watch(path + "?fieldSelector=metadata.name%3Dprobe", seen, stop)
    latencies = []
    for number in range(samples):
        key = str(number)
        sent = time.monotonic()
        api.request("PATCH", f"{path}/probe", {"data": {"n": key}}, "application/merge-patch+json")
        with done:
            if not done.wait_for(lambda key=key: key in arrivals, timeout=10):  # type: ignore[misc]
                raise SystemExit("a ConfigMap patch never reached the watch")
        latencies.append(arrivals[key] - sent)
    stop.set()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-10k", action="store_true", help="skip the 10,000-pod step (it takes minutes)")
    parser.add_argument("--deployments", type=int, default=50, help="Deployments, one failure each (default: 50)")
    parser.add_argument("--replicas", type=int, default=20, help="replicas of each (default: 20)")
    args = parser.parse_args()
    figures: dict[str, Any] = {"benchmark": "detection"}
    pods = args.deployments * args.replicas
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        upkeep = [sys.executable, "-m", "upkeep.cli"]
        nodes = "20" if args.skip_10k else "100"
        subprocess.run(
            [*upkeep, "sandbox", "up", "--detach", "--admin", "--home", str(home), "--nodes", nodes],
            check=True,
            capture_output=True,
            timeout=120,
        )
        run = json.loads((home / "run.json").read_text())
        env = {**os.environ, "KUBECONFIG": run["kubeconfig"]}
        api = Api(run["url"], run["token"])
        operator: subprocess.Popen[bytes] | None = None
        try:
            kubectl(env, "apply", "-f", str(REPO / "crds"))
            kubectl(env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            kubectl(env, "create", "namespace", NAMESPACE)
            manifests = [deployment(index, args.replicas) for index in range(args.deployments)]
            # A YAML stream, not a List: kubectl validates a List against /openapi/v2, which the sandbox lacks.
            kubectl(env, "apply", "-f", "-", stdin="\n---\n".join(json.dumps(item) for item in manifests))
            took = wait_for(lambda: available_pods(api) >= pods, 900, f"{pods} available pods")
            print(f"{pods} pods available after {took:.1f} s", flush=True)

            log = (home / "operator.log").open("w")
            operator = subprocess.Popen(
                [*upkeep, "run", "-n", NAMESPACE, "--standalone", "--liveness", "none", "--http", "none"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            oomed: dict[str, float] = {}
            opened: dict[str, float] = {}
            lock = threading.Lock()

            def pod_seen(event: dict[str, Any], arrival: float) -> None:
                body = event.get("object") or {}
                if event.get("type") in ("ADDED", "MODIFIED") and oom_killed(body):
                    with lock:
                        oomed.setdefault(workload_of(body), arrival)

            def incident_seen(event: dict[str, Any], arrival: float) -> None:
                body = event.get("object") or {}
                workload = (body.get("spec") or {}).get("workload") or {}
                if event.get("type") == "ADDED" and workload.get("name"):
                    with lock:
                        opened.setdefault(str(workload["name"]), arrival)

            stop = threading.Event()
            api.watch(f"/api/v1/namespaces/{NAMESPACE}/pods", pod_seen, stop)
            api.watch(f"/apis/upkeep.dev/v1alpha1/namespaces/{NAMESPACE}/incidents", incident_seen, stop)

            # Warm-up: one failure before measuring, so the operator has started and listed everything.
            listed = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
            by_workload: dict[str, list[str]] = {}
            for pod in listed:
                by_workload.setdefault(workload_of(pod), []).append(pod["metadata"]["name"])
            names = sorted(by_workload)
            warm, measured = names[0], names[1:]

            def inject(workload: str) -> None:
                pod = by_workload[workload][0]
                for body in (
                    {"type": "oom", "namespace": NAMESPACE, "pod": pod},
                    {"type": "pod-kill", "namespace": NAMESPACE, "pod": pod},
                ):
                    api.request("POST", "/upkeep-sandbox/faults", body)

            inject(warm)
            wait_for(lambda: warm in opened, 120, "the warm-up incident")
            print(f"operator started; warm-up incident seen; RSS {rss_mib(operator.pid):.0f} MiB", flush=True)

            for workload in measured:
                inject(workload)
            wait_for(lambda: all(name in opened and name in oomed for name in measured), 180, "every incident")
            latencies = [opened[name] - oomed[name] for name in measured]
            raw = raw_watch_latencies(api, 50)
            stop.set()
            figures["failures"] = len(measured)
            figures["latency_p50_ms"] = round(statistics.median(latencies) * 1000, 1)
            figures["latency_p99_ms"] = round(percentile(latencies, 0.99) * 1000, 1)
            figures["latency_max_ms"] = round(max(latencies) * 1000, 1)
            figures["watch_p50_ms"] = round(statistics.median(raw) * 1000, 2)
            figures["watch_p99_ms"] = round(percentile(raw, 0.99) * 1000, 2)
            figures["ratio_p50"] = round(statistics.median(latencies) / max(statistics.median(raw), 1e-6), 1)
            figures["ratio_p99"] = round(percentile(latencies, 0.99) / max(percentile(raw, 0.99), 1e-6), 1)
            wait_idle(operator.pid)
            figures["operator_rss_mib_1k"] = round(rss_mib(operator.pid), 1)
            print(
                f"failure → Incident over {len(measured)} failures: p50 {figures['latency_p50_ms']} ms, "
                f"p99 {figures['latency_p99_ms']} ms, max {figures['latency_max_ms']} ms",
                flush=True,
            )
            print(
                f"raw watch delivery: p50 {figures['watch_p50_ms']} ms, p99 {figures['watch_p99_ms']} ms; "
                f"ratio p50 {figures['ratio_p50']}x, p99 {figures['ratio_p99']}x",
                flush=True,
            )
            print(f"operator RSS with {pods} pods: {figures['operator_rss_mib_1k']} MiB", flush=True)

            if not args.skip_10k:
                scaled = args.deployments * 200
                for index in range(args.deployments):
                    kubectl(env, "scale", "-n", NAMESPACE, f"deployment/svc-{index:02d}", "--replicas=200")
                took = wait_for(lambda: available_pods(api) >= scaled - args.deployments, 1800, f"{scaled} pods")
                print(f"{scaled} pods ready after {took:.1f} s", flush=True)
                settled = wait_idle(operator.pid)
                figures["operator_rss_mib_10k"] = round(rss_mib(operator.pid), 1)
                figures["operator_peak_rss_mib_10k"] = round(peak_rss_mib(operator.pid), 1)
                print(
                    f"operator RSS with {scaled} pods (idle again after {settled:.0f} s): "
                    f"{figures['operator_rss_mib_10k']} MiB, peak {figures['operator_peak_rss_mib_10k']} MiB",
                    flush=True,
                )
            if operator.poll() is not None:
                raise SystemExit(f"the operator exited ({operator.returncode}); its log: {home / 'operator.log'}")
        finally:
            shut_down(operator, home)
    record(RESULTS, figures)


if __name__ == "__main__":
    main()
