"""Write-back: a PlaybookRun's proposed fix or rollback becomes a branch pushed to git for review.

How it is wired (``register``): a ``kopf.on.event`` on PlaybookRuns looks for steps that have
Succeeded and call for a write-back, and works on each in a task of its own (a push takes
seconds; the playbook controller's handlers of the same run must not wait for it):

- **proposeFix** (its output is the proposal: workload, fieldPath, value, message): the Release
  whose ``status.inventory`` holds the workload (same namespace), its GitSource (``spec.url``, the
  branch of ``spec.ref.branch``, credentials from ``spec.secretRef``), then
  ``gitops.writeback.patch_branch`` pushes ``upkeep/fix/<incident>-<hash of the step's key>``.
- **rollbackDeployment** (not ``NothingToRollBack``): the Release that rolls out the workload
  (``spec.workloadRef``, or a Deployment of its inventory) with ``spec.rollback.writeBack`` on and a
  ``status.stableRevision`` other than ``status.revision``; ``gitops.writeback.revert_branch`` pushes
  ``<spec.rollback.branchPrefix><release>-<12 hex digits of the bad commit>``: the Release's path as
  it was at the stable commit, on top of the branch's tip.

Both commits carry the trailers Upkeep-Incident, Upkeep-Release and Upkeep-PlaybookRun.

What happened is recorded once per step in the run's ``status.writeBacks`` (step, branch, commit,
pushedAt, message, error), with an Event: ``WriteBackPushed`` (Normal), ``WriteBackNotNeeded``
(Normal: git already says it, or the Release does not ask for it) or ``WriteBackFailed``
(Warning). A step that has an entry is never written back again, whatever the entry says: a
failed write-back is for people to finish by hand (the entry says what and why); the branch
name is derived from the step, so even a write-back repeated by a second replica finds its own
commit on the remote and pushes nothing.

With the operator's ``--dry-run`` (``settings.safety.dry_run``) nothing is pushed and nothing is
written: a ``WriteBackDryRun`` Event says which branch would be pushed.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import kopf

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import events as events_
from upkeep.controllers import gitsources
from upkeep.engine import durations
from upkeep.gitops import git, writeback
from upkeep.model import resources

__all__ = ["ACTIONS", "WriteBackCluster", "WriteBackController", "register"]

logger = logging.getLogger(__name__)

ACTIONS = frozenset({"proposeFix", "rollbackDeployment"})
"""The step actions whose success is written back to git."""
RELEASES = "releases"
GITSOURCES = "gitsources"
PLAYBOOK_RUNS = "playbookruns"
MAX_ATTEMPTS = 10
"""Writes of ``status.writeBacks`` retried after a conflict before giving up until the run changes again."""

EventSink = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""


class WriteBackCluster(Protocol):
    """What the controller reads and writes (``cluster.KubernetesCluster`` is one)."""

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def list_custom(self, plural: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]: ...

    async def replace_custom_status(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]: ...


class _NotWrittenBack(Exception):
    """The step is not written back; ``error`` says whether that is a failure people must look at."""

    def __init__(self, message: str, *, error: bool, branch: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        self.branch = branch


@dataclass(frozen=True)
class _Plan:
    """One write-back, ready to run on a thread."""

    branch: str
    what: str
    """What would be pushed, for the dry-run Event."""
    release: Mapping[str, Any]
    call: Callable[[], writeback.Pushed | writeback.NothingToDo]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key(body: Mapping[str, Any]) -> tuple[str, str]:
    metadata = _mapping(body.get("metadata"))
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def due_steps(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The steps of ``run`` that Succeeded, call for a write-back, and have no ``status.writeBacks`` entry yet."""
    if _mapping(run.get("spec")).get("dryRun"):
        return []
    status = _mapping(run.get("status"))
    done = {str(_mapping(entry).get("step")) for entry in status.get("writeBacks") or []}
    return [
        step
        for step in (_mapping(item) for item in status.get("steps") or [])
        if step.get("action") in ACTIONS
        and step.get("phase") == "Succeeded"
        and str(step.get("name")) not in done
        and not (step.get("action") == "rollbackDeployment" and step.get("outcome") == "NothingToRollBack")
    ]


def _sha(revision: str) -> str:
    """``main@sha1:<sha>`` → ``<sha>``."""
    return revision.rpartition("sha1:")[2] if "sha1:" in revision else ""


class WriteBackController:
    """PlaybookRuns in, branches out. ``register`` wires one to Kopf; a test drives one directly."""

    def __init__(
        self,
        settings: settings_.OperatorSettings,
        cluster: WriteBackCluster,
        *,
        events: EventSink | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
        pull_requests: writeback.PullRequestProvider | None = None,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.pull_requests = pull_requests
        """Opens a pull request for each pushed branch; None (the default): the branch alone is the proposal."""
        self._events = events or events_.post
        self._clock = clock or _utcnow
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._again: set[tuple[str, str]] = set()
        self._told: set[tuple[str, str, str]] = set()

    def run_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A run changed: work on its due steps in the background (once at a time per run)."""
        if deleted or not due_steps(body):
            return
        key = _key(body)
        if key in self._running:
            self._again.add(key)
            return
        task = asyncio.get_running_loop().create_task(self._work(key))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def idle(self) -> None:
        """Wait until no run is being worked on (tests)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def _work(self, key: tuple[str, str]) -> None:
        while True:
            self._again.discard(key)
            try:
                await self.write_back(*key)
            except Exception:
                logger.exception("playbookrun %s/%s: write-back failed; it is tried again when the run changes", *key)
            if key not in self._again:
                return

    async def write_back(self, namespace: str, name: str) -> None:
        """Write back every due step of the run, reading it fresh first (another replica may have done it)."""
        run = await self.cluster.get_custom(PLAYBOOK_RUNS, namespace, name)
        for step in due_steps(run or {}):
            assert run is not None
            record = await self._one(run, step)
            if record is not None:
                written = await self._record(run, record)
                if written is None:
                    return
                run = written

    async def _one(self, run: Mapping[str, Any], step: Mapping[str, Any]) -> dict[str, Any] | None:
        """The ``status.writeBacks`` entry for ``step``, after pushing (None in dry run: nothing is recorded)."""
        view = resources.PlaybookRun(run)
        step_name = str(step.get("name") or "")
        entry: dict[str, Any] = {"step": step_name}
        try:
            plan = await self._plan(run, step)
        except _NotWrittenBack as refusal:
            if refusal.branch:
                entry["branch"] = refusal.branch
            entry["error" if refusal.error else "message"] = refusal.message
            kind = "Warning" if refusal.error else "Normal"
            self._events(run, kind, "WriteBackFailed" if refusal.error else "WriteBackNotNeeded", refusal.message)
            return entry
        entry["branch"] = plan.branch
        if self.settings.safety.dry_run:
            told = (view.namespace, view.name, step_name)
            if told not in self._told:
                self._told.add(told)
                self._events(run, "Normal", "WriteBackDryRun", f"dry run: would push {plan.what}")
            return None
        try:
            result = await asyncio.to_thread(plan.call)
        except (git.GitError, ValueError) as error:
            message = f"{getattr(error, 'reason', 'InvalidWriteBack')}: {getattr(error, 'message', str(error))}"
            entry["error"] = f"step {step_name}: branch {plan.branch} not pushed: {message}"
            self._events(run, "Warning", "WriteBackFailed", entry["error"])
            return entry
        if isinstance(result, writeback.NothingToDo):
            entry["message"] = result.message
            self._events(run, "Normal", "WriteBackNotNeeded", f"step {step_name}: {result.message}")
            return entry
        entry.update(commit=result.commit, pushedAt=self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"))
        said = "was already on" if result.already_there else "pushed to"
        entry["message"] = (
            f"{', '.join(result.files)}: commit {result.commit[:12]} {said} {result.url} as {plan.branch}"
        )
        if result.pull_request:
            entry["message"] += f"; pull request {result.pull_request}"
        message = f"step {step_name}: {plan.what}: {entry['message']}"
        self._events(run, "Normal", "WriteBackPushed", message)
        self._events(plan.release, "Normal", "WriteBackPushed", f"PlaybookRun {view.name} {message}")
        return entry

    async def _record(self, run: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any] | None:
        """Add ``entry`` to the run's ``status.writeBacks`` (unless its step has one), against its resourceVersion."""
        current: Mapping[str, Any] | None = run
        namespace, name = _key(run)
        for _ in range(MAX_ATTEMPTS):
            if current is None:
                return None
            status = dict(_mapping(current.get("status")))
            entries = [dict(_mapping(item)) for item in status.get("writeBacks") or []]
            if any(item.get("step") == entry["step"] for item in entries):
                return dict(current)
            status["writeBacks"] = [*entries, dict(entry)]
            try:
                return await self.cluster.replace_custom_status(PLAYBOOK_RUNS, {**current, "status": status})
            except cluster_.Conflict:
                current = await self.cluster.get_custom(PLAYBOOK_RUNS, namespace, name)
        logger.warning("playbookrun %s/%s: could not record the write-back of step %s", namespace, name, entry["step"])
        return None

    # -- what to push

    async def _plan(self, run: Mapping[str, Any], step: Mapping[str, Any]) -> _Plan:
        output = self._output(step)
        namespace = resources.Resource(run).namespace
        workload = resources.ObjectRef.from_dict(_mapping(output.get("workload")), default_namespace=namespace)
        if not workload.name:
            raise _NotWrittenBack(f"step {step.get('name')}: its output names no workload", error=True)
        if step.get("action") == "proposeFix":
            return await self._fix_plan(run, step, output, workload)
        return await self._revert_plan(run, step, workload)

    @staticmethod
    def _output(step: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            found = json.loads(str(step.get("output") or "{}"))
        except ValueError:
            found = None
        if not isinstance(found, Mapping):
            raise _NotWrittenBack(
                f"step {step.get('name')}: its output cannot be read as the action's record", error=True
            )
        return found

    async def _fix_plan(
        self,
        run: Mapping[str, Any],
        step: Mapping[str, Any],
        proposal: Mapping[str, Any],
        workload: resources.ObjectRef,
    ) -> _Plan:
        view = resources.PlaybookRun(run)
        field_path, value = str(proposal.get("fieldPath") or ""), proposal.get("value")
        if not field_path or value is None:
            raise _NotWrittenBack(f"step {step.get('name')}: the proposal has no fieldPath or value", error=True)
        releases = await self.cluster.list_custom(RELEASES, view.namespace, {})
        found = next(((r, item) for r in releases if (item := _inventory_item(r, workload)) is not None), None)
        if found is None:
            raise _NotWrittenBack(
                f"step {step.get('name')}: no Release in namespace {view.namespace} has {workload} in its "
                f"status.inventory, so there is no git to propose to: set {field_path} to {value} where "
                f"{workload.kind} {workload.name} is declared, by hand",
                error=True,
            )
        release, item = found
        branch = writeback.fix_branch_name(
            view.incident_name,
            str(step.get("idempotencyKey") or f"{_mapping(run.get('metadata')).get('uid')}/{step.get('name')}"),
        )
        source = await self._source(release, branch)
        target = writeback.Target(
            str(item.get("apiVersion") or workload.api_version or "apps/v1"),
            workload.kind,
            workload.namespace,
            workload.name,
        )
        release_name = resources.Resource(release).name
        subject = str(proposal.get("message") or f"Set {field_path} of {workload.kind} {workload.name} to {value}")
        body = (
            f"Upkeep changed {field_path} of {workload} from {proposal.get('declared')} to {value} for incident "
            f"{view.incident_name} (PlaybookRun {view.name}, step {step.get('name')}). This makes the change "
            f"permanent in git, so that the Release {release_name} does not undo it when the override expires."
        )
        call = functools.partial(
            writeback.patch_branch,
            source.url,
            base_branch=source.branch,
            path=_path(release),
            target=target,
            field_path=field_path,
            value=value,
            branch=branch,
            subject=subject.splitlines()[0] if subject else subject,
            body=body,
            trailers=self._trailers(run, release_name),
            **source.auth.options(),
            cache_dir=Path(self.settings.gitops.cache_path()),
            timeout=source.timeout,
            pull_requests=self.pull_requests,
        )
        return _Plan(branch, f"branch {branch} setting {field_path} of {target} to {value}", release, call)

    async def _revert_plan(
        self, run: Mapping[str, Any], step: Mapping[str, Any], workload: resources.ObjectRef
    ) -> _Plan:
        view = resources.PlaybookRun(run)
        releases = await self.cluster.list_custom(RELEASES, view.namespace, {})
        release = next((r for r in releases if _rolls_out(r, workload)), None)
        if release is None:
            raise _NotWrittenBack(
                f"step {step.get('name')}: no Release rolls out {workload}: git has nothing to revert", error=False
            )
        release_name = resources.Resource(release).name
        spec, status = _mapping(release.get("spec")), _mapping(release.get("status"))
        rollback = _mapping(spec.get("rollback"))
        if rollback.get("writeBack") is False:
            raise _NotWrittenBack(
                f"Release {release_name}: spec.rollback.writeBack is false: no revert branch", error=False
            )
        revision, stable = str(status.get("revision") or ""), str(status.get("stableRevision") or "")
        bad, good = _sha(revision), _sha(stable)
        if not bad or not good or bad == good:
            raise _NotWrittenBack(
                f"Release {release_name}: the revision in the cluster ({revision or 'none'}) is the stable one "
                f"({stable or 'none'}): git has nothing to revert",
                error=False,
            )
        branch = writeback.revert_branch_name(str(rollback.get("branchPrefix") or "upkeep/revert/"), release_name, bad)
        source = await self._source(release, branch)
        body = (
            f"Upkeep rolled {workload} back for incident {view.incident_name} (PlaybookRun {view.name}, step "
            f"{step.get('name')}). This restores {_path(release)} to {stable}, undoing {revision}, so that git "
            "matches the cluster again."
        )
        call = functools.partial(
            writeback.revert_branch,
            source.url,
            base_branch=source.branch,
            path=_path(release),
            good_commit=good,
            bad_commit=bad,
            branch=branch,
            subject=f"Revert {release_name} to {good[:12]} (rolled back from {bad[:12]})",
            body=body,
            trailers=self._trailers(run, release_name),
            **source.auth.options(),
            cache_dir=Path(self.settings.gitops.cache_path()),
            timeout=source.timeout,
            pull_requests=self.pull_requests,
        )
        return _Plan(branch, f"branch {branch} reverting {_path(release)} to {good[:12]}", release, call)

    @staticmethod
    def _trailers(run: Mapping[str, Any], release: str) -> dict[str, str]:
        view = resources.PlaybookRun(run)
        return {"Upkeep-Incident": view.incident_name, "Upkeep-Release": release, "Upkeep-PlaybookRun": view.name}

    async def _source(self, release: Mapping[str, Any], branch: str) -> _Source:
        view = resources.Resource(release)
        name = str(_mapping(_mapping(release.get("spec")).get("sourceRef")).get("name") or "")
        source = await self.cluster.get_custom(GITSOURCES, view.namespace, name) if name else None
        if source is None:
            raise _NotWrittenBack(
                f"Release {view.name}: its GitSource {name!r} is not in namespace {view.namespace}",
                error=True,
                branch=branch,
            )
        spec = _mapping(source.get("spec"))
        try:
            ref = git.Ref.from_spec(cast(Mapping[str, str] | None, spec.get("ref")))
        except ValueError as error:
            raise _NotWrittenBack(f"GitSource {name}: spec.ref: {error}", error=True, branch=branch) from None
        if ref.kind != "branch":
            raise _NotWrittenBack(
                f"GitSource {name} follows {ref}, not a branch: a proposal is a branch made from the tip of a branch; "
                "write the change to git by hand",
                error=True,
                branch=branch,
            )
        try:
            auth = await gitsources.fetch_auth(self.cluster, view.namespace, source)
        except gitsources.SourceError as error:
            raise _NotWrittenBack(f"GitSource {name}: {error.message}", error=True, branch=branch) from None
        timeout = durations.parse_duration(str(spec.get("timeout") or "60s")).total_seconds()
        return _Source(str(spec.get("url") or ""), ref.name, auth, timeout)


@dataclass(frozen=True)
class _Source:
    url: str
    branch: str
    auth: gitsources.FetchAuth
    timeout: float


def _path(release: Mapping[str, Any]) -> str:
    return str(_mapping(release.get("spec")).get("path") or "./")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _inventory_item(release: Mapping[str, Any], workload: resources.ObjectRef) -> Mapping[str, Any] | None:
    """The entry of the Release's ``status.inventory`` that is the workload (the namespace defaults as applied)."""
    namespace = resources.Resource(release).namespace
    default = str(_mapping(release.get("spec")).get("targetNamespace") or namespace)
    for item in (_mapping(entry) for entry in _mapping(release.get("status")).get("inventory") or []):
        if (
            item.get("kind") == workload.kind
            and item.get("name") == workload.name
            and str(item.get("namespace") or default) == (workload.namespace or namespace)
            and (not workload.api_version or _group(str(item.get("apiVersion") or "")) == _group(workload.api_version))
        ):
            return item
    return None


def _rolls_out(release: Mapping[str, Any], workload: resources.ObjectRef) -> bool:
    """The Release's ``spec.workloadRef`` is the workload, or (without one) its inventory holds it."""
    ref = _mapping(_mapping(release.get("spec")).get("workloadRef"))
    if ref.get("name"):
        return str(ref.get("name")) == workload.name and str(ref.get("kind") or "Deployment") == workload.kind
    return workload.kind == "Deployment" and _inventory_item(release, workload) is not None


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    cluster: WriteBackCluster | None = None,
    pull_requests: writeback.PullRequestProvider | None = None,
) -> WriteBackController:
    """Register the PlaybookRun event handler that writes fixes and rollbacks back to git; returned for tests."""
    controller = WriteBackController(settings, cluster or cluster_.KubernetesCluster(), pull_requests=pull_requests)

    async def on_run(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.run_changed(body, deleted=type == "DELETED")

    kopf.on.event(GROUP, VERSION, PLAYBOOK_RUNS, id="writeback-playbookruns", registry=registry)(on_run)
    return controller
