"""Integration fixtures: one cluster per session (the sandbox, or $KUBECONFIG), real kubectl.

With KUBECONFIG set in the environment the suite runs against that cluster; without it, a
sandbox starts on a thread of the test process, bound to 127.0.0.1, and stops at the end.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cluster import ALICE_TOKEN, Cluster
from support.webhooks import WebhookReceiver, webhook_receiver


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    configured = os.environ.get("KUBECONFIG")
    if configured:
        yield Cluster(Path(configured))
        return
    from upkeep.sandbox import runner

    folder = tmp_path_factory.mktemp("sandbox")
    kubeconfig = folder / "kubeconfig"
    tokens = folder / "tokens.csv"
    tokens.write_text(f"{ALICE_TOKEN},alice,alice-uid\n", encoding="utf-8")
    with runner.ThreadedSandbox(kubeconfig=kubeconfig, bookmark_interval=1.0, admin=True, token_file=tokens) as sandbox:
        yield Cluster(kubeconfig, sandbox)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1 that records every POST, for one test."""
    with webhook_receiver() as serving:
        yield serving
