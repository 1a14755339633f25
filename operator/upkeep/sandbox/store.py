"""The sandbox's storage: objects by resource, one global resourceVersion, a watch history.

Objects are plain dicts and are never mutated once stored: every write stores a new dict,
so readers and watchers may hold them without copying. With a state directory, every write
goes to SQLite as well and a restart restores every object and the resourceVersion counter;
the watch history is not persisted, so a client resuming from before a restart relists (410).

The journal keeps the last write requests clients made (``Write``: verb, resource, object, user,
field manager), as kube-apiserver's audit log at level Metadata does, so that tests can count what
a client did, a no-op update included, which the objects and the watch history cannot show. It is
in memory only, bounded, and one append per write request; listeners hear each write before the
client gets its answer.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Event", "Gone", "Store", "Subscription", "Write"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


class Gone(Exception):
    """A resourceVersion older than the history the store still has."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass(frozen=True)
class Event:
    """One change: ADDED, MODIFIED or DELETED, with the object as it was then."""

    rv: int
    type: str
    resource: str
    namespace: str
    obj: dict[str, Any]
    previous: dict[str, Any] | None = None
    """The object before a MODIFIED event (watches with selectors need both)."""


@dataclass(frozen=True)
class Write:
    """One write request the API server carried out, as an audit log at level Metadata records it."""

    rv: int
    """The store's resourceVersion once the request was done (unchanged by a dry run or a no-op update)."""
    verb: str
    """Kubernetes' audit verb: create, update, patch, delete or deletecollection (an eviction is a create
    of the pods/eviction subresource, a server-side apply a patch)."""
    resource: str
    """The plural, with its group unless it is core: ``pods``, ``deployments.apps``, ``playbookruns.upkeep.dev``."""
    namespace: str
    name: str
    """The object's name ("" for a deletecollection)."""
    subresource: str = ""
    """``status``, ``scale``, ``eviction``, ... ("" for the object itself)."""
    user: str = ""
    manager: str = ""
    """The field manager: the request's fieldManager, else what the User-Agent gives (``kubectl``)."""
    dry_run: bool = False


@dataclass(eq=False)
class Subscription:
    """A watcher's queue of events for one resource (and namespace, if given)."""

    resource: str
    namespace: str | None
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def wants(self, event: Event) -> bool:
        return event.resource == self.resource and (self.namespace is None or event.namespace == self.namespace)


class Store:
    """In-memory objects with an optional SQLite mirror."""

    def __init__(self, state_dir: Path | None = None, *, history: int = 200_000, journal: int = 100_000) -> None:
        self._objects: dict[str, dict[Key, dict[str, Any]]] = collections.defaultdict(dict)
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._subscriptions: set[Subscription] = set()
        self._encoded: dict[int, tuple[dict[str, Any], bytes]] = {}
        self.writes: collections.Counter[str] = collections.Counter()
        """Writes per resource since start: caches keyed on a resource's content compare these."""
        """id(stored object) → (the object, its JSON): lists are sent from these bytes."""
        self.journal: collections.deque[Write] = collections.deque(maxlen=journal)
        """The last ``journal`` write requests, oldest first (``record``); read it on the sandbox's loop."""
        self.write_listeners: list[Callable[[Write], None]] = []
        """Called with each ``Write`` as it is recorded, before the client is answered (tests stop a client
        at an exact point this way); a listener that raises is logged and the request still succeeds."""
        self.rv = 0
        self.compacted = 0
        """Events at or below this resourceVersion are no longer in the history."""
        self._db: sqlite3.Connection | None = None
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(state_dir / "sandbox.sqlite3", isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS objects (resource TEXT, namespace TEXT, name TEXT, body TEXT,"
                " PRIMARY KEY (resource, namespace, name))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self._restore()
        self.compacted = self.rv

    def _restore(self) -> None:
        assert self._db is not None
        for resource, namespace, name, body in self._db.execute("SELECT resource, namespace, name, body FROM objects"):
            self._objects[resource][(namespace, name)] = json.loads(body)
        row = self._db.execute("SELECT value FROM meta WHERE name = 'rv'").fetchone()
        self.rv = int(row[0]) if row else 0

    def close(self) -> None:
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)
        if self._db is not None:
            self._db.close()
            self._db = None

    # reading

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[resource].get((namespace, name))

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a resource, sorted by namespace and name, as a real server lists them."""
        items = self._objects[resource]
        keys = sorted(items) if namespace is None else sorted(key for key in items if key[0] == namespace)
        return [items[key] for key in keys]

    def encoded(self, resource: str, obj: dict[str, Any]) -> bytes:
        """The JSON of ``obj``, cached while it is the stored object (objects are never mutated)."""
        found = self._encoded.get(id(obj))
        if found is not None and found[0] is obj:
            return found[1]
        data = json.dumps(obj, separators=(",", ":")).encode()
        metadata = obj.get("metadata") or {}
        if self._objects[resource].get((metadata.get("namespace") or "", metadata.get("name", ""))) is obj:
            self._encoded[id(obj)] = (obj, data)
        return data

    def count(self, resource: str) -> int:
        return len(self._objects[resource])

    def resources(self) -> Iterator[str]:
        return iter(list(self._objects))

    # writing

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, resource: str, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        """Store ``obj`` (its metadata.resourceVersion already set from ``next_rv``) and tell watchers."""
        metadata = obj["metadata"]
        key = (metadata.get("namespace") or "", metadata["name"])
        previous = self._objects[resource].get(key)
        if previous is not None:
            self._encoded.pop(id(previous), None)
        self._objects[resource][key] = obj
        self.writes[resource] += 1
        self._persist(resource, key, obj)
        self._publish(Event(int(metadata["resourceVersion"]), event_type, resource, key[0], obj, previous))
        return obj

    def remove(self, resource: str, obj: dict[str, Any]) -> None:
        """Remove ``obj`` (carrying the resourceVersion of its deletion) and tell watchers."""
        metadata = obj["metadata"]
        key = (metadata.get("namespace") or "", metadata["name"])
        previous = self._objects[resource].pop(key, None)
        if previous is not None:
            self._encoded.pop(id(previous), None)
        self.writes[resource] += 1
        self._persist(resource, key, None)
        self._publish(Event(int(metadata["resourceVersion"]), "DELETED", resource, key[0], obj))

    def record(self, write: Write) -> None:
        """Add a write request to the journal and tell the listeners."""
        self.journal.append(write)
        for listener in list(self.write_listeners):
            try:
                listener(write)
            except Exception:
                logger.exception("a write listener failed on %s", write)

    def drop_resource(self, resource: str) -> None:
        """Forget every object of a resource without events (its CRD is gone)."""
        for obj in self._objects.pop(resource, {}).values():
            self._encoded.pop(id(obj), None)
        if self._db is not None:
            self._db.execute("DELETE FROM objects WHERE resource = ?", (resource,))

    def _persist(self, resource: str, key: Key, obj: dict[str, Any] | None) -> None:
        if self._db is None:
            return
        if obj is None:
            self._db.execute("DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?", (resource, *key))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO objects (resource, namespace, name, body) VALUES (?, ?, ?, ?)",
                (resource, *key, json.dumps(obj, separators=(",", ":"))),
            )
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('rv', ?)", (str(self.rv),))

    # watching

    def _publish(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen and self._history:
            self.compacted = self._history[0].rv
        self._history.append(event)
        for subscription in self._subscriptions:
            if subscription.wants(event):
                subscription.queue.put_nowait(event)

    def subscribe(self, resource: str, namespace: str | None, since: int | None) -> tuple[Subscription, list[Event]]:
        """A subscription for new events, and the events after ``since`` that it missed.

        ``Gone`` when ``since`` is older than the history kept.
        """
        backlog: list[Event] = []
        if since is not None and since < self.rv:
            if since < self.compacted:
                raise Gone(since, self.compacted)
            backlog = [
                event
                for event in self._history
                if event.rv > since
                and event.resource == resource
                and (namespace is None or event.namespace == namespace)
            ]
        subscription = Subscription(resource, namespace)
        self._subscriptions.add(subscription)
        return subscription, backlog

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            subscription.closed = True
            subscription.queue.put_nowait(None)

    def close_all_watches(self) -> int:
        """End every watch stream (a fault for tests); returns how many were open."""
        subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            self.unsubscribe(subscription)
        return len(subscriptions)

    def compact(self) -> None:
        """Forget the whole history: every resume from an older resourceVersion gets 410."""
        self._history.clear()
        self.compacted = self.rv
