"""Acceptance: the honest status of a kind whose own controller is not built yet."""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from upkeep import controllers, settings
from upkeep.engine import acceptance
from upkeep.model import conditions, schemas

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "shop"
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)


def example(name: str) -> dict[str, Any]:
    body = yaml.safe_load((EXAMPLES / name).read_text())
    body["metadata"]["generation"] = 4
    return body


def test_a_valid_object_is_accepted_but_never_claimed_ready() -> None:
    body = example("changepolicy.yaml")
    verdict = acceptance.assess(body)
    assert verdict.accepted
    status = acceptance.status_patch(body, verdict, now=NOW)
    assert status["observedGeneration"] == 4
    assert conditions.find(status["conditions"], "Accepted").status == "True"  # type: ignore[union-attr]
    ready = conditions.find(status["conditions"], "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("Unknown", "NotReconciled")
    assert "ChangePolicy" in ready.message


def test_an_invalid_object_is_stalled_naming_the_field() -> None:
    body = example("playbooks/crashloop.yaml")
    body["spec"]["steps"][0]["action"] = "rebootTheWorld"
    verdict = acceptance.assess(body)
    assert not verdict.accepted
    assert verdict.field == "spec.steps[0].action"
    status = acceptance.status_patch(body, verdict, now=NOW)
    ready = conditions.find(status["conditions"], "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert "spec.steps[0].action" in ready.message
    assert "rebootTheWorld" in ready.message
    assert conditions.is_true(status["conditions"], "Stalled")
    assert conditions.find(status["conditions"], "Accepted").status == "False"  # type: ignore[union-attr]


def test_fixing_the_spec_clears_stalled() -> None:
    body = example("playbooks/crashloop.yaml")
    broken = copy.deepcopy(body)
    broken["spec"]["steps"][0]["action"] = "rebootTheWorld"
    body["status"] = acceptance.status_patch(broken, acceptance.assess(broken), now=NOW)
    status = acceptance.status_patch(body, acceptance.assess(body), now=NOW)
    assert conditions.find(status["conditions"], "Stalled") is None
    assert conditions.find(status["conditions"], "Accepted").status == "True"  # type: ignore[union-attr]


def test_references_are_left_to_the_controllers() -> None:
    body = example("release.yaml")
    body["spec"]["sourceRef"]["name"] = "created-later"
    assert acceptance.assess(body).accepted


def test_every_kind_without_a_controller_of_its_own_gets_acceptance_handlers() -> None:
    registry = kopf.OperatorRegistry()
    controllers.register(registry, settings.OperatorSettings())
    handlers = registry._changing.get_all_handlers()
    plurals = {handler.selector.any_name for handler in handlers if handler.selector is not None}
    own = {"incidents", "problems", "playbooks", "playbookruns", "gitsources", "releases"}
    assert plurals == {resource.plural for resource in schemas.load()} - own
    assert len(handlers) == 3 * len(plurals)  # resume, create and spec update


def test_incidents_and_problems_get_the_detectors_and_their_own_controllers() -> None:
    registry = kopf.OperatorRegistry()
    controllers.register(registry, settings.OperatorSettings())
    watched = {handler.selector.any_name for handler in registry._watching.get_all_handlers() if handler.selector}
    # namespaces: the HTTP receivers learn there that Kopf's caches are filled; changes: a Problem's fixing Change
    # playbooks, playbookruns, changepolicies: the playbook controller and its freeze guard
    assert watched == {
        "pods",
        "deployments",
        "nodes",
        "jobs",
        "incidents",
        "problems",
        "changes",
        "namespaces",
        "playbooks",
        "playbookruns",
        "changepolicies",
        "gitsources",
        "releases",
    }
    spawned = {handler.selector.any_name for handler in registry._spawning.get_all_handlers() if handler.selector}
    assert spawned == {"incidents", "playbookruns", "gitsources", "releases"}
    indexed = {handler.selector.any_name for handler in registry._indexing.get_all_handlers() if handler.selector}
    assert {"replicasets", "deployments", "jobs", "cronjobs", "supportpolicies", "namespaces"} <= indexed


def test_a_dry_run_operator_runs_no_incident_clock() -> None:
    registry = kopf.OperatorRegistry()
    controllers.register(registry, settings.OperatorSettings(safety=settings.SafetySettings(dry_run=True)))
    spawned = {handler.selector.any_name for handler in registry._spawning.get_all_handlers() if handler.selector}
    # GitSources are still fetched and Releases still checked: their dry run reports what a sync would do.
    assert spawned == {"gitsources", "releases"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-n", "shop"], settings.OperatorSettings(scope=settings.ScopeSettings(namespaces=("shop",)))),
        (
            ["-n", "shop", "-n", "team-*", "--dry-run", "--standalone", "--liveness", "none"],
            settings.OperatorSettings(
                scope=settings.ScopeSettings(namespaces=("shop", "team-*")),
                safety=settings.SafetySettings(dry_run=True),
                peering=settings.PeeringSettings(standalone=True),
                health=settings.HealthSettings(liveness_endpoint=None),
            ),
        ),
        (
            ["-A", "--peering", "upkeep", "--priority", "10"],
            settings.OperatorSettings(
                scope=settings.ScopeSettings(all_namespaces=True),
                peering=settings.PeeringSettings(name="upkeep", priority=10),
            ),
        ),
    ],
)
def test_run_flags_become_settings(argv: list[str], expected: settings.OperatorSettings) -> None:
    from upkeep import cli

    args = cli._build_parser().parse_args(["run", *argv])
    assert cli._settings_from(args) == expected


@pytest.mark.parametrize("argv", [["-n", "shop", "-A"], []], ids=["both", "neither"])
def test_run_needs_exactly_one_scope(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from upkeep import cli

    with pytest.raises(SystemExit) as caught:
        cli.main(["run", *argv])
    assert caught.value.code == 2
    assert "--namespace" in capsys.readouterr().err


def test_run_without_a_cluster_says_so(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [sys.executable, "-m", "upkeep.cli", "run", "-n", "shop", "--standalone"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "upkeep run: no cluster to run against" in done.stderr
    assert "KUBECONFIG" in done.stderr
    assert "Traceback" not in done.stderr
