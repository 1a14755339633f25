"""Benchmark of GitOps (issue 7): fetch, render and diff of 1,000 manifests; apply of 100 objects; push → cluster.

Two phases, both against real git repositories (made with the git binary, served over git's smart HTTP
protocol on 127.0.0.1 by dulwich under wsgiref, in a thread of this process):

- **In process, no cluster.** A repository of 1,000 manifests (250 apps, each one file holding a
  ServiceAccount, a ConfigMap, a Service and a Deployment of realistic size) is fetched into an empty
  cache (`gitops.git.fetch`, cold), then, after a commit that changes 10 of the files, fetched again
  (warm: only the new objects travel). Each revision is read (`read_tree`) and rendered (`render`),
  and the two are diffed (`diff_sets`). "Cold" render is the first revision, "warm" the second; the warm
  render + diff is repeated and its worst time is held against the target. The process's peak RSS
  (VmHWM) is taken at the end of the phase.
- **With the sandbox and the operator.** `upkeep sandbox up --detach --admin`, the CRDs, and `upkeep run`
  as a process of its own (`--http` for the webhook server, `--git-cache`). A GitSource (interval 1h, a
  webhook key) and, once it has fetched, a Release over a path of 100 objects (25 Deployments, 25
  Services, 50 ConfigMaps): the time from creating the Release to the Release's status claiming the
  revision with all 100 objects in its inventory (the apply), and to `Ready=True`. Then, N times, one
  ConfigMap's value is changed in a commit and the signed webhook is posted; the time from sending the
  webhook to this process's ConfigMap watch seeing the new value is the push → cluster latency. The
  GitSource's new revision and the Release's claim of it are timed by watches too, to show where the
  time goes. The operator's RSS is taken after the applies.

Figures go to stdout and, as one JSON line, to bench/results/gitops.jsonl. Targets (issue 7): warm render
+ diff of 1,000 manifests < 2 s; a change in git applied < 2 s after the webhook (p99 here).

    .venv/bin/python bench/gitops.py [--changes 10] [--repeats 5] [--operator-log FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from wsgiref import simple_server

import dulwich.repo
import dulwich.server
import dulwich.web

from _common import REPO, Api, cpu_seconds, kubectl, peak_rss_mib, percentile, record, rss_mib, shut_down, wait_for
from upkeep.gitops import diff, git, render

RESULTS = REPO / "bench" / "results" / "gitops.jsonl"
NAMESPACE = "bench-gitops"
APPS = 250
"""Phase 1: apps of four objects each, one file per app: 1,000 manifests."""
CHANGED_FILES = 10
RELEASE_APPS = 25
"""Phase 2: apps of a Deployment, a Service and two ConfigMaps each: 100 objects."""
TARGET_S = 2.0
HOOK_KEY = "bench-hook-" + os.urandom(8).hex()


# Repositories


class Repo:
    """A work repository committed to by the git binary, away from the machine's git configuration."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {
            **os.environ,
            "HOME": str(path.parent),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")
        self.git("config", "gc.auto", "0")  # no background repacking while the server reads the repository

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=Upkeep Bench", "-c", "user.email=bench@upkeep.invalid", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def commit(self, files: Mapping[str, str], message: str) -> str:
        """Write ``files`` (path → text), commit them, and return the new commit's SHA."""
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")


class _Quiet(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the benchmark's output is its figures."""


@contextlib.contextmanager
def served(repos: Mapping[str, Path]) -> Iterator[str]:
    """Serve ``repos`` (name → path) over smart HTTP on 127.0.0.1; yields the base URL, ``http://127.0.0.1:PORT``."""
    opened = {f"/{name}": dulwich.repo.Repo(str(path)) for name, path in repos.items()}
    backend = dulwich.server.DictBackend(dict[str, dulwich.server.BackendRepo](opened))
    httpd = simple_server.make_server("127.0.0.1", 0, dulwich.web.make_wsgi_chain(backend), handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="git-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        for repository in opened.values():
            repository.close()


# Manifests: what a real application's files look like, not minimal objects, so parsing costs what it would.


def deployment_yaml(name: str, image: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: shop
    team: payments
  annotations:
    description: "The {name} service: answers the storefront's requests."
spec:
  replicas: 1
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 25%, maxUnavailable: 0}}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
        app.kubernetes.io/part-of: shop
    spec:
      serviceAccountName: {name}
      terminationGracePeriodSeconds: 30
      containers:
        - name: web
          image: {image}
          imagePullPolicy: IfNotPresent
          args: ["--config", "/etc/{name}/app.properties", "--port", "8080"]
          ports:
            - {{name: http, containerPort: 8080, protocol: TCP}}
            - {{name: metrics, containerPort: 9090, protocol: TCP}}
          env:
            - {{name: LOG_LEVEL, value: info}}
            - {{name: SERVICE_NAME, value: {name}}}
            - name: POD_NAME
              valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: "1", memory: 256Mi}}
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
            periodSeconds: 5
          livenessProbe:
            httpGet: {{path: /healthz, port: http}}
            initialDelaySeconds: 10
            periodSeconds: 10
          volumeMounts:
            - {{name: config, mountPath: /etc/{name}, readOnly: true}}
      volumes:
        - name: config
          configMap: {{name: {name}-config}}
"""


def service_yaml(name: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: shop
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: http
      port: 80
      targetPort: http
    - name: metrics
      port: 9090
      targetPort: metrics
"""


def configmap_yaml(name: str, value: str) -> str:
    settings = "\n".join(f"    {name}.option{index:02d}=value-{index:02d}" for index in range(20))
    return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels:
    app.kubernetes.io/part-of: shop
data:
  revision: "{value}"
  LOG_LEVEL: info
  FEATURE_FLAGS: "checkout-v2,search-suggest"
  app.properties: |
{settings}
"""


def serviceaccount_yaml(name: str) -> str:
    return f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: shop
automountServiceAccountToken: false
"""


def big_app(index: int, image: str, value: str) -> str:
    """Phase 1: one file, four objects."""
    name = f"app-{index:03d}"
    documents = [
        serviceaccount_yaml(name),
        configmap_yaml(f"{name}-config", value),
        service_yaml(name),
        deployment_yaml(name, image),
    ]
    return f"# {name}: generated for the benchmark\n" + "---\n".join(documents)


def release_app(index: int, values: Mapping[str, str]) -> str:
    """Phase 2: one file, a Deployment, a Service and two ConfigMaps (its own config and a second one)."""
    name = f"svc-{index:02d}"
    configs = [f"{name}-config", f"{name}-extra"]
    documents = [
        service_yaml(name),
        *(configmap_yaml(config, values.get(config, "0")) for config in configs),
        deployment_yaml(name, "nginx:1.27").replace(f"      serviceAccountName: {name}\n", ""),
    ]
    return "---\n".join(documents)


# Phase 1


def timed(work: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work(*args)
    return result, time.perf_counter() - started


def read_and_render(artifact: git.Artifact) -> tuple[render.Rendered, float, float]:
    tree, read_s = timed(git.read_tree, artifact, "apps")
    rendered, render_s = timed(render.render, tree, ".")
    if not rendered.ok or len(rendered.objects) != APPS * 4:
        problems = "; ".join(error.render() for error in rendered.errors[:3])
        raise SystemExit(f"render of {artifact.revision} gave {len(rendered.objects)} objects: {problems}")
    return rendered, read_s, render_s


def bodies(rendered: render.Rendered) -> dict[render.ObjectKey, Mapping[str, Any]]:
    return {key: item.body for key, item in rendered.objects.items()}


def in_process_phase(folder: Path, repeats: int, figures: dict[str, Any]) -> None:
    repo = Repo(folder / "big")
    first = {f"apps/app-{index:03d}.yaml": big_app(index, "nginx:1.27", "1") for index in range(APPS)}
    repo.commit(first, "1,000 manifests")
    size = sum(len(text) for text in first.values())
    cache = folder / "cache"
    ref = git.Ref("branch", "main")
    with served({"big": repo.path}) as base:
        url = f"{base}/big"
        cold, fetch_cold = timed(git.fetch, url, ref, cache)
        changed = {
            f"apps/app-{index:03d}.yaml": big_app(index, "nginx:1.28", "2")
            for index in range(0, APPS, APPS // CHANGED_FILES)
        }
        repo.commit(changed, f"{CHANGED_FILES} files changed")
        warm, fetch_warm = timed(lambda: git.fetch(url, ref, cache, previous_sha=cold.sha))
    old, read_cold, render_cold = read_and_render(cold)
    warm_totals: list[float] = []
    changes: list[diff.ObjectDiff] = []
    read_warm = render_warm = diff_s = 0.0
    for attempt in range(repeats):
        new, read_s, render_s = read_and_render(warm)
        changes, took = timed(diff.diff_sets, bodies(old), bodies(new))
        if attempt == 0:
            read_warm, render_warm, diff_s = read_s, render_s, took
        warm_totals.append(read_s + render_s + took)
    expected = len(changed) * 2  # the ConfigMap and the Deployment of each changed file
    if len(changes) != expected:
        raise SystemExit(f"the diff found {len(changes)} changed objects, not {expected}")
    worst = max(warm_totals)
    figures["manifests"] = APPS * 4
    figures["manifest_files"] = APPS
    figures["manifest_bytes"] = size
    figures["fetch_cold_ms"] = ms(fetch_cold)
    figures["fetch_warm_ms"] = ms(fetch_warm)
    figures["read_tree_cold_ms"] = ms(read_cold)
    figures["render_cold_ms"] = ms(render_cold)
    figures["read_tree_warm_ms"] = ms(read_warm)
    figures["render_warm_ms"] = ms(render_warm)
    figures["diff_ms"] = ms(diff_s)
    figures["diff_changed_objects"] = len(changes)
    figures["warm_render_diff_median_ms"] = ms(statistics.median(warm_totals))
    figures["warm_render_diff_max_ms"] = ms(worst)
    figures["warm_render_diff_repeats"] = repeats
    figures["warm_render_diff_target_met"] = worst < TARGET_S
    figures["phase1_peak_rss_mib"] = round(peak_rss_mib(os.getpid()), 1)
    print(f"repository: {APPS * 4} manifests in {APPS} files, {size / 1024:.0f} KiB", flush=True)
    print(f"fetch cold (empty cache): {ms(fetch_cold)} ms", flush=True)
    print(f"fetch warm (a commit changing {CHANGED_FILES} files): {ms(fetch_warm)} ms", flush=True)
    print(f"read_tree + render cold: {ms(read_cold)} + {ms(render_cold)} ms", flush=True)
    print(f"read_tree + render warm: {ms(read_warm)} + {ms(render_warm)} ms", flush=True)
    print(f"diff_sets of the two revisions: {ms(diff_s)} ms ({len(changes)} objects changed)", flush=True)
    print(
        f"warm read + render + diff over {repeats} runs: median {figures['warm_render_diff_median_ms']} ms, "
        f"max {ms(worst)} ms (target < {TARGET_S * 1000:.0f} ms: {met(worst < TARGET_S)})",
        flush=True,
    )
    print(f"peak RSS of this process after phase 1: {figures['phase1_peak_rss_mib']} MiB", flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def met(yes: bool) -> str:
    return "target met" if yes else "NOT met"


# Phase 2


class Seen:
    """First arrival (this process's monotonic clock) of each thing the watches look for, by key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first: dict[str, float] = {}

    def mark(self, key: str, arrival: float) -> None:
        with self.lock:
            self.first.setdefault(key, arrival)

    def get(self, key: str) -> float | None:
        with self.lock:
            return self.first.get(key)

    def wait(self, key: str, timeout: float, what: str) -> float:
        """The arrival of ``key``, once it has arrived; exit naming ``what`` after ``timeout`` seconds."""
        wait_for(lambda: self.get(key) is not None, timeout, what, 0.02)
        return self.get(key) or 0.0


def watch_phase2(api: Api, seen: Seen, stop: threading.Event) -> None:
    """ConfigMap values, the GitSource's revisions and the Release's claims and readiness, as they arrive."""

    def configmap(event: dict[str, Any], arrival: float) -> None:
        body = event.get("object") or {}
        value = (body.get("data") or {}).get("revision")
        if event.get("type") in ("ADDED", "MODIFIED") and value:
            seen.mark(f"cm/{body['metadata']['name']}={value}", arrival)

    def gitsource(event: dict[str, Any], arrival: float) -> None:
        revision = (((event.get("object") or {}).get("status") or {}).get("artifact") or {}).get("revision")
        if revision:
            seen.mark(f"source={revision}", arrival)

    def release(event: dict[str, Any], arrival: float) -> None:
        status = (event.get("object") or {}).get("status") or {}
        revision = status.get("revision")
        if not revision:
            return
        seen.mark(f"release={revision}/{len(status.get('inventory') or [])}", arrival)
        conditions = status.get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            seen.mark(f"ready={revision}", arrival)

    api.watch(f"/api/v1/namespaces/{NAMESPACE}/configmaps", configmap, stop)
    api.watch(f"/apis/upkeep.dev/v1alpha1/namespaces/{NAMESPACE}/gitsources", gitsource, stop)
    api.watch(f"/apis/upkeep.dev/v1alpha1/namespaces/{NAMESPACE}/releases", release, stop)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def post_webhook(url: str, sha: str) -> int:
    body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
    signature = "sha256=" + hmac.new(HOOK_KEY.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


def cluster_phase(
    folder: Path,
    changes: int,
    figures: dict[str, Any],
    operator_log: Path | None,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """Everything with the sandbox; the operator goes into ``started`` at once, for the caller's shut_down."""
    upkeep = [sys.executable, "-m", "upkeep.cli"]
    home = folder / "sandbox"
    subprocess.run(
        [*upkeep, "sandbox", "up", "--detach", "--admin", "--home", str(home)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    run = json.loads((home / "run.json").read_text())
    env = {**os.environ, "KUBECONFIG": run["kubeconfig"]}
    api = Api(run["url"], run["token"])
    kubectl(env, "apply", "-f", str(REPO / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kubectl(env, "create", "namespace", NAMESPACE)
    api.request(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook", "namespace": NAMESPACE},
            "stringData": {"token": HOOK_KEY},
        },
    )
    values: dict[str, str] = {}
    repo = Repo(folder / "release-repo")
    repo.commit({f"app/svc-{index:02d}.yaml": release_app(index, values) for index in range(RELEASE_APPS)}, "100")
    port = free_port()
    log = (operator_log or folder / "operator.log").open("w")
    operator = subprocess.Popen(
        [
            *upkeep,
            "run",
            "-n",
            NAMESPACE,
            "--standalone",
            "--liveness",
            "none",
            "--http",
            f"127.0.0.1:{port}",
            "--git-cache",
            str(folder / "operator-cache"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started.append(operator)
    with served({"app": repo.path}) as base:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 60, "the operator's HTTP server", 0.1)
        seen, stop = Seen(), threading.Event()
        watch_phase2(api, seen, stop)
        source = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "app", "namespace": NAMESPACE},
            "spec": {
                "url": f"{base}/app",
                "ref": {"branch": "main"},
                "interval": "1h",
                "timeout": "30s",
                "webhook": {"secretRef": {"name": "hook"}},
            },
        }
        api.request("POST", f"/apis/upkeep.dev/v1alpha1/namespaces/{NAMESPACE}/gitsources", source)
        revision = f"main@sha1:{repo.git('rev-parse', 'HEAD')}"
        seen.wait(f"source={revision}", 60, "the GitSource's first fetch")
        hook_path = api.request("GET", f"/apis/upkeep.dev/v1alpha1/namespaces/{NAMESPACE}/gitsources/app")["status"][
            "webhookPath"
        ]
        hook_url = f"http://127.0.0.1:{port}{hook_path}"
        objects = RELEASE_APPS * 4
        release = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "app", "namespace": NAMESPACE},
            "spec": {"sourceRef": {"name": "app"}, "path": "./app", "interval": "1h", "timeout": "5m"},
        }
        created = time.monotonic()
        api.request("POST", f"/apis/upkeep.dev/v1alpha1/namespaces/{NAMESPACE}/releases", release)
        applied_key = f"release={revision}/{objects}"
        applied = seen.wait(applied_key, 120, f"the Release applying {objects} objects") - created
        ready = seen.wait(f"ready={revision}", 180, "the Release Ready") - created
        figures["release_objects"] = objects
        figures["release_apply_ms"] = ms(applied)
        figures["release_ready_ms"] = ms(ready)
        figures["operator_rss_after_apply_mib"] = round(rss_mib(operator.pid), 1)
        print(
            f"Release created → {objects} objects applied (status.revision + inventory): {ms(applied)} ms", flush=True
        )
        print(f"Release created → Ready=True (every Deployment rolled out): {ms(ready)} ms", flush=True)

        latencies: list[float] = []
        to_source: list[float] = []
        to_release: list[float] = []
        cpu_before = cpu_seconds(operator.pid)
        for change in range(changes):
            index = change % RELEASE_APPS
            config = f"svc-{index:02d}-config"
            value = f"change-{change + 1}"
            values[config] = value
            sha = repo.commit({f"app/svc-{index:02d}.yaml": release_app(index, values)}, f"{config}: {value}")
            revision = f"main@sha1:{sha}"
            sent = time.monotonic()
            code = post_webhook(hook_url, sha)
            if code != 202:
                raise SystemExit(f"the webhook answered {code}, not 202")
            live = seen.wait(f"cm/{config}={value}", 30, f"ConfigMap {config} = {value}")
            claimed = seen.wait(f"release={revision}/{objects}", 30, f"the Release at {sha[:7]}")
            fetched = seen.wait(f"source={revision}", 30, f"the GitSource at {sha[:7]}")
            latencies.append(live - sent)
            to_source.append(fetched - sent)
            to_release.append(claimed - sent)
        stop.set()
        push_cpu = cpu_seconds(operator.pid) - cpu_before
    if operator.poll() is not None:
        raise SystemExit(f"the operator exited ({operator.returncode}); see its log")
    p99 = percentile(latencies, 0.99)
    figures["push_changes"] = changes
    figures["push_p50_ms"] = ms(statistics.median(latencies))
    figures["push_p99_ms"] = ms(p99)
    figures["push_max_ms"] = ms(max(latencies))
    figures["push_to_gitsource_p50_ms"] = ms(statistics.median(to_source))
    figures["push_to_release_status_p50_ms"] = ms(statistics.median(to_release))
    figures["push_operator_cpu_s"] = round(push_cpu, 2)
    figures["push_target_met"] = p99 < TARGET_S
    figures["operator_rss_mib"] = round(rss_mib(operator.pid), 1)
    figures["operator_peak_rss_mib"] = round(peak_rss_mib(operator.pid), 1)
    print(
        f"webhook → live ConfigMap over {changes} pushes: p50 {figures['push_p50_ms']} ms, p99 {ms(p99)} ms, "
        f"max {figures['push_max_ms']} ms (target < {TARGET_S * 1000:.0f} ms: {met(p99 < TARGET_S)})",
        flush=True,
    )
    print(
        f"  of which webhook → GitSource revision: p50 {figures['push_to_gitsource_p50_ms']} ms; "
        f"webhook → Release status: p50 {figures['push_to_release_status_p50_ms']} ms; "
        f"operator CPU over the pushes: {push_cpu:.2f} s",
        flush=True,
    )
    print(
        f"operator RSS after the applies: {figures['operator_rss_mib']} MiB "
        f"(after the first apply {figures['operator_rss_after_apply_mib']} MiB, "
        f"peak {figures['operator_peak_rss_mib']} MiB)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=10, help="pushes timed webhook → cluster (default: 10)")
    parser.add_argument("--repeats", type=int, default=5, help="warm render + diff runs (default: 5)")
    parser.add_argument("--operator-log", type=Path, default=None, help="keep the operator's log in this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {"benchmark": "gitops"}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        in_process_phase(folder, max(1, args.repeats), figures)
        started: list[subprocess.Popen[bytes]] = []
        try:
            cluster_phase(folder, max(1, args.changes), figures, args.operator_log, started)
        finally:
            shut_down(started[0] if started else None, folder / "sandbox")
    record(RESULTS, figures)


if __name__ == "__main__":
    main()
