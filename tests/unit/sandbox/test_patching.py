"""Merge patch, JSON patch and strategic merge patch as kube-apiserver applies them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upkeep.sandbox import patching

LS = patching.ListSemantics

# A few patch strategies of the built-in kinds (what openapi.list_semantics answers), for these tests only.
BUILTIN = {
    ("metadata", "finalizers"): LS("merge", "", "set"),
    ("metadata", "ownerReferences"): LS("merge", "uid", "map", ("uid",)),
    ("spec", "containers"): LS("merge", "name", "map", ("name",)),
    ("spec", "containers", "env"): LS("merge", "name", "map", ("name",)),
    ("spec", "containers", "ports"): LS("merge", "containerPort", "map", ("containerPort", "protocol")),
    ("spec", "containers", "volumeMounts"): LS("merge", "mountPath", "map", ("mountPath",)),
    ("spec", "volumes"): LS("merge,retainKeys", "name", "map", ("name",)),
    ("spec", "tolerations"): LS(list_type="atomic"),
    ("spec", "strategy"): LS("retainKeys"),
    ("status", "conditions"): LS("merge", "type", "map", ("type",)),
}


def builtin(path: tuple[str, ...]) -> patching.ListSemantics:
    return BUILTIN.get(path, LS())


def no_semantics(path: tuple[str, ...]) -> patching.ListSemantics:
    return LS()


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": list(containers), **spec},
    }


json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", ""])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcd"), inner, max_size=3),
    max_leaves=12,
)
json_objects = st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4)
list_free_values = st.recursive(
    json_scalars, lambda inner: st.dictionaries(st.sampled_from("abcd"), inner, max_size=3), max_leaves=10
)
list_free_objects = st.dictionaries(st.sampled_from("abcd"), list_free_values, max_size=4)


# --- merge patch ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        # evanphx/json-patch also drops nulls inside objects of a new array
        ({}, {"a": [{"b": None, "c": 1}, None]}, {"a": [{"c": 1}, None]}),
        # ...but not when the array replaces an object
        ({"a": {"x": 1}}, {"a": [{"b": None}]}, {"a": [{"b": None}]}),
    ],
)
def test_merge_patch_follows_rfc7386(target: dict[str, Any], patch: Any, expected: dict[str, Any]) -> None:
    assert patching.merge_patch(target, patch) == expected


@pytest.mark.parametrize(
    ("patch", "code", "message"),
    [
        (None, 400, "Invalid JSON Patch"),
        ("bar", 400, "Invalid JSON Patch"),
        (5, 400, "Invalid JSON Patch"),
        (["c"], 422, "a merge patch must be a JSON object, not an array"),
    ],
)
def test_merge_patch_refuses_a_body_that_is_not_an_object(patch: Any, code: int, message: str) -> None:
    with pytest.raises(patching.PatchError) as raised:
        patching.merge_patch({"a": "foo"}, patch)
    assert (raised.value.code, raised.value.message) == (code, message)
    assert "must be a JSON object" in raised.value.detail


def test_merge_patch_changes_neither_argument_and_gives_fresh_metadata() -> None:
    target = pod({"name": "c", "image": "nginx"})
    patch = {"metadata": {"labels": {"tier": "web", "app": None}}}
    before = copy.deepcopy((target, patch))
    result = patching.merge_patch(target, patch)
    assert (target, patch) == before
    assert result["metadata"]["labels"] == {"tier": "web"}
    assert result["spec"] is target["spec"]  # unchanged subtrees are shared
    unchanged = patching.merge_patch(target, {"spec": {"nodeName": "n1"}})
    assert unchanged["metadata"] == target["metadata"]
    assert unchanged["metadata"] is not target["metadata"]


@settings(max_examples=150, deadline=None)
@given(target=json_objects, patch=list_free_objects)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    # (with arrays it is not: the Go library keeps nulls in an array that replaces an object, and drops them
    # when the array replaces an array)
    once = patching.merge_patch(target, patch)
    assert patching.merge_patch(once, patch) == once


# --- JSON patch -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "operations", "expected"),
    [
        # RFC 6902, appendix A
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
        ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        (
            {"baz": "qux", "foo": "bar"},
            [{"op": "replace", "path": "/baz", "value": "boo"}],
            {"baz": "boo", "foo": "bar"},
        ),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        (
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
        ),
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
            {"foo": "bar", "child": {"grandchild": {}}},
        ),
        (
            {"foo": ["bar"]},
            [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
            {"foo": ["bar", ["abc", "def"]]},
        ),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        (
            {"a/b": 1, "m~n": 2},
            [{"op": "replace", "path": "/a~1b", "value": 3}, {"op": "remove", "path": "/m~0n"}],
            {"a/b": 3},
        ),
        # the Go library also knows copy, negative indices, and replace that adds a missing object member
        (
            {"a": [1, 2]},
            [{"op": "copy", "from": "/a", "path": "/b"}, {"op": "add", "path": "/b/-1", "value": 3}],
            {"a": [1, 2], "b": [1, 2, 3]},
        ),
        ({"a": {}}, [{"op": "replace", "path": "/a/x", "value": 1}], {"a": {"x": 1}}),
        ({"a": 1}, [{"op": "test", "path": "/missing", "value": None}], {"a": 1}),
    ],
)
def test_json_patch_follows_rfc6902(target: dict[str, Any], operations: list[Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(target)
    assert patching.json_patch(target, operations) == expected
    assert target == before


@pytest.mark.parametrize(
    ("target", "operation", "detail"),
    [
        (
            {"foo": "bar"},
            {"op": "add", "path": "/baz/bat", "value": 1},
            'add operation does not apply: doc is missing path: "/baz/bat": missing value',
        ),
        (
            {"a": {"b": {}}},
            {"op": "remove", "path": "/a/b/c"},
            "error in remove for path: '/a/b/c': Unable to remove nonexistent key: c: missing value",
        ),
        (
            {"a": [1]},
            {"op": "remove", "path": "/a/1"},
            "error in remove for path: '/a/1': Unable to access invalid index: 1: invalid index referenced",
        ),
        (
            {"a": [1]},
            {"op": "remove", "path": "/a/-"},
            "error in remove for path: '/a/-': strconv.Atoi: parsing \"-\": invalid syntax",
        ),
        (
            {"a": [1]},
            {"op": "replace", "path": "/a/5", "value": 1},
            "replace operation does not apply: doc is missing key: /a/5: missing value",
        ),
        (
            {"a": 1},
            {"op": "move", "from": "/b", "path": "/c"},
            "error in move for path: 'b': Unable to remove nonexistent key: b: missing value",
        ),
        (
            {"a": 1},
            {"op": "copy", "path": "/c"},
            "copy operation failed to decode from: operation, missing from field: missing value",
        ),
        ({"a": 1}, {"op": "add", "value": 1}, "add operation failed to decode path: missing value"),
        ({"a": 1}, {"op": "frobnicate", "path": "/a"}, "Unexpected kind: frobnicate"),
    ],
)
def test_json_patch_failures_are_422_worded_as_the_go_library(
    target: dict[str, Any], operation: dict[str, Any], detail: str
) -> None:
    with pytest.raises(patching.PatchError) as raised:
        patching.json_patch(target, [operation])
    assert not isinstance(raised.value, patching.PatchTestFailed)
    assert (raised.value.code, raised.value.reason, raised.value.detail) == (422, "Invalid", detail)
    assert raised.value.message == "the server rejected our request due to an error in our request"


def test_a_failed_test_operation_raises_patch_test_failed_and_changes_nothing() -> None:
    target = {"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 1}}
    operations = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "test", "path": "/metadata/resourceVersion", "value": "6"},
    ]
    with pytest.raises(patching.PatchTestFailed) as raised:
        patching.json_patch(target, operations)
    assert raised.value.code == 422
    assert raised.value.detail == "testing value /metadata/resourceVersion failed: test failed"
    assert target == {"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 1}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), (1.0, False), (True, False), ("1", False), ({"a": [1]}, False)],
)
def test_json_patch_test_compares_as_json_values(value: Any, expected: bool) -> None:
    operations = [{"op": "test", "path": "/a", "value": value}]
    if expected:
        patching.json_patch({"a": 1}, operations)
    else:
        with pytest.raises(patching.PatchTestFailed):
            patching.json_patch({"a": 1}, operations)


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ({"op": "add"}, 400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        (["add"], 400, "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
        (
            [{"op": "test", "path": "/a", "value": 1}] * 10_001,
            413,
            "The allowed maximum operations in a JSON patch is 10000, got 10001",
        ),
    ],
)
def test_json_patch_refuses_a_body_that_is_not_a_list_of_operations(body: Any, code: int, detail: str) -> None:
    with pytest.raises(patching.PatchError) as raised:
        patching.json_patch({"a": 1}, body)
    assert (raised.value.code, raised.value.detail) == (code, detail)


def test_a_null_json_patch_changes_nothing() -> None:
    assert patching.json_patch({"a": 1}, None) == {"a": 1}


def test_json_patch_writes_copies_of_nested_containers_only() -> None:
    target: dict[str, Any] = {"metadata": {"labels": {"a": "1"}}, "spec": {"x": [1, 2]}, "status": {"y": 1}}
    result = patching.json_patch(target, [{"op": "add", "path": "/spec/x/-", "value": 3}])
    assert target["spec"]["x"] == [1, 2]
    assert result["spec"]["x"] == [1, 2, 3]
    assert result["status"] is target["status"]
    assert result["metadata"] == target["metadata"]
    assert result["metadata"] is not target["metadata"]


@settings(max_examples=150, deadline=None)
@given(target=json_objects, value=json_values)
def test_adding_then_removing_a_member_gives_back_the_target(target: dict[str, Any], value: Any) -> None:
    before = copy.deepcopy(target)
    operations = [{"op": "add", "path": "/new~1key", "value": value}, {"op": "remove", "path": "/new~1key"}]
    assert patching.json_patch(target, operations) == target
    assert target == before


# --- strategic merge patch ------------------------------------------------------------------------------------


def containers(result: dict[str, Any]) -> list[dict[str, Any]]:
    return result["spec"]["containers"]  # type: ignore[no-any-return]


def test_containers_merge_by_name_and_env_by_name() -> None:
    target = pod(
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "proxy:1"},
    )
    patch = {"spec": {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}]}]}}
    result = patching.strategic_merge_patch(target, patch, builtin)
    assert containers(result) == [
        {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]},
        {"name": "sidecar", "image": "proxy:1"},
    ]


def test_new_items_of_a_merged_list_come_before_the_server_only_ones() -> None:
    result = patching.strategic_merge_patch(
        pod({"name": "a"}, {"name": "b"}), {"spec": {"containers": [{"name": "c"}]}}, builtin
    )
    assert [item["name"] for item in containers(result)] == ["c", "a", "b"]


def test_ports_merge_by_container_port() -> None:
    target = pod({"name": "app", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]})
    patch = {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "web"}]}]}}
    result = patching.strategic_merge_patch(target, patch, builtin)
    assert containers(result)[0]["ports"] == [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]


def test_lists_without_a_merge_strategy_are_replaced() -> None:
    target = pod({"name": "app", "args": ["a", "b"]}, tolerations=[{"key": "x", "operator": "Exists"}])
    patch = {"spec": {"containers": [{"name": "app", "args": ["c"]}], "tolerations": [{"key": "y"}]}}
    result = patching.strategic_merge_patch(target, patch, builtin)
    assert containers(result)[0]["args"] == ["c"]
    assert result["spec"]["tolerations"] == [{"key": "y"}]


@pytest.mark.parametrize(
    ("finalizers", "patch", "expected"),
    [
        (["a", "b"], ["b", "c"], ["a", "b", "c"]),
        (["a", "b"], ["c"], ["c", "a", "b"]),
        (["a", "b"], ["b", "a"], ["b", "a"]),
    ],
)
def test_primitive_lists_with_merge_strategy_merge_as_sets(
    finalizers: list[str], patch: list[str], expected: list[str]
) -> None:
    target = {"metadata": {"name": "x", "finalizers": finalizers}}
    result = patching.strategic_merge_patch(target, {"metadata": {"finalizers": patch}}, builtin)
    assert result["metadata"]["finalizers"] == expected


def test_delete_from_primitive_list_removes_items() -> None:
    target = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "z"]}}
    assert patching.strategic_merge_patch(target, patch, builtin)["metadata"]["finalizers"] == ["a", "c"]


def test_patch_delete_and_replace_directives_in_lists() -> None:
    target = pod({"name": "a"}, {"name": "b"})
    deleted = patching.strategic_merge_patch(
        target, {"spec": {"containers": [{"$patch": "delete", "name": "a"}]}}, builtin
    )
    assert containers(deleted) == [{"name": "b"}]
    replaced = patching.strategic_merge_patch(
        target, {"spec": {"containers": [{"name": "z"}, {"$patch": "replace"}]}}, builtin
    )
    assert containers(replaced) == [{"name": "z"}]


def test_patch_directives_on_objects() -> None:
    target = pod({"name": "a"}, nodeSelector={"disk": "ssd", "zone": "a"})
    replaced = patching.strategic_merge_patch(
        target, {"spec": {"nodeSelector": {"$patch": "replace", "zone": "b"}}}, builtin
    )
    assert replaced["spec"]["nodeSelector"] == {"zone": "b"}
    deleted = patching.strategic_merge_patch(target, {"spec": {"nodeSelector": {"$patch": "delete"}}}, builtin)
    assert deleted["spec"]["nodeSelector"] == {}


def test_retain_keys_clears_the_fields_it_does_not_list() -> None:
    target = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert patching.strategic_merge_patch(target, patch, builtin)["spec"]["strategy"] == {"type": "Recreate"}


def test_set_element_order_orders_the_merged_list() -> None:
    target = pod({"name": "a"}, {"name": "b"}, {"name": "c"})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}
    result = patching.strategic_merge_patch(target, patch, builtin)
    assert [item["name"] for item in containers(result)] == ["c", "a", "b"]


def test_kubectl_apply_three_way_patch_orders_as_the_api_server_does() -> None:
    # upstream "add map and delete map from merging list": the Go library reads the original list after changing
    # its backing array, which is what places "4" before "3"
    target = {"spec": {"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "4", "image": "c"}]}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}],
        }
    }
    result = patching.strategic_merge_patch(target, patch, builtin)
    assert containers(result) == [{"name": "2", "image": "b"}, {"name": "4", "image": "c"}, {"name": "3"}]


def test_null_deletes_and_new_values_lose_their_nulls() -> None:
    target = pod({"name": "a"})
    patch = {"metadata": {"labels": {"app": None}, "annotations": {"x": "1", "y": None}}}
    result = patching.strategic_merge_patch(target, patch, builtin)
    assert result["metadata"]["labels"] == {}
    assert result["metadata"]["annotations"] == {"x": "1"}


def test_conditions_merge_by_type() -> None:
    target = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    result = patching.strategic_merge_patch(target, patch, builtin)
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "Scheduled", "status": "True"},
    ]


@pytest.mark.parametrize(
    ("patch", "code", "detail"),
    [
        (
            {"spec": {"containers": [{"image": "x"}]}},
            500,
            "map: map[image:x] does not contain declared merge key: name",
        ),
        ({"spec": {"containers": [{"$patch": "merge"}]}}, 500, "merging lists cannot yet be specified in the patch"),
        ({"spec": {"$patch": "merge"}}, 500, "unknown patch type: merge in map: map[$patch:merge]"),
        ({"spec": {"$retainKeys": "type"}}, 400, "invalid patch format of retainKeys"),
        ({"spec": {"$retainKeys": ["a"], "containers": []}}, 400, "invalid patch format of retainKeys"),
        ({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}, 400, "invalid patch format of primitive list"),
        ({"metadata": {"finalizers": ["a", 1]}}, 500, "list element types are not identical: [[x] [a 1]]"),
        (
            {"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "q"}]}},
            500,
            "The order in patch list:\n[map[name:q]]\n doesn't match $setElementOrder list:\n[map[name:a]]\n",
        ),
    ],
)
def test_strategic_merge_patch_errors_are_worded_and_coded_as_the_api_server_does(
    patch: dict[str, Any], code: int, detail: str
) -> None:
    target = {"metadata": {"finalizers": ["x"]}, "spec": {"containers": [{"name": "a"}]}}
    with pytest.raises(patching.PatchError) as raised:
        patching.strategic_merge_patch(target, patch, builtin)
    assert (raised.value.code, raised.value.detail) == (code, detail)


def test_lists_of_lists_are_422() -> None:
    with pytest.raises(patching.PatchError) as raised:
        patching.strategic_merge_patch({"metadata": {"finalizers": []}}, {"metadata": {"finalizers": [["a"]]}}, builtin)
    assert (raised.value.code, raised.value.reason, raised.value.detail) == (
        422,
        "Invalid",
        "lists of lists are not supported",
    )


def test_strategic_merge_patch_refuses_a_body_that_is_not_an_object() -> None:
    with pytest.raises(patching.PatchError) as raised:
        patching.strategic_merge_patch({}, ["a"], builtin)
    assert raised.value.code == 400
    assert raised.value.message == "json: cannot unmarshal array into Go value of type map[string]interface {}"
    assert patching.strategic_merge_patch({"a": 1}, None, builtin) == {"a": 1}


def test_strategic_merge_patch_changes_neither_argument() -> None:
    target = pod({"name": "a", "env": [{"name": "A", "value": "1"}]}, {"name": "b"})
    patch = {
        "metadata": {"labels": {"x": None}},
        "spec": {"containers": [{"name": "a", "env": [{"name": "A", "value": "2"}]}, {"name": "c", "x": None}]},
    }
    before = copy.deepcopy((target, patch))
    patching.strategic_merge_patch(target, patch, builtin)
    assert (target, patch) == before


@settings(max_examples=150, deadline=None)
@given(target=json_objects, patch=list_free_objects)
def test_without_lists_or_directives_a_strategic_merge_patch_is_a_merge_patch(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert patching.strategic_merge_patch(target, patch, no_semantics) == patching.merge_patch(target, patch)
