"""What every remediation action is: the context it gets, the outcome it gives, the cluster it acts on.

An action is one thing a Playbook step does to the cluster (``engine.catalog`` lists them and
their params). Each has four parts, all asynchronous:

- ``describe``: what it would do, in one sentence, without changing anything. A dry run
  records this; a real run records it before acting, so a reader sees the intent even when
  the process dies in the middle.
- ``already_done``: whether the effect of the run with this idempotency key is already in the
  cluster. The key is recorded in the PlaybookRun before ``run`` is called; after a restart the
  controller asks this first and never runs a step twice. Actions make it answerable by
  writing the key into what they change, in the same write (an annotation
  ``upkeep.dev/action-key``), or by naming what they create after it.
- ``run``: do it, once.
- ``verify``: the action's own check that it worked (the rollout finished, the pod was
  replaced, the Job succeeded); the Playbook's verification comes after the last step.

Errors: an action raises ``ActionFailed`` with a message for people (the step fails, and the
Playbook's ``continueOnFailure`` decides); any other exception is a bug or an API error and is
reported the same way by the controller. Actions never catch what they cannot handle.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from upkeep.model import resources

__all__ = [
    "ACTION_KEY_ANNOTATION",
    "Action",
    "ActionCluster",
    "ActionContext",
    "ActionFailed",
    "Outcome",
    "OutcomePhase",
    "ReadOnce",
]

ACTION_KEY_ANNOTATION = "upkeep.dev/action-key"
"""The annotation an action writes, with its idempotency key, on what it changes (in the same write)."""

OutcomePhase = Literal["Succeeded", "Failed", "Running"]


class ActionFailed(Exception):
    """The action could not do what it was asked; the message says why, for people."""


@dataclass(frozen=True)
class Outcome:
    """What an action did (or found done, or saw when verifying)."""

    phase: OutcomePhase
    """Succeeded, Failed, or Running (verification not yet decided: ask again later)."""
    message: str
    """One sentence for people: what happened."""
    output: Mapping[str, Any] = field(default_factory=dict)
    """Small facts worth keeping in the PlaybookRun (the revision rolled back to, the Job's name, ...)."""


class ActionCluster(Protocol):
    """The cluster as actions use it: any object by apiVersion and kind. Errors are the client's; 404 is None."""

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when there is none."""
        ...

    async def list(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        """The objects of a kind in a namespace ('' for cluster-scoped kinds) matching the selectors."""
        ...

    async def create(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create an object; ``dry_run``: the API server validates it and persists nothing."""
        ...

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """A JSON merge patch; the patched object is returned."""
        ...

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None, dry_run: bool = False
    ) -> bool:
        """Delete an object (only if it still has ``uid``, when given); False when it was already gone."""
        ...

    async def evict(
        self, namespace: str, name: str, *, dry_run: bool = False, grace_period_seconds: int | None = None
    ) -> bool:
        """Evict a pod through the Eviction API; False when a PodDisruptionBudget refuses (429), True when done.

        ``grace_period_seconds`` goes into the Eviction's ``deleteOptions.gracePeriodSeconds`` (how long the
        pod gets to stop); None leaves the pod its own ``terminationGracePeriodSeconds``.
        """
        ...


class ReadOnce:
    """An ``ActionCluster`` that gives what ``describe`` read once more to ``run``, instead of reading it again.

    A step is described (reads), recorded Running with its key (a write), then run (the same reads, then the
    change): under load each read is a round trip of hundreds of milliseconds on the way to the first action
    (bench/remediation.py). Until ``hand_over`` every object and list read is kept; after it, each kept read is
    given out once and then gone, so a retry after a 409 reads afresh. Taking the kept read is safe only for an
    action whose change is guarded by the resourceVersion it read (``patches.patch_fresh``: a change meanwhile is
    a 409), and whose reads are all of that kind; such an action says so with ``reuses_described_reads = True``.
    Writes go straight through.
    """

    def __init__(self, cluster: ActionCluster) -> None:
        self._cluster = cluster
        self._kept: dict[tuple[Any, ...], Any] = {}
        self._keeping = True

    def hand_over(self) -> None:
        """From now on, give out what was kept (each once) and keep nothing more."""
        self._keeping = False

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = ("get", api_version, kind, namespace, name)
        if not self._keeping and key in self._kept:
            found: dict[str, Any] | None = self._kept.pop(key)
            return found
        found = await self._cluster.get(api_version, kind, namespace, name)
        if self._keeping:
            self._kept[key] = found
        return found

    async def list(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        key = ("list", api_version, kind, namespace, label_selector, field_selector)
        if not self._keeping and key in self._kept:
            kept: list[dict[str, Any]] = self._kept.pop(key)
            return kept
        found = await self._cluster.list(
            api_version, kind, namespace, label_selector=label_selector, field_selector=field_selector
        )
        if self._keeping:
            self._kept[key] = found
        return found

    async def create(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        return await self._cluster.create(body, dry_run=dry_run)

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return await self._cluster.patch(api_version, kind, namespace, name, patch, dry_run=dry_run)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None, dry_run: bool = False
    ) -> bool:
        return await self._cluster.delete(api_version, kind, namespace, name, uid=uid, dry_run=dry_run)

    async def evict(
        self, namespace: str, name: str, *, dry_run: bool = False, grace_period_seconds: int | None = None
    ) -> bool:
        return await self._cluster.evict(namespace, name, dry_run=dry_run, grace_period_seconds=grace_period_seconds)


Notifier = Callable[[tuple[str, ...], str], Awaitable[None]]
"""Tells channels (names of the SupportPolicy's channels) a message."""
Escalator = Callable[[str | None, tuple[str, ...], str], Awaitable[None]]
"""Raises the incident: (severity or None to keep it, channels, why)."""


@dataclass(frozen=True)
class ActionContext:
    """Everything one step's action gets."""

    cluster: ActionCluster
    namespace: str
    """The incident's namespace."""
    incident: Mapping[str, Any]
    """The Incident (spec and status), for params that use the incident context."""
    workload: resources.ObjectRef | None
    """The incident's workload (a Deployment, a Job, a Node ...), when it has one."""
    affected: tuple[resources.ObjectRef, ...]
    """The objects that show the signal (pods, a node)."""
    params: Mapping[str, Any]
    """The step's params, with the incident context already filled in."""
    key: str
    """The step's idempotency key: recorded before ``run``, written into what the action changes."""
    now: datetime.datetime
    dry_run: bool = False
    notify: Notifier | None = None
    """For ``notify`` and ``escalate``: how to tell channels (the controller's notifications)."""
    escalate: Escalator | None = None
    """For ``escalate``: how to raise the incident."""
    timeout: datetime.timedelta = datetime.timedelta(minutes=5)
    """The step's timeout (``verify`` gives up with Failed past it)."""
    started: datetime.datetime | None = None
    """When the step started (for ``verify`` and ``wait``)."""


class Action(Protocol):
    """One action of the catalog (see the module docstring)."""

    name: str

    async def describe(self, ctx: ActionContext) -> str:
        """What it would do, changing nothing."""
        ...

    async def already_done(self, ctx: ActionContext) -> Outcome | None:
        """The outcome when the run with ``ctx.key`` already took effect; None when it did not."""
        ...

    async def run(self, ctx: ActionContext) -> Outcome:
        """Do it (raises ``ActionFailed`` when it cannot)."""
        ...

    async def verify(self, ctx: ActionContext) -> Outcome:
        """Whether it worked: Succeeded, Failed, or Running (look again later)."""
        ...
