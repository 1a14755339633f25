"""The Job controller: pods until enough succeed, a back-off between failures, and the end Kubernetes 1.37 writes.

Pods carry the batch.kubernetes.io/job-tracking finalizer; a finished pod is counted into
status.succeeded or status.failed when the controller takes the finalizer off, so counts hold even after
the pods are deleted. A failed pod is replaced after the Job controller's back-off (10 s doubling to
10 minutes, scaled). More failures than backoffLimit, or a run longer than activeDeadlineSeconds, end the
Job: FailureTarget first, Failed once no pod is terminating; success is SuccessCriteriaMet, then Complete.
ttlSecondsAfterFinished deletes a finished Job as the TTL-after-finished controller does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.sandbox import status as api_status
from upkeep.sandbox.simulation import runtime, workloads_pods, workloads_replicaset
from upkeep.sandbox.store import Event

__all__ = ["JobController", "backoff_delay", "job_finished"]

RESOURCE = "batch/jobs"
PODS = "/pods"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
BACKOFF_BASE = 10.0
"""DefaultJobPodFailureBackOff, seconds (scaled by the simulation's time_scale)."""
BACKOFF_CAP = 600.0
"""MaxJobPodFailureBackOff, seconds."""
BURST = 500
"""MaxPodCreateDeletePerSync."""
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


def backoff_delay(failures: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """How long after the last failure the next pod may start: 0, then base, doubling, at most cap."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 40)))


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def job_finished(job: Mapping[str, Any]) -> str | None:
    """ "Complete" or "Failed" when the Job has that condition (True), else None."""
    for kind in ("Complete", "Failed"):
        if _condition(job, kind) is not None:
            return kind
    return None


def _new_condition(kind: str, reason: str, message: str, moment: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": moment,
        "lastTransitionTime": moment,
        "reason": reason,
        "message": message,
    }


def _has_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def _counted_failed(pod: Mapping[str, Any]) -> bool:
    """isPodFailed: Failed, or deleted before it succeeded (an orphan never reaches Failed)."""
    phase = pod.get("status", {}).get("phase")
    return phase == "Failed" or (bool(pod["metadata"].get("deletionTimestamp")) and phase != "Succeeded")


def _finished_at(pod: Mapping[str, Any], now: float) -> float:
    """When the pod's last container ended; ``now`` when that was within the second (timestamps have whole
    seconds, and a back-off scaled for tests is shorter than that)."""
    latest = None
    for item in pod.get("status", {}).get("containerStatuses") or []:
        finished = workloads_pods.parse_time(((item.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None and (latest is None or finished > latest):
            latest = finished
    return now if latest is None or now - latest < 1.0 else latest


@dataclass
class _Backoff:
    """The back-off record of one Job (the controller keeps it in memory too)."""

    failures_after_success: int = 0
    last_failure: float = 0.0


@dataclass(frozen=True)
class _Spec:
    completions: int | None
    parallelism: int
    backoff_limit: int
    suspended: bool
    restart_policy: str

    @classmethod
    def of(cls, job: Mapping[str, Any]) -> _Spec:
        spec = job.get("spec") or {}
        completions = spec.get("completions")
        parallelism = spec.get("parallelism")
        if completions is None and parallelism is None:
            completions = parallelism = 1
        backoff = spec.get("backoffLimit")
        return cls(
            completions=None if completions is None else int(completions),
            parallelism=1 if parallelism is None else int(parallelism),
            backoff_limit=6 if backoff is None else int(backoff),
            suspended=bool(spec.get("suspend")),
            restart_policy=str(((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") or "Never"),
        )


class JobController(runtime.Controller):
    """Pods for Jobs, counted, backed off, deleted when the Job ends; the end reported as 1.37 does."""

    name = "job-controller"
    watches = (RESOURCE, PODS)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.pods = workloads_pods.owner_index(ctx, PODS)
        self._backoff: dict[str, _Backoff] = {}

    def initial_keys(self) -> Iterable[runtime.Key]:
        self.pods.build()
        keys = [runtime.key_of(RESOURCE, job) for job in self.ctx.list(RESOURCE)]
        orphans = [
            runtime.key_of(PODS, pod) for pod in self.ctx.list(PODS) if _has_finalizer(pod) and self._owner(pod) is None
        ]
        return [*keys, *orphans]

    def _owner(self, pod: Mapping[str, Any]) -> dict[str, Any] | None:
        """The unfinished Job that controls ``pod``, if any."""
        ref = workloads_pods.controller_of(pod)
        if ref is None or ref.get("kind") != "Job":
            return None
        job = self.ctx.get(RESOURCE, str(pod["metadata"].get("namespace") or ""), str(ref.get("name")))
        if job is None or job["metadata"].get("uid") != ref.get("uid") or job_finished(job):
            return None
        return job

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == RESOURCE:
            return [runtime.key_of(RESOURCE, event.obj)]
        self.pods.observe(event)
        ref = workloads_pods.controller_of(event.obj)
        if ref is None or ref.get("kind") != "Job":
            return []
        if event.type != "DELETED" and _has_finalizer(event.obj) and self._owner(event.obj) is None:
            return [runtime.key_of(PODS, event.obj)]
        return [(RESOURCE, event.namespace, str(ref.get("name")))]

    async def reconcile(self, key: runtime.Key) -> float | None:
        if key[0] == PODS:
            pod = self.ctx.get(*key)
            if pod is not None and _has_finalizer(pod) and self._owner(pod) is None:
                self._release(pod)
            return None
        job = self.ctx.get(*key)
        if job is None:
            return None
        finished = job_finished(job)
        if finished:
            self._backoff.pop(job["metadata"]["uid"], None)
            for pod in self.pods.children(job["metadata"]["uid"]):
                if _has_finalizer(pod):
                    self._release(pod)
            return self._expire(job)
        return self.sync(job)

    # pods

    def _release(self, pod: Mapping[str, Any]) -> bool:
        """Take the tracking finalizer off ``pod`` (a deleted pod then goes); False if it is gone."""
        kept = [item for item in pod["metadata"].get("finalizers") or [] if item != TRACKING_FINALIZER]
        patch = {"metadata": {"finalizers": kept or None}}
        metadata = pod["metadata"]
        return (
            self.ctx.patch(PODS, str(metadata.get("namespace") or ""), str(metadata["name"]), patch, self.name)
            is not None
            or self.ctx.get(PODS, str(metadata.get("namespace") or ""), str(metadata["name"])) is None
        )

    def _create_pods(self, job: dict[str, Any], count: int) -> int:
        spec = job.get("spec") or {}
        metadata = job["metadata"]
        name = str(metadata["name"])
        labels = {
            "batch.kubernetes.io/controller-uid": metadata["uid"],
            "batch.kubernetes.io/job-name": name,
            "controller-uid": metadata["uid"],
            "job-name": name,
        }
        if spec.get("manualSelector"):
            labels = {}
        template = spec.get("template") or {}
        ref = workloads_pods.controller_ref(job, "batch/v1", "Job")
        made = 0
        for _ in range(min(count, BURST)):
            body = workloads_pods.pod_from_template(
                template, ref, generate_name=f"{name}-", labels=labels, finalizers=[TRACKING_FINALIZER]
            )
            body["metadata"]["labels"] = {**labels, **(template.get("metadata", {}).get("labels") or {})}
            try:
                created = self.ctx.create(PODS, str(metadata.get("namespace") or ""), body, self.name)
            except api_status.ApiError as error:
                if "is being terminated" not in error.message:
                    workloads_pods.record(
                        self.ctx, job, "Warning", "FailedCreate", f"Error creating: {error.message}", self.name
                    )
                break
            if created is None:
                continue
            self.pods.add(created)
            made += 1
            workloads_pods.record(
                self.ctx, job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", self.name
            )
        return made

    def _delete_pods(self, job: dict[str, Any], pods: Sequence[Mapping[str, Any]], *, count: bool) -> int:
        """Delete ``pods``; ``count``: keep their finalizers so that they count as failed (a Job ending),
        else release them first (surplus pods of a running Job count as nothing)."""
        deleted = 0
        for pod in pods:
            metadata = pod["metadata"]
            if not count and _has_finalizer(pod):
                self._release(pod)
            try:
                self.ctx.delete(PODS, str(metadata.get("namespace") or ""), str(metadata["name"]))
            except api_status.ApiError as error:
                workloads_pods.record(
                    self.ctx, job, "Warning", "FailedDelete", f"Error deleting: {error.message}", self.name
                )
                continue
            deleted += 1
            workloads_pods.record(
                self.ctx, job, "Normal", "SuccessfulDelete", f"Deleted pod: {metadata['name']}", self.name
            )
        return deleted

    # syncJob

    def sync(self, job: dict[str, Any]) -> float | None:
        now = workloads_pods.wall_clock()
        moment = workloads_pods.timestamp(now)
        uid = job["metadata"]["uid"]
        spec = _Spec.of(job)
        status: dict[str, Any] = copy.deepcopy(job.get("status") or {})
        pods = self.pods.children(uid)
        if status.get("startTime") is None and not spec.suspended:
            status["startTime"] = moment

        # count what ended since the last sync (the pods still carrying the finalizer)
        new_succeeded = [
            pod for pod in pods if _has_finalizer(pod) and pod.get("status", {}).get("phase") == "Succeeded"
        ]
        new_failed = [pod for pod in pods if _has_finalizer(pod) and _counted_failed(pod)]
        record = self._backoff.setdefault(uid, _Backoff())
        if new_succeeded:
            record.failures_after_success = 0
        if new_failed:
            record.failures_after_success += len(new_failed)
            record.last_failure = max([record.last_failure, *(_finished_at(pod, now) for pod in new_failed)])
        succeeded = int(status.get("succeeded") or 0) + len(new_succeeded)
        failed = int(status.get("failed") or 0) + len(new_failed)
        live = [pod for pod in pods if workloads_pods.active(pod)]

        ending = self._ending(job, spec, status, pods, failed, now)
        wait: float | None = None
        if ending is None:
            wait = self._manage(job, spec, live, succeeded, record, now)
            live = [pod for pod in self.pods.children(uid) if workloads_pods.active(pod)]
        else:
            self._delete_pods(job, live, count=True)
            live = []

        # take the finalizers off what ended (and off everything, once the Job has failed)
        counted = {pod["metadata"]["uid"] for pod in [*new_succeeded, *new_failed]}
        for pod in self.pods.children(uid):
            if not _has_finalizer(pod):
                continue
            phase = pod.get("status", {}).get("phase")
            if phase == "Succeeded" or _counted_failed(pod) or ending is not None:
                if pod["metadata"]["uid"] not in counted:
                    if phase == "Succeeded":
                        succeeded += 1
                    else:
                        failed += 1
                self._release(pod)
        remaining = self.pods.children(uid)
        terminating = sum(
            1 for pod in remaining if pod["metadata"].get("deletionTimestamp") and not workloads_pods.finished(pod)
        )
        ready = sum(1 for pod in live if workloads_pods.ready(pod))

        status["active"] = len(live)
        status["ready"] = ready
        status["terminating"] = terminating
        status["uncountedTerminatedPods"] = {}
        status["succeeded"] = succeeded
        status["failed"] = failed
        for field in ("active", "succeeded", "failed"):
            if not status[field]:
                status.pop(field)
        conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
        finished_now: tuple[str, str, str] | None = None
        if ending is None and not self._complete(spec, succeeded, len(live)):
            self._note_suspension(job, spec, status, conditions, moment)
        if ending is not None:
            if not any(item.get("type") == "FailureTarget" for item in conditions):
                conditions.append(_new_condition("FailureTarget", *ending, moment))
            if terminating == 0:
                conditions.append(_new_condition("Failed", *ending, moment))
                finished_now = ("Failed", *ending)
        elif self._complete(spec, succeeded, len(live)):
            if not any(item.get("type") == "SuccessCriteriaMet" for item in conditions):
                conditions.append(_new_condition("SuccessCriteriaMet", *COMPLETIONS_REACHED, moment))
            if terminating == 0:
                conditions.append(_new_condition("Complete", *COMPLETIONS_REACHED, moment))
                status["completionTime"] = moment
                finished_now = ("Complete", *COMPLETIONS_REACHED)
        if conditions:
            status["conditions"] = conditions
        if status != job.get("status"):
            current = self.ctx.get(RESOURCE, str(job["metadata"].get("namespace") or ""), job["metadata"]["name"])
            if current is not None:
                self.ctx.update(RESOURCE, {**current, "status": status}, self.name, subresource="status")
        if finished_now is not None:
            kind, reason, message = finished_now
            if kind == "Complete":
                workloads_pods.record(self.ctx, job, "Normal", "Completed", "Job completed", self.name)
            else:
                workloads_pods.record(self.ctx, job, "Warning", reason, message, self.name)
            return None
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None and not spec.suspended and ending is None:
            started = workloads_pods.parse_time(status.get("startTime")) or now
            left = started + self.ctx.settings.scaled(float(deadline)) - now
            wait = left if wait is None else min(wait, left)
        if ending is not None and terminating:
            wait = 0.5 if wait is None else min(wait, 0.5)
        return None if wait is None else max(wait, 0.0) + 0.05

    def _note_suspension(
        self,
        job: Mapping[str, Any],
        spec: _Spec,
        status: dict[str, Any],
        conditions: list[dict[str, Any]],
        moment: str,
    ) -> None:
        """The Suspended condition (True when suspended, False once resumed) and its Events; a resumed Job's
        startTime starts again, as activeDeadlineSeconds counts continuous activity."""
        index = next((n for n, item in enumerate(conditions) if item.get("type") == "Suspended"), None)
        if spec.suspended:
            wanted = ("True", "JobSuspended", "Job suspended")
        elif index is not None:
            wanted = ("False", "JobResumed", "Job resumed")
        else:
            return
        if index is not None and conditions[index].get("status") == wanted[0]:
            return
        condition = _new_condition("Suspended", wanted[1], wanted[2], moment)
        condition["status"] = wanted[0]
        if index is None:
            conditions.append(condition)
        else:
            conditions[index] = condition
        if spec.suspended:
            workloads_pods.record(self.ctx, job, "Normal", "Suspended", "Job suspended", self.name)
        else:
            status["startTime"] = moment
            workloads_pods.record(self.ctx, job, "Normal", "Resumed", "Job resumed", self.name)

    def _ending(
        self,
        job: Mapping[str, Any],
        spec: _Spec,
        status: Mapping[str, Any],
        pods: Sequence[Mapping[str, Any]],
        failed: int,
        now: float,
    ) -> tuple[str, str] | None:
        """Why the Job fails now, as (reason, message), or None."""
        for condition in status.get("conditions") or []:
            if condition.get("type") == "FailureTarget" and condition.get("status") == "True":
                return (str(condition.get("reason")), str(condition.get("message")))
        if any(item.get("type") == "SuccessCriteriaMet" for item in status.get("conditions") or []):
            return None
        if failed > spec.backoff_limit or self._past_backoff_on_failure(spec, pods):
            return BACKOFF_EXCEEDED
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        started = workloads_pods.parse_time(status.get("startTime"))
        if (
            deadline is not None
            and started is not None
            and not spec.suspended
            and now - started >= self.ctx.settings.scaled(float(deadline))
        ):
            return DEADLINE_EXCEEDED
        return None

    @staticmethod
    def _past_backoff_on_failure(spec: _Spec, pods: Sequence[Mapping[str, Any]]) -> bool:
        """restartPolicy OnFailure: the kubelet restarts in place, so the restarts count as failures."""
        if spec.restart_policy != "OnFailure":
            return False
        restarts = 0
        for pod in pods:
            if pod.get("status", {}).get("phase") in ("Running", "Pending"):
                for item in pod.get("status", {}).get("containerStatuses") or []:
                    restarts += int(item.get("restartCount") or 0)
        return restarts > 0 if spec.backoff_limit == 0 else restarts >= spec.backoff_limit

    @staticmethod
    def _complete(spec: _Spec, succeeded: int, active: int) -> bool:
        if spec.completions is None:
            return succeeded > 0 and active == 0
        return succeeded >= spec.completions and active == 0

    def _manage(
        self,
        job: dict[str, Any],
        spec: _Spec,
        live: list[dict[str, Any]],
        succeeded: int,
        record: _Backoff,
        now: float,
    ) -> float | None:
        """manageJob: as many active pods as parallelism and the remaining completions allow."""
        if spec.suspended:
            self._delete_pods(job, live, count=False)
            return None
        if spec.completions is None:
            wanted = len(live) if succeeded > 0 else spec.parallelism
        else:
            wanted = max(0, min(spec.completions - succeeded, spec.parallelism))
        if len(live) > wanted:
            surplus = workloads_replicaset.deletion_order(live)[: len(live) - wanted]
            self._delete_pods(job, surplus, count=False)
            return None
        missing = wanted - len(live)
        if missing <= 0:
            return None
        delay = self.ctx.settings.scaled(backoff_delay(record.failures_after_success, BACKOFF_BASE, BACKOFF_CAP))
        left = record.last_failure + delay - now if record.failures_after_success else 0.0
        if left > 0:
            return left
        self._create_pods(job, missing)
        return None

    # ttlSecondsAfterFinished

    def _expire(self, job: Mapping[str, Any]) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return None
        finished = job_finished(job)
        condition = _condition(job, finished) if finished else None
        at = workloads_pods.parse_time((job.get("status") or {}).get("completionTime"))
        if at is None and condition is not None:
            at = workloads_pods.parse_time(condition.get("lastTransitionTime"))
        if at is None:
            return None
        left = at + self.ctx.settings.scaled(float(ttl)) - workloads_pods.wall_clock()
        if left > 0:
            return left + 0.05
        metadata = job["metadata"]
        self.ctx.delete(RESOURCE, str(metadata.get("namespace") or ""), str(metadata["name"]), policy="Foreground")
        return None
