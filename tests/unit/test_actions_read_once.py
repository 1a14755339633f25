"""actions.base.ReadOnce: what describe read is given to run once, then reads are fresh; writes pass through."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from upkeep.actions import base, deployments, registry


class Counting:
    """An ActionCluster that answers every read with a new version and counts the requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", kind, name))
        return {"metadata": {"name": name, "resourceVersion": str(len(self.calls))}}

    async def list(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        self.calls.append(("list", kind, label_selector))
        return [{"metadata": {"resourceVersion": str(len(self.calls))}}]

    async def create(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.calls.append(("create",))
        return dict(body)

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        self.calls.append(("patch", kind, name))
        return dict(patch)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None, dry_run: bool = False
    ) -> bool:
        self.calls.append(("delete", kind, name))
        return True

    async def evict(
        self, namespace: str, name: str, *, dry_run: bool = False, grace_period_seconds: int | None = None
    ) -> bool:
        self.calls.append(("evict", name))
        return True


def test_kept_reads_are_given_once_after_the_hand_over_and_writes_pass_through() -> None:
    async def scenario() -> None:
        inner = Counting()
        reads = base.ReadOnce(inner)
        described = await reads.get("apps/v1", "Deployment", "shop", "web")
        listed = await reads.list("apps/v1", "ReplicaSet", "shop", label_selector="app=web")
        assert len(inner.calls) == 2
        reads.hand_over()
        assert await reads.get("apps/v1", "Deployment", "shop", "web") is described  # no request
        assert await reads.list("apps/v1", "ReplicaSet", "shop", label_selector="app=web") is listed
        assert len(inner.calls) == 2
        again = await reads.get("apps/v1", "Deployment", "shop", "web")  # a retry after a 409: read afresh
        assert again is not None and again != described and len(inner.calls) == 3
        await reads.list("apps/v1", "ReplicaSet", "shop", label_selector="app=other")  # never kept: read
        await reads.patch("apps/v1", "Deployment", "shop", "web", {"spec": {}})
        await reads.delete("v1", "Pod", "shop", "p")
        await reads.evict("shop", "p")
        await reads.create({"kind": "Job"})
        assert [call[0] for call in inner.calls[3:]] == ["list", "patch", "delete", "evict", "create"]

    asyncio.run(scenario())


def test_only_actions_whose_change_is_guarded_by_what_they_read_take_the_kept_reads() -> None:
    takers = {name for name, action in registry.ACTIONS.items() if getattr(action, "reuses_described_reads", False)}
    assert takers == {deployments.RollbackDeployment.name}
