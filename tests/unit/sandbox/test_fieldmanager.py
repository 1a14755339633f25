"""Server-side apply and managedFields as kube-apiserver keeps them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upkeep.sandbox import fieldmanager, patching

LS = patching.ListSemantics

# A few field semantics of the built-in kinds (what openapi answers), for these tests only.
BUILTIN = {
    ("metadata", "labels"): LS(free_form=True),
    ("metadata", "annotations"): LS(free_form=True),
    ("metadata", "finalizers"): LS("merge", "", "set"),
    ("spec", "selector"): LS(map_type="atomic"),
    ("spec", "template", "metadata", "labels"): LS(free_form=True),
    ("spec", "template", "spec", "containers"): LS("merge", "name", "map", ("name",)),
    ("spec", "template", "spec", "containers", "ports"): LS(
        "merge", "containerPort", "map", ("containerPort", "protocol"), key_defaults=(("protocol", "TCP"),)
    ),
    ("spec", "template", "spec", "containers", "env"): LS("merge", "name", "map", ("name",)),
    ("data",): LS(free_form=True),
}

T0, T1, T2, T3 = (f"2024-05-01T10:00:0{second}Z" for second in range(4))


def builtin(path: tuple[str, ...]) -> patching.ListSemantics:
    return BUILTIN.get(path, LS())


def deployment(replicas: int = 3, image: str = "nginx:1.27", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}, **extra},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["metadata"]["managedFields"]  # type: ignore[no-any-return]


def owners(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["manager"] + "/" + entry.get("subresource", ""): entry["fieldsV1"] for entry in entries(obj)}


APPLIED_DEPLOYMENT_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:selector": {},
        "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {
                    'k:{"name":"nginx"}': {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                    }
                }
            },
        },
    },
}


def applied(
    live: dict[str, Any] | None, config: dict[str, Any], manager: str, now: str, **options: Any
) -> dict[str, Any]:
    result = fieldmanager.apply(live, config, manager, options.pop("force", False), builtin, now, **options)
    assert result.conflicts == ()
    assert result.obj is not None
    return result.obj


def updated(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str, **options: Any) -> dict[str, Any]:
    return fieldmanager.record_update(old, new, manager, "Update", builtin, now, **options)


# --- apply ----------------------------------------------------------------------------------------------------


def test_apply_creates_the_object_and_records_the_appliers_fields() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    assert obj["spec"] == deployment()["spec"]
    assert entries(obj) == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": APPLIED_DEPLOYMENT_FIELDS,
        }
    ]
    assert list(entries(obj)[0]) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert json.dumps(entries(obj)[0]["fieldsV1"]) == json.dumps(APPLIED_DEPLOYMENT_FIELDS)  # order too


def test_fields_v1_encodes_each_kind_of_field() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "x",
            "namespace": "shop",
            "uid": "u",
            "resourceVersion": "9",
            "finalizers": ["b.io/x", "a.io/y"],
            "annotations": {"note": "<&>"},
        },
        "data": {"k": "v"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "args": ["x"], "empty": {}, "none": None, "items": []},
    }
    assert fieldmanager.fields_v1(obj, builtin) == {
        "f:data": {"f:k": {}},
        "f:metadata": {
            "f:annotations": {"f:note": {}},
            "f:finalizers": {'v:"a.io/y"': {}, 'v:"b.io/x"': {}},
        },
        "f:spec": {"f:args": {}, "f:empty": {}, "f:items": {}, "f:none": {}, "f:selector": {}},
    }
    # an empty list that is not atomic (a set or a list-map) is owned by nobody
    assert fieldmanager.fields_v1({"metadata": {"finalizers": []}}, builtin) == {}


def test_reapplying_without_a_field_removes_it_unless_another_manager_owns_it() -> None:
    first = deployment(annotations={"team": "shop", "owner": "ops"})
    obj = applied(None, first, "kubectl", T0)
    obj = updated(obj, {**obj, "metadata": {**obj["metadata"], "labels": {"app": "web", "tier": "front"}}}, "ops", T1)
    second = deployment()
    del second["metadata"]["labels"]
    obj = applied(obj, second, "kubectl", T2)
    assert "annotations" not in obj["metadata"]
    assert obj["metadata"]["labels"] == {"tier": "front"}  # app was kubectl's alone
    assert owners(obj)["ops/"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    assert "f:metadata" not in owners(obj)["kubectl/"]


def test_reapplying_without_a_label_another_manager_does_not_own_removes_it() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    config = deployment()
    config["metadata"]["labels"] = {"team": "shop"}
    obj = applied(obj, config, "kubectl", T1)
    assert obj["metadata"]["labels"] == {"team": "shop"}


def test_apply_after_kubectl_scale_conflicts_on_replicas() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    scaled = updated(obj, {**obj, "spec": {**obj["spec"], "replicas": 5}}, "kubectl", T1, subresource="scale")
    assert owners(scaled)["kubectl/scale"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners(scaled)["kubectl/"]["f:spec"]
    result = fieldmanager.apply(scaled, deployment(), "kubectl", False, builtin, T2)
    assert result.obj is None
    assert result.conflicts == (fieldmanager.Conflict("kubectl", ".spec.replicas", "Update", "apps/v1", "scale"),)
    assert fieldmanager.conflict_status_message(result.conflicts) == (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas'
    )
    assert fieldmanager.conflict_causes(result.conflicts) == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl" with subresource "scale" using apps/v1',
            "field": ".spec.replicas",
        }
    ]


def test_force_conflicts_moves_ownership_to_the_applier() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    scaled = updated(obj, {**obj, "spec": {**obj["spec"], "replicas": 5}}, "kubectl", T1, subresource="scale")
    forced = applied(scaled, deployment(), "kubectl", T2, force=True)
    assert forced["spec"]["replicas"] == 3
    assert [(entry["manager"], entry.get("subresource")) for entry in entries(forced)] == [("kubectl", None)]
    assert entries(forced)[0]["fieldsV1"] == APPLIED_DEPLOYMENT_FIELDS
    assert entries(forced)[0]["time"] == T2


def client_side_applied(config: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl apply` (client-side) creates: the object with its last-applied annotation."""
    obj = copy.deepcopy(config)
    obj["metadata"]["annotations"] = {fieldmanager.LAST_APPLIED_ANNOTATION: json.dumps(config) + "\n"}
    return updated(None, obj, "kubectl-client-side-apply", T0)


def test_kubectl_server_side_apply_takes_over_what_client_side_apply_set() -> None:
    live = client_side_applied(deployment())
    obj = applied(live, deployment(replicas=5), "kubectl", T1)
    assert obj["spec"]["replicas"] == 5
    assert "f:replicas" in owners(obj)["kubectl/"]["f:spec"]
    assert "f:replicas" not in owners(obj)["kubectl-client-side-apply/"]["f:spec"]
    last_applied = json.loads(obj["metadata"]["annotations"][fieldmanager.LAST_APPLIED_ANNOTATION])
    assert last_applied == deployment(replicas=5)


def test_another_manager_conflicts_with_client_side_apply() -> None:
    live = client_side_applied(deployment())
    result = fieldmanager.apply(live, deployment(replicas=5), "deployer", False, builtin, T1)
    assert fieldmanager.conflict_status_message(result.conflicts) == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )


def test_kubectl_still_conflicts_where_the_live_value_left_the_last_applied_one() -> None:
    live = client_side_applied(deployment())
    live = updated(live, {**live, "spec": {**live["spec"], "replicas": 4}}, "hpa", T1)
    result = fieldmanager.apply(live, deployment(replicas=5, image="nginx:1.28"), "kubectl", False, builtin, T2)
    assert [conflict.field for conflict in result.conflicts] == [".spec.replicas"]
    assert result.conflicts[0].message == 'conflict with "hpa" using apps/v1'


def test_conflicts_with_several_managers_are_grouped() -> None:
    live = client_side_applied(deployment())
    live = updated(live, {**live, "metadata": {**live["metadata"], "labels": {"app": "api"}}}, "editor", T1)
    result = fieldmanager.apply(live, deployment(replicas=5, image="nginx:1.28"), "deployer", False, builtin, T2)
    assert fieldmanager.conflict_status_message(result.conflicts) == (
        "Apply failed with 3 conflicts: "
        'conflicts with "editor" using apps/v1:\n'
        "- .metadata.labels.app\n"
        'conflicts with "kubectl-client-side-apply" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image'
    )


def test_an_apply_that_changes_nothing_keeps_the_time() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    again = applied(obj, deployment(), "kubectl", T1)
    assert again == obj
    assert again is not obj


def test_existing_fields_of_an_untracked_object_belong_to_before_first_apply() -> None:
    live = deployment()
    live["metadata"]["uid"] = "u1"
    result = fieldmanager.apply(live, deployment(replicas=5), "deployer", False, builtin, T0)
    assert [conflict.message for conflict in result.conflicts] == ['conflict with "before-first-apply" using apps/v1']


def test_apply_refuses_another_kind_and_managed_fields() -> None:
    with pytest.raises(fieldmanager.FieldManagerError) as raised:
        fieldmanager.apply(None, deployment(), "m", False, builtin, T0, api_version="apps/v1", kind="StatefulSet")
    assert (raised.value.code, raised.value.message) == (400, "invalid object type: apps/v1, Kind=Deployment")
    config = deployment(managedFields=[])
    with pytest.raises(fieldmanager.FieldManagerError) as raised:
        fieldmanager.apply(None, config, "m", False, builtin, T0)
    assert (raised.value.code, raised.value.message) == (400, "metadata.managedFields must be nil")


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        (
            [{"image": "x"}],
            "failed to create typed patch object (shop/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: "
            'element 0: associative list with keys has an element that omits all key fields ["name"] '
            "(and doesn't have default values for any key fields)",
        ),
        (
            [{"name": "a"}, {"name": "a"}],
            "failed to create typed patch object (shop/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: "
            'duplicate entries for key [name="a"]',
        ),
    ],
)
def test_apply_refuses_list_items_without_or_with_repeated_keys(containers: list[Any], message: str) -> None:
    config = deployment()
    config["spec"]["template"]["spec"]["containers"] = containers
    with pytest.raises(fieldmanager.FieldManagerError) as raised:
        fieldmanager.apply(None, config, "m", False, builtin, T0)
    assert (raised.value.code, raised.value.message) == (500, message)


def test_apply_changes_neither_argument() -> None:
    live = applied(None, deployment(), "kubectl", T0)
    config = deployment(replicas=2, image="nginx:2")
    before = copy.deepcopy((live, config))
    applied(live, config, "kubectl", T1)
    assert (live, config) == before


# --- updates --------------------------------------------------------------------------------------------------


def test_a_create_records_every_field_as_the_creators() -> None:
    obj = updated(None, deployment(), "kubectl-create", T0)
    [entry] = entries(obj)
    assert {key: entry[key] for key in ("manager", "operation", "apiVersion", "time")} == {
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": T0,
    }
    assert entry["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    containers = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers['k:{"name":"nginx"}'] == {
        ".": {},
        "f:image": {},
        "f:name": {},
        "f:ports": {".": {}, 'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
    }
    assert "." not in entry["fieldsV1"]["f:spec"]


def test_an_update_moves_the_changed_fields_to_its_manager() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    new = copy.deepcopy(obj)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    del new["metadata"]["labels"]
    obj = updated(obj, new, "kubectl-edit", T1)
    kubectl = owners(obj)["kubectl/"]
    assert "f:metadata" not in kubectl
    assert "f:image" not in kubectl["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert owners(obj)["kubectl-edit/"] == {
        "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"nginx"}': {"f:image": {}}}}}}
    }
    assert [(entry["operation"], entry["time"]) for entry in entries(obj)] == [("Apply", T0), ("Update", T1)]


def test_an_update_that_changes_no_field_records_nothing() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    same = copy.deepcopy(obj)
    same["metadata"]["resourceVersion"] = "42"
    assert entries(updated(obj, same, "kopf", T1)) == entries(obj)


def test_an_untracked_object_stays_untracked_until_applied() -> None:
    old = deployment()
    new = deployment(replicas=4)
    assert "managedFields" not in updated(old, new, "kopf", T1)["metadata"]


@pytest.mark.parametrize("reset", [[], [{}]])
def test_sending_empty_managed_fields_clears_them(reset: list[Any]) -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = reset
    assert "managedFields" not in updated(obj, new, "kubectl-patch", T1)["metadata"]


def test_managed_fields_sent_with_an_update_replace_the_live_ones() -> None:
    live = client_side_applied(deployment())
    moved = copy.deepcopy(live)
    moved["metadata"]["managedFields"][0].update(manager="kubectl", operation="Apply")
    obj = updated(live, moved, "kubectl", T1)
    assert [(entry["manager"], entry["operation"], entry["time"]) for entry in entries(obj)] == [
        ("kubectl", "Apply", T0)
    ]


def test_a_subresource_write_records_its_subresource_and_ignores_sent_managed_fields() -> None:
    obj = applied(None, deployment(), "kubectl", T0)
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 3}
    new["metadata"]["managedFields"] = []
    obj = updated(obj, new, "", T1, subresource="status")
    assert owners(obj)["unknown/status"] == {"f:status": {".": {}, "f:replicas": {}}}
    assert "kubectl/" in owners(obj)


def test_ignored_fields_are_owned_by_nobody() -> None:
    new = deployment()
    new["status"] = {"replicas": 1}
    obj = updated(None, new, "creator", T0, ignored=[("status",)])
    assert "f:status" not in owners(obj)["creator/"]


def test_more_than_ten_update_managers_fold_the_oldest_into_ancient_changes() -> None:
    obj = updated(None, deployment(), "creator", "2024-05-01T09:00:00Z")
    for index in range(11):
        new = copy.deepcopy(obj)
        new["metadata"]["labels"] = {**new["metadata"]["labels"], f"l{index}": "x"}
        obj = updated(obj, new, f"m{index}", f"2024-05-01T10:00:{index:02d}Z")
    managers = [entry["manager"] for entry in entries(obj)]
    assert len(managers) == 10
    assert managers[0] == "ancient-changes"
    assert owners(obj)["ancient-changes/"]["f:metadata"]["f:labels"]["f:l0"] == {}
    assert "creator" not in managers
    assert "m0" not in managers


@pytest.mark.parametrize(
    ("user_agent", "manager"),
    [
        ("kubectl/v1.37.0 (linux/amd64) kubernetes/abcdef0", "kubectl"),
        ("OpenAPI-Generator/33.1.0/python", "OpenAPI-Generator"),
        ("kopf/1.37.2", "kopf"),
        ("", ""),
        ("a\tb\x00c/1", "abc"),
        ("🍔" * 40, "🍔" * 32),
    ],
)
def test_the_manager_of_a_request_without_one_comes_from_its_user_agent(user_agent: str, manager: str) -> None:
    assert fieldmanager.manager_from_user_agent(user_agent) == manager


# --- properties -----------------------------------------------------------------------------------------------

names = st.sampled_from(["a", "b", "c"])
leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["x", "y"])
trees = st.recursive(leaves, lambda inner: st.dictionaries(names, inner, max_size=3), max_leaves=10)
configs = st.builds(
    lambda spec, labels: {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": labels},
        "spec": spec,
    },
    st.dictionaries(names, trees, max_size=3),
    st.dictionaries(names, st.sampled_from(["1", "2"]), max_size=2),
)


@settings(max_examples=100, deadline=None)
@given(first=configs, second=configs)
def test_applying_a_configuration_twice_changes_nothing_the_second_time(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    obj = applied(applied(None, first, "one", T0), second, "two", T1, force=True)
    assert applied(obj, second, "two", T2, force=True) == obj


@settings(max_examples=100, deadline=None)
@given(first=configs, second=configs)
def test_forced_apply_leaves_every_applied_value_in_place(first: dict[str, Any], second: dict[str, Any]) -> None:
    obj = applied(applied(None, first, "one", T0), second, "two", T1, force=True)

    def leaves_of(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
        if isinstance(value, dict):  # an applied {} keeps what the live object has there
            return [leaf for key, item in value.items() for leaf in leaves_of(item, (*path, key))]
        return [(path, value)]

    for path, value in leaves_of(second["spec"]):
        node: Any = obj["spec"]
        for key in path:
            node = node[key]
        if value is None and isinstance(node, dict):
            continue  # an applied null keeps a live object (it only claims it)
        assert node == value


@settings(max_examples=100, deadline=None)
@given(config=configs)
def test_recording_an_update_that_changes_nothing_keeps_the_managed_fields(config: dict[str, Any]) -> None:
    created = updated(None, config, "creator", T0)
    assert updated(created, copy.deepcopy(created), "other", T1) == created
