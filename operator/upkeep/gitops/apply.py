"""Server-side apply of declared objects, of any kind, over the official Kubernetes client.

The Release controller applies what git declares through an ``Applier``: server-side apply
(``PATCH`` with ``application/apply-patch+yaml``) as the field manager ``upkeep`` with
``force=true``, so the fields git declares are Upkeep's and only those; a field another manager
set and git does not mention is left alone. Kinds are found by discovery
(``kubernetes.dynamic``), so a custom resource is applied like a built-in one; discovery is read
again when a kind is not found, as after a CRD of the same set was applied. The client's calls
block, so each runs on a thread (``asyncio.to_thread``).

Errors name the object and carry the API server's own message (which names the field), and a
``reason`` for a condition::

    ApplyError                    the API server refused or could not answer (reason ApplyFailed)
     ├── UnknownKind              the cluster serves no such apiVersion and kind
     ├── Invalid                  400/422: the object is not valid (the message names the field)
     ├── NotFound                 404: what the object needs is missing (its namespace)
     ├── Forbidden                401/403: the operator may not do this (RBAC)
     ├── Conflict                 409: another writer got there first; reading again and retrying helps
     └── Unavailable              429/5xx or no connection: retrying later helps
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "FIELD_MANAGER",
    "PROPAGATION_POLICIES",
    "Applier",
    "ApplyError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Unavailable",
    "UnknownKind",
    "describe",
]

FIELD_MANAGER = "upkeep"
"""The field manager of every apply: ``metadata.managedFields`` shows which fields git holds."""
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
"""How a deletion treats dependents, as the Kubernetes delete options say (the Release's prune.propagationPolicy)."""


def describe(body: Mapping[str, Any]) -> str:
    """``Deployment shop/web`` or ``Namespace shop``: an object as messages name it."""
    metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    kind = str(body.get("kind") or "object")
    group = str(body.get("apiVersion") or "").rpartition("/")[0]
    kind = f"{kind}.{group}" if group and "." in group else kind
    namespace, name = metadata.get("namespace"), metadata.get("name") or "<no name>"
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


class ApplyError(Exception):
    """The API server refused a request about one object, or could not be reached.

    ``object`` names the object (``describe``), ``message`` is the API server's own words, and
    ``retryable`` says whether trying again later may help (a conflict, an unavailable server).
    """

    reason: ClassVar[str] = "ApplyFailed"
    retryable: ClassVar[bool] = False

    def __init__(self, object: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{object}: {message}")
        self.object = object
        self.message = message
        self.status = status


class UnknownKind(ApplyError):
    """The cluster serves no such apiVersion and kind (a CRD not installed, a typo in apiVersion)."""

    reason = "UnknownKind"


class Invalid(ApplyError):
    """The API server found the object invalid (400 or 422); the message names the field."""

    reason = "Invalid"


class NotFound(ApplyError):
    """404 on a write: something the object needs is missing, usually its namespace."""

    reason = "NotFound"


class Forbidden(ApplyError):
    """401 or 403: the operator's identity may not do this; its RBAC must grant it."""

    reason = "Forbidden"


class Conflict(ApplyError):
    """409: the object changed under the request; reading again and retrying helps."""

    reason = "Conflict"
    retryable = True


class Unavailable(ApplyError):
    """429, a 5xx, or no answer at all: the API server could not take the request now."""

    reason = "Unavailable"
    retryable = True


_BY_STATUS: Mapping[int, type[ApplyError]] = {
    400: Invalid,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: Unavailable,
}


def _api_message(error: BaseException) -> str:
    """The API server's message of an error response (its Status ``message``), else the error in short."""
    body = getattr(error, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body:
        try:
            decoded = json.loads(body)
        except ValueError:
            return body.strip()[:2000]
        if isinstance(decoded, Mapping) and decoded.get("message"):
            return str(decoded["message"])
    status = getattr(error, "status", None)
    if status is not None:
        return f"the API server answered {status} {getattr(error, 'reason', '') or ''}".strip()
    return f"{type(error).__name__}: {error}"


def classify(error: BaseException, object: str) -> ApplyError:
    """The ``ApplyError`` for an exception of the client (an ``ApiException`` or a connection error)."""
    if isinstance(error, ApplyError):
        return error
    status = getattr(error, "status", None)
    if isinstance(status, int):
        kind = _BY_STATUS.get(status, Unavailable if status >= 500 else ApplyError)
        return kind(object, _api_message(error), status=status)
    import urllib3

    if isinstance(error, OSError | urllib3.exceptions.HTTPError):
        return Unavailable(object, f"no answer from the API server ({type(error).__name__}: {error})")
    return ApplyError(object, f"the request could not be made ({type(error).__name__}: {error})")


class Applier:
    """Get, apply and delete objects of any kind the cluster serves.

    ``api_client``: a ``kubernetes.client.ApiClient`` to use; else one is made from ``kubeconfig``
    when given, else as ``kopf.login_via_client`` finds credentials (in-cluster, then the kubeconfig).
    """

    def __init__(
        self, api_client: Any = None, *, kubeconfig: str | None = None, field_manager: str = FIELD_MANAGER
    ) -> None:
        self._api_client = api_client
        self._kubeconfig = kubeconfig
        self._field_manager = field_manager
        self._dynamic: Any = None
        self._lock = threading.Lock()
        """Discovery is not safe to use from several threads at once; lookups take turns."""

    def _client(self) -> Any:
        if self._api_client is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            if self._kubeconfig is not None:
                config.load_kube_config(config_file=self._kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                try:
                    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                except config.ConfigException:
                    config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            configuration.connection_pool_maxsize = 32
            self._api_client = client.ApiClient(configuration)
        return self._api_client

    def _resource(self, api_version: str, kind: str, object: str) -> Any:
        """The dynamic client's resource of a kind; ``UnknownKind`` when the cluster does not serve it."""
        from kubernetes import dynamic
        from kubernetes.dynamic import exceptions

        with self._lock:
            if self._dynamic is None:
                try:
                    self._dynamic = dynamic.DynamicClient(self._client())  # type: ignore[no-untyped-call]
                except Exception as error:
                    raise classify(error, object) from error
            try:
                # A miss reads discovery again before it fails (LazyDiscoverer), so a kind whose CRD was
                # just applied is found once the API server serves it.
                return self._dynamic.resources.get(api_version=api_version, kind=kind)
            except (exceptions.ResourceNotFoundError, exceptions.ResourceNotUniqueError) as error:
                raise UnknownKind(object, f"the cluster serves no kind {kind} in {api_version}") from error
            except Exception as error:
                raise classify(error, object) from error

    async def namespaced(self, api_version: str, kind: str) -> bool:
        """Whether the kind lives in namespaces; ``UnknownKind`` when the cluster does not serve it."""
        resource = await asyncio.to_thread(self._resource, api_version, kind, f"{kind} ({api_version})")
        return bool(resource.namespaced)

    async def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object with the identity of ``obj`` (apiVersion, kind, namespace, name), or None."""
        object = describe(obj)

        def call() -> dict[str, Any] | None:
            resource = self._resource(str(obj.get("apiVersion")), str(obj.get("kind")), object)
            metadata = obj.get("metadata") or {}
            try:
                found = resource.get(
                    name=metadata.get("name"), namespace=metadata.get("namespace") or None, serializer=_raw
                )
            except Exception as error:
                if getattr(error, "status", None) == 404:
                    return None
                raise classify(error, object) from error
            return _plain(found)

        return await asyncio.to_thread(call)

    async def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` (force: git wins conflicts with other managers); the object as written.

        ``dry_run``: the API server checks and defaults the object (``dryRun=All``) and persists nothing.
        """
        object = describe(obj)

        def call() -> dict[str, Any]:
            resource = self._resource(str(obj.get("apiVersion")), str(obj.get("kind")), object)
            metadata = obj.get("metadata") or {}
            options: dict[str, Any] = {
                "field_manager": self._field_manager,
                "force_conflicts": True,
                "serializer": _raw,
            }
            if dry_run:
                options["dry_run"] = "All"
            namespace = metadata.get("namespace") or None
            if not metadata.get("name"):
                raise Invalid(object, "metadata.name is required: server-side apply addresses an object by its name")
            if resource.namespaced and namespace is None:
                raise Invalid(object, "metadata.namespace is required: the kind lives in namespaces")
            try:
                written = resource.server_side_apply(
                    body=dict(obj),
                    name=metadata.get("name"),
                    namespace=namespace if resource.namespaced else None,
                    **options,
                )
            except Exception as error:
                raise classify(error, object) from error
            return _plain(written)

        return await asyncio.to_thread(call)

    async def delete(self, obj: Mapping[str, Any], propagation: str = "Background", *, dry_run: bool = False) -> bool:
        """Delete the object; False when it was gone already. ``propagation``: one of ``PROPAGATION_POLICIES``."""
        if propagation not in PROPAGATION_POLICIES:
            raise ValueError(f"propagation {propagation!r}: use one of {', '.join(PROPAGATION_POLICIES)}")
        object = describe(obj)

        def call() -> bool:
            resource = self._resource(str(obj.get("apiVersion")), str(obj.get("kind")), object)
            metadata = obj.get("metadata") or {}
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
            if dry_run:
                body["dryRun"] = ["All"]
            try:
                resource.delete(name=metadata.get("name"), namespace=metadata.get("namespace") or None, body=body)
            except Exception as error:
                if getattr(error, "status", None) == 404:
                    return False
                raise classify(error, object) from error
            return True

        return await asyncio.to_thread(call)


def _raw(_client: Any, data: Any) -> Any:
    """The dynamic client's serializer for plain JSON: its ``ResourceInstance`` wraps every nested field in an
    object, only for ``to_dict`` to turn it back into dicts."""
    return data


def _plain(found: Any) -> dict[str, Any]:
    return dict(found.to_dict()) if hasattr(found, "to_dict") else dict(found)
