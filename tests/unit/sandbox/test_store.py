"""The store: one resourceVersion, watch history with compaction, SQLite persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from upkeep.sandbox.store import Gone, Store


def obj(name: str, rv: int, namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv)}}


def test_list_is_sorted_and_filtered_by_namespace() -> None:
    store = Store()
    for name, namespace in (("b", "x"), ("a", "y"), ("c", "x")):
        store.put("/configmaps", obj(name, store.next_rv(), namespace), "ADDED")
    assert [o["metadata"]["name"] for o in store.objects("/configmaps")] == ["b", "c", "a"]
    assert [o["metadata"]["name"] for o in store.objects("/configmaps", "x")] == ["b", "c"]


def test_subscription_backlog_and_gone() -> None:
    async def run() -> None:
        store = Store(history=3)
        for number in range(5):
            store.put("/configmaps", obj(f"c{number}", store.next_rv()), "ADDED")
        subscription, backlog = store.subscribe("/configmaps", None, 3)
        assert [event.rv for event in backlog] == [4, 5]
        with pytest.raises(Gone):
            store.subscribe("/configmaps", None, 1)
        store.put("/configmaps", obj("late", store.next_rv()), "ADDED")
        event = await asyncio.wait_for(subscription.queue.get(), 1)
        assert event is not None and event.obj["metadata"]["name"] == "late"
        store.compact()
        with pytest.raises(Gone):
            store.subscribe("/configmaps", None, 5)

    asyncio.run(run())


def test_state_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put("/configmaps", obj("kept", store.next_rv()), "ADDED")
    gone = obj("gone", store.next_rv())
    store.put("/configmaps", gone, "ADDED")
    store.remove("/configmaps", {**gone, "metadata": {**gone["metadata"], "resourceVersion": str(store.next_rv())}})
    store.close()
    again = Store(tmp_path)
    assert [o["metadata"]["name"] for o in again.objects("/configmaps")] == ["kept"]
    assert again.rv == 3
    assert again.next_rv() == 4
