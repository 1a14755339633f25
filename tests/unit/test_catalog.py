"""The action catalog's param checks."""

from __future__ import annotations

import pytest

from upkeep.engine import catalog

ISSUE_ACTIONS = {
    "deletePod",
    "rolloutRestart",
    "rollbackDeployment",
    "scale",
    "patch",
    "cordonNode",
    "drainNode",
    "runJob",
    "wait",
    "notify",
    "escalate",
    "setOverride",
    "proposeFix",
}


def test_catalog_has_every_action_of_the_design() -> None:
    assert set(catalog.names()) == ISSUE_ACTIONS


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("rolloutRestart", {}),
        ("scale", {"replicas": 3}),
        ("scale", {"by": -1, "min": 1}),
        ("wait", {"duration": "30s"}),
        ("setOverride", {"fieldPath": "x", "factor": 1.5, "maxFactor": 2, "expiresIn": "24h"}),
        ("escalate", {"severity": "SEV1"}),
    ],
)
def test_good_params(action: str, params: dict[str, object]) -> None:
    assert catalog.check_params(action, params) == []


@pytest.mark.parametrize(
    ("action", "params", "code", "param", "says"),
    [
        ("restartEverything", {}, "unknown-action", "", "known actions: cordonNode"),
        ("wait", {}, "missing-param", "duration", "needs param 'duration'"),
        ("wait", {"duration": "soon"}, "param-type", "duration", "is not a duration"),
        ("scale", {"replicas": 2, "by": 1}, "param-choice", "", "exactly one of replicas or by"),
        ("scale", {"replicas": -1}, "param-type", "replicas", "at least 0"),
        ("scale", {"replicas": "3"}, "param-type", "replicas", "must be an integer"),
        ("rolloutRestart", {"force": True}, "unknown-param", "force", "has no param 'force'"),
        ("escalate", {"severity": "SEV0"}, "param-type", "severity", "SEV1, SEV2"),
    ],
)
def test_bad_params(action: str, params: dict[str, object], code: str, param: str, says: str) -> None:
    problems = catalog.check_params(action, params)
    assert any(p.code == code and p.param == param and says in p.message for p in problems), problems
