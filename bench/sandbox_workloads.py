"""Benchmark of the simulated cluster: a scale-up to 1,000 pods, idle CPU, RSS at 1,000 and 10,000 pods.

Starts `upkeep sandbox up --detach` (default, real-time settings; 20 nodes of 110 pods, and 100 nodes
for the 10,000-pod step), scales a Deployment with kubectl and measures, from this process:
- seconds from `kubectl scale` to 1,000 available replicas;
- the sandbox process's CPU over 20 s of idling with 1,000 running pods (share of one core);
- the sandbox process's RSS with 1,000 and with 10,000 pods.
Figures go to stdout and, as one JSON line, to bench/results/sandbox_workloads.jsonl. Targets (issue 4):
idle CPU < 10 % of one core with 1,000 pods.

    .venv/bin/python bench/sandbox_workloads.py [--skip-10k]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "sandbox_workloads.jsonl"
KUBECTL = str(Path(sys.executable).parent / "kubectl")


def kubectl(env: dict[str, str], *args: str) -> str:
    return subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, check=True, timeout=1800).stdout


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def available(env: dict[str, str]) -> int:
    """Available replicas, or -1 while the sandbox is too busy to answer (kubectl's 10 s TLS handshake)."""
    try:
        found = json.loads(kubectl(env, "get", "deployment", "bench", "-o", "json", "--request-timeout=60s"))
    except subprocess.CalledProcessError as error:
        print(f"  (kubectl: {error.stderr.strip()[:120]})", flush=True)
        return -1
    return int(found.get("status", {}).get("availableReplicas") or 0)


def wait_available(env: dict[str, str], replicas: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if available(env) >= replicas:
            return time.monotonic() - started
        time.sleep(2.0)
    raise SystemExit(f"{replicas} replicas were not available within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-10k", action="store_true", help="skip the 10,000-pod step (it takes minutes)")
    args = parser.parse_args()
    figures: dict[str, object] = {"benchmark": "sandbox_workloads"}
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        upkeep = [sys.executable, "-m", "upkeep.cli", "sandbox"]
        nodes = "20" if args.skip_10k else "100"
        subprocess.run(
            [*upkeep, "up", "--detach", "--home", str(home), "--nodes", nodes],
            check=True,
            capture_output=True,
            timeout=120,
        )
        pid = int(json.loads((home / "run.json").read_text())["pid"])
        env = {**os.environ, "KUBECONFIG": str(home / "kubeconfig")}
        try:
            kubectl(env, "create", "deployment", "bench", "--image=nginx:1.27", "--replicas=1")
            wait_available(env, 1, 120)
            started = time.monotonic()
            kubectl(env, "scale", "deployment", "bench", "--replicas=1000")
            wait_available(env, 1000, 1200)
            figures["scale_to_1000_seconds"] = round(time.monotonic() - started, 1)
            time.sleep(5)  # let the last writes settle before measuring idle
            before, clock = cpu_seconds(pid), time.monotonic()
            time.sleep(20)
            figures["idle_cpu_share_of_one_core_1000_pods"] = round(
                (cpu_seconds(pid) - before) / (time.monotonic() - clock), 4
            )
            figures["rss_mib_1000_pods"] = round(rss_mib(pid), 1)
            if not args.skip_10k:
                started = time.monotonic()
                kubectl(env, "scale", "deployment", "bench", "--replicas=10000")
                wait_available(env, 10000, 3000)
                figures["scale_to_10000_seconds"] = round(time.monotonic() - started, 1)
                figures["rss_mib_10000_pods"] = round(rss_mib(pid), 1)
        finally:
            subprocess.run([*upkeep, "down", "--home", str(home)], capture_output=True, timeout=120, check=False)
    figures.update(
        python=platform.python_version(), cpus=os.cpu_count(), at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    print("sandbox workloads: " + ", ".join(f"{k}={v}" for k, v in figures.items() if k != "benchmark"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
