"""In-memory fakes of the operator's cluster seams, for unit tests of pure controller logic (never integration)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from upkeep.controllers import cluster as cluster_

__all__ = ["FakeIncidentCluster"]


class FakeIncidentCluster:
    """An in-memory ``Cluster`` that keeps resourceVersions as the API server does."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 100
        self.dry_runs: list[dict[str, Any]] = []
        self.listed: dict[str, list[dict[str, Any]]] = {}
        self.selectors: list[tuple[str, str, str]] = []
        self.before_write: Callable[[dict[str, Any]], None] | None = None

    def _bump(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(body)

    async def list_incidents(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(body)
            for (where, _), body in self.objects.items()
            if where == namespace and all(body["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
        ]

    async def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_incident(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.objects:
            raise cluster_.Conflict("exists")
        if dry_run:
            self.dry_runs.append(copy.deepcopy(dict(body)))
            return copy.deepcopy(dict(body))
        stored = copy.deepcopy(dict(body))
        stored["metadata"].update(
            {"generation": 1, "uid": f"uid-{key[1]}", "creationTimestamp": "2025-03-01T12:00:00Z"}
        )
        self.objects[key] = stored
        return self._bump(stored)

    async def replace_incident_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(self.objects[key])
        stored = self.objects[key]
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise cluster_.Conflict("stale")
        stored["status"] = copy.deepcopy(body["status"])
        return self._bump(stored)

    async def patch_incident_labels(self, namespace: str, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        stored = self.objects[(namespace, name)]
        stored["metadata"].setdefault("labels", {}).update(labels)
        return self._bump(stored)

    async def list_objects(
        self, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        self.selectors.append((kind, label_selector, field_selector))
        return copy.deepcopy(self.listed.get(kind, []))

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as a person's kubectl would: a new generation when the spec changes."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        old = self.objects.get(key)
        stored = copy.deepcopy(body)
        generation = old["metadata"].get("generation", 1) if old else 1
        if old is not None and old.get("spec") != stored.get("spec"):
            generation += 1
        stored["metadata"]["generation"] = generation
        self.objects[key] = stored
        return self._bump(stored)

    def incidents(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(body) for body in self.objects.values()]
