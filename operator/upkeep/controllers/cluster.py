"""The cluster as the controllers write to it: a small seam over the Kubernetes API.

Kopf watches and reads; what a controller writes outside a handler's own object (an
Incident opened from a pod's event, a status written with optimistic concurrency) goes
through a ``Cluster``. ``KubernetesCluster`` is the real one: its requests are coroutines on
the operator's event loop (``asyncapi``), with credentials found as the official client finds
them (in-cluster service account, else the kubeconfig); only discovery (which plural a kind
has) uses the official client, once per kind. A unit test passes a fake ``Cluster``.

Errors: ``Conflict`` for a 409 on Upkeep's own kinds (the object exists, or the
``resourceVersion`` written against is stale); every other API error is ``asyncapi.ApiError``
with the HTTP ``status``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.controllers import asyncapi

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
_LISTS: Mapping[str, tuple[str, str, bool]] = {
    "Pod": ("v1", "pods", True),
    "Deployment": ("apps/v1", "deployments", True),
    "Node": ("v1", "nodes", False),
    "Job": ("batch/v1", "jobs", True),
}
"""Kind → (apiVersion, plural, namespaced) of the listable kinds."""
API_VERSION = f"{GROUP}/{VERSION}"

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


class KubernetesCluster:
    """The ``Cluster`` of the official Kubernetes client."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        self._client: Any = None
        self._api = asyncapi.AsyncApi(kubeconfig, connections=POOL_SIZE * 2)

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

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        """One request on the event loop (``asyncapi``); a 409 is ``Conflict``."""
        try:
            return await self._api.request(method, path, **options)
        except asyncapi.ApiError as error:
            if error.status == 409:
                raise Conflict(error.body or str(error)) from error
            raise

    # Custom objects of Upkeep's group, by plural

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self._request("GET", asyncapi.object_path(API_VERSION, plural, namespace, name))
        except asyncapi.ApiError as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    async def list_custom(self, plural: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        params = {"labelSelector": selector} if selector else {}
        found = await self._request("GET", asyncapi.object_path(API_VERSION, plural, namespace), params=params)
        return [dict(item) for item in found.get("items") or []]

    async def create_custom(self, plural: str, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        namespace = str(body["metadata"]["namespace"])
        params = {"fieldManager": FIELD_MANAGER, **({"dryRun": "All"} if dry_run else {})}
        created = await self._request(
            "POST", asyncapi.object_path(API_VERSION, plural, namespace), body=dict(body), params=params
        )
        return dict(created)

    async def replace_custom_status(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        metadata = body["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        written = await self._request(
            "PUT",
            asyncapi.object_path(API_VERSION, plural, namespace, name, "status"),
            body=dict(body),
            params={"fieldManager": FIELD_MANAGER},
        )
        return dict(written)

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        patched = await self._request(
            "PATCH",
            asyncapi.object_path(API_VERSION, plural, namespace, name, "status" if status else ""),
            body=dict(patch),
            content_type="application/merge-patch+json",
            params={"fieldManager": FIELD_MANAGER},
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
        try:
            found = await self._request("GET", asyncapi.object_path("v1", "secrets", namespace, name))
        except asyncapi.ApiError as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    async def list_objects(
        self, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        where = _LISTS.get(kind)
        if where is None:
            raise ValueError(f"cannot list {kind}; listable kinds: {', '.join(LISTABLE_KINDS)}")
        api_version, plural, namespaced = where
        params = {
            key: value for key, value in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if value
        }
        path = asyncapi.object_path(api_version, plural, namespace if namespaced else "")
        found = await self._request("GET", path, params=params)
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
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "DaemonSet": ("apps/v1", "daemonsets"),
    "ReplicaSet": ("apps/v1", "replicasets"),
    "Job": ("batch/v1", "jobs"),
    "Pod": ("v1", "pods"),
    "Node": ("v1", "nodes"),
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


class KubernetesPlaybookCluster(KubernetesCluster):
    """The ``PlaybookCluster`` of the official Kubernetes client."""

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind not in _WORKLOAD_READS:
            raise ValueError(f"cannot read {kind}; readable kinds: {', '.join(_WORKLOAD_READS)}")
        api_version, plural = _WORKLOAD_READS[kind]
        try:
            found = await self._request(
                "GET", asyncapi.object_path(api_version, plural, "" if kind == "Node" else namespace, name)
            )
        except asyncapi.ApiError as error:
            if error.status == 404:
                return None
            raise
        return dict(found)


# Actions (remediation steps): any object by apiVersion and kind, as upkeep.actions.base.ActionCluster


class KubernetesActionCluster(KubernetesCluster):
    """``actions.base.ActionCluster`` for any kind, found by discovery, with the calls on the event loop.

    Discovery (kind → plural, namespaced) is the official client's dynamic API, once per kind, on a thread;
    the requests are ``asyncapi``'s. Errors are ``asyncapi.ApiError`` with the HTTP status (a 409 stays a
    409: actions read again and retry), except what the protocol turns into answers: 404 on get is None, on
    delete False; 429 on evict is False. ``list`` with an empty namespace lists a namespaced kind across
    all namespaces (a drain's pods). Writes are recorded under the field manager ``upkeep``.
    ``kubeconfig``: a file to use instead of finding credentials as ``KubernetesCluster`` does (a test's
    sandbox).
    """

    def __init__(self, kubeconfig: str | None = None) -> None:
        super().__init__(kubeconfig)
        self._kubeconfig = kubeconfig
        self._dynamic: Any = None
        self._kinds: dict[tuple[str, str], tuple[str, bool]] = {}

    def _api_client(self) -> Any:
        if self._client is None and self._kubeconfig is not None:
            from kubernetes import client, config

            configuration = client.Configuration()
            config.load_kube_config(config_file=self._kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
            configuration.connection_pool_maxsize = POOL_SIZE
            self._client = client.ApiClient(configuration)
        return super()._api_client()

    async def _where(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from discovery once."""
        found = self._kinds.get((api_version, kind))
        if found is None:

            def discover() -> tuple[str, bool]:
                if self._dynamic is None:
                    from kubernetes import dynamic

                    self._dynamic = dynamic.DynamicClient(self._api_client())  # type: ignore[no-untyped-call]
                resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
                return str(resource.name), bool(resource.namespaced)

            found = self._kinds[(api_version, kind)] = await asyncio.to_thread(discover)
        return found

    async def _path(self, api_version: str, kind: str, namespace: str, name: str = "", subresource: str = "") -> str:
        plural, namespaced = await self._where(api_version, kind)
        return asyncapi.object_path(api_version, plural, namespace if namespaced else "", name, subresource)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self._api.request("GET", await self._path(api_version, kind, namespace, name))
        except asyncapi.ApiError as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    async def list(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        params = {
            key: value for key, value in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if value
        }
        found = await self._api.request("GET", await self._path(api_version, kind, namespace), params=params)
        items = [dict(item) for item in found.get("items") or []]
        for item in items:  # list items lack apiVersion and kind; actions read them
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def create(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        path = await self._path(str(body["apiVersion"]), str(body["kind"]), namespace)
        params = {"fieldManager": FIELD_MANAGER, **({"dryRun": "All"} if dry_run else {})}
        return dict(await self._api.request("POST", path, body=dict(body), params=params))

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
        params = {"fieldManager": FIELD_MANAGER, **({"dryRun": "All"} if dry_run else {})}
        path = await self._path(api_version, kind, namespace, name)
        written = await self._api.request(
            "PATCH", path, body=dict(patch), content_type="application/merge-patch+json", params=params
        )
        return dict(written)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None, dry_run: bool = False
    ) -> bool:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            await self._api.request("DELETE", await self._path(api_version, kind, namespace, name), body=body)
        except asyncapi.ApiError as error:
            # 404: gone already; 409 on a uid precondition: the name now belongs to another object.
            if error.status == 404 or (uid and error.status == 409):
                return False
            raise
        return True

    async def evict(
        self, namespace: str, name: str, *, dry_run: bool = False, grace_period_seconds: int | None = None
    ) -> bool:
        body: dict[str, Any] = {
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
        params = {"dryRun": "All"} if dry_run else {}
        try:
            await self._api.request(
                "POST", asyncapi.object_path("v1", "pods", namespace, name, "eviction"), body=body, params=params
            )
        except asyncapi.ApiError as error:
            if error.status == 429:
                return False
            if error.status == 404:
                return True
            raise
        return True
