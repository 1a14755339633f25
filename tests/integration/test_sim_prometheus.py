"""A real Prometheus scrapes the sandbox's metrics and answers the PromQL an analysis gate asks.

The sandbox runs a Deployment of an image whose catalog profile serves a known share of errors;
Prometheus (the Debian package's /usr/bin/prometheus, on 127.0.0.1) scrapes the sandbox's metrics
port every second, and the error ratio of that Deployment over the last 15 s, asked through the
HTTP API, must be the profile's.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

PROMETHEUS = Path("/usr/bin/prometheus")
IMAGE = "ghcr.io/upkeep-dev/shop:1.5-errors"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    kubeconfig = tmp_path_factory.mktemp("sim-prometheus") / "kubeconfig"
    settings = SimulationSettings.fast(metrics_interval=0.25)
    with runner.ThreadedSandbox(kubeconfig=kubeconfig, admin=True, simulation=settings, metrics=True) as sandbox:
        yield Cluster(kubeconfig, sandbox)


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Prometheus scraping the sandbox's metrics port every second."""
    binary = shutil.which("prometheus") if not PROMETHEUS.exists() else str(PROMETHEUS)
    if binary is None:
        pytest.skip(
            "the Prometheus binary is not installed: /usr/bin/prometheus comes with the Debian package "
            "prometheus (apt-get install -y prometheus)"
        )
    target = urllib.parse.urlsplit(cluster.sandbox.metrics_url)
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "upkeep-sandbox",
                        "metrics_path": target.path,
                        "static_configs": [{"targets": [target.netloc]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    log = (folder / "prometheus.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert process.poll() is None, (folder / "prometheus.log").read_text(encoding="utf-8")[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        eventually(up, timeout=20, interval=0.2, message="Prometheus ready")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout=5) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def test_an_error_ratio_query_answers_the_images_share_of_errors(cluster: Cluster, prometheus: str) -> None:
    from upkeep.sandbox.simulation import images, metrics

    namespace = f"prom-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("create", "deployment", "shop", f"--image={IMAGE}", "--replicas=2", "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/shop", "-n", namespace, "--timeout=30s", timeout=40)
    profile = images.app_metrics_profile(IMAGE) or metrics.DEFAULT_PROFILE
    expected = float(profile["errorRatio"])
    assert expected > 0, "the test needs an image that serves errors"
    selector = f'namespace="{namespace}",deployment="shop"'
    ratio = (
        f'sum(rate(http_requests_total{{{selector},code=~"5.."}}[15s]))'
        f" / sum(rate(http_requests_total{{{selector}}}[15s]))"
    )

    def answered() -> float | None:
        found = scalar(prometheus, ratio)
        return found if found is not None and not math.isnan(found) else None  # NaN until traffic is seen

    found = eventually(answered, timeout=30, interval=0.5, message="an error ratio from Prometheus")
    assert expected * 0.75 <= found <= expected * 1.25, f"error ratio {found}, the image's profile says {expected}"
    served = 2 * float(profile["requestsPerSecond"])  # two replicas

    def full_rate() -> float | None:
        # rate() underestimates until its window holds a few scrapes: wait for the window to fill
        found = scalar(prometheus, f"sum(rate(http_requests_total{{{selector}}}[5s]))")
        return found if found is not None and found >= served * 0.7 else None

    rate = eventually(full_rate, timeout=20, interval=0.5, message="the request rate of two replicas")
    assert rate == pytest.approx(served, rel=0.3)
    latency = scalar(
        prometheus,
        f"histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{{selector}}}[15s])))",
    )
    assert latency is not None and 0 < latency < 5
    available = eventually(
        lambda: scalar(
            prometheus, f'kube_deployment_status_replicas_available{{namespace="{namespace}",deployment="shop"}}'
        ),
        message="kube_deployment_status_replicas_available scraped",
    )
    assert available == 2
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
