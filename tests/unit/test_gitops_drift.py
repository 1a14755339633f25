"""Drift: the fields git declares that the live object no longer says, and the body that heals them."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upkeep.engine import fieldpaths
from upkeep.gitops import drift

MEMORY = "spec.template.spec.containers[name=shop].resources.limits.memory"
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {
                    "containers": [
                        {
                            "name": "shop",
                            "image": "shop:1.0",
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "MODE", "value": "live"}, {"name": "EMPTY", "value": ""}],
                            "resources": {"limits": {"memory": "1Gi", "cpu": "0.5"}},
                        },
                        {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "3600"]},
                    ]
                },
            },
        },
    }


def as_served(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server gives back for ``desired``: its metadata, defaults, canonical quantities, status."""
    live = copy.deepcopy(desired)
    live["metadata"].update(
        uid="0b1c",
        resourceVersion="42",
        generation=3,
        creationTimestamp="2026-11-21T10:00:00Z",
        managedFields=[{"manager": "upkeep"}],
        annotations={"deployment.kubernetes.io/revision": "3"},
    )
    spec = live["spec"]
    spec["progressDeadlineSeconds"] = 600
    spec["strategy"]["type"] = "RollingUpdate"
    spec["strategy"]["rollingUpdate"] = {"maxSurge": "1", "maxUnavailable": "25%"}
    pod = spec["template"]["spec"]
    pod["restartPolicy"] = "Always"
    shop, sidecar = pod["containers"]
    pod["containers"] = [sidecar, shop]  # the server may keep another order; matched by name
    shop["ports"][0]["protocol"] = "TCP"
    shop["env"][1].pop("value")  # omitempty
    shop["resources"]["limits"] = {"memory": "1024Mi", "cpu": "500m"}
    shop["terminationMessagePath"] = "/dev/termination-log"
    sidecar["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 2, "observedGeneration": 3}
    return live


def paths_of(found: list[drift.FieldDrift]) -> list[str]:
    return [item.path for item in found]


def test_no_drift_from_what_the_server_serves() -> None:
    assert drift.drifted_fields(deployment(), as_served(deployment())) == []


def test_a_changed_image_is_drift_at_its_container() -> None:
    live = as_served(deployment())
    live["spec"]["template"]["spec"]["containers"][1]["image"] = "shop:2.0-hotfix"

    found = drift.drifted_fields(deployment(), live)

    assert found == [drift.FieldDrift("spec.template.spec.containers[name=shop].image", "shop:1.0", "shop:2.0-hotfix")]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.replicas", 5, "spec.replicas"),
        ("spec.replicas", "2", None),  # an int and the same number as text
        (MEMORY, "2Gi", MEMORY),
        (MEMORY, "1073741824", None),
        ("spec.template.spec.containers[name=shop].resources.limits.cpu", "0.5", None),
        ("spec.template.spec.containers[name=shop].resources.limits.cpu", "600m", "resources.limits.cpu"),
        ("spec.template.spec.containers[name=shop].env[name=MODE].value", "test", "env[name=MODE].value"),
        ("spec.template.spec.containers[name=shop].ports[0].containerPort", 9090, "ports[0].containerPort"),
        ("spec.strategy.rollingUpdate.maxSurge", 2, "spec.strategy.rollingUpdate.maxSurge"),
        ("metadata.labels.app", "other", "metadata.labels.app"),
        ("metadata.labels.extra", "added-by-someone", None),  # not declared by git
        ("spec.template.spec.containers[name=sidecar].args", ["sleep", "60"], "containers[name=sidecar].args"),
        ("spec.template.spec.containers[name=sidecar].args", ["sleep"], "containers[name=sidecar].args"),
        ("spec.paused", True, None),  # git does not declare it
    ],
)
def test_drift_of_one_field(path: str, value: Any, expected: str | None) -> None:
    live = fieldpaths.with_value(as_served(deployment()), path, value)

    found = paths_of(drift.drifted_fields(deployment(), live))

    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].endswith(expected), found


def test_quantities_are_compared_by_meaning_only_where_they_are_quantities() -> None:
    desired: dict[str, Any] = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"version": "1.10"}},
        "data": {"v": "1.10"},
    }
    live = copy.deepcopy(desired)
    live["metadata"]["labels"]["version"] = "1.1"
    live["data"]["v"] = "1.1"

    assert paths_of(drift.drifted_fields(desired, live)) == ["data.v", "metadata.labels.version"]


def test_a_bool_is_not_a_number() -> None:
    desired = {"kind": "X", "metadata": {"name": "x"}, "spec": {"enabled": True, "count": 1}}
    live = {"kind": "X", "metadata": {"name": "x"}, "spec": {"enabled": 1, "count": True}}

    assert paths_of(drift.drifted_fields(desired, live)) == ["spec.count", "spec.enabled"]


def test_missing_container_and_missing_key_are_drift_where_they_start() -> None:
    live = as_served(deployment())
    containers = live["spec"]["template"]["spec"]["containers"]
    live["spec"]["template"]["spec"]["containers"] = [item for item in containers if item["name"] != "sidecar"]
    del live["spec"]["template"]["spec"]["containers"][0]["resources"]

    found = drift.drifted_fields(deployment(), live)

    assert paths_of(found) == [
        "spec.template.spec.containers[name=shop].resources",
        "spec.template.spec.containers[name=sidecar]",
    ]
    assert found[1].live is None and found[1].desired["image"] == "busybox:1.36"


def test_an_item_another_manager_added_to_a_named_list_is_not_drift() -> None:
    live = as_served(deployment())
    live["spec"]["template"]["spec"]["containers"].append({"name": "injected-proxy", "image": "envoy:1"})

    assert drift.drifted_fields(deployment(), live) == []


def test_keys_with_dots_are_quoted_so_the_path_reads_back() -> None:
    desired = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"app.properties": "a=1"}}
    live = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"app.properties": "a=2"}}

    [found] = drift.drifted_fields(desired, live)

    assert found.path == 'data["app.properties"]'
    assert fieldpaths.get(live, found.path) == "a=2"


# -- overrides -----------------------------------------------------------------------------------


def status_override(**changes: Any) -> dict[str, Any]:
    entry = {
        "id": "pbr-1/raise-memory",
        "target": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "shop"},
        "fieldPath": MEMORY,
        "value": "1536Mi",
        "reason": "setOverride by PlaybookRun pbr-1",
        "expiresAt": "2026-11-21T13:00:00Z",
    }
    entry.update(changes)
    return entry


def test_overrides_are_read_from_the_status_the_playbook_controller_writes() -> None:
    [override] = drift.parse_overrides([status_override()])

    assert override.id == "pbr-1/raise-memory"
    assert override.target == drift.ObjectKey("apps/v1", "Deployment", "shop", "shop")
    assert override.field_path == MEMORY and override.value == "1536Mi"
    assert override.active(NOW)
    assert not override.active(datetime.datetime(2026, 11, 21, 13, 0, tzinfo=datetime.UTC))


def test_unusable_override_entries_are_left_out_and_an_unreadable_expiry_has_expired() -> None:
    found = drift.parse_overrides(
        [
            status_override(id=""),
            status_override(fieldPath="spec..x"),
            status_override(target={"kind": "Deployment"}),
            "not an entry",
            status_override(id="no-expiry", expiresAt="soon"),
        ]
    )

    assert [override.id for override in found] == ["no-expiry"]
    assert not found[0].active(NOW)
    assert drift.parse_overrides(None) == []


def test_heal_body_holds_active_overrides_at_their_paths() -> None:
    overrides = drift.parse_overrides([status_override()])

    body = drift.heal_body(deployment(), overrides)

    assert fieldpaths.get(body, MEMORY) == "1536Mi"
    assert drift.drifted_fields(body, deployment()) == [drift.FieldDrift(MEMORY, "1536Mi", "1Gi")]


def test_heal_body_leaves_other_objects_and_paths_that_lead_nowhere() -> None:
    other = drift.parse_overrides([status_override(target={"kind": "Deployment", "name": "billing"})])
    gone = drift.parse_overrides([status_override(fieldPath="spec.template.spec.containers[name=old].image")])

    assert drift.heal_body(deployment(), [*other, *gone]) == deployment()


def test_override_target_matching_is_lenient_about_version_and_unset_namespace() -> None:
    key = drift.ObjectKey("apps/v1", "Deployment", "shop", "shop")

    assert drift.ObjectKey("apps/v1beta2", "Deployment", "shop", "shop").matches(key)
    assert drift.ObjectKey("", "Deployment", "", "shop").matches(key)
    assert not drift.ObjectKey("extensions/v1", "Deployment", "shop", "shop").matches(key)
    assert not drift.ObjectKey("apps/v1", "Deployment", "other", "shop").matches(key)
    assert key.to_dict() == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "shop"}
    assert drift.ObjectKey("v1", "Namespace", "", "shop").to_dict() == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "name": "shop",
    }


@pytest.mark.parametrize(
    ("held", "field", "covered"),
    [
        (MEMORY, MEMORY, True),
        ("spec.template.spec.containers[name=shop].resources", MEMORY, True),
        (MEMORY, "spec.template.spec.containers[name=shop].resources", True),
        (MEMORY, "spec.template.spec.containers[name=shop].image", False),
        ('spec.template.spec.containers[name="shop"].resources.limits.memory', MEMORY, True),
        (MEMORY, "spec.template.spec.containers[name=other].resources.limits.memory", False),
    ],
)
def test_an_override_covers_its_field_and_what_is_around_it(held: str, field: str, covered: bool) -> None:
    assert drift.covers(held, field) is covered


# -- properties ----------------------------------------------------------------------------------

_names = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
_scalars = st.one_of(
    st.integers(-1000, 1000), st.text(max_size=8), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(_names, children, max_size=4),
        st.lists(st.fixed_dictionaries({"name": _names, "value": children}), max_size=3, unique_by=lambda i: i["name"]),
    ),
    max_leaves=20,
)
_objects = st.fixed_dictionaries(
    {
        "apiVersion": st.just("example.com/v1"),
        "kind": st.just("Widget"),
        "metadata": st.fixed_dictionaries({"name": _names, "namespace": _names}),
        "spec": st.dictionaries(_names, _values, max_size=5),
    }
)


def _add_defaults(value: Any, extra: Any) -> Any:
    """``value`` with keys the server might add to every mapping, and server metadata at the top."""
    if isinstance(value, dict):
        out = {key: _add_defaults(child, extra) for key, child in value.items()}
        for key, default in extra.items():
            out.setdefault(f"zz{key}", default)
        return out
    if isinstance(value, list):
        return [_add_defaults(item, extra) for item in value]
    return value


@settings(max_examples=200, deadline=None)
@given(_objects)
def test_an_object_never_drifts_from_itself(obj: dict[str, Any]) -> None:
    assert drift.drifted_fields(obj, copy.deepcopy(obj)) == []


@settings(max_examples=200, deadline=None)
@given(_objects, st.dictionaries(_names, _scalars, min_size=1, max_size=3))
def test_an_object_never_drifts_from_a_copy_with_server_defaults(obj: dict[str, Any], extra: dict[str, Any]) -> None:
    live = _add_defaults(obj, extra)
    live["metadata"].update(uid="u", resourceVersion="7", generation=2, managedFields=[{"manager": "upkeep"}])
    live["status"] = {"observedGeneration": 2}

    assert drift.drifted_fields(obj, live) == []


@settings(max_examples=200, deadline=None)
@given(_objects, _names, _values)
def test_an_override_is_applied_at_its_path(obj: dict[str, Any], key: str, value: Any) -> None:
    path = f"spec.{key}"
    entry = {
        "id": "o",
        "target": {"kind": "Widget", "name": obj["metadata"]["name"]},
        "fieldPath": path,
        "value": value,
        "expiresAt": "2026-11-21T13:00:00Z",
    }
    overrides = drift.parse_overrides([entry])

    body = drift.heal_body(obj, overrides)

    assert fieldpaths.get(body, path) == value
    assert {k: v for k, v in body["spec"].items() if k != key} == {k: v for k, v in obj["spec"].items() if k != key}
    assert drift.drifted_fields(body, body) == []
