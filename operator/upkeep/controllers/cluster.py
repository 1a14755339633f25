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

__all__ = ["LISTABLE_KINDS", "Cluster", "Conflict", "KubernetesCluster"]

INCIDENTS = "incidents"
PROBLEMS = "problems"
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

    async def list_objects(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        """The objects of a kind of ``LISTABLE_KINDS`` in the namespace (every node for Node)."""
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

    async def list_incidents(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        api = self._custom()
        found = await self._call(
            lambda: _json(
                api.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, INCIDENTS, label_selector=selector, _preload_content=False
                )
            )
        )
        return [dict(item) for item in found.get("items") or []]

    async def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        api = self._custom()
        try:
            found = await self._call(
                lambda: _json(
                    api.get_namespaced_custom_object(GROUP, VERSION, namespace, INCIDENTS, name, _preload_content=False)
                )
            )
        except Exception as error:
            if getattr(error, "status", None) == 404:
                return None
            raise
        return dict(found)

    async def create_incident(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        api = self._custom()
        namespace = str(body["metadata"]["namespace"])
        options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "_preload_content": False}
        if dry_run:
            options["dry_run"] = "All"
        created = await self._call(
            lambda: _json(
                api.create_namespaced_custom_object(GROUP, VERSION, namespace, INCIDENTS, dict(body), **options)
            )
        )
        return dict(created)

    async def replace_incident_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        api = self._custom()
        metadata = body["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        written = await self._call(
            lambda: _json(
                api.replace_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    INCIDENTS,
                    name,
                    dict(body),
                    field_manager=FIELD_MANAGER,
                    _preload_content=False,
                )
            )
        )
        return dict(written)

    async def patch_incident_labels(self, namespace: str, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        api = self._custom()
        patch = {"metadata": {"labels": dict(labels)}}
        patched = await self._call(
            lambda: _json(
                api.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    INCIDENTS,
                    name,
                    patch,
                    field_manager=FIELD_MANAGER,
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
            )
        )
        return dict(patched)

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

    async def list_objects(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        from kubernetes import client

        api_client = self._api_client()
        calls: dict[str, Callable[[], Any]] = {
            "Pod": lambda: client.CoreV1Api(api_client).list_namespaced_pod(namespace, _preload_content=False),
            "Deployment": lambda: client.AppsV1Api(api_client).list_namespaced_deployment(
                namespace, _preload_content=False
            ),
            "Node": lambda: client.CoreV1Api(api_client).list_node(_preload_content=False),
            "Job": lambda: client.BatchV1Api(api_client).list_namespaced_job(namespace, _preload_content=False),
        }
        if kind not in calls:
            raise ValueError(f"cannot list {kind}; listable kinds: {', '.join(LISTABLE_KINDS)}")
        call = calls[kind]
        found = await self._call(lambda: _json(call()))
        return [dict(item) for item in found.get("items") or []]

    # Problems (the problem controller)

    async def get_problem(self, namespace: str, name: str) -> dict[str, Any] | None:
        api = self._custom()
        try:
            found = await self._call(
                lambda: _json(
                    api.get_namespaced_custom_object(GROUP, VERSION, namespace, PROBLEMS, name, _preload_content=False)
                )
            )
        except Exception as error:
            if getattr(error, "status", None) == 404:
                return None
            raise
        return dict(found)

    async def create_problem(self, body: Mapping[str, Any]) -> dict[str, Any]:
        api = self._custom()
        namespace = str(body["metadata"]["namespace"])
        created = await self._call(
            lambda: _json(
                api.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PROBLEMS, dict(body), field_manager=FIELD_MANAGER, _preload_content=False
                )
            )
        )
        return dict(created)

    async def replace_problem_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        api = self._custom()
        metadata = body["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        written = await self._call(
            lambda: _json(
                api.replace_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    PROBLEMS,
                    name,
                    dict(body),
                    field_manager=FIELD_MANAGER,
                    _preload_content=False,
                )
            )
        )
        return dict(written)
