"""The frame every simulated component runs in: a work queue fed by watches, and a way to write.

A ``Controller`` names the resources it watches; each change puts a key on its queue (deduplicated),
and ``reconcile(key)`` brings the world a step closer to what that key's object wants. It may ask
to be called again after a delay. Controllers write through ``Context`` (the API server's
semantics, a field manager of their own) and post Events through ``Context.event``. Nothing here
sleeps in a loop: waiting is the queue's delayed re-add, driven by the event loop's timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from upkeep.sandbox import apiserver, kinds, status
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Event, Store, Subscription

__all__ = ["Context", "ControlPlane", "Controller", "Key", "now_text"]

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]
"""(storage resource key, namespace, name), e.g. ("apps/deployments", "shop", "web")."""


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_of(resource: str, obj: Mapping[str, Any]) -> Key:
    metadata = obj["metadata"]
    return (resource, str(metadata.get("namespace") or ""), str(metadata["name"]))


@dataclass
class Context:
    """What a controller may use: the API semantics, the store to read, the settings, a clock, Events."""

    api: apiserver.ApiServer
    store: Store
    settings: SimulationSettings
    data: dict[str, Any] = field(default_factory=dict)
    """State shared between components (e.g. the fault table, simulated metrics)."""

    def rtype(self, group: str, plural: str) -> kinds.ResourceType:
        for candidate in self.api.served_types():
            if candidate.group == group and candidate.plural == plural and candidate.storage:
                return candidate
        raise KeyError(f"{group}/{plural} is not served")

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(resource, namespace, name)

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.objects(resource, namespace)

    def _type_of(self, resource: str) -> kinds.ResourceType:
        group, _, plural = resource.partition("/")
        return self.rtype(group, plural)

    def create(self, resource: str, namespace: str, body: dict[str, Any], manager: str) -> dict[str, Any] | None:
        """Create an object; None when it exists already (a controller's create races its own watch)."""
        try:
            return self.api.create(
                self._type_of(resource), namespace, body, apiserver.Request(field_manager=manager)
            ).obj
        except status.ApiError as error:
            if error.code == 409:
                return None
            raise

    def update(
        self, resource: str, obj: dict[str, Any], manager: str, *, subresource: str = ""
    ) -> dict[str, Any] | None:
        """Replace an object (optimistic: None on a conflict, the next reconcile sees the new version)."""
        metadata = obj["metadata"]
        try:
            return self.api.update(
                self._type_of(resource),
                str(metadata.get("namespace") or ""),
                str(metadata["name"]),
                obj,
                apiserver.Request(field_manager=manager),
                subresource=subresource,
            ).obj
        except status.ApiError as error:
            if error.code in (404, 409):
                return None
            raise

    def patch(
        self, resource: str, namespace: str, name: str, patch: dict[str, Any], manager: str, *, subresource: str = ""
    ) -> dict[str, Any] | None:
        """A JSON merge patch; None when the object is gone."""
        try:
            return self.api.patch(
                self._type_of(resource),
                namespace,
                name,
                "application/merge-patch+json",
                patch,
                apiserver.Request(field_manager=manager),
                subresource=subresource,
            ).obj
        except status.ApiError as error:
            if error.code == 404:
                return None
            raise

    def delete(self, resource: str, namespace: str, name: str, *, policy: str = "Background") -> bool:
        try:
            self.api.delete(
                self._type_of(resource), namespace, name, {"propagationPolicy": policy}, apiserver.Request()
            )
            return True
        except status.ApiError as error:
            if error.code == 404:
                return False
            raise

    def event(
        self, obj: Mapping[str, Any], event_type: str, reason: str, message: str, component: str, *, host: str = ""
    ) -> None:
        """Post an Event as a real component does: a repeat of the same one raises its count."""
        metadata = obj["metadata"]
        namespace = str(metadata.get("namespace") or "default")
        involved = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": metadata["name"],
            "namespace": namespace if metadata.get("namespace") else "",
            "uid": metadata.get("uid", ""),
            "resourceVersion": metadata.get("resourceVersion", ""),
        }
        if obj.get("kind") == "Pod" and reason in _CONTAINER_REASONS and obj.get("spec", {}).get("containers"):
            involved["fieldPath"] = f"spec.containers{{{obj['spec']['containers'][0]['name']}}}"
        series_key = (namespace, involved["kind"], involved["name"], reason, message)
        counts: dict[Any, str] = self.data.setdefault("event-names", {})
        moment = now_text()
        existing_name = counts.get(series_key)
        if existing_name is not None:
            existing = self.store.get("/events", namespace, existing_name)
            if existing is not None:
                updated = copy.deepcopy(existing)
                updated["count"] = int(existing.get("count", 1)) + 1
                updated["lastTimestamp"] = moment
                self.update("/events", updated, component)
                return
        source = {"component": component}
        if host:
            source["host"] = host
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            # As client-go's event recorder names them: the object's name and the time in hex nanoseconds.
            "metadata": {"name": f"{metadata['name']}.{time.time_ns():x}"},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason,
            "message": message,
            "type": event_type,
            "count": 1,
            "firstTimestamp": moment,
            "lastTimestamp": moment,
            "source": source,
            "reportingComponent": component,
            "reportingInstance": host or component,
        }
        created = self.create("/events", namespace, body, component)
        if created is not None:
            counts[series_key] = created["metadata"]["name"]


_CONTAINER_REASONS = frozenset(
    {
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "Killing",
        "BackOff",
        "Failed",
        "Unhealthy",
        "ErrImagePull",
        "ImagePullBackOff",
    }
)


class Controller:
    """A component with a deduplicating work queue fed by watches of ``watches``."""

    name = "controller"
    """Field manager and Event source of the component."""
    watches: tuple[str, ...] = ()
    """Storage keys of the resources whose changes enqueue keys (``map_event`` decides which)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # what to do

    def map_event(self, event: Event) -> Iterable[Key]:
        """The keys to reconcile after ``event``; by default the object's own key."""
        return [key_of(event.resource, event.obj)]

    def initial_keys(self) -> Iterable[Key]:
        """Keys to reconcile at start; by default every object of the first watched resource."""
        if not self.watches:
            return []
        return [key_of(self.watches[0], obj) for obj in self.ctx.list(self.watches[0])]

    async def reconcile(self, key: Key) -> float | None:
        """Bring ``key`` a step closer to what it wants; return seconds until it should be looked at again."""
        raise NotImplementedError

    # machinery

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile ``key`` now (once, however often asked) or after ``delay`` seconds."""
        if delay > 0:
            loop = asyncio.get_running_loop()
            timer = self._timers.get(key)
            if timer is not None and timer.when() <= loop.time() + delay:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = loop.call_later(delay, self._fire, key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.enqueue(key)

    async def _follow(self, subscription: Subscription) -> None:
        try:
            while True:
                event = await subscription.queue.get()
                if event is None:
                    return
                for key in self.map_event(event):
                    self.enqueue(key)
        finally:
            self.ctx.store.unsubscribe(subscription)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                again = await self.reconcile(key)
            except Exception:
                logger.exception("%s: reconciling %s failed", self.name, key)
                again = 1.0
            if again is not None:
                self.enqueue(key, max(again, 0.001))

    def start(self) -> None:
        # Subscribe before anything else runs, so no write made after start() goes unseen.
        for resource in self.watches:
            subscription, _ = self.ctx.store.subscribe(resource, None, None)
            self._tasks.append(asyncio.get_running_loop().create_task(self._follow(subscription)))
        for key in self.initial_keys():
            self.enqueue(key)
        self._tasks.append(asyncio.get_running_loop().create_task(self._work()))

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


class ControlPlane:
    """Every simulated component of one sandbox, started and stopped together."""

    def __init__(
        self,
        api: apiserver.ApiServer,
        store: Store,
        settings: SimulationSettings,
        components: Iterable[Callable[[Context], Controller]],
    ) -> None:
        self.ctx = Context(api, store, settings)
        self.controllers = [make(self.ctx) for make in components]

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.stop()
