"""The Playbook CRD says on apply what the action catalog says: the actions, their params' types, the required ones.

crds/playbooks.upkeep.dev.yaml carries the catalog (engine/catalog.py) three times over: ``action``
as an enum, ``params`` with a typed property per param, and one CEL rule per required param. A real
API server enforces all three on apply; these tests keep them equal to the catalog, and run the
rules (on the sandbox's CEL evaluator) to show that each refuses what it should, naming the param.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from upkeep.engine import catalog, durations
from upkeep.sandbox import cel

CRD = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "playbooks.upkeep.dev.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]
STEP = SPEC["properties"]["steps"]["items"]
PARAMS = STEP["properties"]["params"]
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
SEVERITIES = ["SEV1", "SEV2", "SEV3", "SEV4"]
VALIDATOR = cel.validator_for(SCHEMA)

# A value of each catalog kind, for steps that must pass.
SAMPLES: Mapping[str, Any] = {
    "object": {"spec": {"replicas": 2}},
    "duration": "30s",
    "list": ["oncall"],
    "string": "spec.template.spec.containers[name=web].resources.limits.memory",
}


def expected_param_schema(param: catalog.Param) -> dict[str, Any] | None:
    """What the CRD should declare for one catalog param (None: left to the semantic check, as "any" is)."""
    kinds: Mapping[str, dict[str, Any]] = {
        "int": {"type": "integer"},
        "number": {"type": "number"},
        "string": {"type": "string"},
        "bool": {"type": "boolean"},
        "duration": {"type": "string", "pattern": DURATION},
        "severity": {"type": "string", "enum": SEVERITIES},
        "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "list": {"type": "array", "items": {"type": "string"}},
    }
    if param.kind == "any":
        return None
    found = dict(kinds[param.kind])
    if param.minimum is not None:
        found["minimum"] = param.minimum
    return found


def declared(node: Mapping[str, Any]) -> dict[str, Any]:
    """A declared property without its descriptions, for comparison."""
    out = {key: value for key, value in node.items() if key != "description"}
    if isinstance(out.get("items"), Mapping):
        out["items"] = declared(out["items"])
    return out


def required_params() -> list[tuple[str, str]]:
    return [
        (spec.name, name) for spec in catalog.ACTIONS.values() for name, param in spec.params.items() if param.required
    ]


def playbook(step: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Playbook",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"match": {"signalTypes": ["Manual"]}, "steps": [dict(step)]},
    }


def complete_step(action: str) -> dict[str, Any]:
    """A step of ``action`` with every required param given."""
    spec = catalog.ACTIONS[action]
    params = {name: SAMPLES[param.kind] for name, param in spec.params.items() if param.required}
    step: dict[str, Any] = {"name": "step", "action": action}
    if params:
        step["params"] = params
    return step


def causes(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    assert VALIDATOR is not None
    return [(cause.field, cause.message) for cause in VALIDATOR.validate(body).causes]


def test_the_action_enum_is_the_catalog() -> None:
    assert STEP["properties"]["action"]["enum"] == list(catalog.ACTIONS)


def test_every_typed_param_of_the_catalog_is_declared_with_its_type_and_bounds() -> None:
    wanted: dict[str, dict[str, Any]] = {}
    for spec in catalog.ACTIONS.values():
        for name, param in spec.params.items():
            schema = expected_param_schema(param)
            if schema is None:
                continue
            # One name means one thing across actions (timeout, channels, factor, ...).
            assert wanted.setdefault(name, schema) == schema, f"{name} has two meanings in the catalog"
    found = {name: declared(node) for name, node in PARAMS["properties"].items()}
    assert found == wanted
    # Unknown params still reach the semantic check, which names them.
    assert PARAMS["x-kubernetes-preserve-unknown-fields"] is True


def test_one_rule_per_required_param_and_no_other() -> None:
    rules = {
        (rule["rule"], rule["fieldPath"], rule["reason"], rule["message"].split(" needs ")[0])
        for rule in STEP["x-kubernetes-validations"]
    }
    assert rules == {
        (
            f"self.action != '{action}' || (has(self.params) && has(self.params.{name}))",
            f".params.{name}",
            "FieldValueRequired",
            action,
        )
        for action, name in required_params()
    }
    assert len(STEP["x-kubernetes-validations"]) == len(required_params())


def test_the_rules_compile_where_the_api_server_compiles_them() -> None:
    assert cel.crd_causes(CRD) == []


@pytest.mark.parametrize("action", list(catalog.ACTIONS))
def test_a_step_with_its_required_params_passes(action: str) -> None:
    assert causes(playbook(complete_step(action))) == []


@pytest.mark.parametrize(("action", "name"), required_params(), ids=[f"{a}.{p}" for a, p in required_params()])
def test_a_step_without_a_required_param_is_refused_naming_it(action: str, name: str) -> None:
    step = complete_step(action)
    del step["params"][name]
    found = causes(playbook(step))
    assert [field for field, _ in found] == [f"spec.steps[0].params.{name}"]
    assert found[0][1].startswith(f"Required value: {action} needs params.{name}")


def test_a_step_without_params_at_all_is_refused_naming_the_first_missing_one() -> None:
    found = causes(playbook({"name": "settle", "action": "wait"}))
    assert found == [("spec.steps[0].params.duration", "Required value: wait needs params.duration (how long)")]


def duration_patterns(node: Mapping[str, Any], path: str = "") -> list[tuple[str, str]]:
    found = []
    if node.get("pattern") and "duration" in str(node.get("description", "")).lower():
        found.append((path, str(node["pattern"])))
    for name, sub in (node.get("properties") or {}).items():
        found += duration_patterns(sub, f"{path}.{name}")
    if isinstance(node.get("items"), Mapping):
        found += duration_patterns(node["items"], f"{path}[]")
    return found


def test_every_duration_field_uses_the_one_pattern() -> None:
    found = dict(duration_patterns(SPEC, "spec"))
    assert {
        "spec.guards.cooldown",
        "spec.verification.timeout",
        "spec.verification.stableFor",
        "spec.steps[].timeout",
        "spec.steps[].params.duration",
        "spec.steps[].params.expiresIn",
        "spec.steps[].params.gracePeriod",
        "spec.steps[].params.timeout",
    } <= set(found)
    assert set(found.values()) == {DURATION}


@pytest.mark.parametrize(
    "text",
    ["0s", "30s", "5m", "1h30m", "250ms", "1.5h", "24h", "-5m", "-0s", "5", "", "1d", "5 m", "m", "+5m", "1h-5m"],
)
def test_the_duration_pattern_accepts_exactly_what_the_operator_parses(text: str) -> None:
    try:
        durations.parse_duration(text)
    except durations.DurationError:
        parses = False
    else:
        parses = True
    assert bool(re.search(DURATION, text)) == parses
