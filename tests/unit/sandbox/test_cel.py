"""CRD validation rules evaluated as kube-apiserver evaluates them: values, messages, transitions, ratcheting."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from upkeep.sandbox import cel


def schema(spec: Mapping[str, Any], **root: Any) -> dict[str, Any]:
    """An object schema with ``spec`` as its spec, the way a CRD version has it."""
    return {"type": "object", "properties": {"spec": dict(spec), "metadata": {"type": "object"}}, **root}


def obj(spec: Mapping[str, Any], name: str = "x") -> dict[str, Any]:
    return {"apiVersion": "ex.com/v1", "kind": "Foo", "metadata": {"name": name, "uid": "u"}, "spec": dict(spec)}


def check(found: Mapping[str, Any], value: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> cel.Outcome:
    validator = cel.validator_for(found)
    assert validator is not None
    return validator.validate(value, old)


def messages(outcome: cel.Outcome) -> list[str]:
    return [str(cause) for cause in outcome.causes]


REPLICAS = {
    "type": "object",
    "properties": {"replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 5"}]}},
}


def test_a_schema_without_rules_has_no_validator() -> None:
    assert cel.validator_for(schema({"type": "object", "properties": {"a": {"type": "string"}}})) is None
    assert cel.validator_for(None) is None


def test_a_failed_rule_names_the_field_and_the_schema_type_and_defaults_its_message() -> None:
    outcome = check(schema(REPLICAS), obj({"replicas": 7}))
    assert messages(outcome) == ['spec.replicas: Invalid value: "integer": failed rule: self <= 5']
    assert outcome.causes[0].reason == "FieldValueInvalid"
    assert check(schema(REPLICAS), obj({"replicas": 5})) == cel.Outcome()


def test_an_absent_value_is_not_checked() -> None:
    assert check(schema(REPLICAS), obj({})) == cel.Outcome()


def test_a_root_rule_without_field_path_names_no_field() -> None:
    found = schema({"type": "object"}, **{"x-kubernetes-validations": [{"rule": "self.metadata.name != 'x'"}]})
    assert messages(check(found, obj({}))) == [
        "<nil>: Invalid value: \"object\": failed rule: self.metadata.name != 'x'"
    ]


def test_field_path_message_and_message_expression() -> None:
    rules = [
        {"rule": "self.min <= self.max", "message": "min above max", "fieldPath": ".min"},
        {
            "rule": "self.min >= 0",
            "messageExpression": "'min is ' + string(self.min) + ', must not be negative'",
            "fieldPath": ".min",
        },
        {"rule": "self.max < 100", "message": "too big", "messageExpression": "self.nothing", "fieldPath": ".max"},
    ]
    spec = {
        "type": "object",
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        "x-kubernetes-validations": rules,
    }
    assert messages(check(schema(spec), obj({"min": -3, "max": -5}))) == [
        'spec.min: Invalid value: "object": min above max',
        'spec.min: Invalid value: "object": min is -3, must not be negative',
    ]
    # A messageExpression that fails to evaluate falls back to the message.
    assert messages(check(schema(spec), obj({"min": 0, "max": 200}))) == ['spec.max: Invalid value: "object": too big']


def test_field_path_into_a_map_uses_brackets() -> None:
    spec = {
        "type": "object",
        "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}},
        "x-kubernetes-validations": [
            {"rule": "!('a.b' in self.labels) || self.labels['a.b'] != ''", "fieldPath": ".labels['a.b']"}
        ],
    }
    assert [cause.field for cause in check(schema(spec), obj({"labels": {"a.b": ""}})).causes] == ["spec.labels[a.b]"]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("FieldValueForbidden", "Forbidden: no"),
        ("FieldValueRequired", "Required value: no"),
        ("FieldValueDuplicate", 'Duplicate value: "object"'),
        ("FieldValueInvalid", 'Invalid value: "object": no'),
    ],
)
def test_reasons_word_the_error_as_the_server(reason: str, message: str) -> None:
    spec = {"type": "object", "x-kubernetes-validations": [{"rule": "false", "message": "no", "reason": reason}]}
    [cause] = check(schema(spec), obj({})).causes
    assert (cause.reason, cause.message) == (reason, message)


IMMUTABLE = {
    "type": "object",
    "properties": {
        "class": {
            "type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "class is immutable"}],
        }
    },
}


def test_transition_rules_run_on_update_only_where_an_old_value_exists() -> None:
    assert check(schema(IMMUTABLE), obj({"class": "gold"})) == cel.Outcome()
    assert check(schema(IMMUTABLE), obj({"class": "gold"}), obj({"class": "gold"})) == cel.Outcome()
    assert messages(check(schema(IMMUTABLE), obj({"class": "bronze"}), obj({"class": "gold"}))) == [
        'spec.class: Invalid value: "string": class is immutable'
    ]
    # Set for the first time on update: no old value at that level, the rule does not run.
    assert check(schema(IMMUTABLE), obj({"class": "bronze"}), obj({})) == cel.Outcome()


def test_optional_old_self_runs_on_create_too() -> None:
    spec = {
        "type": "object",
        "properties": {"size": {"type": "integer"}},
        "x-kubernetes-validations": [
            {
                "rule": "oldSelf.hasValue() ? self.size >= oldSelf.value().size : self.size < 10",
                "optionalOldSelf": True,
                "message": "size may only grow, and starts below 10",
            }
        ],
    }
    assert len(check(schema(spec), obj({"size": 12})).causes) == 1
    assert check(schema(spec), obj({"size": 3})) == cel.Outcome()
    assert len(check(schema(spec), obj({"size": 2}), obj({"size": 3})).causes) == 1
    assert check(schema(spec), obj({"size": 30}), obj({"size": 3})) == cel.Outcome()


def test_items_of_map_lists_are_compared_with_the_old_item_of_the_same_key() -> None:
    items = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.port == oldSelf.port", "message": "port is immutable"}],
    }
    keyed = {
        "type": "object",
        "properties": {
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": items,
            }
        },
    }
    old = obj({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]})
    reordered = obj({"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 1}, {"name": "c", "port": 3}]})
    assert check(schema(keyed), reordered, old) == cel.Outcome()
    changed = obj({"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 9}]})
    assert [cause.field for cause in check(schema(keyed), changed, old).causes] == ["spec.ports[1]"]
    # An atomic list has no old item to compare with: the transition rule does not run.
    atomic = copy.deepcopy(keyed)
    del atomic["properties"]["ports"]["x-kubernetes-list-type"]
    assert check(schema(atomic), changed, old) == cel.Outcome()


def test_a_value_the_update_did_not_change_only_warns() -> None:
    spec = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "size(self) < 5", "message": "short"}]},
            "other": {"type": "string"},
        },
    }
    unchanged = check(schema(spec), obj({"name": "toolong", "other": "b"}), obj({"name": "toolong", "other": "a"}))
    assert unchanged.causes == ()
    assert unchanged.warnings == ('spec.name: Invalid value: "string": short',)
    changed = check(schema(spec), obj({"name": "toolong!"}), obj({"name": "toolong"}))
    assert messages(changed) == ['spec.name: Invalid value: "string": short']


def test_values_are_typed_by_the_schema() -> None:
    spec = {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "every": {"type": "string", "format": "duration"},
            "ratio": {"type": "number"},
            "count": {"type": "integer"},
            "port": {"x-kubernetes-int-or-string": True},
            "free-form": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "if": {"type": "boolean"},
        },
        "x-kubernetes-validations": [
            {"rule": "self.at > timestamp('2024-01-01T00:00:00Z')", "message": "at"},
            {"rule": "self.every <= duration('1h')", "message": "every"},
            {"rule": "self.ratio == 1.0 && type(self.ratio) == double", "message": "ratio"},
            {"rule": "self.count == 2 && type(self.count) == int", "message": "count"},
            {"rule": "type(self.port) == string", "message": "port"},
            {"rule": "self.free__dash__form.any == 'thing'", "message": "free-form"},
            {"rule": "self.__if__", "message": "if"},
        ],
    }
    good = {
        "at": "2025-06-01T10:00:00Z",
        "every": "30m",
        "ratio": 1,
        "count": 2,
        "port": "http",
        "free-form": {"any": "thing"},
        "if": True,
    }
    assert check(schema(spec), obj(good)) == cel.Outcome()
    bad = {**good, "at": "2020-01-01T00:00:00Z", "every": "2h", "port": 80, "if": False}
    assert [cause.message.rsplit(": ", 1)[1] for cause in check(schema(spec), obj(bad)).causes] == [
        "at",
        "every",
        "port",
        "if",
    ]


def test_at_the_root_metadata_shows_only_the_name() -> None:
    found = schema({"type": "object"}, **{"x-kubernetes-validations": [{"rule": "!has(self.metadata.uid)"}]})
    assert check(found, obj({})) == cel.Outcome()


def test_an_evaluation_error_is_reported_as_the_server_words_it() -> None:
    spec = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.a == 'x'", "message": "a must be x"}],
    }
    assert messages(check(schema(spec), obj({}))) == [
        'spec: Invalid value: "object": no such key: a evaluating rule: a must be x'
    ]


@pytest.mark.parametrize(
    "rule",
    [
        "['a', 'b'].join(', ') == 'a, b'",
        "'a,b,c'.split(',') == ['a', 'b', 'c']",
        "'MiXed'.lowerAscii() == 'mixed' && 'MiXed'.upperAscii() == 'MIXED'",
        "'  x '.trim() == 'x' && 'aXa'.replace('X', 'b') == 'aba'",
        "'hello'.substring(1, 3) == 'el' && 'hello'.charAt(1) == 'e'",
        "'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3 && [1, 2, 3].indexOf(2) == 1",
        "[1, 2, 3].isSorted() && [3, 1].sum() == 4 && [3, 1].min() == 1 && [3, 1].max() == 3",
        "'abc123'.find('[0-9]+') == '123' && 'a1b2'.findAll('[0-9]') == ['1', '2']",
        "['x', 'y'].exists(v, v == 'y') && ['x', 'y'].all(v, size(v) == 1) && 'ab'.matches('^a')",
    ],
)
def test_the_kubernetes_library_functions_rules_use(rule: str) -> None:
    spec = {"type": "object", "x-kubernetes-validations": [{"rule": rule}]}
    assert check(schema(spec), obj({})) == cel.Outcome()


def crd(rules: list[dict[str, Any]]) -> dict[str, Any]:
    spec = {"type": "object", "properties": {"a": {"type": "string"}}, "x-kubernetes-validations": rules}
    return {"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema(spec)}}]}}


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"rule": "self.a =="}, "Syntax error"),
        ({"rule": "self.a.frobnicate()"}, "undeclared reference to 'frobnicate'"),
        ({"rule": "self.a == 'x'", "fieldPath": ".b"}, "does not refer to a valid field"),
        ({"rule": "self.a == 'x'", "message": "two\nlines"}, "must not contain line breaks"),
        ({"rule": "self.a ==\n'x'"}, "message must be specified"),
        ({"rule": "self.a == 'x'", "optionalOldSelf": True}, "optionalOldSelf"),
        ({"rule": "self.a == 'x'", "reason": "Whatever"}, "reason"),
        ({"rule": "self.a == 'x'", "messageExpression": "'a' +"}, "Syntax error"),
    ],
)
def test_a_crd_whose_rules_do_not_compile_is_refused(rule: dict[str, Any], problem: str) -> None:
    [cause] = cel.crd_causes(crd([rule]))
    assert cause["field"] == "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    assert "compilation failed" in cause["message"] and problem in cause["message"]
    with pytest.raises(cel.RuleError):
        cel.validator_for(crd([rule])["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_a_crd_whose_rules_compile_has_no_causes() -> None:
    assert cel.crd_causes(crd([{"rule": "self.a != ''", "fieldPath": ".a", "messageExpression": "'x'"}])) == []


def test_the_blocked_cause_reads_as_the_server_writes_it() -> None:
    assert str(cel.blocked_cause()) == (
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation"
    )
