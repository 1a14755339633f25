"""The playbook controller over a fake cluster: runs start inside their guards, resume after a crash without
running a step twice, re-decide on a conflict, respect another process's lease, and move the incident."""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import pytest

from upkeep import settings
from upkeep.actions import base
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import playbooks as controller_
from upkeep.engine import playbooks as playbooks_engine
from upkeep.engine import sla

NOW = datetime.datetime(2025, 3, 5, 12, 0, tzinfo=datetime.UTC)
NS = "shop"


def synchronous(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a loop of its own (the unit tests have no async plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class Crash(BaseException):
    """The process dies here (a SIGKILL): nothing after it runs."""


class FakeCluster:
    """Objects by (plural, namespace, name) with resourceVersions; a stale write is a Conflict, as the API's."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 0
        self.before_status_write: list[Any] = []

    def _put(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        metadata = stored["metadata"]
        metadata.setdefault("uid", f"uid-{metadata['name']}")
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", sla.format_time(NOW))
        self.objects[(plural, metadata.get("namespace", ""), metadata["name"])] = stored
        return copy.deepcopy(stored)

    def add(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put(plural, body)

    def stored(self, plural: str, name: str) -> dict[str, Any]:
        return self.objects[(plural, NS, name)]

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found else None

    async def list_custom(self, plural: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(body)
            for (kind, where, _), body in sorted(self.objects.items())
            if kind == plural
            and where == namespace
            and all((body["metadata"].get("labels") or {}).get(key) == value for key, value in labels.items())
        ]

    async def create_custom(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if (plural, body["metadata"]["namespace"], body["metadata"]["name"]) in self.objects:
            raise cluster_.Conflict("exists")
        return self._put(plural, body)

    async def replace_custom_status(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        for hook in list(self.before_status_write):
            hook(plural, body)
        key = (plural, body["metadata"]["namespace"], body["metadata"]["name"])
        current = self.objects[key]
        if current["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise cluster_.Conflict("stale")
        return self._put(plural, {**current, "status": copy.deepcopy(dict(body["status"]))})

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        current = copy.deepcopy(self.objects[(plural, namespace, name)])
        for section, values in patch.items():
            if isinstance(values, Mapping):
                merged = dict(current.get(section) or {})
                for key, value in values.items():
                    merged[key] = {**merged.get(key, {}), **value} if isinstance(value, Mapping) else value
                current[section] = merged
            else:
                current[section] = values
        return self._put(plural, current)

    async def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get_custom("incidents", namespace, name)

    async def replace_incident_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.replace_custom_status("incidents", body)

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get_custom(kind, namespace, name)


class Restart:
    """A fake action whose effect lives in the fake cluster (a key on the Deployment), as real actions' do."""

    name = "rolloutRestart"

    def __init__(self, cluster: FakeCluster, *, crash_after_effect: bool = False) -> None:
        self.cluster = cluster
        self.runs: list[str] = []
        self.crash_after_effect = crash_after_effect

    def _keys(self) -> list[str]:
        keys: list[str] = self.cluster.stored("Deployment", "shop").setdefault("keys", [])
        return keys

    async def describe(self, ctx: base.ActionContext) -> str:
        return "restart the Deployment shop/shop"

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        return (
            base.Outcome("Succeeded", "restarted before", {"outcome": "Restarted"}) if ctx.key in self._keys() else None
        )

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        self.runs.append(ctx.key)
        self._keys().append(ctx.key)
        if self.crash_after_effect:
            self.crash_after_effect = False
            raise Crash()
        return base.Outcome("Succeeded", "restarted", {"outcome": "Restarted"})

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        return base.Outcome("Succeeded", "every pod replaced")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        return self.now


def playbook(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Playbook",
        "metadata": {"name": "restart", "namespace": NS, "generation": 1},
        "spec": {
            "match": {"signalTypes": ["CrashLoopBackOff"]},
            "steps": [{"name": "restart", "action": "rolloutRestart"}],
            "verification": {"stableFor": "0s", "timeout": "1m", "signalClear": False},
            "escalation": {"notify": ["pager"]},
            **spec,
        },
    }


def incident() -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "shop-crashloop", "namespace": NS},
        "spec": {
            "severity": "SEV3",
            "signal": {"type": "CrashLoopBackOff", "labels": {"app": "shop"}},
            "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "shop"},
        },
        "status": {"phase": "Triggered", "triggeredAt": sla.format_time(NOW)},
    }


@pytest.fixture
def fake() -> FakeCluster:
    cluster = FakeCluster()
    cluster.add(
        "Deployment",
        {
            "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": NS},
            "spec": {"replicas": 2},
            "status": {"readyReplicas": 2, "updatedReplicas": 2},
        },
    )
    return cluster


def make(
    fake: FakeCluster, action: Restart, clock: Clock, holder: str, *, policy: Mapping[str, Any] | None = None
) -> tuple[controller_.PlaybookController, list[tuple[str, str, str]], list[dict[str, Any]]]:
    events: list[tuple[str, str, str]] = []
    told: list[dict[str, Any]] = []

    async def notifier(incident: Mapping[str, Any], **kwargs: Any) -> None:
        told.append(kwargs)

    controller = controller_.PlaybookController(
        settings.OperatorSettings(),
        fake,
        action_cluster=object(),  # type: ignore[arg-type]
        actions={"rolloutRestart": action},  # type: ignore[dict-item]
        policy_for=lambda namespace: policy,
        notifier=notifier,
        events=lambda body, type_, reason, message: events.append((body.get("kind", ""), reason, message)),
        clock=clock,
        holder=holder,
    )
    return controller, events, told


async def started_run(
    fake: FakeCluster, controller: controller_.PlaybookController, spec: dict[str, Any] | None = None
) -> str:
    controller.playbooks[(NS, "restart")] = fake.add("playbooks", playbook(**(spec or {})))
    body = fake.add("incidents", incident())
    name = await controller.consider(body)
    assert name is not None
    return name


async def drive(controller: controller_.PlaybookController, name: str, most: int = 20) -> None:
    for _ in range(most):
        if await controller.advance(NS, name) is None:
            return
    raise AssertionError("the run did not end")


@synchronous
async def test_an_open_incident_gets_a_run_that_succeeds_and_mitigates_it(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    controller, events, _ = make(fake, action, clock, "a")
    name = await started_run(fake, controller)
    assert name == "shop-crashloop-restart-1"
    run = fake.stored("playbookruns", name)
    assert run["metadata"]["labels"] == {"upkeep.dev/incident": "shop-crashloop", "upkeep.dev/playbook": "restart"}
    assert run["metadata"]["ownerReferences"][0]["name"] == "shop-crashloop"
    assert fake.stored("incidents", "shop-crashloop")["status"]["playbookRuns"] == [name]
    await drive(controller, name)
    run = fake.stored("playbookruns", name)
    assert run["status"]["phase"] == "Succeeded"
    [step] = run["status"]["steps"]
    assert step["phase"] == "Succeeded" and step["idempotencyKey"] == "uid-shop-crashloop-restart-1/0"
    assert step["outcome"] == "Restarted" and step["startedAt"] and step["finishedAt"]
    assert action.runs == ["uid-shop-crashloop-restart-1/0"]
    timeline = fake.stored("incidents", "shop-crashloop")["status"]["timeline"]
    assert [(entry["to"], entry["by"]) for entry in timeline] == [
        ("Mitigating", "playbook/restart"),
        ("Mitigated", "playbook/restart"),
    ]
    reasons = [reason for _, reason, _ in events]
    assert {"Started", "StepStarted", "StepSucceeded", "Succeeded", "PlaybookRunSucceeded"} <= set(reasons)
    assert "Created" not in reasons  # created and started at once: one Event, Started
    # nothing more for this episode: the playbook had its turn
    assert await controller.consider(fake.stored("incidents", "shop-crashloop")) is None


@pytest.mark.parametrize("crash_after_effect", [True, False])
@synchronous
async def test_a_restart_resumes_a_running_step_and_never_runs_it_twice(
    fake: FakeCluster, crash_after_effect: bool
) -> None:
    action, clock = Restart(fake, crash_after_effect=crash_after_effect), Clock()
    first, _, _ = make(fake, action, clock, "first")
    name = await started_run(fake, first)
    assert fake.stored("playbookruns", name)["status"]["phase"] == "Running"  # started in the write after create
    if crash_after_effect:
        with pytest.raises(Crash):
            await first.advance(NS, name)  # recorded Running, acted, died before recording the outcome
    else:

        def die_after_recording(plural: str, body: Mapping[str, Any]) -> None:
            steps = fake.stored("playbookruns", name)["status"].get("steps") or []
            if steps and steps[0]["phase"] == "Running":
                raise Crash()

        fake.before_status_write.append(die_after_recording)
        with pytest.raises(Crash):
            await first.advance(NS, name)
        fake.before_status_write.clear()
    step = fake.stored("playbookruns", name)["status"]["steps"][0]
    assert step["phase"] == "Running" and step["idempotencyKey"]
    second, _, _ = make(fake, action, clock, "second")
    assert (await second.advance(NS, name) or 0) > 0  # the dead process's lease still holds
    clock.now += controller_.LEASE_DURATION
    await drive(second, name)
    assert fake.stored("playbookruns", name)["status"]["phase"] == "Succeeded"
    assert action.runs == ["uid-shop-crashloop-restart-1/0"]  # exactly once, either way
    outcome = fake.stored("playbookruns", name)["status"]["steps"][0]["outcome"]
    assert outcome == "Restarted"


@synchronous
async def test_a_conflict_rereads_and_redecides_without_acting(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    controller, _, _ = make(fake, action, clock, "a")
    name = await started_run(fake, controller)
    bumped: list[bool] = []

    def someone_else_writes(plural: str, body: Mapping[str, Any]) -> None:
        if plural == "playbookruns" and not bumped:
            bumped.append(True)
            stored = fake.stored("playbookruns", name)
            fake.add("playbookruns", {**stored, "status": {**stored["status"], "message": "someone else was here"}})

    fake.before_status_write.append(someone_else_writes)
    assert await controller.advance(NS, name) == 0
    assert action.runs == []  # the step was not recorded, so it did not run
    await drive(controller, name)
    assert action.runs == ["uid-shop-crashloop-restart-1/0"]


@synchronous
async def test_another_live_holder_keeps_the_run(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    first, _, _ = make(fake, action, clock, "first")
    name = await started_run(fake, first)  # the write that starts it takes the lease
    second, _, _ = make(fake, action, clock, "second")
    clock.now += datetime.timedelta(seconds=5)
    wait = await second.advance(NS, name)
    assert wait is not None and 9 <= wait <= 10
    assert fake.stored("playbookruns", name)["status"]["lease"]["holder"] == "first"
    assert action.runs == []


@synchronous
async def test_a_guard_refusal_creates_the_run_skipped_once(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    controller, events, _ = make(fake, action, clock, "a", policy={"remediation": {"paused": True}})
    name = await started_run(fake, controller)
    status = fake.stored("playbookruns", name)["status"]
    assert status["phase"] == "Skipped" and status["skipReason"].startswith("Paused: ")
    assert ("PlaybookRun", "Skipped") in {(kind, reason) for kind, reason, _ in events}
    controller.runs[(NS, name)] = fake.stored("playbookruns", name)
    assert await controller.consider(fake.stored("incidents", "shop-crashloop")) is None
    assert await controller.advance(NS, name) is None and action.runs == []


@synchronous
async def test_a_failed_verification_escalates_once_and_hands_back_to_people(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    controller, _, told = make(fake, action, clock, "a")
    fake.stored("Deployment", "shop")["status"] = {"readyReplicas": 0}
    name = await started_run(
        fake, controller, {"verification": {"stableFor": "0s", "timeout": "2s", "signalClear": False}}
    )
    for _ in range(10):
        delay = await controller.advance(NS, name)
        if delay is None:
            break
        clock.now += datetime.timedelta(seconds=1)
    run = fake.stored("playbookruns", name)
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["verification"]["phase"] == "Failed"
    incident = fake.stored("incidents", "shop-crashloop")
    assert incident["spec"]["severity"] == "SEV2" and incident["status"]["phase"] == "Acknowledged"
    assert [item["channels_"] for item in told] == [("pager",)]
    await controller._escalate(run, fake.stored("playbooks", "restart"), incident, "again")  # a resumed escalation
    assert fake.stored("incidents", "shop-crashloop")["spec"]["severity"] == "SEV2"


@synchronous
async def test_a_dry_run_records_what_it_would_do_and_changes_nothing(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    controller, _, _ = make(fake, action, clock, "a")
    name = await started_run(fake, controller, {"mode": "DryRun"})
    await drive(controller, name)
    run = fake.stored("playbookruns", name)
    assert run["spec"]["dryRun"] is True and run["status"]["phase"] == "DryRun"
    assert run["status"]["steps"][0]["output"] == "restart the Deployment shop/shop"
    assert action.runs == []
    assert fake.stored("incidents", "shop-crashloop")["status"]["phase"] == "Triggered"


@synchronous
async def test_require_approval_waits_for_spec_approval(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    controller, _, _ = make(fake, action, clock, "a")
    name = await started_run(fake, controller, {"mode": "RequireApproval"})
    assert await controller.advance(NS, name) == controller_.APPROVAL_POLL
    assert fake.stored("playbookruns", name)["status"]["conditions"][0]["reason"] == "AwaitingApproval"
    fake.stored("playbookruns", name)["spec"]["approval"] = {"approvedBy": "ben"}
    await drive(controller, name)
    assert fake.stored("playbookruns", name)["status"]["phase"] == "Succeeded"


@synchronous
async def test_an_invalid_playbook_is_ready_false_naming_the_field_and_never_runs(fake: FakeCluster) -> None:
    controller, _, _ = make(fake, Restart(fake), Clock(), "a")
    bad = playbook()
    bad["spec"]["steps"] = [{"name": "x", "action": "rebootTheWorld"}]
    await controller.playbook_changed(fake.add("playbooks", bad))
    ready = {item["type"]: item for item in fake.stored("playbooks", "restart")["status"]["conditions"]}["Ready"]
    assert (
        ready["status"] == "False" and ready["reason"] == "InvalidSpec" and "spec.steps[0].action" in ready["message"]
    )
    assert await controller.consider(fake.add("incidents", incident())) is None


class Indescribable(Restart):
    async def describe(self, ctx: base.ActionContext) -> str:
        raise base.ActionFailed("the Deployment has no revision to roll back to")


@synchronous
async def test_a_dry_run_step_that_cannot_be_described_fails_the_run_instead_of_retrying(fake: FakeCluster) -> None:
    action, clock = Indescribable(fake), Clock()
    controller, _, _ = make(fake, action, clock, "a")
    name = await started_run(fake, controller, {"mode": "DryRun"})
    await drive(controller, name)
    run = fake.stored("playbookruns", name)
    assert run["status"]["phase"] == "Failed"
    assert "no revision to roll back to" in run["status"]["steps"][0]["message"]
    assert action.runs == []


class Counting(FakeCluster):
    """The fake, counting the API calls made (by verb and plural)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", plural))
        return await super().get_custom(plural, namespace, name)

    async def list_custom(self, plural: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        self.calls.append(("list", plural))
        return await super().list_custom(plural, namespace, labels)

    async def create_custom(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", plural))
        return await super().create_custom(plural, body)

    async def replace_custom_status(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("status", plural))
        return await super().replace_custom_status(plural, body)


@pytest.fixture
def counting() -> Counting:
    cluster = Counting()
    cluster.add(
        "Deployment",
        {
            "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": NS},
            "spec": {"replicas": 1},
            "status": {"readyReplicas": 1, "updatedReplicas": 1},
        },
    )
    return cluster


@synchronous
async def test_from_incident_to_first_action_the_run_is_neither_reread_nor_started_apart(counting: Counting) -> None:
    action, clock = Restart(counting), Clock()
    controller, _, _ = make(counting, action, clock, "a")
    controller.playbooks[(NS, "restart")] = counting.add("playbooks", playbook())
    body = counting.add("incidents", incident())
    controller.incidents[(NS, "shop-crashloop")] = body
    name = await controller.consider(body)
    assert name is not None
    assert await controller.advance(NS, name) == 0
    assert action.runs == ["uid-shop-crashloop-restart-1/0"]
    # create (a first run: no list), start (with the lease), link (get + write the Incident); then the step
    # recorded and run
    assert counting.calls == [
        ("create", "playbookruns"),
        ("status", "playbookruns"),
        ("get", "incidents"),
        ("status", "incidents"),
        ("status", "playbookruns"),
        ("status", "playbookruns"),
    ]
    assert counting.stored("incidents", "shop-crashloop")["status"]["phase"] == "Mitigating"


@synchronous
async def test_in_the_background_a_new_run_reaches_its_action_without_its_daemon(counting: Counting) -> None:
    action, clock = Restart(counting), Clock()
    controller, events, _ = make(counting, action, clock, "a")
    controller.background = True
    controller.playbooks[(NS, "restart")] = counting.add("playbooks", playbook())
    body = counting.add("incidents", incident())
    controller.incidents[(NS, "shop-crashloop")] = body
    name = await controller.consider(body)
    assert name is not None and action.runs == []  # consider returned before the side work
    await controller.idle()  # the kick's moves: every one is at once here, so the run ends
    assert action.runs == ["uid-shop-crashloop-restart-1/0"]
    assert counting.stored("playbookruns", name)["status"]["phase"] == "Succeeded"
    status = counting.stored("incidents", "shop-crashloop")["status"]
    assert status["playbookRuns"] == [name]
    assert [entry["to"] for entry in status["timeline"]] == ["Mitigating", "Mitigated"]  # the link came first
    assert {"Started", "PlaybookRunStarted"} <= {reason for _, reason, _ in events}
    assert await controller.advance(NS, name) is None


@synchronous
async def test_a_link_lost_in_a_restart_is_made_again_before_the_step(fake: FakeCluster) -> None:
    action, clock = Restart(fake), Clock()
    first, _, _ = make(fake, action, clock, "first")
    first.background = True
    await started_run(fake, first)  # created and started; the link and the first moves are tasks not yet run
    for task in list(first._tasks):
        task.cancel()  # the process dies here
    assert action.runs == []
    assert "playbookRuns" not in fake.stored("incidents", "shop-crashloop")["status"]
    clock.now += controller_.LEASE_DURATION
    second, _, _ = make(fake, action, clock, "second")
    await drive(second, "shop-crashloop-restart-1")
    status = fake.stored("incidents", "shop-crashloop")["status"]
    assert status["playbookRuns"] == ["shop-crashloop-restart-1"]
    assert [entry["to"] for entry in status["timeline"]] == ["Mitigating", "Mitigated"]
    assert action.runs == ["uid-shop-crashloop-restart-1/0"]


@synchronous
async def test_a_playbook_status_write_does_not_reconsider_every_incident(counting: Counting) -> None:
    controller, _, _ = make(counting, Restart(counting), Clock(), "a")
    await controller.playbook_changed(counting.add("playbooks", playbook()))
    controller.incidents[(NS, "shop-crashloop")] = counting.add("incidents", incident())
    counting.calls.clear()
    stored = counting.stored("playbooks", "restart")
    await controller.playbook_changed(counting.add("playbooks", {**stored, "status": {**stored["status"], "runs": {}}}))
    assert counting.calls == []
    await controller.playbook_changed(counting.add("playbooks", {**stored, "spec": {**stored["spec"], "order": 5}}))
    assert ("create", "playbookruns") in counting.calls


@synchronous
async def test_a_write_of_metadata_alone_costs_one_reread_not_a_new_decision(counting: Counting) -> None:
    action, clock = Restart(counting), Clock()
    controller, _, _ = make(counting, action, clock, "a")
    controller.playbooks[(NS, "restart")] = counting.add("playbooks", playbook())
    controller.incidents[(NS, "shop-crashloop")] = counting.add("incidents", incident())
    name = await controller.consider(counting.stored("incidents", "shop-crashloop"))
    assert name is not None
    stored = counting.stored("playbookruns", name)
    counting.add("playbookruns", {**stored, "metadata": {**stored["metadata"], "finalizers": ["kopf"]}})
    counting.calls.clear()
    assert await controller.advance(NS, name) == 0
    assert action.runs == ["uid-shop-crashloop-restart-1/0"]  # acted in this move
    assert counting.calls == [
        ("status", "playbookruns"),  # 409: Kopf's finalizer moved the resourceVersion
        ("get", "playbookruns"),  # the same spec and status: the decision stands
        ("status", "playbookruns"),  # the step Running with its key
        ("status", "playbookruns"),  # its outcome
    ]
    assert counting.stored("playbookruns", name)["metadata"]["finalizers"] == ["kopf"]


@synchronous
async def test_a_first_run_is_created_without_a_list_and_a_name_already_taken_lists_then(counting: Counting) -> None:
    controller, _, _ = make(counting, Restart(counting), Clock(), "a")
    controller.playbooks[(NS, "restart")] = counting.add("playbooks", playbook())
    body = counting.add("incidents", incident())
    unseen = {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "PlaybookRun",
        "metadata": {
            "name": "shop-crashloop-restart-1",
            "namespace": NS,
            "labels": {"upkeep.dev/incident": "shop-crashloop", "upkeep.dev/playbook": "restart"},
        },
        "spec": {"playbookRef": {"name": "restart"}, "incidentRef": {"name": "shop-crashloop"}, "attempt": 1},
        "status": {"phase": "Running"},
    }
    counting.add("playbookruns", unseen)  # created by another replica; this process has not seen it yet
    assert await controller.consider(body) is None
    assert counting.calls == [("create", "playbookruns"), ("list", "playbookruns")]
    assert controller.runs[(NS, "shop-crashloop-restart-1")]["status"]["phase"] == "Running"


@synchronous
async def test_in_the_background_the_start_and_the_step_with_its_key_are_one_write(counting: Counting) -> None:
    action, clock = Restart(counting), Clock()
    controller, _, _ = make(counting, action, clock, "a")
    controller.background = True
    controller.playbooks[(NS, "restart")] = counting.add("playbooks", playbook())
    body = counting.add("incidents", incident())
    controller.incidents[(NS, "shop-crashloop")] = body
    written: list[dict[str, Any]] = []
    counting.before_status_write.append(
        lambda plural, body: written.append(copy.deepcopy(dict(body["status"]))) if plural == "playbookruns" else None
    )
    name = await controller.consider(body)
    assert name is not None and written == []  # created; its status is left to the first move
    await controller.idle()
    first = written[0]
    assert first["phase"] == "Running" and first["lease"]["holder"] == "a"
    assert first["steps"][0]["phase"] == "Running" and first["steps"][0]["idempotencyKey"] == f"uid-{name}/0"
    assert "outcome" not in first["steps"][0]  # recorded before the action ran
    assert action.runs == [f"uid-{name}/0"]


HOLD = {"fieldPath": "spec.replicas", "value": 4, "expiresIn": "24h"}


class Override(Restart):
    name = "setOverride"

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        self.runs.append(ctx.key)
        self._keys().append(ctx.key)
        entry = {"key": ctx.key, "fieldPath": "spec.replicas", "value": 4, "expiresAt": "2025-03-02T12:00:00Z"}
        return base.Outcome("Succeeded", "holding spec.replicas at 4", entry)


@synchronous
async def test_an_override_is_recorded_on_the_release_of_the_workload_once(fake: FakeCluster) -> None:
    action, clock = Override(fake), Clock()
    controller = controller_.PlaybookController(
        settings.OperatorSettings(),
        fake,
        action_cluster=object(),  # type: ignore[arg-type]
        actions={"setOverride": action},  # type: ignore[dict-item]
        events=lambda body, type_, reason, message: None,
        clock=clock,
        holder="a",
    )
    release = {"metadata": {"name": "shop", "namespace": NS}, "spec": {"workloadRef": {"name": "shop"}}}
    other = {"metadata": {"name": "cart", "namespace": NS}, "spec": {"workloadRef": {"name": "cart"}}}
    fake.add("releases", release)
    fake.add("releases", other)
    name = await started_run(fake, controller, {"steps": [{"name": "hold", "action": "setOverride", "params": HOLD}]})
    await drive(controller, name)
    [record] = fake.stored("releases", "shop")["status"]["overrides"]
    assert record["id"] == "uid-shop-crashloop-restart-1/0" and record["value"] == 4
    assert record["target"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "shop"}
    assert (record["playbookRun"], record["incident"]) == (name, "shop-crashloop")
    assert "overrides" not in (fake.stored("releases", "cart").get("status") or {})
    await controller._record_override(fake.stored("playbookruns", name), {"key": record["id"], "value": 5})
    [again] = fake.stored("releases", "shop")["status"]["overrides"]  # a resumed step replaces its entry
    assert again["value"] == 5


@synchronous
async def test_a_run_without_status_that_waits_for_approval_says_so(fake: FakeCluster) -> None:
    controller, _, _ = make(fake, Restart(fake), Clock(), "a")
    controller.playbooks[(NS, "restart")] = fake.add("playbooks", playbook(mode="RequireApproval"))
    fake.add("incidents", incident())
    body = playbooks_engine.new_run(incident(), playbook(), 1, dry_run=False)
    name = fake.add("playbookruns", body)["metadata"]["name"]  # as when the creator's status write lost a race
    await controller.advance(NS, name)
    status = fake.stored("playbookruns", name)["status"]
    ready = {item["type"]: item for item in status["conditions"]}["Ready"]
    assert (status["phase"], ready["status"], ready["reason"]) == ("Pending", "Unknown", "AwaitingApproval")
