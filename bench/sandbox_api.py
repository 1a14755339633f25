"""Benchmark of the sandbox API server: writes/s, gets/s, list of 10,000 pods, watch latency, RSS.

Starts a sandbox in its own process (as `upkeep sandbox up --detach` does), loads it over HTTPS
from this process with aiohttp, and prints the figures; one JSON line goes to
bench/results/sandbox_api.jsonl. Targets (issue 3, 2 cores): >= 1,000 writes/s, watch p99 < 50 ms
with 50 watchers, list of 10,000 pods < 300 ms, RSS < 300 MB at 10,000 pods.

    .venv/bin/python bench/sandbox_api.py [--pods 10000] [--writes 2000] [--watchers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "sandbox_api.jsonl"


def start_sandbox(home: Path) -> tuple[str, str, ssl.SSLContext, int]:
    done = subprocess.run(
        [sys.executable, "-m", "upkeep.cli", "sandbox", "up", "--detach", "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    del done
    run = json.loads((home / "run.json").read_text())
    config = yaml.safe_load(Path(run["kubeconfig"]).read_text())
    import base64

    context = ssl.create_default_context(
        cadata=base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    )
    return run["url"], run["token"], context, int(run["pid"])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def gather_limited(count: int, concurrency: int, make: Any) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(count):
        queue.put_nowait(number)

    async def worker() -> None:
        while not queue.empty():
            await make(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args: argparse.Namespace, url: str, token: str, context: ssl.SSLContext, pid: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(ssl=context, limit=64)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        for name in ("bench", "pods"):
            async with session.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": name}}) as answer:
                assert answer.status == 201, await answer.text()
        base = f"{url}/api/v1/namespaces/bench/configmaps"

        async def create(number: int) -> None:
            async with session.post(base, json={"metadata": {"name": f"cm-{number}"}, "data": {"n": str(number)}}) as a:
                assert a.status == 201, await a.text()

        started = time.perf_counter()
        await gather_limited(args.writes, 16, create)
        writes_per_second = args.writes / (time.perf_counter() - started)

        async def get(number: int) -> None:
            async with session.get(f"{base}/cm-{number}") as answer:
                assert answer.status == 200
                await answer.read()

        started = time.perf_counter()
        await gather_limited(args.writes, 16, get)
        gets_per_second = args.writes / (time.perf_counter() - started)

        latencies: list[float] = []
        sent: dict[str, float] = {}
        watch_url = f"{url}/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion="
        async with session.get(f"{base}?limit=1") as answer:
            rv = (await answer.json())["metadata"]["resourceVersion"]
        ready = asyncio.Event()
        opened = 0
        events_wanted = 100

        async def watcher() -> None:
            nonlocal opened
            seen = 0
            async with session.get(watch_url + rv, timeout=aiohttp.ClientTimeout(total=120)) as answer:
                opened += 1
                if opened == args.watchers:
                    ready.set()
                async for line in answer.content:
                    event = json.loads(line)
                    name = event["object"]["metadata"]["name"]
                    if name in sent:
                        latencies.append(time.perf_counter() - sent[name])
                        seen += 1
                        if seen == events_wanted:
                            return

        watchers = [asyncio.create_task(watcher()) for _ in range(args.watchers)]
        await asyncio.wait_for(ready.wait(), 30)
        for number in range(events_wanted):
            name = f"watched-{number}"
            sent[name] = time.perf_counter()
            async with session.post(base, json={"metadata": {"name": name}}) as answer:
                assert answer.status == 201
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*watchers), 120)

        pods = f"{url}/api/v1/namespaces/pods/pods"

        async def create_pod(number: int) -> None:
            body = {
                "metadata": {"name": f"pod-{number:05d}", "labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
            }
            async with session.post(pods, json=body) as answer:
                assert answer.status == 201, await answer.text()

        await gather_limited(args.pods, 16, create_pod)
        list_times = []
        for _ in range(5):
            started = time.perf_counter()
            async with session.get(pods) as answer:
                raw = await answer.read()
            list_times.append(time.perf_counter() - started)
            assert len(json.loads(raw)["items"]) == args.pods  # parsing is the client's cost, not timed
        return {
            "writes_per_second": round(writes_per_second, 1),
            "gets_per_second": round(gets_per_second, 1),
            "watch_latency_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "watch_latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "watchers": args.watchers,
            "pods": args.pods,
            "list_pods_ms": round(statistics.median(list_times) * 1000, 1),
            "server_rss_mib": round(rss_mib(pid), 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=2_000)
    parser.add_argument("--watchers", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url, token, context, pid = start_sandbox(home)
        try:
            figures = asyncio.run(run(args, url, token, context, pid))
        finally:
            subprocess.run(
                [sys.executable, "-m", "upkeep.cli", "sandbox", "down", "--home", str(home)],
                capture_output=True,
                check=False,
                timeout=60,
            )
    figures.update(
        benchmark="sandbox_api",
        python=platform.python_version(),
        cpus=os.cpu_count(),
        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    print(
        f"sandbox API: {figures['writes_per_second']} writes/s, {figures['gets_per_second']} gets/s, "
        f"watch latency p50 {figures['watch_latency_p50_ms']} ms / p99 {figures['watch_latency_p99_ms']} ms "
        f"({figures['watchers']} watchers), list of {figures['pods']} pods {figures['list_pods_ms']} ms, "
        f"server RSS {figures['server_rss_mib']} MiB"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
