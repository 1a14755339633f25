"""The API server runs a CRD's CEL rules on every write: create, update, patches, apply, status, dry run."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from upkeep.sandbox import apiserver, kinds, status
from upkeep.sandbox.store import Store

# A root rule that looks at spec and status together, as the Incident CRD's do.
RULES = [
    {
        "rule": "!has(self.status) || !has(self.spec.level) || self.spec.level >= self.status.floor",
        "messageExpression": "'level ' + string(self.spec.level) + ' is below the floor ' + string(self.status.floor)",
        "fieldPath": ".spec.level",
    },
    {"rule": "!has(oldSelf.spec.owner) || self.spec.owner == oldSelf.spec.owner", "message": "owner is immutable"},
]
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gauges.ex.com"},
    "spec": {
        "group": "ex.com",
        "scope": "Namespaced",
        "names": {"kind": "Gauge", "plural": "gauges", "singular": "gauge", "listKind": "GaugeList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-validations": RULES,
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "level": {"type": "integer"},
                                    "owner": {"type": "string"},
                                    "kind": {"type": "string", "enum": ["a", "b"]},
                                },
                            },
                            "status": {"type": "object", "properties": {"floor": {"type": "integer"}}},
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def api() -> apiserver.ApiServer:
    server = apiserver.ApiServer(Store())
    crds = server.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crds is not None
    server.create(crds, "", copy.deepcopy(CRD), apiserver.Request())
    return server


def gauges(api: apiserver.ApiServer) -> kinds.ResourceType:
    found = api.lookup("ex.com", "v1", "gauges")
    assert found is not None
    return found


def gauge(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ex.com/v1", "kind": "Gauge", "metadata": {"name": "g"}, "spec": spec}


def refused(call: Any) -> status.ApiError:
    with pytest.raises(status.ApiError) as caught:
        call()
    assert caught.value.code == 422
    return caught.value


def with_floor(api: apiserver.ApiServer, floor: int) -> None:
    body = {**api.get(gauges(api), "default", "g"), "status": {"floor": floor}}
    api.update(gauges(api), "default", "g", body, apiserver.Request(), subresource="status")


def test_update_merge_patch_and_apply_run_the_rules_against_the_stored_status(api: apiserver.ApiServer) -> None:
    api.create(gauges(api), "default", gauge(level=5, owner="ops"), apiserver.Request())
    with_floor(api, 3)
    before = api.get(gauges(api), "default", "g")["metadata"]["resourceVersion"]

    error = refused(
        lambda: api.patch(
            gauges(api), "default", "g", "application/merge-patch+json", {"spec": {"level": 1}}, apiserver.Request()
        )
    )
    assert (
        error.message
        == 'Gauge.ex.com "g" is invalid: spec.level: Invalid value: "object": level 1 is below the floor 3'
    )
    assert error.details is not None and error.details["causes"][0]["field"] == "spec.level"

    refused(lambda: api.update(gauges(api), "default", "g", gauge(level=2, owner="ops"), apiserver.Request()))
    refused(
        lambda: api.patch(
            gauges(api),
            "default",
            "g",
            "application/apply-patch+yaml",
            gauge(level=2),
            apiserver.Request(field_manager="me", force=True),
        )
    )
    # Dry run is refused the same way.
    refused(lambda: api.update(gauges(api), "default", "g", gauge(level=2, owner="ops"), apiserver.Request(True)))
    assert api.get(gauges(api), "default", "g")["metadata"]["resourceVersion"] == before

    api.patch(gauges(api), "default", "g", "application/merge-patch+json", {"spec": {"level": 4}}, apiserver.Request())


def test_transition_rules_run_on_update_only(api: apiserver.ApiServer) -> None:
    api.create(gauges(api), "default", gauge(owner="ops"), apiserver.Request())
    error = refused(
        lambda: api.patch(
            gauges(api), "default", "g", "application/merge-patch+json", {"spec": {"owner": "dev"}}, apiserver.Request()
        )
    )
    assert error.message == 'Gauge.ex.com "g" is invalid: <nil>: Invalid value: "object": owner is immutable'


def test_status_writes_run_the_rules_too(api: apiserver.ApiServer) -> None:
    api.create(gauges(api), "default", gauge(level=2), apiserver.Request())
    with_floor(api, 1)
    error = refused(lambda: with_floor(api, 5))
    assert "level 2 is below the floor 5" in error.message
    assert api.get(gauges(api), "default", "g")["status"] == {"floor": 1}


def test_create_with_a_schema_error_does_not_run_the_rules(api: apiserver.ApiServer) -> None:
    error = refused(lambda: api.create(gauges(api), "default", gauge(kind="z"), apiserver.Request()))
    assert [cause["field"] for cause in (error.details or {})["causes"]] == ["spec.kind", "<nil>"]
    assert "some validation rules were not checked" in error.message


def test_a_crd_whose_rule_does_not_compile_is_refused(api: apiserver.ApiServer) -> None:
    crds = api.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crds is not None
    broken = copy.deepcopy(CRD)
    broken["metadata"]["name"] = "meters.ex.com"
    broken["spec"]["names"] = {"kind": "Meter", "plural": "meters"}
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [{"rule": "self.spec ==="}]
    error = refused(lambda: api.create(crds, "", broken, apiserver.Request()))
    assert "x-kubernetes-validations[0].rule" in error.message and "compilation failed" in error.message
    assert api.lookup("ex.com", "v1", "meters") is None
