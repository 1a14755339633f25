"""Label and field selectors, parsed and matched as the API server does."""

from __future__ import annotations

import re

import pytest

from upkeep.sandbox import selectors

LABELS = {"app": "web", "tier": "front", "env": "prod"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app=db", False),
        ("missing!=x", True),
        ("tier in (front, back)", True),
        ("tier notin (front)", False),
        ("missing notin (x)", True),
        ("env", True),
        ("!env", False),
        ("!missing", True),
        ("app=web,tier in (front,back),!missing", True),
        ("app=web,tier=back", False),
        ("example.com/team", False),
    ],
)
def test_label_selector(text: str, matches: bool) -> None:
    assert selectors.parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize("text", ["app=", "a b", "=x", "tier in front"])
def test_label_selector_errors(text: str) -> None:
    if text == "app=":
        assert selectors.parse_label_selector(text).matches({"app": ""})
        return
    with pytest.raises(selectors.SelectorError, match="unable to parse requirement"):
        selectors.parse_label_selector(text)


def test_match_labels_and_expressions() -> None:
    selector = selectors.selector_from_match(
        {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}
    )
    assert selector.matches(LABELS)
    assert not selector.matches({"app": "web"})


POD = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("metadata.name=p", True),
        ("metadata.name!=p", False),
        ("spec.nodeName=node-1,status.phase=Running", True),
        ("status.phase==Pending", False),
        ("spec.nodeName=", False),
    ],
)
def test_field_selector(text: str, matches: bool) -> None:
    assert selectors.parse_field_selector(text, "Pod").matches(POD) is matches


def test_unsupported_field_is_refused_with_the_servers_words() -> None:
    with pytest.raises(selectors.SelectorError, match=re.escape("field label not supported: spec.replicas")):
        selectors.parse_field_selector("spec.replicas=1", "Deployment")
    with pytest.raises(selectors.SelectorError, match=re.escape('"spec.size" is not a known field selector')):
        selectors.parse_field_selector("spec.size=1", "Widget", custom=True)


def test_event_fields() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "type": "Warning"}
    assert selectors.parse_field_selector("involvedObject.name=p,type=Warning", "Event").matches(event)
