"""The Release controller: apply what git declares at a path of a GitSource (the Direct strategy).

How it is wired (``register``):

- A ``kopf.daemon`` per Release runs one pass at once, then every ``spec.interval``; a pass is
  also started at once when the GitSource's artifact revision (or readiness) changes (a
  ``kopf.on.event`` on GitSources wakes the daemons of the Releases that name it: the GitSource's
  own status write is the signal), and when the Release's spec changes (a new generation).
- A pass: acceptance (``engine.acceptance``: an invalid Release is reported, never synced), the
  GitSource's artifact, then, when the revision or the spec changed or the last sync failed, a
  **sync**; otherwise health and drift (``controllers.releasedrift``) of what was applied.
- A sync validates every object before it applies any: render (``gitops.render``), schema
  (``gitops.validation``), then a server dry run of each object (``dryRun=All``). Objects in a
  namespace, or of a CRD, that the same set creates cannot be dry-run before those exist; they
  are checked by schema only. Any error refuses the whole revision: Ready=False with reason
  RenderFailed, InvalidManifests or DryRunFailed, a Warning Event, and status.revision and
  inventory stay those of the previous revision (status.desiredRevision names the refused one).
- Then server-side apply (``gitops.apply``) in a safe order (namespaces, CRDs, the rest), every
  object labelled ``upkeep.dev/release`` (and annotated with the Release's namespace/name) so the
  operator finds what it owns; then prune: objects of the previous inventory that git no longer
  has are deleted (``spec.prune.enabled``, with its propagationPolicy) unless labelled
  ``upkeep.dev/prune=disabled``; otherwise they are listed in ``status.orphaned``.
- Health of every applied object (``gitops.health``) gives the phase: Healthy (Ready=True,
  Applied), Progressing within ``spec.timeout`` of the apply, Degraded beyond it or when an object
  failed. ``status.stableRevision`` is the last revision that became Healthy.
- Status is written only when it changed. With the operator's ``--dry-run`` every apply is a
  server dry run, what would change is posted as an Event (once per revision), and nothing is
  applied, pruned or written to the Release but the report of a refused revision.

Errors: ``SyncRefused`` is a revision that cannot be applied as it is (reported, retried at the
next interval or change); ``gitops.apply.ApplyError`` that retrying may fix (a conflict, the API
server away) ends the pass, which runs again after ``RETRY_AFTER``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import functools
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import kopf

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import daemons, gitsources, releasedrift
from upkeep.controllers import events as events_
from upkeep.engine import acceptance, durations
from upkeep.gitops import apply, diff, drift, git, health, render, validation
from upkeep.model import conditions

__all__ = [
    "KIND",
    "OWNER_ANNOTATION",
    "OWNER_LABEL",
    "PRUNE_LABEL",
    "Desired",
    "ObjectApplier",
    "ObjectRef",
    "ReleaseCluster",
    "ReleaseController",
    "SyncRefused",
    "Verdict",
    "judge_health",
    "owner_label",
    "prune_candidates",
    "register",
    "stamp",
    "status_changes",
]

logger = logging.getLogger(__name__)

KIND = "Release"
"""The kind this controller owns (the acceptance controller leaves it alone)."""
RELEASES = "releases"
GITSOURCES = "gitsources"
OWNER_LABEL = "upkeep.dev/release"
"""Label on every object a Release applied; its value is ``owner_label(namespace, name)``."""
OWNER_ANNOTATION = "upkeep.dev/release"
"""Annotation on every object a Release applied: ``<namespace>/<name>`` of the Release, in full."""
PRUNE_LABEL = "upkeep.dev/prune"
"""``upkeep.dev/prune: disabled`` on a live object keeps it when git no longer has it."""
PRUNE_DISABLED = "disabled"

SYNC_FAILURES = frozenset({"RenderFailed", "InvalidManifests", "DryRunFailed", "ApplyFailed", "FetchFailed"})
"""Ready reasons after which the next pass syncs again, even with the same revision and spec."""
PROGRESS_RECHECK = 1.0
"""Seconds between looks at the objects' health while a revision is progressing: a rollout finishes
in seconds to minutes, and ``spec.interval`` (5m by default) is far too long to notice it."""
MIN_INTERVAL = 1.0
"""Seconds between passes at least, whatever spec.interval says ("0s" must not spin)."""
RETRY_AFTER = 10.0
"""Seconds before a pass is tried again after an error that retrying may fix (an API server down)."""
CRD_WAIT = 10.0
"""Seconds a kind defined by a CRD of the same set may take to be served after the CRD is applied."""
_GOT = re.compile(r" \(got .*\)$")
"""The quoted value at the end of a validation finding ("must be a string (got 123)")."""
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAMESPACE_KEY = ("", "Namespace")
_CRD_KEY = ("apiextensions.k8s.io", "CustomResourceDefinition")

EventSink = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# Pure pieces: identities, ownership labels, prune candidates, health and phase


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One object as status lists it (inventory, orphaned): apiVersion, kind, namespace ("" if none), name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectRef:
        metadata = _mapping(body.get("metadata"))
        return cls(
            str(body.get("apiVersion") or ""),
            str(body.get("kind") or ""),
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectRef:
        return cls(
            str(data.get("apiVersion") or ""),
            str(data.get("kind") or ""),
            str(data.get("namespace") or ""),
            str(data.get("name") or ""),
        )

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """(group, kind, namespace, name): the object whatever version it is served at."""
        group = self.api_version.rpartition("/")[0] if "/" in self.api_version else ""
        return (group, self.kind, self.namespace, self.name)

    def to_dict(self) -> dict[str, str]:
        out = {"apiVersion": self.api_version, "kind": self.kind}
        if self.namespace:
            out["namespace"] = self.namespace
        out["name"] = self.name
        return out

    def body(self) -> dict[str, Any]:
        """A minimal body with this identity, as the applier's get and delete take it."""
        metadata = {"name": self.name, **({"namespace": self.namespace} if self.namespace else {})}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata}

    def __str__(self) -> str:
        return apply.describe(self.body())


def owner_label(namespace: str, name: str) -> str:
    """The ``upkeep.dev/release`` label value of a Release: ``<namespace>.<name>``, or a hash when too long.

    A label value has at most 63 characters; a namespace and a name may reach 63 and 253. The full
    namespace/name is in the annotation; the label is what selectors use.
    """
    plain = f"{namespace}.{name}"
    if len(plain) <= 63 and _LABEL_VALUE.match(plain):
        return plain
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:16]
    head = re.sub(r"[^A-Za-z0-9_.-]", "-", plain)[: 63 - len(digest) - 1].strip("-_.")
    return f"{head}-{digest}" if head else digest


def stamp(
    body: Mapping[str, Any], *, release_namespace: str, release_name: str, namespace: str | None
) -> dict[str, Any]:
    """A copy of ``body`` labelled and annotated as owned by the Release, in ``namespace`` when it names none.

    ``namespace`` is None for a cluster-scoped kind (then any namespace written is kept, and the API
    server says what is wrong with it).
    """
    out = copy.deepcopy(dict(body))
    metadata = dict(_mapping(out.get("metadata")))
    if namespace is not None and not metadata.get("namespace"):
        metadata["namespace"] = namespace
    metadata["labels"] = {**_mapping(metadata.get("labels")), OWNER_LABEL: owner_label(release_namespace, release_name)}
    metadata["annotations"] = {
        **_mapping(metadata.get("annotations")),
        OWNER_ANNOTATION: f"{release_namespace}/{release_name}",
    }
    out["metadata"] = metadata
    return out


def prune_candidates(previous: Iterable[ObjectRef], desired: Iterable[ObjectRef]) -> list[ObjectRef]:
    """What the Release applied before (inventory and orphans) that git no longer declares, in delete order.

    Delete order is the reverse of apply order: the objects in a namespace before the namespace,
    custom resources before their CRD.
    """
    keep = {ref.identity for ref in desired}
    seen: set[tuple[str, str, str, str]] = set()
    out: list[ObjectRef] = []
    for ref in previous:
        if ref.identity in keep or ref.identity in seen:
            continue
        seen.add(ref.identity)
        out.append(ref)
    rank = {_NAMESPACE_KEY: 0, _CRD_KEY: 1}
    return sorted(out, key=lambda ref: (rank.get(ref.identity[:2], 2), ref), reverse=True)


@dataclass(frozen=True)
class Verdict:
    """The Release's phase and Ready condition from its objects' health."""

    phase: str
    ready: conditions.ConditionStatus
    reason: str
    message: str


def judge_health(
    summary: health.Health,
    *,
    count: int,
    revision: str,
    applied_at: datetime.datetime | None,
    timeout: datetime.timedelta,
    now: datetime.datetime,
) -> Verdict:
    """The phase from the summary of the ``count`` objects' health (``health.summarize``).

    Healthy when every object is; Degraded when one failed, or when one is still not healthy
    (Progressing, or Unknown: not assessable) ``timeout`` after the apply; Progressing until then.
    """
    short = _short_revision(revision)
    if summary.status == "Healthy":
        return Verdict("Healthy", "True", "Applied", f"Applied {short}: {count} objects, all healthy")
    if summary.status == "Degraded":
        return Verdict("Degraded", "False", "Degraded", f"{short} is degraded: {summary.message}")
    elapsed = now - applied_at if applied_at is not None else datetime.timedelta(0)
    if elapsed > timeout:
        return Verdict(
            "Degraded",
            "False",
            "Degraded",
            f"{short} did not become healthy within {durations.format_duration(timeout)}: {summary.message}",
        )
    return Verdict("Progressing", "False", "Progressing", f"Waiting for {short} to become healthy: {summary.message}")


def _short_revision(revision: str) -> str:
    """``main@sha1:3f2a9c1d...`` → ``main@3f2a9c1`` for messages; the full one is in status.revision."""
    head, _, sha = revision.rpartition("sha1:")
    return f"{head}{sha[:7]}" if sha else revision


def status_changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch of status that turns ``current`` into ``wanted`` (only the keys of ``wanted``).

    A None in ``wanted`` removes the field; {} when nothing changes, so no write is made.
    """
    out: dict[str, Any] = {}
    for key, value in wanted.items():
        if value is None:
            if key in current:
                out[key] = None
        elif current.get(key) != value:
            out[key] = value
    return out


# The controller


class ReleaseCluster(Protocol):
    """What the Release controller reads and writes through the API besides the applied objects."""

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]: ...

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...


class ObjectApplier(Protocol):
    """How the controller reads and writes the objects it applies (``gitops.apply.Applier`` is the real one)."""

    async def namespaced(self, api_version: str, kind: str) -> bool: ...

    async def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None: ...

    async def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    async def delete(
        self, obj: Mapping[str, Any], propagation: str = "Background", *, dry_run: bool = False
    ) -> bool: ...


class SyncRefused(Exception):
    """A revision that cannot be applied as it is: ``reason`` for the Ready condition, ``message`` for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Desired:
    """What one revision of a Release declares, ready to apply: stamped bodies in apply order."""

    revision: str
    generation: int | None
    objects: tuple[Mapping[str, Any], ...]
    sources: Mapping[ObjectRef, str]
    """Where each object was declared (``file:line``), for messages."""
    unchecked: frozenset[ObjectRef] = frozenset()
    """Objects that could not be dry-run: their namespace or CRD is created by the same set."""

    @property
    def refs(self) -> list[ObjectRef]:
        return [ObjectRef.of(body) for body in self.objects]


@dataclass
class _Daemon:
    """What the controller knows of one Release's daemon: how to wake it, and what it follows."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    source: str = ""
    generation: Any = None
    desired: Desired | None = None
    """The last revision rendered, kept for health and drift between syncs."""
    dry_run_noted: tuple[str, Any] | None = None
    """(revision, generation) whose dry run was already reported, in the operator's dry-run mode."""


class ReleaseController:
    """Sync, prune, health and drift of Releases; handlers call ``run`` (daemon) and ``*_changed`` (events)."""

    def __init__(
        self,
        settings: settings_.OperatorSettings,
        cluster: ReleaseCluster,
        applier: ObjectApplier,
        *,
        events: EventSink | None = None,
        now: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.applier = applier
        self._events = events or events_.post
        self._now = now
        self._daemons: dict[tuple[str, str], _Daemon] = {}
        self._sources: dict[tuple[str, str], tuple[Any, Any]] = {}

    # -- Wake-ups

    def source_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A GitSource changed: wake the Releases that follow it when its revision or readiness moved."""
        metadata = _mapping(body.get("metadata"))
        key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        status = _mapping(body.get("status"))
        ready = conditions.find(status.get("conditions"), conditions.READY)
        seen = (
            (None, "Deleted") if deleted else (_mapping(status.get("artifact")).get("revision"), ready and ready.status)
        )
        if self._sources.get(key) == seen:
            return
        self._sources[key] = seen
        for (namespace, _), daemon in self._daemons.items():
            if namespace == key[0] and daemon.source == key[1]:
                daemon.wake.set()

    def release_changed(self, body: Mapping[str, Any]) -> None:
        """A Release changed: wake its daemon when its spec did (a new generation)."""
        metadata = _mapping(body.get("metadata"))
        daemon = self._daemons.get((str(metadata.get("namespace") or ""), str(metadata.get("name") or "")))
        if daemon is not None and daemon.generation != metadata.get("generation"):
            daemon.wake.set()

    # -- The daemon

    async def run(self, namespace: str, name: str, stopped: Any) -> None:
        """Reconcile one Release until its daemon stops (``stopped``: Kopf's flag, or anything with ``wait``)."""
        daemon = self._daemons.setdefault((namespace, name), _Daemon())
        try:
            while not stopped:
                daemon.wake.clear()
                try:
                    delay = await self.reconcile(namespace, name, daemon)
                except cluster_.Conflict:
                    delay = 0.0  # the Release changed under this pass: read it again and redo the pass
                except apply.ApplyError as error:
                    logger.warning("Release %s/%s: %s; trying again in %.0f s", namespace, name, error, RETRY_AFTER)
                    delay = RETRY_AFTER
                except Exception:
                    logger.exception(
                        "Release %s/%s: the pass failed; trying again in %.0f s", namespace, name, RETRY_AFTER
                    )
                    delay = RETRY_AFTER
                await daemons.wait_any(daemon.wake, stopped, delay)
        finally:
            if self._daemons.get((namespace, name)) is daemon:
                del self._daemons[(namespace, name)]

    async def reconcile(self, namespace: str, name: str, daemon: _Daemon | None = None) -> float | None:
        """One pass over a Release; the seconds until the next one (None: wait for a change)."""
        daemon = daemon or self._daemons.setdefault((namespace, name), _Daemon())
        release = await self.cluster.get_custom(RELEASES, namespace, name)
        if release is None:
            return None
        metadata, spec = _mapping(release.get("metadata")), _mapping(release.get("spec"))
        status = _mapping(release.get("status"))
        generation = metadata.get("generation")
        daemon.generation = generation
        daemon.source = str(_mapping(spec.get("sourceRef")).get("name") or "")
        if spec.get("suspend") or metadata.get("deletionTimestamp"):
            return None

        verdict = acceptance.assess(release)
        if not verdict.accepted:
            await self._write(
                release, {**acceptance.status_patch(release, verdict, now=self._now()), "phase": "Failed"}
            )
            self._event_once(release, "Warning", verdict.reason, verdict.message)
            return None
        accepted = acceptance.status_patch(release, verdict, now=self._now())["conditions"]
        current = conditions.remove(accepted, conditions.STALLED)
        interval = max(MIN_INTERVAL, durations.parse_duration(str(spec.get("interval") or "5m")).total_seconds())

        strategy = str(_mapping(spec.get("strategy")).get("type") or "Direct")
        if strategy != "Direct":
            message = (
                f"strategy {strategy} is not built in this version of Upkeep: nothing is applied; "
                "use strategy.type Direct to apply the manifests as declared"
            )
            await self._set_ready(release, current, "Unknown", "StrategyNotImplemented", message, {"phase": "Pending"})
            return None

        source_name = daemon.source
        source = await self.cluster.get_custom(GITSOURCES, namespace, source_name)
        problem, artifact = _source_state(namespace, source_name, source)
        if problem is not None:
            await self._set_ready(release, current, "False", "SourceNotReady", problem, {})
            self._event_once(release, "Warning", "SourceNotReady", problem)
            return interval
        assert artifact is not None
        revision = str(artifact["revision"])
        ready = conditions.find(status.get("conditions"), conditions.READY)
        needs_sync = (
            status.get("revision") != revision
            or status.get("observedGeneration") != generation
            or (ready is not None and ready.reason in SYNC_FAILURES)
            or self.settings.safety.dry_run
        )
        if needs_sync:
            return await self._sync(release, current, source or {}, artifact, daemon, interval)
        return await self._watch(release, current, source or {}, artifact, daemon, interval)

    # -- Sync: render, validate every object, apply, prune

    async def _sync(
        self,
        release: Mapping[str, Any],
        current: list[dict[str, Any]],
        source: Mapping[str, Any],
        artifact: Mapping[str, Any],
        daemon: _Daemon,
        interval: float,
    ) -> float | None:
        status = _mapping(release.get("status"))
        revision = str(artifact["revision"])
        try:
            desired = await self._desired(release, source, artifact)
            await self._dry_run(desired)
        except SyncRefused as refused:
            await self._set_ready(
                release, current, "False", refused.reason, refused.message, {"desiredRevision": revision}
            )
            self._event_once(release, "Warning", refused.reason, refused.message)
            return interval
        daemon.desired = desired
        if self.settings.safety.dry_run:
            await self._report_dry_run(release, desired, daemon)
            return interval

        previous = [ObjectRef.from_dict(item) for item in status.get("inventory") or []]
        orphaned_before = [ObjectRef.from_dict(item) for item in status.get("orphaned") or []]
        applied: list[ObjectRef] = []
        counts = {"created": 0, "configured": 0, "unchanged": 0}
        # A value a remediation holds (status.overrides, until it expires) is applied instead of git's, so a new
        # revision does not undo the fix either; once it expires, the next pass applies git's value.
        held = [item for item in drift.parse_overrides(status.get("overrides")) if item.active(self._now())]

        async def apply_one(desired_body: Mapping[str, Any]) -> tuple[ObjectRef, str]:
            body = drift.heal_body(desired_body, held) if held else desired_body
            before = await self.applier.get(body)
            written = await self._apply_one(body, desired)
            ref = ObjectRef.of(written) if written.get("kind") else ObjectRef.of(body)
            if before is None:
                return ref, "created"
            same = before.get("metadata", {}).get("resourceVersion") == written.get("metadata", {}).get(
                "resourceVersion"
            )
            return ref, "unchanged" if same else "configured"

        try:
            # Tier by tier (namespaces, then CRDs, then the rest), the objects of a tier side by side.
            for tier in _tiers(desired.objects):
                results = await _bounded([apply_one(body) for body in tier], APPLY_CONCURRENCY)
                first_failure: apply.ApplyError | None = None
                for result in results:
                    if isinstance(result, apply.ApplyError):
                        first_failure = first_failure or result
                    elif isinstance(result, BaseException):
                        raise result
                    else:
                        applied.append(result[0])
                        counts[result[1]] += 1
                if first_failure is not None:
                    raise first_failure
        except apply.ApplyError as error:
            # Validation passed, so this is the API server changing its mind or going away: what was applied
            # stays in the inventory (so a later prune finds it), the revision is not claimed.
            message = f"{_short_revision(revision)}: {error}{_where(desired, error)}"
            kept = _union(previous, applied)
            failed = {"desiredRevision": revision, "inventory": [ref.to_dict() for ref in kept]}
            await self._set_ready(release, current, "False", "ApplyFailed", message, failed)
            self._event_once(release, "Warning", "ApplyFailed", message)
            return RETRY_AFTER if error.retryable else interval

        pruned, orphaned, prune_errors = await self._prune(release, _union(previous, orphaned_before), applied)
        now = self._now()
        extra: dict[str, Any] = {
            "revision": revision,
            "desiredRevision": revision,
            "lastAppliedAt": _timestamp(now),
            "inventory": [ref.to_dict() for ref in applied],
            "orphaned": [ref.to_dict() for ref in orphaned] or None,
        }
        message = (
            f"Applied {_short_revision(revision)}: {len(applied)} objects ({counts['created']} created, "
            f"{counts['configured']} configured, {counts['unchanged']} unchanged), {len(pruned)} pruned"
        )
        self._events(release, "Normal", "Applied", message)
        where = _mapping(release.get("metadata"))
        logger.info("release %s/%s: %s", where.get("namespace"), where.get("name"), message)
        new_orphans = {ref for ref in orphaned} - set(orphaned_before)
        if new_orphans:
            self._events(release, "Warning", "OrphanedObjects", _orphan_message(release, sorted(new_orphans)))
        for error_message in prune_errors:
            self._events(release, "Warning", "PruneFailed", error_message)
        summary = await self._health(applied)
        timeout = durations.parse_duration(str(_mapping(release.get("spec")).get("timeout") or "5m"))
        verdict = judge_health(summary, count=len(applied), revision=revision, applied_at=now, timeout=timeout, now=now)
        extra["phase"] = verdict.phase
        if verdict.phase == "Healthy":
            extra["stableRevision"] = revision
        await self._set_ready(release, current, verdict.ready, verdict.reason, verdict.message, extra)
        return PROGRESS_RECHECK if verdict.phase == "Progressing" else interval

    async def _desired(
        self, release: Mapping[str, Any], source: Mapping[str, Any], artifact: Mapping[str, Any]
    ) -> Desired:
        """Fetch, render and check one revision, and stamp its objects; ``SyncRefused`` says what is wrong."""
        metadata, spec = _mapping(release.get("metadata")), _mapping(release.get("spec"))
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        revision = str(artifact["revision"])
        short = _short_revision(revision)
        tree = await self._tree(namespace, source, artifact)
        path = str(spec.get("path") or "./")
        try:
            rendered = await asyncio.to_thread(render.render, tree, path)
        except ValueError as error:
            raise SyncRefused("RenderFailed", f"{short}: spec.path: {error}") from error
        if rendered.errors:
            first = rendered.errors[0]
            more = f" (and {len(rendered.errors) - 1} more)" if len(rendered.errors) > 1 else ""
            raise SyncRefused("RenderFailed", f"{short}: {first.render()}{more}")
        if not rendered.objects:
            raise SyncRefused("RenderFailed", f"{short}: no manifests at {render.normalize_path(path)}")
        report = await asyncio.to_thread(validation.validate_documents, rendered.documents)
        if report.errors:
            first_finding = report.errors[0]
            more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
            what = f"{first_finding.kind} {first_finding.name}" if first_finding.kind else "document"
            where = f" {first_finding.field}:" if first_finding.field else ":"
            said = first_finding.message
            if first_finding.kind == "Secret":
                said = _GOT.sub("", said)  # the value a finding quotes may be a secret's
            raise SyncRefused(
                "InvalidManifests", f"{short}: {first_finding.file}:{first_finding.line}: {what}{where} {said}{more}"
            )
        target = str(spec.get("targetNamespace") or namespace)
        defined = _crd_scopes(rendered.objects.values())
        created_namespaces = {key.name for key in rendered.objects if (key.group, key.kind) == _NAMESPACE_KEY}
        objects: list[Mapping[str, Any]] = []
        sources: dict[ObjectRef, str] = {}
        unchecked: set[ObjectRef] = set()
        known: dict[str, bool] = {}
        problems: list[str] = []
        for key in render.apply_order(rendered.objects):
            item = rendered.objects[key]
            where = f"{item.document.file}:{item.document.line}"
            scope = defined.get((key.group, key.kind))
            served = True
            try:
                namespaced = await self.applier.namespaced(str(item.body["apiVersion"]), key.kind)
            except apply.UnknownKind as error:
                if scope is None:
                    problems.append(f"{where}: {error}")
                    continue
                served = False  # its CRD is in this set and not applied yet
            if scope is not None:
                namespaced = scope
            body = stamp(
                item.body, release_namespace=namespace, release_name=name, namespace=target if namespaced else None
            )
            ref = ObjectRef.of(body)
            objects.append(body)
            sources[ref] = where
            if not served or (ref.namespace in created_namespaces and not await self._exists(ref.namespace, known)):
                unchecked.add(ref)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise SyncRefused("DryRunFailed", f"{short}: {problems[0]}{more}")
        return Desired(revision, metadata.get("generation"), tuple(objects), sources, frozenset(unchecked))

    async def _exists(self, namespace: str, known: dict[str, bool]) -> bool:
        """Whether the namespace exists in the cluster (remembered in ``known`` for one render)."""
        if namespace not in known:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            known[namespace] = await self.applier.get(body) is not None
        return known[namespace]

    async def _tree(
        self, namespace: str, source: Mapping[str, Any], artifact: Mapping[str, Any]
    ) -> Mapping[str, bytes]:
        """The files of the artifact's commit, fetched into the cache if it is not there yet."""
        spec = _mapping(source.get("spec"))
        short = _short_revision(str(artifact["revision"]))
        try:
            auth = await gitsources.fetch_auth(self.cluster, namespace, source)
        except gitsources.SourceError as error:
            raise SyncRefused("FetchFailed", f"{short}: {error.message}") from error
        timeout = durations.parse_duration(str(spec.get("timeout") or "60s")).total_seconds()
        sha = str(artifact.get("commit") or str(artifact["revision"]).rpartition("sha1:")[2])
        cache = Path(self.settings.gitops.cache_path())
        try:
            fetched = await asyncio.to_thread(
                functools.partial(
                    git.fetch,
                    str(spec.get("url") or ""),
                    git.Ref("commit", sha),
                    cache,
                    timeout=timeout,
                    **auth.options(),
                )
            )
            fetched = dataclasses.replace(fetched, revision=str(artifact["revision"]))
            return await asyncio.to_thread(git.read_tree, fetched, "")
        except (git.GitError, ValueError) as error:
            message = getattr(error, "message", str(error))
            raise SyncRefused("FetchFailed", f"{short}: cannot read the commit: {message}") from error

    async def _dry_run(self, desired: Desired) -> None:
        """A server dry run of every object that can be checked so; ``SyncRefused`` with every failure counted."""
        checked = [body for body in desired.objects if ObjectRef.of(body) not in desired.unchecked]
        results = await _bounded([self.applier.apply(body, dry_run=True) for body in checked], APPLY_CONCURRENCY)
        problems: list[str] = []
        for body, result in zip(checked, results, strict=True):
            if isinstance(result, apply.ApplyError):
                if result.retryable:
                    raise result
                problems.append(f"{desired.sources.get(ObjectRef.of(body), '?')}: {result}")
            elif isinstance(result, BaseException):
                raise result
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise SyncRefused("DryRunFailed", f"{_short_revision(desired.revision)}: {problems[0]}{more}")

    async def _apply_one(self, body: Mapping[str, Any], desired: Desired) -> dict[str, Any]:
        """Apply one object; a kind whose CRD was just applied is given ``CRD_WAIT`` to be served."""
        deadline = asyncio.get_running_loop().time() + CRD_WAIT
        while True:
            try:
                return await self.applier.apply(body)
            except (apply.UnknownKind, apply.NotFound) as error:
                if ObjectRef.of(body) not in desired.unchecked or asyncio.get_running_loop().time() > deadline:
                    raise
                logger.debug("%s: waiting for its CRD or namespace to be served (%s)", ObjectRef.of(body), error)
                await asyncio.sleep(0.2)

    async def _prune(
        self, release: Mapping[str, Any], previous: Sequence[ObjectRef], applied: Sequence[ObjectRef]
    ) -> tuple[list[ObjectRef], list[ObjectRef], list[str]]:
        """Delete or list as orphaned what git no longer declares: (pruned, orphaned, error messages)."""
        metadata, spec = _mapping(release.get("metadata")), _mapping(release.get("spec"))
        label = owner_label(str(metadata.get("namespace")), str(metadata.get("name")))
        prune = _mapping(spec.get("prune"))
        enabled, propagation = bool(prune.get("enabled")), str(prune.get("propagationPolicy") or "Background")
        pruned: list[ObjectRef] = []
        orphaned: list[ObjectRef] = []
        errors: list[str] = []
        for ref in prune_candidates(previous, applied):
            try:
                live = await self.applier.get(ref.body())
            except apply.UnknownKind:
                continue  # its kind is gone (the CRD was deleted), and so is the object
            except apply.ApplyError as error:
                orphaned.append(ref)
                errors.append(f"could not read {error}")
                continue
            if live is None:
                continue
            labels = _mapping(_mapping(live.get("metadata")).get("labels"))
            if labels.get(OWNER_LABEL) != label:
                continue  # no longer ours: another Release or a person took it over
            if not enabled or labels.get(PRUNE_LABEL) == PRUNE_DISABLED:
                orphaned.append(ref)
                continue
            try:
                await self.applier.delete(ref.body(), propagation)
                pruned.append(ref)
            except apply.ApplyError as error:
                orphaned.append(ref)
                errors.append(f"could not prune {error}")
        return pruned, orphaned, errors

    async def _report_dry_run(self, release: Mapping[str, Any], desired: Desired, daemon: _Daemon) -> None:
        """The operator's dry-run mode: say once per revision and spec what a sync would change; write nothing."""
        noted = (desired.revision, desired.generation)
        if daemon.dry_run_noted == noted:
            return
        changes: list[str] = []
        for body in desired.objects:
            ref = ObjectRef.of(body)
            live = await self.applier.get(body)
            if live is None:
                changes.append(f"create {ref}")
                continue
            if ref in desired.unchecked:
                continue
            after = await self.applier.apply(body, dry_run=True)
            fields = diff.diff_objects(live, after)
            if fields:
                paths = ", ".join(change.path for change in fields[:5])
                more = f" and {len(fields) - 5} more" if len(fields) > 5 else ""
                changes.append(f"change {ref} ({paths}{more})")
        status = _mapping(release.get("status"))
        previous = [
            ObjectRef.from_dict(item) for item in [*(status.get("inventory") or []), *(status.get("orphaned") or [])]
        ]
        prune = bool(_mapping(_mapping(release.get("spec")).get("prune")).get("enabled"))
        for ref in prune_candidates(previous, desired.refs):
            changes.append(f"{'delete' if prune else 'orphan'} {ref}")
        what = "; ".join(changes) if changes else "nothing would change"
        self._events(release, "Normal", "DryRun", f"Dry run of {_short_revision(desired.revision)}: {what}")
        daemon.dry_run_noted = noted

    # -- Between syncs: health and drift of what is applied

    async def _watch(
        self,
        release: Mapping[str, Any],
        current: list[dict[str, Any]],
        source: Mapping[str, Any],
        artifact: Mapping[str, Any],
        daemon: _Daemon,
        interval: float,
    ) -> float | None:
        status, spec = _mapping(release.get("status")), _mapping(release.get("spec"))
        revision = str(status.get("revision"))
        inventory = [ObjectRef.from_dict(item) for item in status.get("inventory") or []]
        extra: dict[str, Any] = {}
        desired = daemon.desired
        if desired is None or desired.revision != revision or desired.generation != status.get("observedGeneration"):
            try:
                desired = await self._desired(release, source, artifact)
            except SyncRefused as refused:
                logger.warning("Release: cannot render the applied revision again for drift: %s", refused.message)
                desired = None
            daemon.desired = desired
        if desired is not None:
            outcome = await releasedrift.reconcile_drift(
                release,
                list(desired.objects),
                get_live=self._live,
                apply=self.applier.apply,
                now=self._now(),
                dry_run=self.settings.safety.dry_run,
                post_event=self._events,
            )
            extra["drift"] = list(outcome.drift) or None
            expired = set(outcome.expired_overrides)
            if expired:
                kept = [item for item in status.get("overrides") or [] if item.get("id") not in expired]
                extra["overrides"] = kept or None
        summary = await self._health(inventory)
        timeout = durations.parse_duration(str(spec.get("timeout") or "5m"))
        verdict = judge_health(
            summary,
            count=len(inventory),
            revision=revision,
            applied_at=_parse_time(status.get("lastAppliedAt")),
            timeout=timeout,
            now=self._now(),
        )
        extra["phase"] = verdict.phase
        if verdict.phase == "Healthy":
            extra["stableRevision"] = revision
        await self._set_ready(release, current, verdict.ready, verdict.reason, verdict.message, extra)
        return PROGRESS_RECHECK if verdict.phase == "Progressing" else interval

    async def _live(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object for drift; None when its kind is no longer served (the CRD was deleted)."""
        try:
            return await self.applier.get(obj)
        except apply.UnknownKind:
            return None

    async def _health(self, refs: Sequence[ObjectRef]) -> health.Health:
        """The summary of the live objects' health; an object that is gone is Degraded."""
        found: list[tuple[str, health.Health]] = []
        for ref in refs:
            try:
                live = await self.applier.get(ref.body())
            except apply.UnknownKind:
                found.append((health.display_name(ref.body()), health.Health("Degraded", "its kind is not served")))
                continue
            except apply.ApplyError as error:
                if error.retryable:
                    raise
                found.append((health.display_name(ref.body()), health.Health("Unknown", f"cannot be read: {error}")))
                continue
            if live is None:
                gone = health.Health("Degraded", "not found: it was deleted after it was applied")
                found.append((health.display_name(ref.body()), gone))
                continue
            found.append((health.display_name(live), health.assess(live)))
        return health.summarize(found)

    # -- Status and Events

    async def _set_ready(
        self,
        release: Mapping[str, Any],
        current: list[dict[str, Any]],
        ready: conditions.ConditionStatus,
        reason: str,
        message: str,
        extra: Mapping[str, Any],
    ) -> None:
        generation = _mapping(release.get("metadata")).get("generation")
        now = self._now()
        updated = conditions.set_condition(
            current, conditions.Condition(conditions.READY, ready, reason, message, generation), now=now
        )
        if ready == "True" or reason in ("StrategyNotImplemented", "Degraded"):
            updated = conditions.remove(updated, conditions.RECONCILING)
        else:
            updated = conditions.set_condition(
                updated, conditions.Condition(conditions.RECONCILING, "True", reason, message, generation), now=now
            )
        wanted: dict[str, Any] = {"conditions": updated}
        if reason != "SourceNotReady":
            # A generation is observed once acted on: a spec changed while the source is down (a new path, a
            # new targetNamespace) is synced when the source is back, even though the revision is the same.
            wanted["observedGeneration"] = generation
        if "phase" not in extra:
            if reason == "SourceNotReady":
                if not _mapping(release.get("status")).get("phase"):
                    wanted["phase"] = "Pending"
            elif ready == "False":
                wanted["phase"] = "Failed"
        wanted.update(extra)
        await self._write(release, wanted)

    async def _write(self, release: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
        patch = status_changes(_mapping(release.get("status")), wanted)
        if not patch:
            return
        metadata = _mapping(release.get("metadata"))
        body: dict[str, Any] = {"status": patch}
        if "overrides" in patch and metadata.get("resourceVersion"):
            # Remediations add overrides while this pass runs; dropping expired ones must not drop a new one.
            body["metadata"] = {"resourceVersion": metadata["resourceVersion"]}
        await self.cluster.patch_custom(
            RELEASES, str(metadata.get("namespace")), str(metadata.get("name")), body, status=True
        )

    def _event_once(self, release: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """An Event for a failure, unless the Ready condition already says the same (no Event every interval)."""
        ready = conditions.find(_mapping(release.get("status")).get("conditions"), conditions.READY)
        if ready is not None and ready.reason == reason and ready.message == message:
            return
        self._events(release, type_, reason, message)


def _source_state(
    namespace: str, name: str, source: Mapping[str, Any] | None
) -> tuple[str | None, Mapping[str, Any] | None]:
    """(why the GitSource cannot be used, None) or (None, its artifact)."""
    if source is None:
        return f"GitSource {namespace}/{name} does not exist: create it or fix spec.sourceRef.name", None
    status = _mapping(source.get("status"))
    artifact = _mapping(status.get("artifact"))
    ready = conditions.find(status.get("conditions"), conditions.READY)
    said = f"{ready.reason}: {ready.message}" if ready is not None else "not reconciled yet"
    if not artifact.get("revision"):
        return f"GitSource {namespace}/{name} has no artifact yet ({said})", None
    if ready is None or ready.status != "True":
        return f"GitSource {namespace}/{name} is not ready ({said})", None
    return None, artifact


def _crd_scopes(objects: Iterable[render.RenderedObject]) -> dict[tuple[str, str], bool]:
    """(group, kind) → namespaced, of the kinds the set's own CRDs define."""
    found: dict[tuple[str, str], bool] = {}
    for item in objects:
        if (item.key.group, item.key.kind) != _CRD_KEY:
            continue
        crd_spec = _mapping(item.body.get("spec"))
        kind = _mapping(crd_spec.get("names")).get("kind")
        if crd_spec.get("group") and kind:
            found[(str(crd_spec["group"]), str(kind))] = crd_spec.get("scope") != "Cluster"
    return found


def _union(first: Iterable[ObjectRef], second: Iterable[ObjectRef]) -> list[ObjectRef]:
    seen: set[tuple[str, str, str, str]] = set()
    out: list[ObjectRef] = []
    for ref in [*first, *second]:
        if ref.identity not in seen:
            seen.add(ref.identity)
            out.append(ref)
    return out


def _where(desired: Desired, error: apply.ApplyError) -> str:
    for ref, where in desired.sources.items():
        if str(ref) == error.object:
            return f" (declared at {where})"
    return ""


def _orphan_message(release: Mapping[str, Any], refs: Sequence[ObjectRef]) -> str:
    listed = ", ".join(str(ref) for ref in refs[:10])
    more = f" and {len(refs) - 10} more" if len(refs) > 10 else ""
    enabled = bool(_mapping(_mapping(release.get("spec")).get("prune")).get("enabled"))
    why = "they are labelled upkeep.dev/prune=disabled" if enabled else "spec.prune.enabled is false"
    return f"Git no longer declares {listed}{more}; kept because {why} (status.orphaned lists them)"


T = TypeVar("T")
APPLY_CONCURRENCY = 8
"""Objects of one tier dry-run or applied at once: each is two or three API calls, and a hundred of them one after
another took about a second per sync (bench/gitops.py); eight in flight keep a busy API server's queue short."""
_TIER_OF = {("", "Namespace"): 0, ("apiextensions.k8s.io", "CustomResourceDefinition"): 1}


def _tiers(objects: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """``objects`` (in ``render.apply_order``) cut where the tier changes: namespaces, CRDs, then the rest."""
    tiers: list[list[Mapping[str, Any]]] = []
    last = -1
    for body in objects:
        group = str(body.get("apiVersion") or "").rpartition("/")[0]
        tier = _TIER_OF.get((group, str(body.get("kind") or "")), 2)
        if tier != last:
            tiers.append([])
            last = tier
        tiers[-1].append(body)
    return tiers


async def _bounded(calls: Sequence[Awaitable[T]], limit: int) -> list[T | BaseException]:
    """Await ``calls`` with at most ``limit`` at once; each result or the exception it raised, in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls), return_exceptions=True)


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    cluster: ReleaseCluster | None = None,
    applier: ObjectApplier | None = None,
) -> ReleaseController:
    """Register the Release daemon and the wake-up handlers on ``registry``; the controller is returned."""
    controller = ReleaseController(
        settings, cluster or cluster_.KubernetesPlaybookCluster(), applier or apply.Applier()
    )

    async def on_source(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.source_changed(body, deleted=type == "DELETED")

    async def on_release(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type != "DELETED":
            controller.release_changed(body)

    async def sync(namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        await controller.run(namespace or "", name, stopped)

    kopf.on.event(GROUP, VERSION, GITSOURCES, id="release-sources", registry=registry)(on_source)
    kopf.on.event(GROUP, VERSION, RELEASES, id="release-changes", registry=registry)(on_release)
    kopf.daemon(GROUP, VERSION, RELEASES, id="release-sync", registry=registry, cancellation_timeout=5.0)(sync)
    return controller
