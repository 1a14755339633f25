"""The cluster as the controllers write to it: a small seam over the official Kubernetes client.

Kopf watches and reads; what a controller writes outside a handler's own object (an
Incident opened from a pod's event, a status written with optimistic concurrency) goes
through a ``Cluster``. ``KubernetesCluster`` is the real one: the official client, its
blocking calls run on threads, credentials found as ``kopf.login_via_client`` finds them
(in-cluster service account, else the kubeconfig). A unit test passes a fake ``Cluster``.

Errors: ``Conflict`` for a 409 (the object exists, or the ``resourceVersion`` written
against is stale); every other API error is the client's ``ApiException``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from upkeep import GROUP, VERSION
from upkeep import settings as settings_

__all__ = [
    "LISTABLE_KINDS",
    "PLAYBOOKS",
    "PLAYBOOK_RUNS",
    "Cluster",
    "Conflict",
    "KubernetesActionCluster",
    "KubernetesCluster",
    "KubernetesPlaybookCluster",
    "PlaybookCluster",
]

INCIDENTS = "incidents"
PROBLEMS = "problems"
POOL_SIZE = settings_.ClientSettings().threads
"""Connections each client keeps open: one per thread that may call it at once (``ClientSettings.threads``)."""
FIELD_MANAGER = "upkeep"
"""The field manager the operator's writes are recorded under (``metadata.managedFields``)."""

LISTABLE_KINDS = ("Pod", "Deployment", "Node", "Job")
"""The kinds ``Cluster.list_objects`` lists: those the detectors look at."""

T = TypeVar("T")


class Conflict(Exception):
    """The API server answered 409: the object exists already, or was changed since it was read."""


class Cluster(Protocol):
    """What the incident controller reads and writes besides its watches."""

    async def list_incidents(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The Incidents of the namespace that carry all these labels."""
        ...

    async def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Incident, or None when there is none of that name."""
        ...

    async def create_incident(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create an Incident (``Conflict`` when it exists); ``dry_run``: validate only, persist nothing."""
        ...

    async def replace_incident_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``body["status"]``, provided the Incident still has ``body``'s resourceVersion (else ``Conflict``)."""
        ...

    async def patch_incident_labels(self, namespace: str, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """Add labels to an Incident; the result is the whole object."""
        ...

    async def list_objects(
        self, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        """The objects of a kind of ``LISTABLE_KINDS`` in the namespace (every node for Node) the selectors pick."""
        ...

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Secret (``data`` base64 as the API returns it), or None when there is none of that name."""
        ...

    # Problems (the problem controller)

    async def get_problem(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Problem, or None when there is none of that name."""
        ...

    async def create_problem(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Problem (``Conflict`` when it exists)."""
        ...

    async def replace_problem_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``body["status"]``, provided the Problem still has ``body``'s resourceVersion (else ``Conflict``)."""
        ...


def _conflicts(error: Exception) -> bool:
    return getattr(error, "status", None) == 409


def _json(response: Any) -> Any:
    data = getattr(response, "data", response)
    if isinstance(data, bytes | str):
        return json.loads(data)
    return data


class KubernetesCluster:
    """The ``Cluster`` of the official Kubernetes client."""

    def __init__(self) -> None:
        self._client: Any = None

    def _api_client(self) -> Any:
        if self._client is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            configuration.connection_pool_maxsize = POOL_SIZE
            self._client = client.ApiClient(configuration)
        return self._client

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self._api_client())

    async def _call(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except Exception as error:
            if _conflicts(error):
                raise Conflict(str(getattr(error, "body", "") or error)) from error
            raise

    # Custom objects of Upkeep's group, by plural

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        api = self._custom()
        try:
            found = await self._call(
                lambda: _json(
                    api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, _preload_content=False)
                )
            )
        except Exception as error:
            if _missing(error):
                return None
            raise
        return dict(found)

    async def list_custom(self, plural: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        api = self._custom()
        found = await self._call(
            lambda: _json(
                api.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, label_selector=selector, _preload_content=False
                )
            )
        )
        return [dict(item) for item in found.get("items") or []]

    async def create_custom(self, plural: str, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        api = self._custom()
        namespace = str(body["metadata"]["namespace"])
        options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "_preload_content": False}
        if dry_run:
            options["dry_run"] = "All"
        created = await self._call(
            lambda: _json(api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, dict(body), **options))
        )
        return dict(created)

    async def replace_custom_status(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        api = self._custom()
        metadata = body["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        written = await self._call(
            lambda: _json(
                api.replace_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    dict(body),
                    field_manager=FIELD_MANAGER,
                    _preload_content=False,
                )
            )
        )
        return dict(written)

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        api = self._custom()
        method = api.patch_namespaced_custom_object_status if status else api.patch_namespaced_custom_object
        patched = await self._call(
            lambda: _json(
                method(
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    dict(patch),
                    field_manager=FIELD_MANAGER,
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
            )
        )
        return dict(patched)

    # Incidents (the incident controller)

    async def list_incidents(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return await self.list_custom(INCIDENTS, namespace, labels)

    async def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get_custom(INCIDENTS, namespace, name)

    async def create_incident(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        return await self.create_custom(INCIDENTS, body, dry_run=dry_run)

    async def replace_incident_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.replace_custom_status(INCIDENTS, body)

    async def patch_incident_labels(self, namespace: str, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        return await self.patch_custom(INCIDENTS, namespace, name, {"metadata": {"labels": dict(labels)}})

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes import client

        api = client.CoreV1Api(self._api_client())
        try:
            found = await self._call(lambda: _json(api.read_namespaced_secret(name, namespace, _preload_content=False)))
        except Exception as error:
            if getattr(error, "status", None) == 404:
                return None
            raise
        return dict(found)

    async def list_objects(
        self, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        from kubernetes import client

        api_client = self._api_client()
        options: dict[str, Any] = {"_preload_content": False}
        if label_selector:
            options["label_selector"] = label_selector
        if field_selector:
            options["field_selector"] = field_selector
        calls: dict[str, Callable[[], Any]] = {
            "Pod": lambda: client.CoreV1Api(api_client).list_namespaced_pod(namespace, **options),
            "Deployment": lambda: client.AppsV1Api(api_client).list_namespaced_deployment(namespace, **options),
            "Node": lambda: client.CoreV1Api(api_client).list_node(**options),
            "Job": lambda: client.BatchV1Api(api_client).list_namespaced_job(namespace, **options),
        }
        if kind not in calls:
            raise ValueError(f"cannot list {kind}; listable kinds: {', '.join(LISTABLE_KINDS)}")
        call = calls[kind]
        found = await self._call(lambda: _json(call()))
        return [dict(item) for item in found.get("items") or []]

    # Problems (the problem controller)

    async def get_problem(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get_custom(PROBLEMS, namespace, name)

    async def create_problem(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.create_custom(PROBLEMS, body)

    async def replace_problem_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.replace_custom_status(PROBLEMS, body)


# Playbooks (the playbook controller): Playbooks, PlaybookRuns, Incident specs and the workloads they verify

PLAYBOOKS = "playbooks"
PLAYBOOK_RUNS = "playbookruns"
RELEASES = "releases"
_WORKLOAD_READS: Mapping[str, tuple[str, str]] = {
    "Deployment": ("AppsV1Api", "read_namespaced_deployment"),
    "StatefulSet": ("AppsV1Api", "read_namespaced_stateful_set"),
    "DaemonSet": ("AppsV1Api", "read_namespaced_daemon_set"),
    "ReplicaSet": ("AppsV1Api", "read_namespaced_replica_set"),
    "Job": ("BatchV1Api", "read_namespaced_job"),
    "Pod": ("CoreV1Api", "read_namespaced_pod"),
    "Node": ("CoreV1Api", "read_node"),
}
"""Kind → (API class, read method) of the workloads a Playbook's verification reads."""


class PlaybookCluster(Cluster, Protocol):
    """What the playbook controller reads and writes besides its watches (Upkeep's own kinds by plural)."""

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One Upkeep object, or None when there is none of that name."""
        ...

    async def list_custom(self, plural: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The Upkeep objects of a plural in the namespace that carry all these labels."""
        ...

    async def create_custom(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an Upkeep object (``Conflict`` when it exists)."""
        ...

    async def replace_custom_status(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``body["status"]`` provided the object still has ``body``'s resourceVersion (else ``Conflict``)."""
        ...

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        """A JSON merge patch of an Upkeep object (of its status subresource when ``status``)."""
        ...

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod or Node; None when there is none."""
        ...


def _missing(error: Exception) -> bool:
    return getattr(error, "status", None) == 404


class KubernetesPlaybookCluster(KubernetesCluster):
    """The ``PlaybookCluster`` of the official Kubernetes client."""

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes import client

        if kind not in _WORKLOAD_READS:
            raise ValueError(f"cannot read {kind}; readable kinds: {', '.join(_WORKLOAD_READS)}")
        api_name, method_name = _WORKLOAD_READS[kind]
        read = getattr(getattr(client, api_name)(self._api_client()), method_name)
        arguments: tuple[str, ...] = (name,) if kind == "Node" else (name, namespace)
        try:
            found = await self._call(lambda: _json(read(*arguments, _preload_content=False)))
        except Exception as error:
            if _missing(error):
                return None
            raise
        return dict(found)


# Actions (remediation steps): any object by apiVersion and kind, as upkeep.actions.base.ActionCluster


class KubernetesActionCluster(KubernetesCluster):
    """``actions.base.ActionCluster`` over the official client's dynamic API (any kind, found by discovery).

    Errors are the client's ``ApiException`` (a 409 stays a 409: actions read again and retry), except
    what the protocol turns into answers: 404 on get is None, on delete False; 429 on evict is False.
    ``list`` with an empty namespace lists a namespaced kind across all namespaces (a drain's pods).
    Writes are recorded under the field manager ``upkeep``. ``kubeconfig``: a file to use instead of
    finding credentials as ``KubernetesCluster`` does (a test's sandbox).
    """

    def __init__(self, kubeconfig: str | None = None) -> None:
        super().__init__()
        self._kubeconfig = kubeconfig
        self._dynamic: Any = None

    def _api_client(self) -> Any:
        if self._client is None and self._kubeconfig is not None:
            from kubernetes import client, config

            configuration = client.Configuration()
            config.load_kube_config(config_file=self._kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
            configuration.connection_pool_maxsize = POOL_SIZE
            self._client = client.ApiClient(configuration)
        return super()._api_client()

    def _resource(self, api_version: str, kind: str) -> Any:
        if self._dynamic is None:
            from kubernetes import dynamic

            self._dynamic = dynamic.DynamicClient(self._api_client())  # type: ignore[no-untyped-call]
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    @staticmethod
    def _plain(found: Any) -> dict[str, Any]:
        return dict(found.to_dict()) if hasattr(found, "to_dict") else dict(found)

    @staticmethod
    def _raw(_client: Any, data: Any) -> Any:
        """The dynamic client's serializer for plain JSON: its own ``ResourceInstance`` wraps every nested
        field in an object, which cost a tenth of the operator's CPU under a hundred incidents
        (bench/remediation.py), only for ``_plain`` to turn it back into dicts."""
        return data

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            resource = self._resource(api_version, kind)
            try:
                found = resource.get(name=name, namespace=namespace or None, serializer=self._raw)
            except Exception as error:
                if _missing(error):
                    return None
                raise
            return self._plain(found)

        return await asyncio.to_thread(call)

    async def list(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        def call() -> list[dict[str, Any]]:
            resource = self._resource(api_version, kind)
            options: dict[str, Any] = {}
            if label_selector:
                options["label_selector"] = label_selector
            if field_selector:
                options["field_selector"] = field_selector
            found = self._plain(resource.get(namespace=namespace or None, serializer=self._raw, **options))
            items = [dict(item) for item in found.get("items") or []]
            for item in items:  # list items lack apiVersion and kind; actions read them
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
            return items

        return await asyncio.to_thread(call)

    async def create(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            resource = self._resource(str(body["apiVersion"]), str(body["kind"]))
            namespace = (body.get("metadata") or {}).get("namespace")
            options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "serializer": self._raw}
            if dry_run:
                options["dry_run"] = "All"
            return self._plain(resource.create(body=dict(body), namespace=namespace or None, **options))

        return await asyncio.to_thread(call)

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            resource = self._resource(api_version, kind)
            options: dict[str, Any] = {
                "field_manager": FIELD_MANAGER,
                "content_type": "application/merge-patch+json",
                "serializer": self._raw,
            }
            if dry_run:
                options["dry_run"] = "All"
            return self._plain(resource.patch(body=dict(patch), name=name, namespace=namespace or None, **options))

        return await asyncio.to_thread(call)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None, dry_run: bool = False
    ) -> bool:
        def call() -> bool:
            resource = self._resource(api_version, kind)
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
            if uid:
                body["preconditions"] = {"uid": uid}
            if dry_run:
                body["dryRun"] = ["All"]
            try:
                resource.delete(name=name, namespace=namespace or None, body=body, serializer=self._raw)
            except Exception as error:
                # 404: gone already; 409 on a uid precondition: the name now belongs to another object.
                if _missing(error) or (uid and _conflicts(error)):
                    return False
                raise
            return True

        return await asyncio.to_thread(call)

    async def evict(
        self, namespace: str, name: str, *, dry_run: bool = False, grace_period_seconds: int | None = None
    ) -> bool:
        from kubernetes import client

        api = client.CoreV1Api(self._api_client())
        body: Any = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        options: dict[str, Any] = {}
        if dry_run:
            options["dryRun"] = ["All"]
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if options:
            body["deleteOptions"] = options

        def call() -> bool:
            query: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
            try:
                api.create_namespaced_pod_eviction(name, namespace, body, _preload_content=False, **query)
            except Exception as error:
                status = getattr(error, "status", None)
                if status == 429:
                    return False
                if status == 404:
                    return True
                raise
            return True

        return await asyncio.to_thread(call)
