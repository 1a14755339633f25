"""The outcomes a validator keeps, keyed by what the rules read: a kept outcome is what a fresh evaluation gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upkeep.sandbox import cel


def reads(rule: str) -> set[cel.Read]:
    return set(cel._compile_rule({"rule": rule}, {"type": "object"}).reads)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("has(self.status)", {("self", ("status",), True)}),
        ("self.spec.state == 'x'", {("self", ("spec", "state"), False)}),
        ("!has(self.a.b) || self.a.b > 1", {("self", ("a", "b"), True), ("self", ("a", "b"), False)}),
        ("self.items.all(i, i > 0)", {("self", ("items",), False)}),
        ("self['a-b'].c == 1", {("self", (), False)}),
        ("self.foo__dash__bar == 1", {("self", (), False)}),
        ("self.size() > 1", {("self", (), False)}),
        (
            "self.spec.state == oldSelf.spec.state",
            {("self", ("spec", "state"), False), ("oldSelf", ("spec", "state"), False)},
        ),
        ("has(self.a) && self.a.size() > 0", {("self", ("a",), True), ("self", ("a",), False)}),
    ],
)
def test_what_a_rule_reads(rule: str, expected: set[cel.Read]) -> None:
    assert reads(rule) == expected


def test_a_message_expression_is_read_too() -> None:
    rule = cel._compile_rule({"rule": "self.a > 1", "messageExpression": "'got ' + string(self.b)"}, {"type": "object"})
    assert set(rule.reads) == {("self", ("a",), False), ("self", ("b",), False)}


SCHEMA: dict[str, Any] = {
    "type": "object",
    "x-kubernetes-validations": [
        {"rule": "!has(self.a) || !has(self.a.b) || self.a.b != 'bad'", "messageExpression": "'b is ' + self.a.b"},
        {"rule": "has(self.a.b) || !has(self.c)", "message": "c needs a.b"},
        {
            "rule": "!has(oldSelf.a) || !has(oldSelf.a.b) || !has(self.a) || oldSelf.a.b != 'frozen' "
            "|| self.a == oldSelf.a"
        },
        {"rule": "size(self) < 4"},
    ],
    "properties": {
        "metadata": {"type": "object"},
        "a": {"type": "object", "properties": {"b": {"type": "string"}, "d": {"type": "integer"}}},
        "c": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 3"}]},
        "e": {"type": "string"},
    },
}

VALUES = st.fixed_dictionaries(
    {},
    optional={
        "a": st.fixed_dictionaries(
            {}, optional={"b": st.sampled_from(["ok", "bad", "frozen"]), "d": st.integers(0, 2)}
        ),
        "c": st.integers(1, 4),
        "e": st.sampled_from(["x", "y"]),
    },
)
SHARED = cel.validator_for(SCHEMA)


@settings(max_examples=400, deadline=None)
@given(value=VALUES, old=st.one_of(st.none(), VALUES))
def test_a_kept_outcome_equals_a_fresh_evaluation(value: dict[str, Any], old: dict[str, Any] | None) -> None:
    """One validator sees every example (its kept outcomes grow); each answer must be a fresh validator's."""
    fresh = cel.validator_for(SCHEMA)
    assert SHARED is not None and fresh is not None
    assert SHARED.validate(value, old) == fresh.validate(value, old)
    assert SHARED.validate(value, old) == fresh.validate(value, old)


def test_equal_reads_are_evaluated_once() -> None:
    partial = {**SCHEMA, "x-kubernetes-validations": SCHEMA["x-kubernetes-validations"][:3]}  # not size(self)
    validator = cel.validator_for(partial)
    assert validator is not None
    calls = 0
    evaluate = validator._evaluate

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return evaluate(*args, **kwargs)

    validator._evaluate = counted  # type: ignore[method-assign]
    first = validator.validate({"a": {"b": "bad"}})
    second = validator.validate({"a": {"b": "bad"}, "metadata": {"name": "other"}})
    assert first.causes and first == second
    assert calls == 1  # no rule left at the root reads metadata; ``c``'s rule has no value to run on
    validator.validate({"a": {"b": "ok"}})
    assert calls == 2
    whole = cel.validator_for(SCHEMA)
    assert whole is not None
    assert whole.validate({"a": {"b": "ok"}}) == whole.validate({"a": {"b": "ok"}}, None)
    assert whole.validate({"a": {"b": "ok"}, "c": 1, "e": "x", "metadata": {}}).causes  # size(self) reads it all
