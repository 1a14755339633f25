"""The problem controller: recurring incidents of one fingerprint family become one Problem, linked both ways.

How it is wired (``register``):

- Kopf indexes keep what it looks up, as small copies: the Incidents of each namespace
  (fingerprint, service, workload, the moments they were triggered, their ``problemRef``),
  the Problems, the Changes and Releases, the SupportPolicies and the namespaces' labels.
- ``kopf.on.event`` on Incidents: once the incident controller has given an incident its
  status, the incidents of its family (``engine.signals.family_of``) are counted against the
  SupportPolicy's ``spec.problems`` (``engine.problems.recurrence``: every time one was
  triggered, reopenings included, within the window). When they recur often enough the
  Problem is created, named from the family alone (``problems.problem_name``), so two
  replicas, or one restarted, make one object. A Problem whose family covers the incident
  (a family equal to or a prefix of its fingerprint, e.g. one written by hand) is updated
  instead. The same event fills the incident's ``status.suspectChanges``
  (``engine.suspects``) from the Releases and Changes of its service.
- ``kopf.on.event`` on Problems: the status follows the spec (``problems.decide_phase``:
  Open → KnownError → Resolved), and the linked incidents (``problems.update_problem``).
- ``kopf.on.event`` on Changes: the Problems whose ``spec.fixChangeRef`` names the Change
  look again, so a completed fix resolves them.

Every status is written to the status subresource against the ``resourceVersion`` read: the
incident controller writes the same Incident statuses concurrently, so on a conflict the
incident is read again and only ``problemRef`` (or ``suspectChanges``) is set on what is
there, never a blind overwrite. Every move posts an Event (``Opened``, ``KnownError``,
``Resolved``, ``Reopened``, ``Linked``, ``InvalidTransition``, ``FixChangeNotFound``; on an
incident ``LinkedToProblem`` and ``SuspectChanges``). With ``--dry-run`` nothing is written: a
``DryRunProblem`` Event on the newest incident of the family names the Problem that would be
opened, and a ``DryRun`` Event on a Problem what would change in it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import kopf

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import events as events_
from upkeep.engine import acceptance, incidents, problems, severity, signals, suspects
from upkeep.model import conditions, errors, lifecycle, resources

__all__ = ["KIND", "Caches", "ProblemController", "register"]

logger = logging.getLogger(__name__)

KIND = problems.KIND
"""The kind this controller owns (the acceptance controller leaves it alone)."""
MAX_ATTEMPTS = 5
"""Writes retried after a conflict before giving up until the next change."""

INCIDENT_INDEX = "upkeep_problems_incidents"
PROBLEM_INDEX = "upkeep_problems_problems"
CHANGE_INDEX = "upkeep_problems_changes"
RELEASE_INDEX = "upkeep_problems_releases"
POLICY_INDEX = "upkeep_problems_supportpolicies"
NAMESPACE_INDEX = "upkeep_problems_namespaces"

EventSink = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _phase(body: Mapping[str, Any]) -> str:
    return str(_mapping(body.get("status")).get("phase") or "")


def _problem_ref(body: Mapping[str, Any]) -> str:
    return str(_mapping(_mapping(body.get("status")).get("problemRef")).get("name") or "")


def _resource_version(body: Mapping[str, Any]) -> int | None:
    try:
        return int(str(_mapping(body.get("metadata")).get("resourceVersion")))
    except ValueError:
        return None


def _freshest(cached: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> Mapping[str, Any]:
    """Of two bodies of one object, the later one (the one just seen when versions do not compare)."""
    if cached is None:
        return seen
    left, right = _resource_version(cached), _resource_version(seen)
    return cached if left is not None and right is not None and left > right else seen


# What the controller looks up


class Caches(Protocol):
    """The watch caches the controller reads (Kopf's indexes in the operator)."""

    def incidents(self, namespace: str) -> list[Mapping[str, Any]]:
        """The Incidents of the namespace (metadata, spec.signal, spec.service, spec.workload, status summary)."""
        ...

    def problems(self, namespace: str) -> list[Mapping[str, Any]]:
        """The Problems of the namespace."""
        ...

    def changes(self, namespace: str) -> list[Mapping[str, Any]]:
        """The Changes of the namespace (name, releaseRef, revision, phase and times)."""
        ...

    def releases(self, namespace: str) -> list[Mapping[str, Any]]:
        """The Releases of the namespace (name, service, workloadRef, revision, lastAppliedAt)."""
        ...

    def policies(self) -> list[Mapping[str, Any]]:
        """Every SupportPolicy (metadata.name and spec)."""
        ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """The labels of a namespace ({} when unknown)."""
        ...


class _NoCaches:
    def incidents(self, namespace: str) -> list[Mapping[str, Any]]:
        return []

    def problems(self, namespace: str) -> list[Mapping[str, Any]]:
        return []

    def changes(self, namespace: str) -> list[Mapping[str, Any]]:
        return []

    def releases(self, namespace: str) -> list[Mapping[str, Any]]:
        return []

    def policies(self) -> list[Mapping[str, Any]]:
        return []

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return {}


def _store(index: Any, key: Any) -> list[Mapping[str, Any]]:
    found = index.get(key) if index is not None else None
    return [item for item in found or () if isinstance(item, Mapping)]


class _IndexCaches:
    """``Caches`` over the Kopf indexes that ``register`` declares, as handlers receive them."""

    def __init__(self, indexes: Mapping[str, Any]) -> None:
        self._indexes = indexes

    def incidents(self, namespace: str) -> list[Mapping[str, Any]]:
        return _store(self._indexes.get(INCIDENT_INDEX), namespace)

    def problems(self, namespace: str) -> list[Mapping[str, Any]]:
        return _store(self._indexes.get(PROBLEM_INDEX), namespace)

    def changes(self, namespace: str) -> list[Mapping[str, Any]]:
        return _store(self._indexes.get(CHANGE_INDEX), namespace)

    def releases(self, namespace: str) -> list[Mapping[str, Any]]:
        return _store(self._indexes.get(RELEASE_INDEX), namespace)

    def policies(self) -> list[Mapping[str, Any]]:
        return _store(self._indexes.get(POLICY_INDEX), None)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        found = _store(self._indexes.get(NAMESPACE_INDEX), namespace)
        return found[0] if found else {}


# Index functions: small copies of what is looked up, never whole objects. Coroutines, not plain functions:
# Kopf runs a plain function in a thread, a hand-over per watch event of Incidents, Problems, Releases ...


def _metadata(body: kopf.Body) -> dict[str, Any]:
    metadata = body.metadata
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
        "resourceVersion": metadata.get("resourceVersion"),
        "creationTimestamp": metadata.get("creationTimestamp"),
    }


async def _incident_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """An incident as far as recurrence, linking and suspects need it: the moments it was triggered, not its log."""
    spec, status = _mapping(body.get("spec")), _mapping(body.get("status"))
    signal = _mapping(spec.get("signal"))
    triggered = [
        dict(entry)
        for entry in _list(status.get("timeline"))
        if isinstance(entry, Mapping) and entry.get("to") == lifecycle.INCIDENT.initial
    ]
    kept_status = {key: status[key] for key in ("phase", "triggeredAt", "firstSeen", "problemRef") if key in status}
    kept_status["timeline"] = triggered
    kept_spec = {
        "service": spec.get("service"),
        "signal": {"type": signal.get("type"), "fingerprint": signal.get("fingerprint")},
    }
    if spec.get("workload"):
        kept_spec["workload"] = dict(_mapping(spec.get("workload")))
    entry = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": incidents.KIND,
        "metadata": _metadata(body),
        "spec": kept_spec,
        "status": kept_status,
    }
    return {body.metadata.get("namespace") or "": entry}


async def _problem_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    metadata = {
        **_metadata(body),
        "generation": body.metadata.get("generation"),
        "labels": dict(body.metadata.get("labels") or {}),
    }
    entry = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
    return {body.metadata.get("namespace") or "": entry}


async def _change_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    spec, status = _mapping(body.get("spec")), _mapping(body.get("status"))
    entry = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Change",
        "metadata": _metadata(body),
        "spec": {"releaseRef": dict(_mapping(spec.get("releaseRef"))), "revision": spec.get("revision")},
        "status": {key: status[key] for key in ("phase", "startedAt", "completedAt") if key in status},
    }
    return {body.metadata.get("namespace") or "": entry}


async def _release_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    spec, status = _mapping(body.get("spec")), _mapping(body.get("status"))
    kept_spec = {key: spec[key] for key in ("service", "targetNamespace") if key in spec}
    if spec.get("workloadRef"):
        kept_spec["workloadRef"] = dict(_mapping(spec.get("workloadRef")))
    entry = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Release",
        "metadata": _metadata(body),
        "spec": kept_spec,
        "status": {key: status[key] for key in ("revision", "lastAppliedAt") if key in status},
    }
    return {body.metadata.get("namespace") or "": entry}


async def _policy_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {None: {"metadata": {"name": body.metadata.get("name")}, "spec": dict(body.get("spec") or {})}}


async def _namespace_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {body.metadata.get("name"): dict(body.metadata.get("labels") or {})}


# The controller


class ProblemController:
    """Incidents in, Problems out. ``register`` wires one to Kopf; a test may drive one directly."""

    def __init__(
        self,
        settings: settings_.OperatorSettings,
        cluster: cluster_.Cluster,
        *,
        events: EventSink | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.caches: Caches = _NoCaches()
        self._events = events or events_.post
        self._clock = clock or _utcnow
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._problems: dict[tuple[str, str], Mapping[str, Any]] = {}
        """The latest body of each Problem as written or seen (the index lags behind the writes)."""
        self._linked: set[tuple[str, str, str]] = set()
        """(namespace, incident, problem) links written or found in place by this process."""
        self._told: set[tuple[str, ...]] = set()

    def _lock(self, namespace: str, name: str) -> asyncio.Lock:
        found = self._locks.get((namespace, name))
        if found is None:
            found = self._locks[(namespace, name)] = asyncio.Lock()
        return found

    def policy_spec(self, namespace: str) -> Mapping[str, Any]:
        """The spec of the SupportPolicy that governs the namespace ({} without one)."""
        policy = severity.policy_for(self.caches.namespace_labels(namespace), self.caches.policies())
        return _mapping(policy.get("spec")) if policy is not None else {}

    def _tell_once(self, key: tuple[str, ...], body: Mapping[str, Any], reason: str, message: str) -> None:
        if key in self._told:
            return
        self._told.add(key)
        logger.warning("%s", message)
        self._events(body, "Normal", reason, message)

    def _members(self, namespace: str, family: str) -> list[Mapping[str, Any]]:
        """The incidents of the family in the namespace that the incident controller has given a status."""
        return [
            body
            for body in self.caches.incidents(namespace)
            if _phase(body) and problems.belongs_to(resources.Incident(body).fingerprint, family)
        ]

    def _covering(self, namespace: str, fingerprint: str) -> list[Mapping[str, Any]]:
        """The Problems of the namespace whose family the fingerprint belongs to."""
        found: dict[str, Mapping[str, Any]] = {}
        for body in self.caches.problems(namespace):
            view = resources.Problem(body)
            if problems.belongs_to(fingerprint, view.fingerprint_family):
                found[view.name] = _freshest(self._problems.get((namespace, view.name)), body)
        for (where, name), body in self._problems.items():
            family = resources.Problem(body).fingerprint_family
            if where == namespace and name not in found and problems.belongs_to(fingerprint, family):
                found[name] = body
        return list(found.values())

    # -- incidents

    async def incident_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """An Incident was written: fill its suspects, then open or update the Problem of its family."""
        view = resources.Incident(body)
        if deleted or not view.status.get("phase") or not view.fingerprint:
            return
        await self._record_suspects(body)
        covering = self._covering(view.namespace, view.fingerprint)
        if covering:
            for problem in covering:
                await self.problem_changed(problem)
            return
        await self._consider(view.namespace, signals.family_of(view.fingerprint))

    async def _consider(self, namespace: str, family: str) -> None:
        """Open the family's Problem when its incidents recur often enough."""
        name = problems.problem_name(family)
        async with self._lock(namespace, name):
            if (namespace, name) in self._problems:
                return  # opened meanwhile, by this process: its own event updates it
            members = self._members(namespace, family)
            if not members:
                return
            now = self._clock()
            try:
                decision = problems.recurrence(members, self.policy_spec(namespace), now, family=family)
            except errors.SpecError as error:
                message = f"no problems from recurrences in {namespace}: SupportPolicy {error}"
                self._tell_once(("policy", namespace, str(error)), members[-1], "InvalidPolicy", message)
                return
            if not decision.open:
                return
            chosen = [body for body in members if resources.Resource(body).name in decision.incidents]
            linked = ", ".join(decision.incidents)
            why = f"{decision.occurrences} recurrences of {family} within the window"
            if self.settings.safety.dry_run:
                newest = max(chosen, key=lambda body: max(problems.triggered_moments(body), default=now))
                message = f"dry run: would open Problem {name} ({why}) linking {linked}"
                self._tell_once(("open", namespace, name), newest, "DryRunProblem", message)
                return
            service = next(
                (resources.Incident(body).service for body in chosen if resources.Incident(body).service), ""
            )
            body = problems.new_problem(family, chosen, service, now, namespace=namespace)
            try:
                created = await self.cluster.create_problem(body)
            except cluster_.Conflict:
                found = await self.cluster.get_problem(namespace, name)
                if found is None:
                    return
                created = found  # another replica, or this one before a restart, opened it
            else:
                self._events(created, "Normal", "Opened", f"{why}: {linked}")
                logger.info("opened problem %s/%s: %s", namespace, name, why)
            self._problems[(namespace, name)] = created
            await self._reconcile(created)

    # -- problems

    async def problem_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A Problem was written (or one of its incidents or its fixing Change changed): bring its status along."""
        view = resources.Problem(body)
        key = (view.namespace, view.name)
        if deleted:
            self._problems.pop(key, None)
            return
        async with self._lock(*key):
            latest = _freshest(self._problems.get(key), body)
            self._problems[key] = latest
            await self._reconcile(latest)

    def _fix_change(self, namespace: str, spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
        wanted = str(_mapping(spec.get("fixChangeRef")).get("name") or "")
        if not wanted:
            return None
        return next((body for body in self.caches.changes(namespace) if resources.Resource(body).name == wanted), None)

    def _desired(self, problem: Mapping[str, Any], now: datetime.datetime) -> tuple[dict[str, Any], str | None]:
        """The status the problem should have now, and a refused move's message."""
        view = resources.Problem(problem)
        family = view.fingerprint_family
        members = self._members(view.namespace, family)
        linked = set(view.incidents)
        try:
            window = set(problems.recurrence(members, self.policy_spec(view.namespace), now, family=family).incidents)
        except errors.SpecError:
            window = set()
        chosen = [body for body in members if resources.Resource(body).name in linked | window]
        status = problems.update_problem(view.status, chosen, now)
        return problems.decide_phase(
            view.spec,
            status,
            now=now,
            fix_change=self._fix_change(view.namespace, view.spec),
            generation=view.generation,
        )

    async def _reconcile(self, problem: Mapping[str, Any]) -> None:
        """Write the problem's status as ``_desired`` says (against its resourceVersion), then link its incidents."""
        current = dict(problem)
        for _ in range(MAX_ATTEMPTS):
            view = resources.Problem(current)
            now = self._clock()
            verdict = acceptance.assess(current)
            if not verdict.accepted:
                await self._refuse(current, verdict)
                return
            desired, refusal = self._desired(current, now)
            if desired == dict(view.status):
                break
            if self.settings.safety.dry_run:
                self._tell_dry_run(current, desired)
                return
            try:
                written = await self.cluster.replace_problem_status({**current, "status": desired})
            except cluster_.Conflict:
                fresh = await self.cluster.get_problem(view.namespace, view.name)
                if fresh is None:
                    return
                current = fresh
                continue
            self._problems[(view.namespace, view.name)] = written
            self._announce(written, view.status, desired, refusal)
            current = written
            break
        else:
            logger.warning(
                "gave up writing problem %s after %d conflicts", resources.Resource(problem).name, MAX_ATTEMPTS
            )
            return
        if not self.settings.safety.dry_run:
            await self._link_incidents(current)

    async def _refuse(self, problem: Mapping[str, Any], verdict: acceptance.Assessment) -> None:
        view = resources.Problem(problem)
        generation = view.generation
        if view.status.get("observedGeneration") == generation and conditions.find(view.conditions, conditions.STALLED):
            return
        if self.settings.safety.dry_run:
            self._tell_once(("invalid", view.namespace, view.name, str(generation)), problem, "DryRun", verdict.message)
            return
        refused = dict(view.status)
        refused["observedGeneration"] = generation
        refused["conditions"] = conditions.mark_failed(
            view.conditions, reason=verdict.reason, message=verdict.message, generation=generation, stalled=True
        )
        try:
            written = await self.cluster.replace_problem_status({**problem, "status": refused})
        except cluster_.Conflict:
            return  # changed meanwhile: its next event judges the newer generation
        self._problems[(view.namespace, view.name)] = written
        self._events(written, "Warning", verdict.reason, verdict.message)

    def _announce(
        self, problem: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any], refusal: str | None
    ) -> None:
        """The Events of one status write: each phase move, incidents linked, a move refused, the fix missing."""
        view = resources.Problem(problem)
        old_phase = str(before.get("phase") or "")
        moves = _list(after.get("timeline"))[len(_list(before.get("timeline"))) :]
        for entry in (item for item in moves if isinstance(item, Mapping)):
            source, target = str(entry.get("from") or ""), str(entry.get("to") or "")
            note = f": {entry.get('note')}" if entry.get("note") else ""
            if not source:
                if view.annotations.get(incidents.OPENED_AT_ANNOTATION) is None:
                    self._events(problem, "Normal", "Opened", f"recorded a problem written by hand{note}")
            elif target == lifecycle.PROBLEM.initial:
                self._events(problem, "Warning", "Reopened", f"{source} → {target} by {entry.get('by')}{note}")
            else:
                self._events(problem, "Normal", target, f"{source} → {target} by {entry.get('by')}{note}")
        added = [name for name in _list(after.get("incidents")) if name not in _list(before.get("incidents"))]
        if added and old_phase:
            total = after.get("occurrences")
            self._events(problem, "Normal", "Linked", f"linked {', '.join(added)} ({total} recurrences in all)")
        if refusal is not None:
            self._events(problem, "Warning", "InvalidTransition", refusal)
        ready = conditions.find(after.get("conditions"), conditions.READY)
        was = conditions.find(before.get("conditions"), conditions.READY)
        if ready is not None and ready.reason == "FixChangeNotFound" and (was is None or was.reason != ready.reason):
            self._events(problem, "Warning", ready.reason, ready.message)

    def _tell_dry_run(self, problem: Mapping[str, Any], desired: Mapping[str, Any]) -> None:
        view = resources.Problem(problem)
        before, after = view.phase or "no phase", str(desired.get("phase") or "")
        added = [name for name in _list(desired.get("incidents")) if name not in view.incidents]
        said = []
        if before != after:
            said.append(f"move the problem from {before} to {after}")
        if added:
            said.append(f"link {', '.join(added)}")
        if not said:
            said.append("update its status")
        message = f"dry run: would {' and '.join(said)}"
        self._tell_once(("problem", view.namespace, view.name, message), problem, "DryRun", message)

    async def _link_incidents(self, problem: Mapping[str, Any]) -> None:
        """Set ``status.problemRef`` on every linked incident that lacks it."""
        view = resources.Problem(problem)
        known = {resources.Resource(body).name: body for body in self.caches.incidents(view.namespace)}
        for name in view.incidents:
            key = (view.namespace, name, view.name)
            if key in self._linked:
                continue
            cached = known.get(name)
            if cached is not None and _problem_ref(cached) == view.name:
                self._linked.add(key)
                continue
            try:
                await self._link(view.namespace, name, problem)
            except Exception:
                logger.exception("could not link incident %s/%s to problem %s", view.namespace, name, view.name)

    async def _link(self, namespace: str, name: str, problem: Mapping[str, Any]) -> None:
        problem_name = resources.Resource(problem).name
        for _ in range(MAX_ATTEMPTS):
            current = await self.cluster.get_incident(namespace, name)
            if current is None:
                return
            status = _mapping(current.get("status"))
            linked_to = _problem_ref(current)
            if not status.get("phase") or linked_to:
                if linked_to == problem_name:
                    self._linked.add((namespace, name, problem_name))
                return  # not started yet (its controller would overwrite), or linked to another problem already
            try:
                written = await self.cluster.replace_incident_status(
                    {**current, "status": incidents.link_problem(status, problem_name)}
                )
            except cluster_.Conflict:
                continue  # the incident controller wrote meanwhile: read again, keep what it wrote
            self._linked.add((namespace, name, problem_name))
            title = resources.Problem(problem).spec.get("title") or resources.Problem(problem).fingerprint_family
            self._events(written, "Normal", "LinkedToProblem", f"linked to Problem {problem_name}: {title}")
            return
        logger.warning("gave up linking incident %s/%s after %d conflicts", namespace, name, MAX_ATTEMPTS)

    # -- changes

    async def change_changed(self, body: Mapping[str, Any]) -> None:
        """A Change was written: the Problems it fixes look again (a Completed fix resolves them)."""
        view = resources.Resource(body)
        for problem in self.caches.problems(view.namespace):
            if str(_mapping(resources.Problem(problem).spec.get("fixChangeRef")).get("name") or "") == view.name:
                await self.problem_changed(problem)

    # -- suspect changes

    async def _record_suspects(self, body: Mapping[str, Any]) -> None:
        """Add to the incident's ``status.suspectChanges`` the Releases and Changes that acted just before it."""
        view = resources.Incident(body)
        releases = self.caches.releases(view.namespace)
        if not releases:
            return  # no Release, no Change can be the incident's
        spec = self.policy_spec(view.namespace)
        try:
            lookback = suspects.lookback_of(spec)
        except errors.SpecError as error:
            logger.warning("suspect changes in %s: %s; using %s", view.namespace, error, suspects.DEFAULT_LOOKBACK)
            lookback = suspects.DEFAULT_LOOKBACK
        changes = self.caches.changes(view.namespace)
        found = suspects.suspects_for(body, releases, changes, lookback)
        recorded = view.status.get("suspectChanges")
        if suspects.merge(recorded, found) == _list(recorded):
            return
        if self.settings.safety.dry_run:
            named = ", ".join(f"{item.kind} {item.name}" for item in found)
            message = f"dry run: would record suspect changes {named}"
            self._tell_once(("suspects", view.namespace, view.name, named), body, "DryRun", message)
            return
        for _ in range(MAX_ATTEMPTS):
            current = await self.cluster.get_incident(view.namespace, view.name)
            if current is None or not _phase(current):
                return
            status = dict(_mapping(current.get("status")))
            merged = suspects.merge(status.get("suspectChanges"), found)
            if merged == _list(status.get("suspectChanges")):
                return
            status["suspectChanges"] = merged
            try:
                written = await self.cluster.replace_incident_status({**current, "status": status})
            except cluster_.Conflict:
                continue
            named = ", ".join(f"{item['kind']} {item['name']} at {item['at']}" for item in merged)
            self._events(written, "Normal", "SuspectChanges", f"changed shortly before: {named}")
            return
        logger.warning(
            "gave up recording suspects on %s/%s after %d conflicts", view.namespace, view.name, MAX_ATTEMPTS
        )


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    cluster: cluster_.Cluster | None = None,
) -> ProblemController:
    """Register the Problem handlers and their indexes on ``registry``; the controller is returned for tests."""
    controller = ProblemController(settings, cluster or cluster_.KubernetesCluster())

    kopf.index(GROUP, VERSION, "incidents", id=INCIDENT_INDEX, registry=registry)(_incident_entry)
    kopf.index(GROUP, VERSION, "problems", id=PROBLEM_INDEX, registry=registry)(_problem_entry)
    kopf.index(GROUP, VERSION, "changes", id=CHANGE_INDEX, registry=registry)(_change_entry)
    kopf.index(GROUP, VERSION, "releases", id=RELEASE_INDEX, registry=registry)(_release_entry)
    kopf.index(GROUP, VERSION, "supportpolicies", id=POLICY_INDEX, registry=registry)(_policy_entry)
    kopf.index("v1", "namespaces", id=NAMESPACE_INDEX, registry=registry)(_namespace_entry)

    async def on_incident(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        controller.caches = _IndexCaches(kwargs)
        await controller.incident_changed(body, deleted=type == "DELETED")

    async def on_problem(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        controller.caches = _IndexCaches(kwargs)
        await controller.problem_changed(body, deleted=type == "DELETED")

    async def on_change(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        controller.caches = _IndexCaches(kwargs)
        if type != "DELETED":
            await controller.change_changed(body)

    kopf.on.event(GROUP, VERSION, "incidents", id="problems-incidents", registry=registry)(on_incident)
    kopf.on.event(GROUP, VERSION, "problems", id="problems", registry=registry)(on_problem)
    kopf.on.event(GROUP, VERSION, "changes", id="problems-changes", registry=registry)(on_change)
    return controller
