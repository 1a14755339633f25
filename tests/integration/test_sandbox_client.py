"""The official Python client against the cluster: list then watch, resume, 410 and relist, conflicts."""

from __future__ import annotations

import datetime
import threading
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def configmap(name: str, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def test_list_then_watch_from_the_list_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, configmap("first", a="1"))
    listed = core.list_namespaced_config_map(namespace)
    assert [item.metadata.name for item in listed.items] == ["first"]
    events: list[tuple[str, str]] = []

    def follow() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=10,
        ):
            events.append((event["type"], event["object"].metadata.name))
            if len(events) == 3:
                stream.stop()

    follower = threading.Thread(target=follow)
    follower.start()
    core.create_namespaced_config_map(namespace, configmap("second", a="2"))
    core.patch_namespaced_config_map("second", namespace, {"data": {"a": "3"}})
    core.delete_namespaced_config_map("first", namespace)
    follower.join(15)
    assert events == [("ADDED", "second"), ("MODIFIED", "second"), ("DELETED", "first")]


def test_resource_versions_only_grow(core: client.CoreV1Api, namespace: str) -> None:
    versions = []
    for number in range(5):
        created = core.create_namespaced_config_map(namespace, configmap(f"cm-{number}"))
        versions.append(int(created.metadata.resource_version))
    assert versions == sorted(versions)
    assert len(set(versions)) == 5


def test_stale_update_is_a_conflict(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(namespace, configmap("contested", a="1"))
    core.patch_namespaced_config_map("contested", namespace, {"data": {"a": "2"}})
    created.data = {"a": "stale"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("contested", namespace, created)
    assert caught.value.status == 409
    assert "the object has been modified" in caught.value.body


def test_creating_an_existing_name_is_a_conflict(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, configmap("twice"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, configmap("twice"))
    assert caught.value.status == 409
    assert '"AlreadyExists"' in caught.value.body


def test_generate_name_and_paging(core: client.CoreV1Api, namespace: str) -> None:
    for _ in range(5):
        made = core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="page-"))
        )
        assert made.metadata.name.startswith("page-") and len(made.metadata.name) == 10
    first = core.list_namespaced_config_map(namespace, limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    names = [item.metadata.name for item in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        names += [item.metadata.name for item in page.items]
        token = page.metadata._continue
    assert len(names) == 5 == len(set(names))


def test_watch_after_compaction_gets_410_then_relists(cluster: Cluster, core: client.CoreV1Api, namespace: str) -> None:
    if cluster.sandbox is None:
        pytest.skip("compaction is a sandbox fault; a real cluster compacts on its own schedule")
    created = core.create_namespaced_config_map(namespace, configmap("old"))
    old_rv = created.metadata.resource_version
    core.patch_namespaced_config_map("old", namespace, {"data": {"a": "1"}})
    cluster.sandbox.call(cluster.sandbox.store.compact)
    stream = watch.Watch()
    with pytest.raises(ApiException) as caught:
        for _ in stream.stream(core.list_namespaced_config_map, namespace, resource_version=old_rv, timeout_seconds=5):
            pass
    assert caught.value.status == 410
    relisted = core.list_namespaced_config_map(namespace)
    assert [item.metadata.name for item in relisted.items] == ["old"]


def test_label_and_field_selectors(core: client.CoreV1Api, namespace: str) -> None:
    for name, tier in (("a", "front"), ("b", "back"), ("c", "front")):
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels={"tier": tier, "id": name}))
        )

    def names(**kwargs: str) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map(namespace, **kwargs).items]

    assert names(label_selector="tier=front") == ["a", "c"]
    assert names(label_selector="tier!=front") == ["b"]
    assert names(label_selector="id in (a,b),tier") == ["a", "b"]
    assert names(label_selector="!tier") == []
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, field_selector="data.a=1")
    assert caught.value.status == 400


def test_namespace_deletion_removes_its_contents(core: client.CoreV1Api) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(name, configmap("inside"))
    core.delete_namespace(name)
    eventually(
        lambda: name not in [n.metadata.name for n in core.list_namespace().items],
        timeout=10,
        message="namespace removal",
    )
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("inside", name)
    assert caught.value.status == 404


def test_events_are_one_resource_in_two_groups(cluster: Cluster, namespace: str) -> None:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        events = client.EventsV1Api(api)
        core.create_namespaced_event(
            namespace,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(name="from-core"),
                reason="Started",
                message="core says hello",
                type="Normal",
                involved_object=client.V1ObjectReference(kind="Pod", name="web", namespace=namespace),
                event_time=datetime.datetime(2026, 11, 21, 9, 0, tzinfo=datetime.UTC),
            ),
        )
        events.create_namespaced_event(
            namespace,
            client.EventsV1Event(
                metadata=client.V1ObjectMeta(name="from-events"),
                reason="Pulled",
                note="events.k8s.io says hello",
                type="Normal",
                action="Pull",
                reporting_controller="kubelet",
                reporting_instance="node-1",
                event_time=datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC),
                regarding=client.V1ObjectReference(kind="Pod", name="web", namespace=namespace),
            ),
        )
        as_core = {e.metadata.name: e for e in core.list_namespaced_event(namespace).items}
        as_events = {e.metadata.name: e for e in events.list_namespaced_event(namespace).items}
        assert set(as_core) == set(as_events) == {"from-core", "from-events"}
        assert as_core["from-events"].message == "events.k8s.io says hello"
        assert as_core["from-events"].involved_object.name == "web"
        assert as_events["from-core"].note == "core says hello"
        assert as_events["from-core"].regarding.kind == "Pod"
        selected = events.list_namespaced_event(namespace, field_selector="regarding.name=web")
        assert len(selected.items) == 2
    finally:
        api.close()
