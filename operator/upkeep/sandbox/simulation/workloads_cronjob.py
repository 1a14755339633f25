"""The CronJob controller: a Job per scheduled time, by the wall clock, as cronjob_controllerv2 makes them.

Jobs are named ``<cronjob>-<scheduled time in minutes since the epoch>`` (so a time never runs twice),
carry the jobTemplate's labels and annotations plus batch.kubernetes.io/cronjob-scheduled-timestamp,
and are listed in status.active while they run. concurrencyPolicy (Allow, Forbid, Replace), suspend,
startingDeadlineSeconds, timeZone and the successful/failed history limits behave as in Kubernetes.
Schedules are not scaled: a CronJob waits for real minutes.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable, Mapping
from email import utils as email_utils
from typing import Any

from upkeep.sandbox import status as api_status
from upkeep.sandbox.simulation import runtime, workloads_cron, workloads_job, workloads_pods
from upkeep.sandbox.store import Event

__all__ = ["CronJobController", "job_name"]

RESOURCE = "batch/cronjobs"
JOBS = "batch/jobs"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_DELTA = 0.1
"""The controller looks again this long after the next scheduled time (nextScheduleDelta)."""


def job_name(cronjob_name: str, scheduled: datetime.datetime) -> str:
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def _moment(text: object) -> datetime.datetime | None:
    seconds = workloads_pods.parse_time(text)
    return None if seconds is None else datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _schedule_text(cronjob: Mapping[str, Any]) -> str:
    """formatSchedule: spec.timeZone becomes a TZ= prefix unless the schedule has one of its own."""
    spec = cronjob.get("spec") or {}
    schedule = str(spec.get("schedule") or "")
    if "TZ" in schedule or not spec.get("timeZone"):
        return schedule
    return f"TZ={spec['timeZone']} {schedule}"


class CronJobController(runtime.Controller):
    """Jobs for CronJobs on schedule; status.active, lastScheduleTime, lastSuccessfulTime; history kept short."""

    name = "cronjob-controller"
    watches = (RESOURCE, JOBS)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.jobs = workloads_pods.owner_index(ctx, JOBS)

    def initial_keys(self) -> Iterable[runtime.Key]:
        self.jobs.build()
        return [runtime.key_of(RESOURCE, obj) for obj in self.ctx.list(RESOURCE)]

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == RESOURCE:
            return [runtime.key_of(RESOURCE, event.obj)]
        self.jobs.observe(event)
        ref = workloads_pods.controller_of(event.obj)
        if ref is None or ref.get("kind") != "CronJob":
            return []
        return [(RESOURCE, event.namespace, str(ref.get("name")))]

    async def reconcile(self, key: runtime.Key) -> float | None:
        cronjob = self.ctx.get(*key)
        if cronjob is None:
            return None
        return self.sync(cronjob)

    def sync(self, stored: dict[str, Any]) -> float | None:
        cronjob = copy.deepcopy(stored)
        status: dict[str, Any] = cronjob.setdefault("status", {})
        jobs = self.jobs.children(cronjob["metadata"]["uid"])
        now = datetime.datetime.fromtimestamp(workloads_pods.wall_clock(), datetime.UTC)
        wait = self._schedule(cronjob, jobs, now)
        self._clean_up(cronjob, jobs)
        if not status.get("active"):
            status.pop("active", None)
        if status != (stored.get("status") or {}):
            current = self.ctx.get(RESOURCE, str(stored["metadata"].get("namespace") or ""), stored["metadata"]["name"])
            if current is not None:
                self.ctx.update(RESOURCE, {**current, "status": status}, self.name, subresource="status")
        return wait

    def _event(self, cronjob: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        workloads_pods.record(self.ctx, cronjob, kind, reason, message, self.name)

    def _schedule(self, cronjob: dict[str, Any], jobs: list[dict[str, Any]], now: datetime.datetime) -> float | None:
        """syncCronJob: follow the Jobs, then start the one that is due, if any; seconds until the next."""
        status = cronjob["status"]
        spec = cronjob.get("spec") or {}
        namespace = str(cronjob["metadata"].get("namespace") or "")
        active: list[dict[str, Any]] = list(status.get("active") or [])
        active_uids = {str(ref.get("uid")) for ref in active}
        children = {job["metadata"]["uid"] for job in jobs}
        for job in jobs:
            uid = job["metadata"]["uid"]
            finished = workloads_job.job_finished(job)
            if finished is None:
                if uid not in active_uids:
                    self._event(
                        cronjob,
                        "Warning",
                        "UnexpectedJob",
                        f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}",
                    )
                continue
            if uid in active_uids:
                active = [ref for ref in active if ref.get("uid") != uid]
                self._event(
                    cronjob,
                    "Normal",
                    "SawCompletedJob",
                    f"Saw completed job: {job['metadata']['name']}, condition: {finished}",
                )
            completed = (job.get("status") or {}).get("completionTime")
            if finished == "Complete" and completed:
                last = _moment(status.get("lastSuccessfulTime"))
                done = _moment(completed)
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = completed
        for ref in list(active):
            if str(ref.get("uid")) in children:
                continue
            if self.ctx.get(JOBS, namespace, str(ref.get("name"))) is None:
                self._event(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                active = [item for item in active if item.get("uid") != ref.get("uid")]
        status["active"] = active
        if cronjob["metadata"].get("deletionTimestamp"):
            return None
        if spec.get("timeZone"):
            try:
                workloads_cron.zone(str(spec["timeZone"]))
            except ValueError as error:
                self._event(cronjob, "Warning", "UnknownTimeZone", f'invalid timeZone: "{spec["timeZone"]}": {error}')
                return None
        if spec.get("suspend"):
            return None
        try:
            schedule = workloads_cron.parse(_schedule_text(cronjob))
        except ValueError as error:
            self._event(
                cronjob, "Warning", "UnparseableSchedule", f'unparseable schedule: "{spec.get("schedule")}" : {error}'
            )
            return None
        earliest = (
            _moment(status.get("lastScheduleTime")) or _moment(cronjob["metadata"].get("creationTimestamp")) or now
        )
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - datetime.timedelta(seconds=int(deadline)))
        scheduled, missed = workloads_cron.most_recent(schedule, earliest, now)
        if missed > workloads_cron.MAX_MISSED:
            self._event(
                cronjob,
                "Warning",
                "TooManyMissedTimes",
                f"too many missed start times: {missed}. "
                "Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            )
        following = workloads_cron.next_after(schedule, scheduled or earliest)
        wait = None if following is None else max(0.0, (following - now).total_seconds()) + NEXT_DELTA
        if scheduled is None:
            return wait
        if deadline is not None and scheduled + datetime.timedelta(seconds=int(deadline)) < now:
            when = email_utils.format_datetime(scheduled.astimezone(datetime.UTC))
            self._event(cronjob, "Warning", "MissSchedule", f"Missed scheduled time to start a job: {when}")
            return wait
        name = job_name(cronjob["metadata"]["name"], scheduled)
        if any(ref.get("name") == name for ref in active) or _moment(status.get("lastScheduleTime")) == scheduled:
            return wait
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self._event(
                cronjob,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            return wait
        if policy == "Replace":
            for ref in list(active):
                if self.ctx.delete(JOBS, namespace, str(ref.get("name"))):
                    self._event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {ref.get('name')}")
                active = [item for item in active if item.get("uid") != ref.get("uid")]
            status["active"] = active
        created = self._create_job(cronjob, name, scheduled, schedule)
        if created is None:
            return wait
        if not any(ref.get("uid") == created["metadata"]["uid"] for ref in active):
            active.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": created["metadata"]["name"],
                    "namespace": namespace,
                    "resourceVersion": created["metadata"]["resourceVersion"],
                    "uid": created["metadata"]["uid"],
                }
            )
        status["active"] = active
        status["lastScheduleTime"] = _rfc3339(scheduled)
        return wait

    def _create_job(
        self, cronjob: Mapping[str, Any], name: str, scheduled: datetime.datetime, schedule: workloads_cron.Schedule
    ) -> dict[str, Any] | None:
        """getJobFromTemplate2 and its creation; an existing Job of ours under that name is taken as made."""
        template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
        meta = template.get("metadata") or {}
        zone_name = schedule.zone or str((cronjob.get("spec") or {}).get("timeZone") or "")
        local = scheduled.astimezone(workloads_cron.zone(zone_name))
        annotations = {**dict(meta.get("annotations") or {}), SCHEDULED_TIMESTAMP: local.isoformat()}
        if local.utcoffset() == datetime.timedelta(0):
            annotations[SCHEDULED_TIMESTAMP] = _rfc3339(scheduled)
        metadata: dict[str, Any] = {
            "name": name,
            "annotations": annotations,
            "ownerReferences": [workloads_pods.controller_ref(cronjob, "batch/v1", "CronJob")],
        }
        if meta.get("labels"):
            metadata["labels"] = dict(meta["labels"])
        body = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        namespace = str(cronjob["metadata"].get("namespace") or "")
        try:
            created = self.ctx.create(JOBS, namespace, body, self.name)
        except api_status.ApiError as error:
            if "is being terminated" not in error.message:
                self._event(cronjob, "Warning", "FailedCreate", f"Error creating job: {error.message}")
            return None
        if created is None:
            found = self.ctx.get(JOBS, namespace, name)
            ref = workloads_pods.controller_of(found) if found is not None else None
            if found is None or ref is None or ref.get("uid") != cronjob["metadata"]["uid"]:
                return None
            return found
        self.jobs.add(created)
        self._event(cronjob, "Normal", "SuccessfulCreate", f"Created job {name}")
        return created

    def _clean_up(self, cronjob: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        """cleanupFinishedJobs: the oldest finished Jobs beyond the history limits go."""
        spec = cronjob.get("spec") or {}
        # The API's defaults, 3 and 1, when the spec leaves them out.
        limits = {
            "Complete": 3 if spec.get("successfulJobsHistoryLimit") is None else spec["successfulJobsHistoryLimit"],
            "Failed": 1 if spec.get("failedJobsHistoryLimit") is None else spec["failedJobsHistoryLimit"],
        }
        namespace = str(cronjob["metadata"].get("namespace") or "")
        for kind, limit in limits.items():
            finished = [job for job in jobs if workloads_job.job_finished(job) == kind]
            surplus = len(finished) - int(limit)
            if surplus <= 0:
                continue

            def started(job: Mapping[str, Any]) -> tuple[int, float, str]:
                moment = workloads_pods.parse_time((job.get("status") or {}).get("startTime"))
                return (1, 0.0, job["metadata"]["name"]) if moment is None else (0, moment, job["metadata"]["name"])

            for job in sorted(finished, key=started)[:surplus]:
                name = str(job["metadata"]["name"])
                if self.ctx.delete(JOBS, namespace, name):
                    self._event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {name}")
                cronjob["status"]["active"] = [
                    ref for ref in cronjob["status"].get("active") or [] if ref.get("uid") != job["metadata"]["uid"]
                ]
