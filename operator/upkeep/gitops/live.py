"""The live objects that manifests declare, read from a cluster: the base side of ``upkeep plan --cluster``.

Read-only, through the official Kubernetes client and its discovery (``kubernetes.dynamic``), so
any kind the cluster serves, custom resources included, is read like a built-in one. The cluster
is the one the kubeconfig names (``KUBECONFIG``, else ``~/.kube/config``), in its current context
or the one asked for. An object the cluster does not have, or of a kind it does not serve (a CRD
that the same change adds), reads as absent: applying would create it.

Errors: ``ClusterUnavailable`` for everything that stops the reading (no kubeconfig, an unknown
context, no answer, credentials refused, a read forbidden); its message names the context and
what to fix, never a credential.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_TIMEOUT", "ClusterReader", "ClusterUnavailable", "connect"]

DEFAULT_TIMEOUT = 15.0
"""Seconds one request to the API server may take: a plan is interactive or a CI step, not a daemon."""


class ClusterUnavailable(Exception):
    """The cluster could not be read: no kubeconfig or context, no answer, or a refusal."""


def _describe(body: Mapping[str, Any], namespace: str | None) -> str:
    metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    name = str(metadata.get("name") or "<no name>")
    return f"{body.get('kind') or 'object'} {namespace}/{name}" if namespace else f"{body.get('kind')} {name}"


def _api_message(error: Any) -> str:
    """The API server's own message of an error response, else its status."""
    body = getattr(error, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body:
        with contextlib.suppress(ValueError):
            decoded = json.loads(body)
            if isinstance(decoded, Mapping) and decoded.get("message"):
                return str(decoded["message"])
    return f"the API server answered {getattr(error, 'status', '?')} {getattr(error, 'reason', '') or ''}".strip()


@dataclass
class ClusterReader:
    """Reads live objects in one context of a kubeconfig; made by ``connect``."""

    context: str
    """The kubeconfig context read, for people: ``upkeep plan`` names it in its header."""
    namespace: str
    """The context's namespace (``default`` when it names none): where a namespaced object without one is."""
    _dynamic: Any
    _timeout: float

    def get(self, body: Mapping[str, Any], namespace: str = "") -> dict[str, Any] | None:
        """The live object ``body`` declares, or None when the cluster has none or does not serve its kind.

        ``namespace`` is used for a namespaced object that names none (a Release's target namespace);
        without it, the context's namespace.
        """
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic import exceptions

        metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
        assert isinstance(metadata, Mapping)
        try:
            resource = self._dynamic.resources.get(api_version=str(body.get("apiVersion")), kind=str(body.get("kind")))
        except exceptions.ResourceNotFoundError:
            return None
        except exceptions.ResourceNotUniqueError as error:
            raise ClusterUnavailable(f"{body.get('apiVersion')} {body.get('kind')} is ambiguous: {error}") from error
        except Exception as error:
            raise self._unavailable(error) from error
        where = (str(metadata.get("namespace") or "") or namespace or self.namespace) if resource.namespaced else None
        try:
            found = resource.get(name=str(metadata.get("name") or ""), namespace=where, _request_timeout=self._timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise ClusterUnavailable(
                f"cannot read {_describe(body, where)} in context {self.context!r}: {_api_message(error)}"
            ) from error
        except Exception as error:
            raise self._unavailable(error) from error
        live: dict[str, Any] = found.to_dict()
        return live

    def _unavailable(self, error: BaseException) -> ClusterUnavailable:
        return ClusterUnavailable(
            f"no answer from the cluster of context {self.context!r}: {type(error).__name__}: {str(error)[:300]}"
        )


@contextlib.contextmanager
def connect(
    *, context: str | None = None, kubeconfig: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Iterator[ClusterReader]:
    """A reader of the cluster that ``kubeconfig`` (default: ``KUBECONFIG``, else ``~/.kube/config``) names.

    Asks the API server for its API versions first, so an unreachable cluster or refused credentials fail
    here, in ``timeout`` seconds, with a message naming the context. Discovery is cached in a private
    folder that goes away with the block, never in a file shared with other runs.
    """
    from kubernetes import client, config, dynamic
    from kubernetes.client.exceptions import ApiException

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError, TypeError) as error:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterUnavailable(f"no usable kubeconfig at {where}: {error}; set KUBECONFIG or --kubeconfig") from error
    chosen = next((entry for entry in contexts if entry.get("name") == context), None) if context else active
    if not chosen:
        names = ", ".join(sorted(str(entry.get("name")) for entry in contexts)) or "none"
        raise ClusterUnavailable(f"no context {context!r} in the kubeconfig (it has: {names}); check --context")
    name = str(chosen.get("name"))
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=name, client_configuration=configuration, persist_config=False
        )
    except (config.ConfigException, OSError, ValueError) as error:
        raise ClusterUnavailable(f"cannot use context {name!r} of the kubeconfig: {error}") from error
    configuration.retries = 0  # an unreachable cluster is said at once, not after urllib3's backoff
    api_client = client.ApiClient(configuration)
    folder = tempfile.mkdtemp(prefix="upkeep-discovery-")
    try:
        try:
            # /api, what discovery reads first; not CoreApi's "/api/", which not every server answers
            request = api_client.param_serialize(
                "GET", "/api", header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
            )
            response = api_client.call_api(*request, _request_timeout=timeout)
            if not 200 <= response.status <= 299:
                response.read()  # type: ignore[no-untyped-call]
                api_client.response_deserialize(response, {})  # raises the ApiException of the answer
        except ApiException as error:
            hint = "; check the credentials of the context" if error.status in (401, 403) else ""
            raise ClusterUnavailable(
                f"the cluster of context {name!r} refused the request: {_api_message(error)}{hint}"
            ) from error
        except Exception as error:
            raise ClusterUnavailable(
                f"no answer from the cluster of context {name!r} at {configuration.host} "
                f"({type(error).__name__}: {str(error)[:300]}); is it running, and is this the right context?"
            ) from error
        try:
            discovered = dynamic.DynamicClient(api_client, cache_file=os.path.join(folder, "discovery.json"))  # type: ignore[no-untyped-call]
        except Exception as error:
            raise ClusterUnavailable(f"discovery failed on the cluster of context {name!r}: {error}") from error
        namespace = str((chosen.get("context") or {}).get("namespace") or "default")
        yield ClusterReader(name, namespace, discovered, timeout)
    finally:
        api_client.close()  # type: ignore[no-untyped-call]
        shutil.rmtree(folder, ignore_errors=True)
