"""The playbook library (playbooks/): valid as users apply it, saying what it will and will not do, doing its job.

Users run ``kubectl apply -n NS -f playbooks/``; each file is one Playbook without a namespace.
These tests run the validator over the directory (as ``upkeep validate playbooks/`` does), the
operator's own acceptance check over each playbook, and pin what each playbook does, so that a
change to one is a decision and not an accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from upkeep import cli
from upkeep.engine import acceptance, catalog
from upkeep.gitops import validation

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "playbooks"
FILES = sorted(LIBRARY.glob("*.yaml"))
EXAMPLES = REPO / "examples" / "shop" / "playbooks"
DOCS = REPO / "docs" / "playbooks.md"


def load(path: Path) -> dict[str, Any]:
    documents = [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]
    assert len(documents) == 1, f"{path.name}: one Playbook per file"
    body: dict[str, Any] = documents[0]
    return body


def library() -> dict[str, dict[str, Any]]:
    return {load(path)["metadata"]["name"]: load(path) for path in FILES}


def actions(body: Mapping[str, Any]) -> list[str]:
    return [str(step["action"]) for step in body["spec"]["steps"]]


def step(body: Mapping[str, Any], action: str) -> Mapping[str, Any]:
    [found] = [item for item in body["spec"]["steps"] if item["action"] == action]
    return found


def test_the_library_validates_without_errors_or_warnings() -> None:
    report = validation.validate_paths([LIBRARY])
    assert [finding.render() for finding in report.findings] == []
    assert report.files == len(FILES) >= 7


def test_upkeep_validate_accepts_the_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(LIBRARY)]) == cli.EXIT_OK
    assert "0 errors, 0 warnings" in capsys.readouterr().out


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_each_file_is_one_playbook_named_as_its_file_without_a_namespace(path: Path) -> None:
    body = load(path)
    assert (body["apiVersion"], body["kind"]) == ("upkeep.dev/v1alpha1", "Playbook")
    assert body["metadata"]["name"] == path.stem
    # Users pick the namespace with kubectl apply -n.
    assert "namespace" not in body["metadata"]


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_each_file_says_what_it_will_and_will_not_do(path: Path) -> None:
    header = path.read_text(encoding="utf-8").split("apiVersion:", 1)[0]
    assert header.startswith(f'# Playbook "{path.stem}"')
    assert "# Will:" in header and "# Will not:" in header
    assert f"kubectl apply -n NAMESPACE -f playbooks/{path.name}" in header


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_the_operator_accepts_each_playbook(path: Path) -> None:
    body = load(path)
    body["metadata"]["namespace"] = "shop"
    verdict = acceptance.assess(body)
    assert (verdict.accepted, verdict.message) == (True, "The spec is valid.")


def test_the_library_covers_the_signals_of_the_issue() -> None:
    covered = {signal for body in library().values() for signal in body["spec"]["match"]["signalTypes"]}
    assert covered >= {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "OOMKilled",
        "NodeNotReady",
        "ProgressDeadlineExceeded",
        "JobFailed",
    }


def test_crashloop_restarts_once_then_hands_over_to_a_rollback_of_a_recent_rollout() -> None:
    playbooks = library()
    first, second = playbooks["crashloop"], playbooks["crashloop-rollback"]
    assert actions(first) == ["notify", "rolloutRestart"]
    assert step(first, "notify")["continueOnFailure"] is True
    assert first["spec"]["guards"]["maxAttempts"] == 1
    assert first["spec"]["escalation"] == {"raiseSeverity": True, "notify": ["pager"], "handOver": True}
    # The rollback is the next by order for the same incidents after a recent rollout: escalation hands over to it.
    assert second["spec"]["match"] == {**first["spec"]["match"], "rolledOutWithin": "30m"}
    assert second["spec"]["order"] > first["spec"]["order"]
    assert actions(second) == ["rollbackDeployment"]
    assert "params" not in step(second, "rollbackDeployment")  # the previous revision
    assert second["spec"]["escalation"]["raiseSeverity"] is True


@pytest.mark.parametrize("name", ["image-pull", "progress-deadline"])
def test_rollout_failures_roll_back_to_the_previous_revision(name: str) -> None:
    body = library()[name]
    assert actions(body) == ["rollbackDeployment"]
    assert "params" not in step(body, "rollbackDeployment")
    verification = body["spec"]["verification"]
    assert (verification["replicasReady"], verification["signalClear"]) == (True, True)


def test_oom_holds_a_bounded_time_boxed_override_and_proposes_the_fix() -> None:
    body = library()["oom"]
    assert actions(body) == ["setOverride", "proposeFix"]
    override = step(body, "setOverride")["params"]
    assert (override["factor"], override["maxFactor"], override["expiresIn"]) == (1.5, 2, "24h")
    assert override["fieldPath"].endswith(".resources.limits.memory")
    proposal = step(body, "proposeFix")["params"]
    assert (proposal["fieldPath"], proposal["factor"]) == (override["fieldPath"], override["factor"])


def test_node_notready_cordons_waits_and_drains_within_min_healthy() -> None:
    body = library()["node-notready"]
    assert actions(body) == ["cordonNode", "wait", "drainNode"]
    assert step(body, "wait")["params"]["duration"] == "5m"
    assert body["spec"]["guards"]["minHealthy"] == "50%"
    # One node at a time.
    assert body["spec"]["guards"]["maxConcurrent"] == 1


def test_failed_job_reruns_once_and_ships_paused_until_its_template_is_filled_in() -> None:
    body = library()["failed-job"]
    assert actions(body) == ["runJob"]
    assert body["spec"]["guards"]["maxAttempts"] == 1
    assert body["spec"]["paused"] is True
    template = step(body, "runJob")["params"]["template"]
    assert template["template"]["spec"]["restartPolicy"] == "Never"


def test_only_disruptive_steps_are_held_by_a_freeze() -> None:
    for name, body in library().items():
        for item in body["spec"]["steps"]:
            if item.get("safeDuringFreeze"):
                assert not catalog.ACTIONS[item["action"]].changes_cluster, f"{name}: {item['name']}"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.stem)
def test_the_shop_examples_do_what_the_library_does(example: Path) -> None:
    body = load(example)
    assert actions(body) == actions(library()[body["metadata"]["name"]])


def test_the_docs_describe_every_playbook_of_the_library() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in library():
        assert f"### {name}" in text
