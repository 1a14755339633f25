"""Kopf's diff base is skipped only for kinds that no controller handles on change (controllers/essence.py)."""

from __future__ import annotations

import kopf
import pytest

from upkeep import controllers
from upkeep import settings as settings_
from upkeep.controllers import essence
from upkeep.model import schemas

CORE_PLURALS = {
    "Pod": "pods",
    "Node": "nodes",
    "Namespace": "namespaces",
    "ReplicaSet": "replicasets",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
}


def _resource(group: str, kind: str) -> kopf.Resource:
    if group == "upkeep.dev":
        crd = schemas.by_kind()[kind]
        return kopf.Resource(group, "v1alpha1", crd.plural, kind=kind, singular=crd.singular, namespaced=True)
    plural = CORE_PLURALS[kind]
    return kopf.Resource(group, "v1", plural, kind=kind, singular=kind.lower(), namespaced=kind not in ("Node",))


@pytest.mark.parametrize(("group", "kind"), sorted(essence.WITHOUT_CHANGE_HANDLERS))
def test_no_controller_handles_changes_of_a_kind_without_an_essence(group: str, kind: str) -> None:
    registry = kopf.OperatorRegistry()
    controllers.register(registry, settings_.OperatorSettings())
    resource = _resource(group, kind)
    changing = [
        handler.id
        for handler in registry._changing.get_all_handlers()
        if handler.selector is not None and handler.selector.check(resource)
    ]
    assert changing == [], f"{kind} has handlers on changes {changing}: take it out of WITHOUT_CHANGE_HANDLERS"


def test_the_check_would_see_a_handler_on_changes() -> None:
    registry = kopf.OperatorRegistry()
    controllers.register(registry, settings_.OperatorSettings())
    accepted = _resource("upkeep.dev", "SupportPolicy")
    assert any(
        handler.selector is not None and handler.selector.check(accepted)
        for handler in registry._changing.get_all_handlers()
    )


def test_a_kind_without_change_handlers_gets_an_empty_essence_and_others_kopfs_own() -> None:
    storage = essence.LeanDiffBase()
    pod = kopf.Body({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}})
    assert storage.build(body=pod) == {}
    policy = kopf.Body(
        {"apiVersion": "upkeep.dev/v1alpha1", "kind": "SupportPolicy", "metadata": {"name": "p"}, "spec": {"a": 1}}
    )
    assert storage.build(body=policy) == {"spec": {"a": 1}}
