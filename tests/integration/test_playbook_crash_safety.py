"""A three-step run survives SIGKILL in the middle of every step, and each action changes the cluster exactly once.

The operator is `upkeep run` as a process of its own, with a 2 s run lease so that a restarted one takes its run
back soon. The sandbox's journal of write requests is both the trigger and the witness: a listener on it kills the
operator at an exact point of each step, before the operator hears the API server's answer, twice per step:

- when the run's status records the step Running with its idempotency key (the action has not run yet: after the
  restart ``already_done`` finds no key, and the action runs);
- when the step's action writes the Deployment with its key (the outcome is not recorded yet: after the restart
  ``already_done`` finds the key, and the action does not run again).

At the end the operator's writes to the Deployment in the journal are exactly three, one per step, each carrying
its own step's key; a step run twice would show as a fourth (a scale by one twice, a second restart).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, simulated_sandbox, start_operator
from support.workloads import GOOD_IMAGE, apply, deployment, namespace

pytestmark = pytest.mark.integration
KEY = "upkeep.dev/action-key"
MANAGER = "upkeep"
"""The operator's field manager (``controllers.cluster.FIELD_MANAGER``)."""
STEPS = ("scale-up", "annotate", "restart")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("playbook-crash-safety")) as cluster:
        yield cluster


def three_steps(ns: str) -> dict[str, Any]:
    """Three steps that each write the Deployment once: a repeat of any would be one more write."""
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Playbook",
        "metadata": {"name": "three-steps", "namespace": ns},
        "spec": {
            "match": {"signalTypes": ["Manual"]},
            "steps": [
                {"name": "scale-up", "action": "scale", "params": {"by": 1, "max": 3}, "timeout": "60s"},
                {
                    "name": "annotate",
                    "action": "patch",
                    "params": {"patch": {"metadata": {"annotations": {"example.com/incident": "{{ incident.name }}"}}}},
                    "timeout": "60s",
                },
                {"name": "restart", "action": "rolloutRestart", "timeout": "60s"},
            ],
            "verification": {"replicasReady": True, "signalClear": False, "stableFor": "0s", "timeout": "60s"},
            "guards": {"maxAttempts": 1},
            "escalation": {"raiseSeverity": False, "handOver": False},
        },
    }


def incident(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "shop-slow", "namespace": ns},
        "spec": {
            "severity": "SEV3",
            "service": "shop",
            "summary": "shop answers slowly",
            "signal": {"type": "Manual", "source": "kubectl"},
            "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
        },
    }


class Killer:
    """Listens to the sandbox's writes; SIGKILLs the operator the first time ``when(write, store)`` holds."""

    def __init__(self, operator: OperatorProcess, store: Any, when: Callable[[Any, Any], bool]) -> None:
        self.operator = operator
        self.store = store
        self.when = when
        self.fired = threading.Event()

    def __call__(self, write: Any) -> None:
        if self.fired.is_set() or self.operator.process.poll() is not None:
            return
        if self.when(write, self.store):
            os.kill(self.operator.process.pid, signal.SIGKILL)
            self.fired.set()


def run_status(store: Any, ns: str) -> dict[str, Any]:
    found = store.objects("upkeep.dev/playbookruns", ns)
    return dict((found[0] if found else {}).get("status") or {})


def operator_wrote_shop(write: Any, ns: str) -> bool:
    """A write of the operator's to the Deployment shop itself (not its status), not a dry run."""
    return (write.resource, write.namespace, write.name, write.subresource, write.manager, write.dry_run) == (
        "deployments.apps",
        ns,
        "shop",
        "",
        MANAGER,
        False,
    )


def recorded_running(ns: str, index: int) -> Callable[[Any, Any], bool]:
    """The run's status write that records step ``index`` Running with its key, before the action."""

    def check(write: Any, store: Any) -> bool:
        if (write.resource, write.namespace, write.subresource) != ("playbookruns.upkeep.dev", ns, "status"):
            return False
        steps = run_status(store, ns).get("steps") or []
        return (
            len(steps) > index
            and steps[index].get("phase") == "Running"
            and bool(steps[index].get("idempotencyKey"))
            and "outcome" not in steps[index]
        )

    return check


def acted(ns: str, index: int) -> Callable[[Any, Any], bool]:
    """The step's action writing the Deployment with the step's key, before its outcome is recorded."""

    def check(write: Any, store: Any) -> bool:
        if not operator_wrote_shop(write, ns):
            return False
        steps = run_status(store, ns).get("steps") or []
        key = steps[index].get("idempotencyKey") if len(steps) > index else None
        return bool(key) and key in keys_on(store.get("apps/deployments", ns, "shop"))[:2]

    return check


def keys_on(body: Any) -> tuple[str, str, str, int]:
    """(the key on the Deployment, the key on its pod template, its incident annotation, its replicas)."""
    annotations = body["metadata"].get("annotations") or {}
    template = (body["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    return (
        str(annotations.get(KEY, "")),
        str(template.get(KEY, "")),
        str(annotations.get("example.com/incident", "")),
        int(body["spec"]["replicas"]),
    )


def test_sigkill_in_the_middle_of_every_step_runs_each_action_exactly_once(sim: Cluster, tmp_path: Path) -> None:
    assert sim.sandbox is not None
    store = sim.sandbox.store
    with namespace(sim, "crash") as ns:
        apply(sim, deployment("shop", GOOD_IMAGE, 1), ns)
        sim.kubectl("rollout", "status", "deployment/shop", "-n", ns, "--timeout=60s")
        apply(sim, three_steps(ns), ns)
        start = len(sim.sandbox.writes())
        mine: list[tuple[str, str, str, int]] = []
        """The Deployment as each of the operator's writes left it, taken on the sandbox's loop as it happens."""

        def witness(write: Any) -> None:
            if operator_wrote_shop(write, ns):
                mine.append(keys_on(store.get("apps/deployments", ns, "shop")))

        kills: list[tuple[str, int]] = []
        """Each kill: where, and how many of the operator's Deployment writes had happened by then."""
        logs: list[Path] = []
        with sim.sandbox.listening(witness):
            for index, step in enumerate(STEPS):
                for point, when in (("recorded", recorded_running(ns, index)), ("acted", acted(ns, index))):
                    logs.append(tmp_path / f"operator-{index}-{point}.log")
                    operator = start_operator(sim, [ns], logs[-1], "--run-lease", "2")
                    killer = Killer(operator, store, when)
                    try:
                        with sim.sandbox.listening(killer):
                            if not kills:
                                apply(sim, incident(ns), ns)
                            eventually(
                                killer.fired.is_set,
                                timeout=60,
                                interval=0.05,
                                message=f"the operator reached step {step} ({point})",
                            )
                    finally:
                        operator.kill()
                    assert operator.process.returncode == -signal.SIGKILL, operator.log()[-3000:]
                    kills.append((f"{step}/{point}", len(mine)))
            logs.append(tmp_path / "operator-last.log")
            operator = start_operator(sim, [ns], logs[-1], "--run-lease", "2")
            try:

                def ended() -> dict[str, Any] | None:
                    runs = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
                    done = [run for run in runs if (run.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
                    return done[0] if done else None

                run = eventually(ended, timeout=90, interval=0.3, message="the run ended")
            finally:
                operator.stop()
        status = run["status"]
        assert status["phase"] == "Succeeded", (status, operator.log()[-4000:])
        # Killed before each action (it had not written yet), and after it (it had).
        assert kills == [
            (f"{step}/{point}", index + (point == "acted"))
            for index, step in enumerate(STEPS)
            for point in ("recorded", "acted")
        ]
        # The operator started after each "acted" kill found the step done by its key instead of acting again.
        for index, step in enumerate(STEPS):
            after = logs[2 * index + 2].read_text(encoding="utf-8")
            assert f"step {step} had taken effect before a restart" in after, after[-3000:]
        keys = [f"{run['metadata']['uid']}/{index}" for index in range(len(STEPS))]
        assert [item["idempotencyKey"] for item in status["steps"]] == keys
        assert [item["phase"] for item in status["steps"]] == ["Succeeded"] * 3
        # Exactly one write per action, in order, each with its own step's key: none repeated after a kill.
        assert mine == [
            (keys[0], "", "", 2),
            (keys[1], "", "shop-slow", 2),
            (keys[1], keys[2], "shop-slow", 2),
        ], mine
        writes = [write for write in sim.sandbox.writes()[start:] if operator_wrote_shop(write, ns)]
        assert [write.verb for write in writes] == ["patch"] * 3
        final = sim.kubectl_json("get", "deployment", "shop", "-n", ns)
        assert final["spec"]["replicas"] == 2
        assert final["spec"]["template"]["metadata"]["annotations"][KEY] == keys[2]
        phase = sim.kubectl_json("get", "incident", "shop-slow", "-n", ns)["status"]["phase"]
        assert phase in ("Mitigated", "Resolved")
