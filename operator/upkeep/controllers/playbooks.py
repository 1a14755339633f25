"""The playbook controller: an open Incident that a Playbook matches gets a PlaybookRun, run step by step.

How it is wired (``register``; docs/playbooks.md "How a run works" and "Guards" for users):

- ``kopf.on.event`` keeps what the guards look at (Playbooks, PlaybookRuns, Incidents,
  ChangePolicies) in memory, filled by Kopf's listing at start and by every change; nothing
  the guards decide depends on memory that a restart loses (``engine.guards``).
- Playbooks: each new generation is judged by ``engine.acceptance`` (``Accepted``; ``Ready``
  True/Valid, False/InvalidSpec naming the field, False/Paused); an invalid one never runs.
  ``status.runs`` and ``status.lastRun`` are counted from the runs seen.
- Incidents: one that is Triggered or Acknowledged and has no run under way gets the first
  matching Playbook (``engine.playbooks.candidates``) that has not had its turn in this
  episode of the incident (since it was last Triggered): a Playbook whose run failed with
  ``escalation.handOver`` passes the incident to the next by order; one that succeeded, was
  skipped, or failed without hand-over ends the automatic attempts until the incident is
  triggered again. The guards (``engine.guards.check_run``) decide; a refusal creates the run
  as Skipped with the reason, so people see why. The run's name is derived from (incident,
  playbook, attempt), so two replicas create one run. It is owned by the Incident and linked
  in ``status.playbookRuns``.
- The path from an incident to its first action is kept short (bench/remediation.py): an incident
  that never had a run is not listed first (a name already taken makes the create conflict, and then
  it is); a run that may start is not written Pending and then Running: its first move writes Running
  and the first step Running with its key in one write, and that move is made at once by the process
  that created the run (``_kick``), not when the watch spawns the daemon; linking the run on the
  Incident (with the move to Mitigating, in the same write) and Events follow in the background.
- PlaybookRuns: a ``kopf.daemon`` per run that is not finished drives it, one move at a time
  (``engine.playbooks.next_move``), from the newest copy of the run this process has (its own
  writes and the watch's; read from the API after a 409). A step is recorded
  Running with its idempotency key and description FIRST (status subresource, against the
  resourceVersion read; a 409 means someone else wrote: re-read and re-decide), then the
  action runs, then its outcome is recorded, then the action's own verification is awaited.
  After a restart a step left Running without an outcome is resolved by
  ``action.already_done`` before anything else: done → recorded, not done → run. Only the
  holder of the run's lease (``status.lease``: holder and renewedAt, renewed with every
  write) acts; another process takes over only after the lease (``settings.remediation.run_lease``,
  ``upkeep run --run-lease``) has passed without renewal.
- The Incident follows the run: Mitigating when it starts, Mitigated when the Playbook's
  verification holds (the incident controller then auto-resolves it as usual), and on
  failure back to Acknowledged with the escalation: severity one level worse (a spec change,
  once per run), the Playbook's channels notified (claimed by key, once), and the next
  matching Playbook gets its turn.
- Dry run (the Playbook's mode DryRun, or ``spec.dryRun``): each step records what it would
  do (``action.describe``), the run ends DryRun, and neither the cluster nor the Incident
  changes. ``--dry-run`` (``settings.safety.dry_run``) writes no Incidents, so no run starts;
  this controller then creates no run and executes none.

Every start, step, skip, success and failure posts a Kubernetes Event on the run and the Incident.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import kopf

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.actions import base, registry, rollouts
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import daemons
from upkeep.controllers import events as events_
from upkeep.controllers import incidents as incident_controller
from upkeep.engine import acceptance, durations, guards, incidents, playbooks, semantics, sla
from upkeep.model import conditions, errors, lifecycle, resources
from upkeep.notify import channels as channels_

__all__ = [
    "KINDS",
    "LEASE_DURATION",
    "Notifier",
    "PlaybookController",
    "register",
]

logger = logging.getLogger(__name__)

KINDS = frozenset({"Playbook", "PlaybookRun"})
"""The kinds this controller owns (the acceptance controller leaves them alone)."""
LEASE_DURATION = datetime.timedelta(seconds=settings_.RemediationSettings().run_lease)
"""The default of how long a run's lease holds without renewal (``settings.remediation.run_lease`` sets it):
a process that died mid-run is replaced after this."""
STEP_POLL = 0.5
"""Seconds between two looks at an action's own verification, or the Playbook's."""
ROLLBACK_HOLD = datetime.timedelta(hours=24)
"""How long a Release holds the template a rollback put back (an override of ``spec.template``): a day for people to
merge the revert branch the write-back pushed; merged sooner, git declares that template itself."""
APPROVAL_POLL = 30.0
"""Seconds between two looks at a run waiting for approval (a change of the run wakes it sooner)."""
FREEZE_POLL = 30.0
"""Seconds between two looks at a step held by a freeze window."""
MAX_ATTEMPTS = 10
"""Writes retried after a conflict (Incident status) before giving up until the next change."""
COUNT_DELAY = 1.0
"""Seconds a Playbook's ``status.runs`` may lag its runs: the run changes meanwhile are counted in one write."""
KICK_MOVES = 8
"""Moves a new run gets at once from the process that created it, before its daemon (spawned by the watch)
takes over: start to first action without waiting for the watch."""
LINK_RETRY = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds between tries of linking a run on its Incident when the API fails (not on a 409: that re-reads)."""
INCIDENTS = "incidents"
OPEN_FOR_RUNS = ("Triggered", "Acknowledged")
"""Incident phases in which a new run may start."""
SEVERITY_RAISED_ANNOTATION = "upkeep.dev/severity-raised-by"
"""Set on the Incident with the severity raise, naming the run: a resumed escalation does not raise twice."""

EventSink = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""


class Notifier(Protocol):
    """Tells channels of an incident a message, once per key (``NotificationController.send``)."""

    def __call__(
        self, incident: Mapping[str, Any], *, key: str, reason: str, message: str, channels_: tuple[str, ...]
    ) -> Awaitable[None]: ...


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key(body: Mapping[str, Any]) -> tuple[str, str]:
    metadata = _mapping(body.get("metadata"))
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def _phase(body: Mapping[str, Any] | None) -> str:
    return str(_mapping(_mapping(body).get("status")).get("phase") or "")


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int(str(_mapping(body.get("metadata")).get("resourceVersion")))
    except ValueError:
        return -1


def _created(body: Mapping[str, Any], fallback: datetime.datetime) -> datetime.datetime:
    return sla.parse_time(_mapping(body.get("metadata")).get("creationTimestamp")) or fallback


def _holder() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class _Again:
    """``_consider``'s answer when the create conflicted on a guess made without listing: list and decide again."""


_AGAIN = _Again()


@dataclass(frozen=True)
class _Turn:
    """Whose turn it is for an incident: a Playbook and the attempt number, or nothing (with why)."""

    playbook: Mapping[str, Any] | None
    attempt: int = 0
    why: str = ""


class PlaybookController:
    """Incidents in, PlaybookRuns out and driven. ``register`` wires one to Kopf; a test drives one directly."""

    def __init__(
        self,
        settings: settings_.OperatorSettings,
        cluster: cluster_.PlaybookCluster,
        *,
        action_cluster: base.ActionCluster | None = None,
        actions: Mapping[str, base.Action] | None = None,
        policy_for: Callable[[str], Mapping[str, Any] | None] | None = None,
        notifier: Notifier | None = None,
        events: EventSink | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
        holder: str | None = None,
        lease_duration: datetime.timedelta | None = None,
        impacts: Callable[[str, base.ActionContext], Awaitable[Sequence[Any]]] | None = None,
        background: bool = False,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.action_cluster = action_cluster
        self._actions = actions
        self.policy_for = policy_for or (lambda namespace: None)
        self.notifier = notifier
        self._events = events or events_.post
        self._clock = clock or _utcnow
        self.holder = holder or _holder()
        self.lease_duration = lease_duration or datetime.timedelta(seconds=settings.remediation.run_lease)
        """How long another process's lease keeps this one off a run (``settings.remediation.run_lease``)."""
        self._impacts = impacts
        self.playbooks: dict[tuple[str, str], dict[str, Any]] = {}
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.incidents: dict[tuple[str, str], dict[str, Any]] = {}
        self.change_policies: dict[str, dict[str, Any]] = {}
        self.releases: dict[tuple[str, str], dict[str, Any]] = {}
        """The Releases of the watched namespaces (the watch's copies): which workloads a Release declares."""
        self._decide = asyncio.Lock()
        self._considering: dict[tuple[str, str], asyncio.Lock] = {}
        self._wakes: dict[tuple[str, str], asyncio.Event] = {}
        self._told: set[tuple[str, ...]] = set()
        self.background = background
        """Side work (linking a run on its Incident, counting runs, the first moves of a new run) in tasks of its
        own, off the path from incident to first action (``register``); False does it inline (a test's driving)."""
        self._advancing: dict[tuple[str, str], asyncio.Lock] = {}
        self._stale: set[tuple[str, str]] = set()
        self._linking: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._counting: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unwritten: dict[tuple[str, str], dict[str, Any]] = {}
        """The starting status of runs ``consider`` created and left to their first move to write."""

    # -- lookups

    def action(self, name: str) -> base.Action:
        """The catalog action of that name (``KeyError`` when there is none)."""
        if self._actions is not None:
            return self._actions[name]
        return registry.get(name)

    async def impacts_of(self, name: str, ctx: base.ActionContext) -> Sequence[Any]:
        """What the action would take away, per workload (``actions.impact.Impact``); empty for most actions."""
        if self._impacts is not None:
            return await self._impacts(name, ctx)
        if self._actions is not None:
            return ()
        return await registry.impacts(name, ctx)

    def playbook_for(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Playbook of the namespace, else a cluster-wide one of that name."""
        found = self.playbooks.get((namespace, name))
        if found is not None:
            return found
        for (_, other), body in sorted(self.playbooks.items()):
            labels = _mapping(_mapping(body.get("metadata")).get("labels"))
            if other == name and labels.get(semantics.CLUSTER_SCOPE_LABEL) == "cluster":
                return body
        return None

    def playbooks_in_scope(self, namespace: str) -> list[dict[str, Any]]:
        """The Playbooks an incident of the namespace may get: its own and the cluster-wide ones."""
        found = []
        for (where, _), body in sorted(self.playbooks.items()):
            labels = _mapping(_mapping(body.get("metadata")).get("labels"))
            if where == namespace or labels.get(semantics.CLUSTER_SCOPE_LABEL) == "cluster":
                found.append(body)
        return found

    def _remember(self, store: dict[tuple[str, str], dict[str, Any]], body: Mapping[str, Any]) -> dict[str, Any]:
        key = _key(body)
        cached = store.get(key)
        same = cached is not None and _mapping(cached.get("metadata")).get("uid") == _mapping(body.get("metadata")).get(
            "uid"
        )
        if cached is not None and same and _rv(cached) > _rv(body):
            return cached
        store[key] = dict(body)
        return store[key]

    def _wake(self, key: tuple[str, str]) -> asyncio.Event:
        found = self._wakes.get(key)
        if found is None:
            found = self._wakes[key] = asyncio.Event()
        return found

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        """A task kept referenced until it ends (the loop holds tasks weakly)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- events in

    async def playbook_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A Playbook was written: judge a new generation; open incidents of its scope may now match."""
        key = _key(body)
        if deleted:
            self.playbooks.pop(key, None)
            return
        before = self.playbooks.get(key)
        current = self._remember(self.playbooks, body)
        await self._accept_playbook(current)
        if before is not None and _matching_view(before) == _matching_view(self.playbooks.get(key) or current):
            return  # only counts or the lease of a run changed (``_count_runs``): no incident may match anew
        for incident in list(self.incidents.values()):
            if _phase(incident) in OPEN_FOR_RUNS:
                await self.consider(incident)

    async def run_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A PlaybookRun was written: wake its daemon, count it on its Playbook; a finished one may hand over."""
        key = _key(body)
        if deleted:
            self.runs.pop(key, None)
            self._unwritten.pop(key, None)
            return
        current = self._remember(self.runs, body)
        self._wake(key).set()
        await self._count_runs_soon(key[0], resources.PlaybookRun(current).playbook_name)
        if _phase(current) in lifecycle.PLAYBOOK_RUN.terminal:
            incident = self.incidents.get((key[0], resources.PlaybookRun(current).incident_name))
            if incident is not None and _phase(incident) in OPEN_FOR_RUNS:
                await self.consider(incident)

    async def incident_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """An Incident was written: an open one without a run under way may get one."""
        key = _key(body)
        if deleted:
            self.incidents.pop(key, None)
            return
        current = self._remember(self.incidents, body)
        if _phase(current) not in OPEN_FOR_RUNS:
            return
        if self.background:
            # Kopf calls the Incident handlers of one event one after another: the other controllers' handlers
            # of the next events do not wait for this one's writes (``consider`` keeps its own order per incident).
            self._spawn(self._consider_logged(current))
            return
        await self.consider(current)

    async def _consider_logged(self, incident: Mapping[str, Any]) -> None:
        try:
            await self.consider(incident)
        except Exception:
            namespace, name = _key(incident)
            logger.exception("incident %s/%s: could not start its run; its next change tries again", namespace, name)

    def hear(self, notice: incident_controller.Notice) -> None:
        """A notice of the incident controller (``IncidentController.listeners``): the Incident as its write returned
        it is considered at once, not when the watch brings it back through Kopf's queue behind the other handlers of
        that event (the shorter path from a failure to the first action, bench/remediation.py). The watch's copy
        follows; by then the run is reserved in the cache or created, and ``consider`` starts nothing twice."""
        if _phase(notice.incident) in OPEN_FOR_RUNS:
            self._spawn(self.incident_changed(notice.incident))

    def release_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        if deleted:
            self.releases.pop(_key(body), None)
        else:
            self.releases[_key(body)] = dict(body)

    def _declared_by_a_release(self, namespace: str, kind: str, name: str) -> bool:
        for (where, _), release in list(self.releases.items()):
            ref = _mapping(_mapping(release.get("spec")).get("workloadRef"))
            if where == namespace and ref.get("name") == name and str(ref.get("kind") or "Deployment") == kind:
                return True
        return False

    def change_policy_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        name = _key(body)[1]
        if deleted:
            self.change_policies.pop(name, None)
        else:
            self.change_policies[name] = dict(body)

    # -- Playbook status

    async def _accept_playbook(self, body: dict[str, Any]) -> None:
        view = resources.Playbook(body)
        generation = view.generation
        verdict = acceptance.assess(body)
        status = dict(view.status)
        found = acceptance.status_patch(body, verdict, now=self._clock())["conditions"]
        if verdict.accepted:
            if view.paused:
                found = conditions.set_condition(
                    found,
                    conditions.Condition(
                        conditions.READY, "False", "Paused", "spec.paused is true: no new runs start.", generation
                    ),
                    now=self._clock(),
                )
            else:
                found = conditions.mark_ready(
                    found, reason="Valid", message="Every step passes the action catalog checks.", generation=generation
                )
        wanted = {"observedGeneration": generation, "conditions": found}
        if status.get("observedGeneration") == generation and _same_conditions(status.get("conditions"), found):
            return
        try:
            written = await self.cluster.patch_custom(
                cluster_.PLAYBOOKS, view.namespace, view.name, {"status": wanted}, status=True
            )
        except Exception:
            logger.exception("playbook %s/%s: could not write its status", view.namespace, view.name)
            return
        self._remember(self.playbooks, written)
        if verdict.accepted:
            self._events(written, "Normal", "Paused" if view.paused else "Valid", verdict.message)
        else:
            self._events(written, "Warning", verdict.reason, verdict.message)

    async def _count_runs_soon(self, namespace: str, playbook: str) -> None:
        """Count at once inline; in the background one count per Playbook and ``COUNT_DELAY`` takes in every
        run change meanwhile (a hundred runs moving at once write the Playbook's status a few times, not
        hundreds, which would slow every other write of the API server)."""
        if not self.background:
            await self._count_runs(namespace, playbook)
            return
        if (namespace, playbook) in self._counting:
            return
        self._counting.add((namespace, playbook))

        async def later() -> None:
            await asyncio.sleep(COUNT_DELAY)  # a batching delay, not a synchronisation
            self._counting.discard((namespace, playbook))
            await self._count_runs(namespace, playbook)

        self._spawn(later())

    async def _count_runs(self, namespace: str, playbook: str) -> None:
        body = self.playbooks.get((namespace, playbook))
        if body is None:
            return
        mine = [run for (where, _), run in self.runs.items() if where == namespace]
        mine = [run for run in mine if resources.PlaybookRun(run).playbook_name == playbook]
        phases = [_phase(run) for run in mine]
        counts = {
            "total": len(mine),
            "succeeded": phases.count("Succeeded"),
            "failed": phases.count("Failed"),
            "skipped": phases.count("Skipped"),
        }
        status = _mapping(body.get("status"))
        patch: dict[str, Any] = {"runs": counts}
        if mine:
            last = max(mine, key=lambda run: (_created(run, self._clock()), resources.PlaybookRun(run).attempt))
            patch["lastRun"] = {
                "name": resources.Resource(last).name,
                "at": sla.format_time(_created(last, self._clock())),
                "phase": _phase(last) or "Pending",
            }
        if all(status.get(key) == value for key, value in patch.items()):
            return
        try:
            written = await self.cluster.patch_custom(
                cluster_.PLAYBOOKS, namespace, playbook, {"status": patch}, status=True
            )
        except Exception as error:
            logger.warning("playbook %s/%s: could not count its runs: %s", namespace, playbook, error)
            return
        self._remember(self.playbooks, written)

    # -- starting runs

    def _episode_start(self, incident: Mapping[str, Any]) -> datetime.datetime | None:
        status = _mapping(incident.get("status"))
        return sla.entered_at(status, "Triggered") or sla.parse_time(status.get("triggeredAt"))

    async def _workload_facts(self, incident: Mapping[str, Any]) -> playbooks.WorkloadFacts | None:
        """When the incident's Deployment was last rolled out, read only when a Playbook in scope asks
        (``match.rolledOutWithin``): its ReplicaSets, two reads before the decision, none for other playbooks."""
        namespace = _key(incident)[0]
        if self.action_cluster is None or not any(
            playbooks.needs_rollout_time(item) for item in self.playbooks_in_scope(namespace)
        ):
            return None
        workload = resources.Incident(incident).workload
        now = self._clock()
        if workload is None or workload.kind != "Deployment":
            return playbooks.WorkloadFacts(None, now)
        try:
            deployment = await self.action_cluster.get("apps/v1", "Deployment", workload.namespace, workload.name)
            if deployment is None:
                return playbooks.WorkloadFacts(None, now)
            uid = str(_mapping(deployment.get("metadata")).get("uid") or "")
            labels = _mapping(_mapping(_mapping(deployment.get("spec")).get("selector")).get("matchLabels"))
            selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
            found = await self.action_cluster.list("apps/v1", "ReplicaSet", workload.namespace, label_selector=selector)
        except Exception as error:  # an unreadable workload matches no rollout criterion; said in the log
            logger.warning(
                "incident %s/%s: could not read the rollouts of %s: %s", namespace, _key(incident)[1], workload, error
            )
            return playbooks.WorkloadFacts(None, now)
        owned = [item for item in found if rollouts.owned_by(item, uid)]
        return playbooks.WorkloadFacts(rollouts.rolled_out_at(owned), now)

    def _turn(
        self,
        incident: Mapping[str, Any],
        runs: Sequence[Mapping[str, Any]],
        facts: playbooks.WorkloadFacts | None = None,
    ) -> _Turn:
        """Which Playbook's turn it is for the incident now (see the module docstring)."""
        namespace = _key(incident)[0]
        matching = playbooks.candidates(self.playbooks_in_scope(namespace), incident, facts)
        episode = self._episode_start(incident)
        now = self._clock()

        def of(playbook: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            name = resources.Resource(playbook).name
            return [run for run in runs if resources.PlaybookRun(run).playbook_name == name]

        def in_episode(found: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
            return [run for run in found if episode is None or _created(run, now) >= episode]

        for playbook in (*matching.playbooks, *matching.paused[:1]):
            all_runs = of(playbook)
            current = in_episode(all_runs)
            attempt = max((resources.PlaybookRun(run).attempt for run in all_runs), default=0) + 1
            if not current:
                return _Turn(playbook, attempt)
            latest = max(current, key=lambda run: resources.PlaybookRun(run).attempt)
            escalation = _mapping(_mapping(playbook.get("spec")).get("escalation"))
            if _phase(latest) == "Failed" and escalation.get("handOver", True) is not False:
                continue
            return _Turn(None, why=f"the Playbook {resources.Resource(playbook).name} had its turn ({_phase(latest)})")
        return _Turn(None, why="no matching Playbook left")

    def _past_runs(self) -> list[guards.PastRun]:
        now = self._clock()
        return [
            guards.PastRun(
                playbook=resources.PlaybookRun(run).playbook_name,
                incident=resources.PlaybookRun(run).incident_name,
                namespace=where,
                started=sla.parse_time(_mapping(run.get("status")).get("startedAt")) or _created(run, now),
                phase=_phase(run),
            )
            for (where, _), run in self.runs.items()
        ]

    def _triggers(self) -> list[datetime.datetime]:
        found = []
        for incident in self.incidents.values():
            status = _mapping(incident.get("status"))
            moment = sla.parse_time(status.get("triggeredAt"))
            if moment is not None:
                found.append(moment)
        return found

    async def consider(self, incident: Mapping[str, Any]) -> str | None:
        """Start (or skip) the run an open incident is due; the name of the run created, or None.

        One incident is considered at a time (its own lock). Across incidents only the decision is
        serialised (``_decide``: the guards count every run, so two decisions must not both see the
        same budget); the decided run is reserved in the cache at once, and the writes that follow
        run concurrently, so a hundred incidents at once do not queue behind each other's API calls.
        """
        key = _key(incident)
        lock = self._considering.get(key)
        if lock is None:
            lock = self._considering[key] = asyncio.Lock()
        async with lock:
            found = await self._consider(incident, listing=False)
            if found is _AGAIN:
                found = await self._consider(incident, listing=True)
            return found if isinstance(found, str) else None

    async def _consider(self, incident: Mapping[str, Any], *, listing: bool) -> str | object | None:
        """``listing``: read the incident's runs from the API first. Not needed for an incident that never had
        a run (none linked, none seen): it is due attempt 1 of its first Playbook, whose name only a run this
        process has not seen yet can hold, and then the create conflicts and ``_AGAIN`` says: list, decide again.
        """
        namespace, name = _key(incident)
        incident = self.incidents.get((namespace, name), incident)
        if _phase(incident) not in OPEN_FOR_RUNS or self.settings.safety.dry_run:
            return None
        cached = [
            run
            for (where, _), run in self.runs.items()
            if where == namespace and resources.PlaybookRun(run).incident_name == name
        ]
        if any(_phase(run) not in lifecycle.PLAYBOOK_RUN.terminal for run in cached):
            return None
        if not self.playbooks_in_scope(namespace):
            return None
        fresh = not listing and not cached and not _mapping(incident.get("status")).get("playbookRuns")
        listed: list[dict[str, Any]] = []
        if not fresh:
            label = playbooks.new_run(incident, {"metadata": {"name": "x"}}, 1, dry_run=False)["metadata"]["labels"]
            listed = await self.cluster.list_custom(
                cluster_.PLAYBOOK_RUNS, namespace, {playbooks.INCIDENT_LABEL: label[playbooks.INCIDENT_LABEL]}
            )
        runs = [run for run in listed if resources.PlaybookRun(run).incident_name == name]
        for run in runs:
            self._remember(self.runs, run)
        if any(_phase(run) not in lifecycle.PLAYBOOK_RUN.terminal for run in runs):
            return None
        facts = await self._workload_facts(incident)
        async with self._decide:
            turn = self._turn(incident, runs, facts)
            if turn.playbook is None:
                return None
            playbook = turn.playbook
            spec = _mapping(playbook.get("spec"))
            now = self._clock()
            verdict = guards.check_run(
                guards.RunFacts(
                    namespace=namespace,
                    incident=name,
                    playbook=resources.Resource(playbook).name,
                    playbook_spec=spec,
                    policy_spec=self.policy_for(namespace),
                    runs=self._past_runs(),
                    incident_triggers=self._triggers(),
                    change_policies=list(self.change_policies.values()),
                ),
                now,
            )
            body = playbooks.new_run(incident, playbook, turn.attempt, dry_run=spec.get("mode") == "DryRun")
            # Reserved before the lock is let go: the next decision counts this run (the written body replaces it).
            reserved_phase = "Pending" if verdict.allowed else "Skipped"
            self._remember(self.runs, {**body, "status": {"phase": reserved_phase, "startedAt": sla.format_time(now)}})
        try:
            created = await self.cluster.create_custom(cluster_.PLAYBOOK_RUNS, body)
        except cluster_.Conflict:
            if not fresh:
                return None  # another replica (or this one before a restart) created it
            reserved = self.runs.get(_key(body))
            if reserved is not None and not _mapping(reserved.get("metadata")).get("uid"):
                self.runs.pop(_key(body), None)  # the reservation, not the run that holds the name
            return _AGAIN
        generation = resources.Resource(created).generation
        status = playbooks.initial_status(
            playbook_generation=resources.Resource(playbook).generation,
            awaiting_approval=spec.get("mode") == "RequireApproval",
            generation=generation,
            now=now,
        )
        status["conditions"] = conditions.set_condition(
            status["conditions"],
            conditions.Condition(acceptance.ACCEPTED, "True", "Valid", "The spec is valid.", generation),
            now=now,
        )
        starts = verdict.allowed and spec.get("mode") != "RequireApproval"
        if not verdict.allowed:
            status = playbooks.skipped_status(status, verdict.skip_reason, generation=generation, now=now)
        elif starts:
            # Pending → Running with no write of its own: nothing waits for approval. In the background the
            # first step's write carries it (``_kick``: Running, and the step Running with its key, in ONE
            # write); inline it is written now. The Incident follows in ``_link``; a run created by hand, or
            # one whose start was lost in a restart (no status yet), starts in ``advance``.
            status = self._with_lease(playbooks.started_status(status, generation=generation, now=now))
        if starts and self.background:
            written = self._remember(self.runs, created)
        else:
            try:
                written = await self.cluster.replace_custom_status(
                    cluster_.PLAYBOOK_RUNS, {**created, "status": status}
                )
            except cluster_.Conflict:
                written, starts = created, False  # someone else wrote first: the daemon reads and decides
            written = self._remember(self.runs, written)
        run_name = resources.Resource(written).name
        playbook_name = resources.Resource(playbook).name
        dry_run = resources.PlaybookRun(written).dry_run
        kicks = starts and self.background
        if not kicks:
            await self._start_link(namespace, name, run_name, playbook_name, mitigating=starts and not dry_run)
        if verdict.allowed:
            message = f"PlaybookRun {run_name} of Playbook {playbook_name} (attempt {turn.attempt}) created"
            if not starts:
                self._events(written, "Normal", "Created", message)
                self._events(incident, "Normal", "PlaybookRunCreated", message)
            else:
                # One Event per object for a run created and started at once, not two: under a hundred incidents
                # the operator's Event posts cost a fifth of its CPU (bench/remediation.py).
                started = f"{message} and started for Incident {name}"
                self._events(written, "Normal", "Started", started)
                self._events(incident, "Normal", "PlaybookRunStarted", started)
                if kicks:
                    self._unwritten[_key(written)] = status
                    linked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._linking[_key(written)] = linked
                    self._spawn(self._kick(namespace, run_name, (name, playbook_name, not dry_run, linked)))
        else:
            message = f"PlaybookRun {run_name} of Playbook {playbook_name} skipped: {verdict.skip_reason}"
            self._events(written, "Warning", "Skipped", message)
            self._events(incident, "Warning", "PlaybookRunSkipped", message)
            if verdict.guard == "Storm":
                await self._escalate_storm(namespace, now)
        logger.info("incident %s/%s: %s", namespace, name, message)
        return run_name

    async def _escalate_storm(self, namespace: str, now: datetime.datetime) -> None:
        """Tell the first responders of a storm once: claimed on the incident that started it, by its start time."""
        storm_spec = _mapping(_mapping(_mapping(self.policy_for(namespace)).get("remediation")).get("storm"))
        storm = guards.storm_state(
            self._triggers(),
            max_incidents=int(storm_spec.get("maxIncidents") or guards.DEFAULT_STORM_MAX),
            window=durations.parse_duration(str(storm_spec.get("window") or "5m")),
            quiet_period=durations.parse_duration(str(storm_spec.get("quietPeriod") or "10m")),
            now=now,
        )
        if not storm.active or storm.started is None or self.notifier is None:
            return
        started = sla.format_time(storm.started)
        onset = sorted(
            (
                incident
                for incident in self.incidents.values()
                if sla.parse_time(_mapping(incident.get("status")).get("triggeredAt")) == storm.started
            ),
            key=_key,
        )
        if not onset:
            return
        first = onset[0]
        policy = self.policy_for(_key(first)[0])
        names = channels_.first_responders(policy)
        key = f"storm-{started.replace('-', '').replace(':', '')}"
        if ("storm", key) in self._told:
            return
        self._told.add(("storm", key))
        message = (
            f"incident storm: {storm.count} incidents within the storm window since {started}; automatic "
            "remediation is paused cluster-wide until the quiet period passes without a new incident"
        )
        self._events(first, "Warning", "RemediationStorm", message)
        try:
            await self.notifier(first, key=key, reason="RemediationStorm", message=message, channels_=names)
        except Exception:
            logger.exception("could not notify of the incident storm")

    async def idle(self) -> None:
        """Wait until the side work under way (links, counts, first moves) has ended: a test's, or a clean stop's."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _kick(
        self, namespace: str, name: str, link: tuple[str, str, bool, asyncio.Future[None]] | None = None
    ) -> None:
        """The first moves of a run this process just created, at once: its daemon starts only when the watch
        brings the run, and every move takes ``_advancing``, so the two never act on the run together.
        ``link``: (incident, playbook, mitigating, done) for the link on the Incident, started after the first
        move (the first action) so that it does not compete with it; ``done`` is what ``_finish`` waits for."""
        try:
            for move in range(KICK_MOVES):
                try:
                    delay = await self.advance(namespace, name)
                finally:
                    if move == 0 and link is not None:
                        self._link_then(namespace, name, link)
                if delay != 0:
                    return
        except Exception:
            logger.exception("playbookrun %s/%s: a first move failed; its daemon tries again", namespace, name)

    def _link_then(self, namespace: str, run_name: str, link: tuple[str, str, bool, asyncio.Future[None]]) -> None:
        incident, playbook, mitigating, done = link
        key = (namespace, run_name)
        task = self._spawn(self._link_retried(namespace, incident, run_name, playbook, mitigating=mitigating))

        def ended(_: Any) -> None:
            if not done.done():
                done.set_result(None)
            if self._linking.get(key) is done:
                del self._linking[key]

        task.add_done_callback(ended)

    async def _start_link(self, namespace: str, name: str, run_name: str, playbook: str, *, mitigating: bool) -> None:
        """Link the run on its Incident (and move the Incident to Mitigating): in the background off the run's
        path, in a task retried when the API fails; ``_finish`` waits for it, and ``advance`` starts it again
        when a restart lost it. Inline (no ``background``) it is done before returning."""
        if not self.background:
            await self._link(namespace, name, run_name, playbook, mitigating=mitigating)
            return
        key = (namespace, run_name)
        found = self._linking.get(key)
        if found is not None and not found.done():
            return
        task: asyncio.Future[None] = self._spawn(
            self._link_retried(namespace, name, run_name, playbook, mitigating=mitigating)
        )
        self._linking[key] = task
        task.add_done_callback(lambda _: self._linking.pop(key, None) if self._linking.get(key) is task else None)

    async def _link_retried(self, namespace: str, name: str, run_name: str, playbook: str, *, mitigating: bool) -> None:
        for pause in (*LINK_RETRY, None):
            try:
                await self._link(namespace, name, run_name, playbook, mitigating=mitigating)
                return
            except Exception:
                logger.exception("incident %s/%s: could not link the PlaybookRun %s", namespace, name, run_name)
            if pause is None:
                return
            await asyncio.sleep(pause)  # a back-off before the next try, not a synchronisation

    async def _settle_link(self, namespace: str, run_name: str) -> None:
        """Wait for the run's link on its Incident, so the Incident's later moves come after Mitigating."""
        found = self._linking.get((namespace, run_name))
        if found is not None and not found.done():
            await asyncio.shield(found)

    async def _link(self, namespace: str, name: str, run_name: str, playbook: str, *, mitigating: bool) -> None:
        """Add the run to the Incident's ``status.playbookRuns`` (against the resourceVersion; a conflict retries);
        ``mitigating``: in the same write, an open Incident moves to Mitigating (the run started)."""
        now = self._clock()

        def change(status: dict[str, Any]) -> dict[str, Any] | None:
            linked = [str(item) for item in status.get("playbookRuns") or []]
            moves = mitigating and str(status.get("phase") or "") in OPEN_FOR_RUNS
            if run_name in linked and not moves:
                return None
            if moves:
                status = incidents.transition(
                    status, "Mitigating", by=f"playbook/{playbook}", now=now, note=f"PlaybookRun {run_name} started"
                )
            if run_name not in linked:
                status["playbookRuns"] = [*linked, run_name]
            return status

        await self._write_incident(namespace, name, change)

    async def _write_incident(
        self, namespace: str, name: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Read the Incident, change its status, write it against the resourceVersion; retried on 409."""
        for _ in range(MAX_ATTEMPTS):
            current = await self.cluster.get_incident(namespace, name)
            if current is None:
                return None
            changed = change(dict(_mapping(current.get("status"))))
            if changed is None:
                self._remember(self.incidents, current)
                return current
            try:
                written = await self.cluster.replace_incident_status({**current, "status": changed})
            except cluster_.Conflict:
                continue
            return self._remember(self.incidents, written)
        logger.warning("incident %s/%s: gave up writing its status after conflicts", namespace, name)
        return None

    async def _move_incident(
        self, namespace: str, name: str, target: str, *, by: str, note: str
    ) -> dict[str, Any] | None:
        """Move the Incident's phase (only from phases that lead there; an Incident that moved on stays)."""
        now = self._clock()

        def change(status: dict[str, Any]) -> dict[str, Any] | None:
            current = str(status.get("phase") or "")
            if current == target:
                return None
            try:
                return incidents.transition(status, target, by=by, now=now, note=note)
            except errors.InvalidTransition:
                return None

        return await self._write_incident(namespace, name, change)

    # -- driving runs

    async def drive(self, namespace: str, name: str, stopped: Any) -> None:
        """Drive one run until it ends or the daemon stops (``stopped``: Kopf's daemon flag, or any with ``wait``)."""
        wake = self._wake((namespace, name))
        while not stopped:
            wake.clear()
            try:
                delay = await self.advance(namespace, name)
            except Exception:
                logger.exception("playbookrun %s/%s: a move failed; trying again", namespace, name)
                delay = 5.0
            if delay is None:
                return
            if delay > 0:
                await daemons.wait_any(wake, stopped, delay)

    async def advance(self, namespace: str, name: str) -> float | None:
        """One move of a run; seconds until the next look (0: at once), or None when the run has ended.

        One move of a run at a time in this process (``_advancing``: the daemon and ``_kick``). The run is the
        newest this process knows: its own last write or the watch's, whichever has the higher resourceVersion,
        read from the API only when it knows none or its last write met a 409. Every write is against that
        resourceVersion, so a stale copy costs a 409 and a re-read, never an action on a stale decision."""
        key = (namespace, name)
        lock = self._advancing.get(key)
        if lock is None:
            lock = self._advancing[key] = asyncio.Lock()
        async with lock:
            return await self._advance(namespace, name)

    async def _advance(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        run = self.runs.get(key)
        if run is None or key in self._stale:
            self._stale.discard(key)
            read = await self.cluster.get_custom(cluster_.PLAYBOOK_RUNS, namespace, name)
            if read is None:
                self.runs.pop(key, None)
                return None
            run = self._remember(self.runs, read)
        unwritten = self._unwritten.get(key)
        if unwritten is not None and not run.get("status"):
            run = {**run, "status": unwritten}  # started by ``consider``: the first write carries the start
        elif unwritten is not None:
            del self._unwritten[key]  # a status was written meanwhile: it decides
        status = dict(_mapping(run.get("status")))
        if _phase(run) in lifecycle.PLAYBOOK_RUN.terminal:
            return None
        now = self._clock()
        lease = _mapping(status.get("lease"))
        renewed = sla.parse_time(lease.get("renewedAt"))
        if lease.get("holder") not in (None, "", self.holder) and renewed is not None:
            expires = renewed + self.lease_duration
            if now < expires:
                return max(0.1, (expires - now).total_seconds())
        view = resources.PlaybookRun(run)
        generation = view.generation
        if not status.get("phase"):
            return await self._initialise(run, status, now)
        playbook = self.playbook_for(namespace, view.playbook_name) or await self.cluster.get_custom(
            cluster_.PLAYBOOKS, namespace, view.playbook_name
        )
        # The watch keeps the Incident (a deleted one leaves the cache, and then the read says so).
        incident = self.incidents.get((namespace, view.incident_name))
        if incident is None:
            incident = await self.cluster.get_incident(namespace, view.incident_name)
        if playbook is None or incident is None:
            missing = (
                f"Playbook {view.playbook_name}" if playbook is None else f"Incident {view.incident_name}"
            ) + " does not exist"
            return await self._finish(run, status, None, None, "Failed", "NotFound", missing)
        spec = _mapping(playbook.get("spec"))
        move = playbooks.next_move(run, spec)
        if move.kind == "done":
            return None
        if _phase(run) == "Running" and name not in (_mapping(incident.get("status")).get("playbookRuns") or []):
            # Started by ``consider`` with the link left to a task that a restart may have lost: link it again.
            # Linking and Mitigating are one write, so an unlinked run has not moved its Incident yet.
            await self._start_link(namespace, view.incident_name, name, view.playbook_name, mitigating=not view.dry_run)
        if move.kind == "approve":
            self._stale.add(key)  # the approval is a spec change: the next look reads it, watch or no watch
            return APPROVAL_POLL
        if move.kind == "start":
            started = playbooks.started_status(status, generation=generation, now=now)
            written = await self._write_run(run, started)
            if written is None:
                return 0
            message = f"started Playbook {view.playbook_name} for Incident {view.incident_name}"
            self._events(written, "Normal", "Started", message)
            self._events(incident, "Normal", "PlaybookRunStarted", f"PlaybookRun {view.name}: {message}")
            if not view.dry_run:
                await self._move_incident(
                    namespace,
                    view.incident_name,
                    "Mitigating",
                    by=f"playbook/{view.playbook_name}",
                    note=f"PlaybookRun {view.name} started",
                )
            return 0
        if move.kind == "finish":
            if move.failed:
                return await self._finish(run, status, playbook, incident, "Failed", "StepFailed", move.message)
            if view.dry_run:
                return await self._finish(run, status, playbook, incident, "DryRun", "DryRun", move.message)
            return await self._finish(run, status, playbook, incident, "Succeeded", "Verified", move.message)
        if move.kind == "verify":
            return await self._verify(run, status, playbook, incident)
        assert move.step is not None
        return await self._step(run, status, playbook, incident, move)

    async def _initialise(self, run: dict[str, Any], status: dict[str, Any], now: datetime.datetime) -> float | None:
        """A run written by hand (no status yet): judge it, then Pending (or Failed when its spec is invalid)."""
        view = resources.PlaybookRun(run)
        verdict = acceptance.assess(run)
        playbook = self.playbook_for(view.namespace, view.playbook_name)
        mode = str(_mapping(_mapping(playbook).get("spec")).get("mode") or "Automatic")
        fresh = playbooks.initial_status(
            playbook_generation=resources.Resource(playbook).generation if playbook else None,
            awaiting_approval=mode == "RequireApproval",
            generation=view.generation,
            now=now,
        )
        fresh["conditions"] = acceptance.status_patch({**run, "status": fresh}, verdict, now=now)["conditions"]
        if verdict.accepted:
            # Ready as a new run says it (Progressing, or AwaitingApproval), not the acceptance's NotReconciled.
            ready = conditions.find(
                playbooks.initial_status(
                    playbook_generation=None,
                    awaiting_approval=mode == "RequireApproval",
                    generation=view.generation,
                    now=now,
                )["conditions"],
                conditions.READY,
            )
            if ready is not None:
                fresh["conditions"] = conditions.set_condition(fresh["conditions"], ready, now=now)
        else:
            fresh = playbooks.finished_status(
                fresh,
                phase="Failed",
                reason=verdict.reason,
                message=verdict.message,
                generation=view.generation,
                now=now,
            )
            fresh["conditions"] = acceptance.status_patch({**run, "status": fresh}, verdict, now=now)["conditions"]
        written = await self._write_run(run, fresh)
        if written is not None and not verdict.accepted:
            self._events(written, "Warning", verdict.reason, verdict.message)
            return None
        return 0

    def _with_lease(self, status: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(status)
        out["lease"] = {"holder": self.holder, "renewedAt": sla.format_time(self._clock())}
        return out

    async def _write_run(self, run: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write the run's status with this process's lease, against the resourceVersion; None on a 409.

        The decision was made on the run's spec and status. A newer copy whose spec and status are the same
        (only metadata moved: Kopf's finalizer, an annotation) leads to the same decision, so the write goes
        against the newest such copy, from the watch or, after a 409, read once; any other change is a 409
        and the next move reads and decides again."""
        key = _key(run)
        unwritten = self._unwritten.get(key)
        basis = {**run, "status": None} if unwritten is not None and unwritten is run.get("status") else run
        body = self.runs.get(key)
        if body is None or not _same_decision(body, basis) or _rv(body) < _rv(run):
            body = dict(run)
        for first in (True, False):
            try:
                written = await self.cluster.replace_custom_status(
                    cluster_.PLAYBOOK_RUNS, {**body, "status": self._with_lease(status)}
                )
            except cluster_.Conflict:
                fresh = await self.cluster.get_custom(cluster_.PLAYBOOK_RUNS, key[0], key[1]) if first else None
                if fresh is None or not _same_decision(fresh, basis):
                    if fresh is not None:
                        self._remember(self.runs, fresh)
                    self._stale.add(key)  # the next move reads the run from the API
                    return None
                body = self._remember(self.runs, fresh)
                continue
            if basis is not run:
                self._unwritten.pop(key, None)
            return self._remember(self.runs, written)
        return None

    async def _renew(self, run: dict[str, Any], status: Mapping[str, Any]) -> bool:
        """Renew the lease when a third of it has passed; False when another process wrote meanwhile."""
        renewed = sla.parse_time(_mapping(status.get("lease")).get("renewedAt"))
        if renewed is not None and self._clock() - renewed < self.lease_duration / 3:
            return True
        return await self._write_run(run, status) is not None

    def _context(
        self,
        run: Mapping[str, Any],
        incident: Mapping[str, Any],
        step: Mapping[str, Any],
        index: int,
        params: Mapping[str, Any],
        *,
        started: datetime.datetime | None,
    ) -> base.ActionContext:
        view = resources.PlaybookRun(run)
        uid = str(view.metadata.get("uid") or view.name)
        incident_view = resources.Incident(incident)
        affected = tuple(
            resources.ObjectRef.from_dict(item, default_namespace=view.namespace)
            for item in _mapping(incident.get("status")).get("affected") or []
            if isinstance(item, Mapping)
        )
        step_name = str(step.get("name") or index)
        try:
            timeout = durations.parse_duration(str(step.get("timeout") or "5m"))
        except durations.DurationError:
            timeout = datetime.timedelta(minutes=5)
        if self.action_cluster is None:
            raise RuntimeError("the playbook controller has no cluster for actions")
        return base.ActionContext(
            cluster=self.action_cluster,
            namespace=view.namespace,
            incident=incident,
            workload=incident_view.workload,
            affected=affected,
            params=params,
            key=playbooks.step_key(uid, index),
            now=self._clock(),
            dry_run=view.dry_run or self.settings.safety.dry_run,
            notify=self._step_notifier(incident, f"{view.name}-{step_name}"),
            escalate=self._step_escalator(incident, f"{view.name}-{step_name}"),
            timeout=timeout,
            started=started,
        )

    def _step_notifier(self, incident: Mapping[str, Any], key: str) -> base.Notifier:
        async def notify(names: tuple[str, ...], message: str) -> None:
            if self.notifier is None:
                raise base.ActionFailed("no notification channels are wired into this operator")
            await self.notifier(incident, key=key, reason="PlaybookNotify", message=message, channels_=tuple(names))

        return notify

    def _step_escalator(self, incident: Mapping[str, Any], key: str) -> base.Escalator:
        async def escalate(severity: str | None, names: tuple[str, ...], why: str) -> None:
            namespace, name = _key(incident)
            await self._raise_severity(namespace, name, key, severity)
            if names and self.notifier is not None:
                await self.notifier(incident, key=f"{key}-escalate", reason="Escalated", message=why, channels_=names)

        return escalate

    async def _raise_severity(self, namespace: str, name: str, by: str, target: str | None) -> None:
        """Patch ``spec.severity`` one level worse (or to ``target`` when worse), once per ``by``."""
        current = await self.cluster.get_incident(namespace, name)
        if current is None:
            return
        annotations = _mapping(_mapping(current.get("metadata")).get("annotations"))
        if annotations.get(SEVERITY_RAISED_ANNOTATION) == by:
            return
        now_severity = str(_mapping(current.get("spec")).get("severity") or "SEV4")
        wanted = target or playbooks.raised_severity(now_severity)
        ranks = sla.SEVERITIES
        if wanted not in ranks or (now_severity in ranks and ranks.index(wanted) >= ranks.index(now_severity)):
            return
        await self.cluster.patch_custom(
            INCIDENTS,
            namespace,
            name,
            {"metadata": {"annotations": {SEVERITY_RAISED_ANNOTATION: by}}, "spec": {"severity": wanted}},
        )
        self._events(current, "Warning", "SeverityRaised", f"severity raised from {now_severity} to {wanted} by {by}")

    async def _step(
        self,
        run: dict[str, Any],
        status: dict[str, Any],
        playbook: Mapping[str, Any],
        incident: Mapping[str, Any],
        move: playbooks.Move,
    ) -> float | None:
        assert move.step is not None
        index, step, recorded = move.step.index, move.step.step, move.step.recorded
        view = resources.PlaybookRun(run)
        step_name, action_name = str(step.get("name") or index), str(step.get("action") or "")
        now = self._clock()

        async def fail(outcome: str, message: str) -> float:
            failed = playbooks.step_outcome_status(
                status, step, index, phase="Failed", outcome=outcome, message=message, output=None, now=now
            )
            if recorded is None:
                failed = playbooks.step_outcome_status(
                    playbooks.step_started_status(
                        status,
                        step,
                        key=playbooks.step_key(str(view.metadata.get("uid")), index),
                        description="",
                        now=now,
                    ),
                    step,
                    index,
                    phase="Failed",
                    outcome=outcome,
                    message=message,
                    output=None,
                    now=now,
                )
            written = await self._write_run(run, failed)
            if written is not None:
                self._events(written, "Warning", "StepFailed", f"step {step_name} ({action_name}): {message}")
            return 0

        try:
            params = playbooks.render_params(step, incident)
        except playbooks.TemplateError as error:
            return await fail("InvalidParams", str(error))
        try:
            action = self.action(action_name)
        except KeyError:
            return await fail("UnknownAction", f"no action {action_name!r} in the catalog")
        started = sla.parse_time(_mapping(recorded).get("startedAt")) if recorded else None
        ctx = self._context(run, incident, step, index, params, started=started or now)
        if move.kind == "dry-run-step":
            try:
                description = await action.describe(ctx)
            except Exception as error:  # a dry run that cannot say what it would do fails, never retries forever
                return await fail("Error", f"could not describe the step: {error}")
            written = await self._write_run(
                run, playbooks.dry_run_step_status(status, step, index, description=description, now=now)
            )
            if written is not None:
                self._events(written, "Normal", "StepDryRun", f"step {step_name} ({action_name}) would: {description}")
            return 0
        if move.kind == "verify-step":
            return await self._verify_step(run, status, step, index, action, ctx)
        if move.kind == "resume-step":
            try:
                done = await action.already_done(ctx)
            except Exception as error:
                return await fail("Error", f"could not tell whether the step had taken effect: {error}")
            if done is not None:
                logger.info(
                    "playbookrun %s/%s: step %s had taken effect before a restart", view.namespace, view.name, step_name
                )
                return await self._record_outcome(run, status, step, index, done, resumed=True)
            return await self._act(run, status, step, index, action, ctx)
        # run-step: the guards of a step, then record it Running with its key FIRST, then act
        spec = _mapping(playbook.get("spec"))
        step_guards = _mapping(spec.get("guards"))
        window = guards.freeze_window(list(self.change_policies.values()), now)
        frozen = guards.step_blocked_by_freeze(step, step_guards.get("respectFreeze", True) is not False, window)
        if not frozen.allowed:
            if self._unwritten.get(_key(run)) is run.get("status"):
                await self._write_run(run, status)  # held: the start is written now, not with the step
            told = ("freeze", view.namespace, view.name, step_name)
            if told not in self._told:
                self._told.add(told)
                self._events(run, "Normal", "WaitingForFreeze", frozen.reason)
            return FREEZE_POLL
        if step_guards.get("minHealthy") not in (None, ""):
            refusal = await self._min_healthy(action_name, ctx, step_guards.get("minHealthy"))
            if refusal is not None:
                return await fail("Refused", refusal)
        reads = None
        if getattr(action, "reuses_described_reads", False):
            reads = base.ReadOnce(ctx.cluster)  # what describe reads, run takes: two round trips fewer
            ctx = dataclasses.replace(ctx, cluster=reads)
        try:
            description = await action.describe(ctx)
        except Exception as error:
            return await fail("Error", f"could not describe the step: {error}")
        if reads is not None:
            reads.hand_over()
        begun = playbooks.step_started_status(status, step, key=ctx.key, description=description, now=now)
        written = await self._write_run(run, begun)
        if written is None:
            return 0
        self._events(written, "Normal", "StepStarted", f"step {step_name} ({action_name}): {description}")
        return await self._act(written, dict(_mapping(written.get("status"))), step, index, action, ctx)

    async def _min_healthy(self, action_name: str, ctx: base.ActionContext, wanted: Any) -> str | None:
        """The minHealthy refusal for a disruptive action, or None."""
        try:
            found = await self.impacts_of(action_name, ctx)
        except Exception as error:
            return f"minHealthy: could not tell what the action would take away: {error}"
        for impact in found:
            ready, desired, removing = impact.as_tuple() if hasattr(impact, "as_tuple") else tuple(impact)[-3:]
            try:
                verdict = guards.min_healthy(wanted, ready=ready, desired=desired, removing=removing)
            except ValueError as error:
                return f"minHealthy: {error}"
            if not verdict.allowed:
                where = f" of {impact.workload}" if hasattr(impact, "workload") else ""
                return f"MinHealthy: {verdict.reason}{where}"
        return None

    async def _act(
        self,
        run: dict[str, Any],
        status: dict[str, Any],
        step: Mapping[str, Any],
        index: int,
        action: base.Action,
        ctx: base.ActionContext,
    ) -> float | None:
        try:
            outcome = await action.run(ctx)
        except base.ActionFailed as error:
            outcome = base.Outcome("Failed", str(error))
        except Exception as error:
            logger.exception("step %s of %s failed", step.get("name"), resources.Resource(run).name)
            outcome = base.Outcome("Failed", f"{type(error).__name__}: {error}")
        return await self._record_outcome(run, status, step, index, outcome, resumed=False)

    async def _record_outcome(
        self,
        run: dict[str, Any],
        status: dict[str, Any],
        step: Mapping[str, Any],
        index: int,
        outcome: base.Outcome,
        *,
        resumed: bool,
    ) -> float | None:
        """After ``run`` (or ``already_done``): Failed ends the step; otherwise the action's verification comes next."""
        now = self._clock()
        word = str(outcome.output.get("outcome") or ("AlreadyDone" if resumed else outcome.phase))
        output = json.dumps(dict(outcome.output), default=str, sort_keys=True) if outcome.output else None
        phase: Any = "Failed" if outcome.phase == "Failed" else "Running"
        updated = playbooks.step_outcome_status(
            status, step, index, phase=phase, outcome=word, message=outcome.message, output=output, now=now
        )
        written = await self._write_run(run, updated)
        if written is not None and outcome.phase == "Failed":
            self._events(written, "Warning", "StepFailed", f"step {step.get('name')}: {outcome.message}")
        if written is not None and outcome.phase != "Failed" and step.get("action") == "setOverride":
            await self._record_override(written, outcome.output)
        if written is not None and outcome.phase != "Failed" and step.get("action") == "rollbackDeployment":
            await self._hold_rollback(written, index, outcome.output)
        return 0

    async def _hold_rollback(self, run: Mapping[str, Any], index: int, output: Mapping[str, Any]) -> None:
        """Hold a rolled-back pod template on the Release that declares the Deployment, as an override of
        ``spec.template`` for ``ROLLBACK_HOLD``: otherwise its next sync (or self-heal) would apply git's failed
        template again before anyone merged the revert branch the write-back pushes. Once the revert is merged,
        git declares the held template itself and the override changes nothing until it expires."""
        if output.get("outcome") == "NothingToRollBack" or self.action_cluster is None:
            return
        workload = _mapping(output.get("workload"))
        uid = str(_mapping(run.get("metadata")).get("uid") or "")
        kind, name = str(workload.get("kind") or "Deployment"), str(workload.get("name") or "")
        namespace = str(workload.get("namespace") or resources.PlaybookRun(run).namespace)
        if not name or not uid or not self._declared_by_a_release(namespace, kind, name):
            return  # no Release applies this Deployment: nothing would undo the rollback, no call made
        found = await self.action_cluster.get(str(workload.get("apiVersion") or "apps/v1"), kind, namespace, name)
        template = _mapping(_mapping((found or {}).get("spec")).get("template"))
        if not template:
            return
        expires = self._clock() + ROLLBACK_HOLD
        entry = {
            "key": playbooks.step_key(uid, index),
            "fieldPath": "spec.template",
            "value": dict(template),
            "expiresAt": sla.format_time(expires),
        }
        await self._record_override(run, entry, reason="rolled back")

    async def _record_override(
        self, run: Mapping[str, Any], entry: Mapping[str, Any], *, reason: str = "setOverride"
    ) -> None:
        """Record a setOverride on the Releases whose ``spec.workloadRef`` is the overridden workload.

        ``status.overrides`` is where the Release controller finds values it must not revert until they
        expire (controllers/releases.py applies them over git's, and drift on them is reported as
        overridden). The entry's id is the
        step's key, so a step resumed after a restart replaces its entry instead of adding one. A
        failure to record is a Warning Event on the run: the override itself holds already.
        """
        view = resources.PlaybookRun(run)
        namespace = view.namespace
        if run.get("spec", {}).get("dryRun") or self.settings.safety.dry_run or not entry.get("key"):
            return
        incident = self.incidents.get((namespace, view.incident_name)) or (
            await self.cluster.get_incident(namespace, view.incident_name) or {}
        )
        workload = resources.Incident(incident).workload if incident else None
        if workload is None:
            return
        record = {
            "id": str(entry["key"]),
            "target": {
                "apiVersion": workload.api_version or "apps/v1",
                "kind": workload.kind,
                "namespace": workload.namespace or namespace,
                "name": workload.name,
            },
            "fieldPath": str(entry.get("fieldPath") or ""),
            "value": entry.get("value"),
            "reason": f"{reason} by PlaybookRun {view.name}",
            "incident": view.incident_name,
            "playbookRun": view.name,
            "expiresAt": str(entry.get("expiresAt") or ""),
        }
        try:
            releases = await self.cluster.list_custom(cluster_.RELEASES, namespace, {})
            for release in releases:
                ref = _mapping(_mapping(release.get("spec")).get("workloadRef"))
                if str(ref.get("name") or "") != workload.name or str(ref.get("kind") or "Deployment") != workload.kind:
                    continue
                await self._write_override(release, record)
                held = "the rolled-back template" if record["fieldPath"] == "spec.template" else record["value"]
                self._events(
                    release,
                    "Normal",
                    "OverrideRecorded",
                    f"{record['fieldPath']} of {workload} held at {held} until {record['expiresAt']} "
                    f"by PlaybookRun {view.name}",
                )
        except Exception as error:
            logger.exception("playbookrun %s/%s: could not record the override on a Release", namespace, view.name)
            self._events(run, "Warning", "OverrideNotRecorded", f"could not record the override on a Release: {error}")

    async def _write_override(self, release: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        """Put ``record`` into the Release's ``status.overrides`` (by id), against its resourceVersion."""
        current: Mapping[str, Any] | None = release
        for _ in range(MAX_ATTEMPTS):
            if current is None:
                return
            status = dict(_mapping(current.get("status")))
            kept = [item for item in status.get("overrides") or [] if _mapping(item).get("id") != record["id"]]
            status["overrides"] = [*kept, dict(record)]
            try:
                await self.cluster.replace_custom_status(cluster_.RELEASES, {**current, "status": status})
                return
            except cluster_.Conflict:
                view = resources.Resource(current)
                current = await self.cluster.get_custom(cluster_.RELEASES, view.namespace, view.name)

    async def _verify_step(
        self,
        run: dict[str, Any],
        status: dict[str, Any],
        step: Mapping[str, Any],
        index: int,
        action: base.Action,
        ctx: base.ActionContext,
    ) -> float | None:
        now = self._clock()
        try:
            checked = await action.verify(ctx)
        except Exception as error:
            checked = base.Outcome("Failed", f"verification failed: {type(error).__name__}: {error}")
        started = ctx.started or now
        if checked.phase == "Running":
            if now - started < ctx.timeout:
                return STEP_POLL if await self._renew(run, status) else 0
            checked = base.Outcome(
                "Failed",
                f"not done within the step's timeout {durations.format_duration(ctx.timeout)}: {checked.message}",
            )
        recorded = next(
            (
                item
                for item in status.get("steps") or []
                if isinstance(item, Mapping) and item.get("name") == step.get("name")
            ),
            {},
        )
        word = str(checked.output.get("outcome") or recorded.get("outcome") or checked.phase)
        output = (
            json.dumps(dict(checked.output), default=str, sort_keys=True) if checked.output else recorded.get("output")
        )
        updated = playbooks.step_outcome_status(
            status,
            step,
            index,
            phase="Succeeded" if checked.phase == "Succeeded" else "Failed",
            outcome=word,
            message=checked.message,
            output=output,
            now=now,
        )
        written = await self._write_run(run, updated)
        if written is not None:
            kind, reason = ("Normal", "StepSucceeded") if checked.phase == "Succeeded" else ("Warning", "StepFailed")
            self._events(written, kind, reason, f"step {step.get('name')} ({step.get('action')}): {checked.message}")
        return 0

    # -- the Playbook's verification

    async def _checks(self, spec: Mapping[str, Any], incident: Mapping[str, Any]) -> tuple[bool, str]:
        """Whether the verification's checks hold now, and what was seen."""
        verification = _mapping(spec.get("verification"))
        seen: list[str] = []
        holds = True
        if verification.get("replicasReady", True) is not False:
            workload = resources.Incident(incident).workload
            if workload is not None:
                body = await self.cluster.get_workload(
                    workload.kind, workload.namespace or _key(incident)[0], workload.name
                )
                ready, why = _replicas_ready(workload.kind, body)
                holds = holds and ready
                seen.append(why)
        if verification.get("signalClear", True) is not False:
            status = _mapping(incident.get("status"))
            if _phase(incident) in ("Resolved", "Closed"):
                seen.append(f"the incident is {_phase(incident)}")
            elif status.get("clearSince"):
                seen.append(f"the signal is clear since {status.get('clearSince')}")
            else:
                holds = False
                seen.append(f"the signal is still seen (last at {status.get('lastSeen') or 'unknown'})")
        return holds, "; ".join(seen) or "nothing to check"

    async def _verify(
        self, run: dict[str, Any], status: dict[str, Any], playbook: Mapping[str, Any], incident: Mapping[str, Any]
    ) -> float | None:
        spec = _mapping(playbook.get("spec"))
        now = self._clock()
        holds, why = await self._checks(spec, incident)
        updated, decided, next_at = playbooks.verification_status(status, holds=holds, why=why, spec=spec, now=now)
        if decided == "Running":
            if updated.get("verification") != status.get("verification"):
                if await self._write_run(run, updated) is None:
                    return 0
            elif not await self._renew(run, status):
                return 0
            wait = (next_at - now).total_seconds() if next_at is not None else STEP_POLL
            return max(0.05, min(wait, STEP_POLL))
        written = await self._write_run(run, updated)
        if written is None:
            return 0
        return 0

    # -- the end

    async def _finish(
        self,
        run: dict[str, Any],
        status: dict[str, Any],
        playbook: Mapping[str, Any] | None,
        incident: Mapping[str, Any] | None,
        phase: Any,
        reason: str,
        message: str,
    ) -> float | None:
        """End the run; the Incident follows (Mitigated, or Acknowledged with the escalation) BEFORE the run is
        written finished, so a restart in between repeats the (idempotent) incident moves, never skips them."""
        view = resources.PlaybookRun(run)
        namespace = view.namespace
        by = f"playbook/{view.playbook_name}"
        await self._settle_link(namespace, view.name)  # Mitigating first, then what the end says
        if incident is not None and phase == "Succeeded":
            await self._move_incident(
                namespace, view.incident_name, "Mitigated", by=by, note=f"PlaybookRun {view.name} verified: {message}"
            )
        elif incident is not None and phase == "Failed" and playbook is not None and not view.dry_run:
            await self._escalate(run, playbook, incident, message)
        if _phase(run) == "Pending" and phase != "Failed":
            status = playbooks.started_status(status, generation=view.generation, now=self._clock())
        verification = _mapping(status.get("verification"))
        if phase == "Failed" and verification.get("phase") == "Failed":
            reason = "VerificationFailed"
        ended = playbooks.finished_status(
            status, phase=phase, reason=reason, message=message, generation=view.generation, now=self._clock()
        )
        written = await self._write_run(run, ended)
        if written is None:
            return 0
        kind = "Warning" if phase == "Failed" else "Normal"
        self._events(written, kind, phase, message)
        if incident is not None:
            self._events(incident, kind, f"PlaybookRun{phase}", f"PlaybookRun {view.name}: {message}")
        logger.info("playbookrun %s/%s ended %s: %s", namespace, view.name, phase, message)
        return None

    async def _escalate(
        self, run: Mapping[str, Any], playbook: Mapping[str, Any], incident: Mapping[str, Any], message: str
    ) -> None:
        """A failed run: the incident back to people (Acknowledged), severity raised once, channels told once."""
        view = resources.PlaybookRun(run)
        namespace = view.namespace
        escalation = _mapping(_mapping(playbook.get("spec")).get("escalation"))
        await self._move_incident(
            namespace,
            view.incident_name,
            "Acknowledged",
            by=f"playbook/{view.playbook_name}",
            note=f"PlaybookRun {view.name} failed: {message}",
        )
        if escalation.get("raiseSeverity", True) is not False:
            try:
                await self._raise_severity(namespace, view.incident_name, view.name, None)
            except Exception:
                logger.exception("incident %s/%s: could not raise its severity", namespace, view.incident_name)
        names = tuple(str(item) for item in escalation.get("notify") or [])
        if names and self.notifier is not None:
            fresh = await self.cluster.get_incident(namespace, view.incident_name) or incident
            try:
                await self.notifier(
                    fresh,
                    key=f"playbookrun-{view.name}-failed",
                    reason="PlaybookRunFailed",
                    message=f"PlaybookRun {view.name} of Playbook {view.playbook_name} failed: {message}",
                    channels_=names,
                )
            except Exception:
                logger.exception("incident %s/%s: could not notify of the failed run", namespace, view.incident_name)


def _replicas_ready(kind: str, body: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Whether a workload has every desired replica ready (and updated), and what was seen."""
    if body is None:
        return False, f"the {kind} does not exist"
    spec, status = _mapping(body.get("spec")), _mapping(body.get("status"))
    if kind == "Node":
        ready = conditions.is_true(status.get("conditions"), "Ready")
        return ready, "the node is Ready" if ready else "the node is not Ready"
    if kind == "Job":
        done = int(status.get("succeeded") or 0) > 0
        return done, "the Job succeeded" if done else "the Job has not succeeded"
    if kind == "Pod":
        ready = conditions.is_true(status.get("conditions"), "Ready")
        return ready, "the pod is ready" if ready else "the pod is not ready"
    desired = spec.get("replicas")
    desired = int(desired) if isinstance(desired, int) else 1
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        ready_count = int(status.get("numberReady") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
    else:
        ready_count = int(status.get("readyReplicas") or 0)
        updated = int(status.get("updatedReplicas") or ready_count) if kind != "ReplicaSet" else ready_count
    ready = ready_count >= desired and updated >= desired
    return ready, f"{ready_count}/{desired} replicas ready ({updated} updated)"


def _same_decision(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    """Whether two copies of a run lead to the same move: the same object, spec and status."""
    return (
        _mapping(left.get("metadata")).get("uid") == _mapping(right.get("metadata")).get("uid")
        and left.get("spec") == right.get("spec")
        and left.get("status") == right.get("status")
    )


def _matching_view(playbook: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a Playbook decides which incidents it gets: which object, its spec, its scope label, its Ready."""
    metadata = _mapping(playbook.get("metadata"))
    ready = next(
        (
            (item.get("status"), item.get("reason"))
            for item in _mapping(playbook.get("status")).get("conditions") or []
            if isinstance(item, Mapping) and item.get("type") == conditions.READY
        ),
        None,
    )
    spec = json.dumps(playbook.get("spec"), sort_keys=True, default=str)
    return (metadata.get("uid"), metadata.get("generation"), spec, dict(_mapping(metadata.get("labels"))), ready)


def _same_conditions(left: Any, right: Any) -> bool:
    def strip(items: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (
                item.get("type"),
                item.get("status"),
                item.get("reason"),
                item.get("message"),
                item.get("observedGeneration"),
            )
            for item in items or []
            if isinstance(item, Mapping)
        )

    return strip(left) == strip(right)


def _is_active(body: kopf.Body, **_: Any) -> bool:
    return _phase(body) not in lifecycle.PLAYBOOK_RUN.terminal


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    policy_for: Callable[[str], Mapping[str, Any] | None] | None = None,
    notifier: Notifier | None = None,
    cluster: cluster_.PlaybookCluster | None = None,
    action_cluster: base.ActionCluster | None = None,
    incidents: incident_controller.IncidentController | None = None,
) -> PlaybookController:
    """Register the Playbook, PlaybookRun, Incident and ChangePolicy handlers and the run daemon; the controller
    is returned for tests. ``policy_for``: the SupportPolicy spec of a namespace (the incident controller's);
    ``notifier``: how to tell channels (the notification controller's ``send``); ``incidents``: the incident
    controller, whose notices hand over the incidents it writes without waiting for the watch (``hear``)."""
    controller = PlaybookController(
        settings,
        cluster or cluster_.KubernetesPlaybookCluster(),
        action_cluster=action_cluster or cluster_.KubernetesActionCluster(),
        policy_for=policy_for,
        notifier=notifier,
        background=True,
    )
    if incidents is not None:
        incidents.listeners.append(controller.hear)

    async def on_playbook(type: str | None, body: kopf.Body, **_: Any) -> None:
        await controller.playbook_changed(body, deleted=type == "DELETED")

    async def on_run(type: str | None, body: kopf.Body, **_: Any) -> None:
        await controller.run_changed(body, deleted=type == "DELETED")

    async def on_incident(type: str | None, body: kopf.Body, **_: Any) -> None:
        await controller.incident_changed(body, deleted=type == "DELETED")

    async def on_change_policy(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.change_policy_changed(body, deleted=type == "DELETED")

    kopf.on.event(GROUP, VERSION, "changepolicies", id="playbooks-changepolicies", registry=registry)(on_change_policy)

    async def on_release(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.release_changed(body, deleted=type == "DELETED")

    kopf.on.event(GROUP, VERSION, "releases", id="playbooks-releases", registry=registry)(on_release)
    kopf.on.event(GROUP, VERSION, "playbooks", id="playbooks", registry=registry)(on_playbook)
    kopf.on.event(GROUP, VERSION, "playbookruns", id="playbookruns", registry=registry)(on_run)
    kopf.on.event(GROUP, VERSION, "incidents", id="playbooks-incidents", registry=registry)(on_incident)

    if not settings.safety.dry_run:

        async def executor(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
            namespace, name = _key(body)
            await controller.drive(namespace, name, stopped)

        kopf.daemon(
            GROUP,
            VERSION,
            "playbookruns",
            id="playbookrun-executor",
            registry=registry,
            when=_is_active,
            cancellation_timeout=10.0,
        )(executor)
        daemons.without_finalizer(registry, "playbookrun-executor")  # ``drive`` ends when the run is deleted
    return controller
