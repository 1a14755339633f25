"""The field-level diff: by key, lists of named maps by name, status and server metadata ignored."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from upkeep.gitops import diff

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "busybox"},
                ]
            }
        },
    },
}


def test_changed_fields_with_old_and_new_values() -> None:
    new = copy.deepcopy(DEPLOYMENT)
    new["spec"]["replicas"] = 3
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    new["spec"]["template"]["spec"]["containers"][0]["ports"].append({"containerPort": 443})
    del new["metadata"]["labels"]
    new["metadata"]["annotations"] = {"team": "shop"}

    changes = diff.diff_objects(DEPLOYMENT, new)

    assert [change.to_dict() for change in changes] == [
        {"path": "metadata.annotations", "change": "added", "new": {"team": "shop"}},
        {"path": "metadata.labels", "change": "removed", "old": {"app": "web"}},
        {"path": "spec.replicas", "change": "changed", "old": 2, "new": 3},
        {
            "path": "spec.template.spec.containers[name=web].image",
            "change": "changed",
            "old": "nginx:1.27",
            "new": "nginx:1.28",
        },
        {"path": "spec.template.spec.containers[name=web].ports[1]", "change": "added", "new": {"containerPort": 443}},
    ]


def test_lists_of_named_maps_are_matched_by_name_not_position() -> None:
    new = copy.deepcopy(DEPLOYMENT)
    new["spec"]["template"]["spec"]["containers"].reverse()
    assert diff.diff_objects(DEPLOYMENT, new) == ()


def test_other_lists_are_compared_by_index() -> None:
    changes = diff.diff_objects({"spec": {"args": ["a", "b"]}}, {"spec": {"args": ["b"]}})
    assert [(c.path, c.old, c.new) for c in changes] == [("spec.args[0]", "a", "b"), ("spec.args[1]", "b", diff.ABSENT)]


def test_status_and_server_metadata_are_not_differences() -> None:
    live = copy.deepcopy(DEPLOYMENT)
    live["status"] = {"readyReplicas": 2}
    live["metadata"].update(
        uid="u", resourceVersion="7", generation=3, creationTimestamp="2026-01-01T00:00:00Z", managedFields=[{}]
    )
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "4"}
    assert diff.diff_objects(DEPLOYMENT, live) == ()


def test_a_type_change_is_a_change() -> None:
    changes = diff.diff_objects({"data": {"a": "1"}}, {"data": {"a": 1}})
    assert [(c.path, c.old, c.new) for c in changes] == [("data.a", "1", 1)]


def test_odd_keys_are_quoted_in_paths() -> None:
    changes = diff.diff_objects({"metadata": {"labels": {"app.kubernetes.io/name": "a"}}}, {"metadata": {"labels": {}}})
    assert [c.path for c in changes] == ['metadata.labels["app.kubernetes.io/name"]']


def test_sets_report_added_removed_and_changed_objects_only() -> None:
    old = {"a": {"data": {"x": "1"}}, "b": {"data": {}}, "same": {"data": {"k": "v"}}}
    new = {"a": {"data": {"x": "2"}}, "c": {"data": {}}, "same": {"data": {"k": "v"}}}

    found = diff.diff_sets(old, new)

    assert [(d.key, d.change, [f.path for f in d.fields]) for d in found] == [
        ("a", "changed", ["data.x"]),
        ("b", "removed", []),
        ("c", "added", []),
    ]


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)
_objects = st.dictionaries(st.sampled_from(["spec", "data", "kind"]), _values, max_size=3)


@given(_objects)
def test_an_object_never_differs_from_itself(body: dict[str, Any]) -> None:
    assert diff.diff_objects(body, copy.deepcopy(body)) == ()


@given(_objects, _objects)
def test_the_diff_is_empty_only_for_equal_objects_and_reverses(old: dict[str, Any], new: dict[str, Any]) -> None:
    forward = diff.diff_objects(old, new)
    if not forward:
        assert diff.declared(old) == diff.declared(new)
    if diff.declared(old) != diff.declared(new):
        assert forward  # (the converse fails only where Python's == says True == 1: YAML tells them apart)
    backward = diff.diff_objects(new, old)
    assert sorted((c.path, repr(c.old), repr(c.new)) for c in forward) == sorted(
        (c.path, repr(c.new), repr(c.old)) for c in backward
    )
