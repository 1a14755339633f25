"""CronJob schedules (robfig/cron's standard parser) and the CronJob controller on a test clock."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest

from upkeep.sandbox import apiserver
from upkeep.sandbox.simulation import runtime, workloads_cron, workloads_cronjob, workloads_pods
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", "2026-03-01T10:00:00", "2026-03-01T10:01:00"),
        ("* * * * *", "2026-03-01T10:00:30", "2026-03-01T10:01:00"),
        ("*/15 * * * *", "2026-03-01T10:01:00", "2026-03-01T10:15:00"),
        ("5 * * * *", "2026-03-01T10:05:00", "2026-03-01T11:05:00"),
        ("@hourly", "2026-03-01T23:30:00", "2026-03-02T00:00:00"),
        ("@daily", "2026-12-31T12:00:00", "2027-01-01T00:00:00"),
        ("@midnight", "2026-03-01T00:00:00", "2026-03-02T00:00:00"),
        ("@weekly", "2026-03-04T00:00:00", "2026-03-08T00:00:00"),  # the next Sunday
        ("@monthly", "2026-01-31T00:00:00", "2026-02-01T00:00:00"),
        ("@yearly", "2026-03-01T00:00:00", "2027-01-01T00:00:00"),
        ("@annually", "2026-03-01T00:00:00", "2027-01-01T00:00:00"),
        ("0 9 * * MON-FRI", "2026-03-06T09:00:00", "2026-03-09T09:00:00"),  # Friday → Monday
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 31 * *", "2026-04-01T00:00:00", "2026-05-31T00:00:00"),
        ("30 2 1-7 * 1", "2026-03-02T03:00:00", "2026-03-03T02:30:00"),  # either day field: the 3rd or a Monday
        ("0 12 * JAN,jul ?", "2026-02-01T00:00:00", "2026-07-01T12:00:00"),
        ("10-20/5 * * * *", "2026-03-01T10:16:00", "2026-03-01T10:20:00"),
        ("7/20 * * * *", "2026-03-01T10:28:00", "2026-03-01T10:47:00"),
    ],
)
def test_next_after(expression: str, after: str, expected: str) -> None:
    assert workloads_cron.next_after(workloads_cron.parse(expression), at(after)) == at(expected)


def test_a_time_zone_moves_the_schedule() -> None:
    schedule = workloads_cron.parse("0 3 * * *")
    seoul = workloads_cron.zone("Asia/Seoul")
    assert workloads_cron.next_after(schedule, at("2026-03-01T00:00:00"), seoul) == at("2026-03-01T18:00:00")
    prefixed = workloads_cron.parse("TZ=America/New_York 0 3 * * *")
    assert workloads_cron.next_after(prefixed, at("2026-07-01T00:00:00")) == at("2026-07-01T07:00:00")
    assert workloads_cron.next_after(prefixed, at("2026-01-10T00:00:00")) == at("2026-01-10T08:00:00")


def test_a_wall_time_skipped_by_daylight_saving_is_not_run() -> None:
    berlin = workloads_cron.zone("Europe/Berlin")
    schedule = workloads_cron.parse("30 2 * * *")
    # 2026-03-29 02:30 does not exist in Berlin; the next run is the day after
    assert workloads_cron.next_after(schedule, at("2026-03-28T12:00:00"), berlin) == at("2026-03-30T00:30:00")


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("* * * *", "expected exactly 5 fields, found 4"),
        ("60 * * * *", "end of range (60) above maximum (59)"),
        ("* 24 * * *", "end of range (24) above maximum (23)"),
        ("* * 0 * *", "beginning of range (0) below minimum (1)"),
        ("* * * * 7", "end of range (7) above maximum (6)"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1)"),
        ("*/0 * * * *", "step of range should be a positive number"),
        ("1-2-3 * * * *", "too many hyphens"),
        ("@sometimes", "unrecognized descriptor: @sometimes"),
        ("* * * FOO *", "failed to parse int from FOO"),
    ],
)
def test_bad_schedules_are_refused_as_robfig_words_it(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        workloads_cron.parse(expression)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone Mars/Olympus"):
        workloads_cron.parse("TZ=Mars/Olympus * * * * *")


def test_most_recent_start_and_the_missed_count() -> None:
    every_minute = workloads_cron.parse("* * * * *")
    found, missed = workloads_cron.most_recent(every_minute, at("2026-03-01T10:00:00"), at("2026-03-01T10:03:30"))
    assert (found, missed) == (at("2026-03-01T10:03:00"), 3)
    assert workloads_cron.most_recent(every_minute, at("2026-03-01T10:00:00"), at("2026-03-01T10:00:59")) == (None, 0)
    # a week down: the latest start is found without walking every minute of it
    found, missed = workloads_cron.most_recent(every_minute, at("2026-03-01T10:00:00"), at("2026-03-08T10:00:10"))
    assert found == at("2026-03-08T10:00:00")
    assert missed > workloads_cron.MAX_MISSED
    yearly = workloads_cron.parse("@yearly")
    found, missed = workloads_cron.most_recent(yearly, at("2024-06-01T00:00:00"), at("2026-03-01T00:00:00"))
    assert (found, missed) == (at("2026-01-01T00:00:00"), 1)


def test_job_names_count_minutes_since_the_epoch() -> None:
    assert workloads_cronjob.job_name("cron-hello", at("2026-08-25T00:08:00")) == "cron-hello-29793608"


# the controller


class Recording(runtime.Context):
    def __init__(self) -> None:
        store = Store()
        super().__init__(apiserver.ApiServer(store), store, SimulationSettings.fast())
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, event_type: str, reason: str, message: str, component: str, *, host: str = "") -> None:
        self.events.append((event_type, reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    found = Clock()
    monkeypatch.setattr(workloads_pods, "wall_clock", found)
    yield found


def cronjob(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "hello"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
            },
            **spec,
        },
    }


def finish(ctx: runtime.Context, name: str, kind: str, moment: str) -> None:
    job = ctx.get("batch/jobs", "default", name)
    assert job is not None
    status: dict[str, Any] = {
        "startTime": moment,
        "conditions": [{"type": kind, "status": "True", "reason": "X", "message": "", "lastTransitionTime": moment}],
    }
    if kind == "Complete":
        status["completionTime"] = moment
    assert ctx.update("batch/jobs", {**job, "status": status}, "job-controller", subresource="status") is not None


def test_the_controller_starts_a_job_per_minute_and_keeps_history_short(clock: Clock) -> None:
    ctx = Recording()
    controller = workloads_cronjob.CronJobController(ctx)
    created = ctx.create("batch/cronjobs", "default", cronjob(successfulJobsHistoryLimit=2), "kubectl")
    assert created is not None
    born = workloads_pods.parse_time(created["metadata"]["creationTimestamp"])
    assert born is not None
    clock.now = born  # the first start is the next whole minute after creation
    wait = controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {})
    assert ctx.list("batch/jobs") == []
    assert wait is not None
    assert 0 < wait <= 60.1
    names = []
    for _ in range(4):
        clock.now += wait
        wait = controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {})
        assert wait is not None
        (job,) = [item for item in ctx.list("batch/jobs") if item["metadata"]["name"] not in names]
        names.append(job["metadata"]["name"])
        scheduled = datetime.datetime.fromtimestamp((clock.now // 60) * 60, UTC)
        assert job["metadata"]["name"] == workloads_cronjob.job_name("hello", scheduled)
        assert job["metadata"]["labels"] == {"team": "a"}
        assert job["metadata"]["annotations"][workloads_cronjob.SCHEDULED_TIMESTAMP] == scheduled.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        (ref,) = job["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "hello", True)
        status = (ctx.get("batch/cronjobs", "default", "hello") or {})["status"]
        assert [item["name"] for item in status["active"]] == [job["metadata"]["name"]]
        assert status["lastScheduleTime"] == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
        finish(ctx, job["metadata"]["name"], "Complete", workloads_pods.timestamp(clock.now + 5))
    controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {})
    remaining = [item["metadata"]["name"] for item in ctx.list("batch/jobs")]
    assert remaining == names[-2:]
    status = (ctx.get("batch/cronjobs", "default", "hello") or {})["status"]
    assert "active" not in status
    assert status["lastSuccessfulTime"] == workloads_pods.timestamp(clock.now + 5)
    reasons = [reason for _, reason, _ in ctx.events]
    assert reasons.count("SuccessfulCreate") == 4
    assert ("Normal", "SawCompletedJob", f"Saw completed job: {names[-1]}, condition: Complete") in ctx.events
    assert ("Normal", "SuccessfulDelete", f"Deleted job {names[0]}") in ctx.events


def test_forbid_skips_a_run_while_one_is_active_and_suspend_stops_all(clock: Clock) -> None:
    ctx = Recording()
    controller = workloads_cronjob.CronJobController(ctx)
    created = ctx.create("batch/cronjobs", "default", cronjob(concurrencyPolicy="Forbid"), "kubectl")
    assert created is not None
    clock.now = (workloads_pods.parse_time(created["metadata"]["creationTimestamp"]) or 0) + 61
    controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {})
    assert len(ctx.list("batch/jobs")) == 1
    clock.now += 60
    controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {})
    assert len(ctx.list("batch/jobs")) == 1
    assert (
        "Normal",
        "JobAlreadyActive",
        "Not starting job because prior execution is running and concurrency policy is Forbid",
    ) in ctx.events
    assert ctx.patch("batch/cronjobs", "default", "hello", {"spec": {"suspend": True}}, "kubectl") is not None
    clock.now += 600
    assert controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {}) is None
    assert len(ctx.list("batch/jobs")) == 1


def test_replace_deletes_the_running_job(clock: Clock) -> None:
    ctx = Recording()
    controller = workloads_cronjob.CronJobController(ctx)
    created = ctx.create("batch/cronjobs", "default", cronjob(concurrencyPolicy="Replace"), "kubectl")
    assert created is not None
    clock.now = (workloads_pods.parse_time(created["metadata"]["creationTimestamp"]) or 0) + 61
    controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {})
    (first,) = ctx.list("batch/jobs")
    clock.now += 60
    controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {})
    (second,) = ctx.list("batch/jobs")
    assert second["metadata"]["name"] != first["metadata"]["name"]
    assert ("Normal", "SuccessfulDelete", f"Deleted job {first['metadata']['name']}") in ctx.events


def test_an_unparseable_schedule_is_an_event(clock: Clock) -> None:
    ctx = Recording()
    controller = workloads_cronjob.CronJobController(ctx)
    assert ctx.create("batch/cronjobs", "default", cronjob(schedule="61 * * * *"), "kubectl") is not None
    clock.now = 2_000_000_000
    assert controller.sync(ctx.get("batch/cronjobs", "default", "hello") or {}) is None
    ((kind, reason, message),) = ctx.events
    assert (kind, reason) == ("Warning", "UnparseableSchedule")
    assert message.startswith('unparseable schedule: "61 * * * *" : end of range (61) above maximum (59)')
