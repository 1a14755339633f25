"""The sandbox's HTTP face: the Kubernetes REST API over aiohttp.

Routing of /api and /apis paths, discovery (plain and aggregated), OpenAPI v3, content
negotiation (JSON, YAML bodies, server-side Tables), bearer-token authentication, watch
streams with bookmarks, and the subresources status, scale, log and eviction. The meaning
of each call lives in ``apiserver``; this module only translates HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from upkeep.sandbox import apiserver, conversion, fieldmanager, kinds, openapi, patching, rbac, status, tables, tokens
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Gone, Store, Write

__all__ = ["SANDBOX_KEY", "SandboxConfig", "User", "build_app"]

logger = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024
KUBERNETES_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-upkeep-sandbox",
    "gitCommit": "sandbox",
    "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
ISSUER_AUDIENCE = tokens.ISSUER
SANDBOX_KEY: web.AppKey[Sandbox] = web.AppKey("sandbox")
CONTROL_PLANE_KEY: web.AppKey[Any] = web.AppKey("control-plane")
WARMUP_KEY: web.AppKey[asyncio.Task[None]] = web.AppKey("protobuf-warmup")


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


@dataclass
class Faults:
    """API faults injected on purpose (tests, demos): answers refused, slowed down; watches dropped."""

    refuse_until: float = 0.0
    refuse_code: int = 503
    latency_until: float = 0.0
    latency: float = 0.0

    async def before_request(self) -> None:
        now = asyncio.get_running_loop().time()
        if self.latency_until > now and self.latency > 0:
            await asyncio.sleep(self.latency)
        if self.refuse_until > now:
            reason = "ServiceUnavailable" if self.refuse_code == 503 else "TooManyRequests"
            message = (
                "the sandbox is unavailable on purpose (an injected fault)"
                if self.refuse_code == 503
                else "too many requests (an injected fault), please try again later"
            )
            retry = max(1, round(self.refuse_until - now))
            raise status.ApiError(
                self.refuse_code,
                reason,
                message,
                details={"retryAfterSeconds": retry},
                headers={"Retry-After": str(retry)},
            )

    def clear(self) -> None:
        self.refuse_until = self.latency_until = 0.0


FAULT_TYPES = ("unavailable", "throttle", "latency", "drop-watches", "compact", "clear")
WORKLOAD_FAULT_TYPES = (
    "crashloop",
    "imagepull",
    "oom",
    "unready",
    "clear-pod-faults",
    "node-down",
    "node-up",
    "pod-kill",
)


@dataclass
class SandboxConfig:
    """How the server authenticates and how its watch streams behave."""

    tokens: dict[str, User] = field(default_factory=dict)
    """Bearer token → user. Empty: every request is refused (401) except health checks."""
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """The key service-account tokens are signed with (kept in the state directory when there is one)."""
    rbac: bool = True
    """Enforce RBAC as a real cluster does (users in system:masters may do everything). Off: every
    authenticated user may do everything."""
    admin: bool = False
    """Serve the fault endpoint POST /upkeep-sandbox/faults (admin users only). Off by default."""
    bookmark_interval: float = 10.0
    """Seconds between periodic BOOKMARK events on watches that asked for them (a real server: about a minute)."""


def _json(
    data: Any, code: int = 200, *, content_type: str = "application/json", headers: Mapping[str, str] | None = None
) -> web.Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return web.Response(body=body, status=code, headers={**(headers or {}), "Content-Type": content_type})


def _error(error: status.ApiError) -> web.Response:
    return _json(error.status(), error.code, headers=error.headers)


class Sandbox:
    """The aiohttp handlers over one ApiServer."""

    def __init__(self, store: Store, config: SandboxConfig) -> None:
        self.store = store
        self.config = config
        self.api = apiserver.ApiServer(store, on_change=self._types_changed)
        self._discovery_cache: dict[str, Any] = {}
        self.faults = Faults()
        self.simulation: Any = None
        """The simulated cluster's Context when nodes and controllers run (None: an API server only)."""
        self.service_account_tokens = tokens.ServiceAccountTokens(config.signing_key)
        self.authorizer = self.api.authorizer()

    def _types_changed(self) -> None:
        self._discovery_cache.clear()

    # authentication

    def _user(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = header[7:].strip()
            user = self.config.tokens.get(token)
            if user is not None:
                return user
            claims = self.service_account_tokens.verify(token)
            if claims is not None:
                account = self.store.get("/serviceaccounts", claims.namespace, claims.name)
                if account is not None and account["metadata"].get("uid") == claims.uid:
                    return User(claims.username, claims.uid, claims.groups)
        raise status.unauthorized()

    def _token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """POST serviceaccounts/NAME/token: a token for the ServiceAccount, as `kubectl create token` asks."""
        account = self.store.get("/serviceaccounts", namespace, name)
        if account is None:
            raise status.not_found("serviceaccounts", "", name)
        spec = (body or {}).get("spec") or {} if isinstance(body, dict) else {}
        seconds = spec.get("expirationSeconds") or 3600
        if not isinstance(seconds, int) or seconds < 600:
            raise status.invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.expirationSeconds",
                        "message": f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                    }
                ],
            )
        audiences = tuple(spec.get("audiences") or (ISSUER_AUDIENCE,))
        token, expires = self.service_account_tokens.issue(
            namespace, name, str(account["metadata"]["uid"]), audiences=audiences, seconds=seconds
        )
        expiry = datetime.datetime.fromtimestamp(expires, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {"audiences": list(audiences), "expirationSeconds": seconds, "boundObjectRef": None},
            "status": {"token": token, "expirationTimestamp": expiry},
        }

    # discovery

    def _group_versions(self) -> dict[str, list[kinds.ResourceType]]:
        found: dict[str, list[kinds.ResourceType]] = {}
        for rtype in self.api.served_types():
            found.setdefault(rtype.group_version, []).append(rtype)
        return found

    def _resource_list(self, group_version: str) -> dict[str, Any] | None:
        types = self._group_versions().get(group_version)
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rtype in sorted(types, key=lambda t: t.plural):
            entry: dict[str, Any] = {
                "name": rtype.plural,
                "singularName": rtype.singular,
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": list(rtype.verbs),
            }
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            if rtype.categories:
                entry["categories"] = list(rtype.categories)
            entry["storageVersionHash"] = hashlib.sha256(f"{rtype.group}/{rtype.plural}".encode()).hexdigest()[:12]
            resources.append(entry)
            for sub in rtype.subresources:
                sub_entry: dict[str, Any] = {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1", kind="Scale")
                elif sub == "log":
                    sub_entry.update(kind="Pod", verbs=["get"])
                elif sub == "eviction":
                    sub_entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
                elif sub == "token":
                    sub_entry.update(group="authentication.k8s.io", version="v1", kind="TokenRequest", verbs=["create"])
                resources.append(sub_entry)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    def _groups(self) -> list[tuple[str, list[str]]]:
        by_group: dict[str, list[str]] = {}
        for rtype in self.api.served_types():
            if rtype.group:
                versions = by_group.setdefault(rtype.group, [])
                if rtype.version not in versions:
                    versions.append(rtype.version)
        return sorted(by_group.items())

    def _preferred(self, group: str, versions: list[str]) -> str:
        storage = [t.version for t in self.api.served_types() if t.group == group and t.storage]
        return storage[0] if storage else versions[0]

    def _aggregated(self, core: bool) -> dict[str, Any]:
        items = []
        entries = [("", ["v1"])] if core else self._groups()
        for group, versions in entries:
            version_entries = []
            ordered = [self._preferred(group, versions)] + [
                v for v in versions if v != self._preferred(group, versions)
            ]
            for version in ordered:
                resources = []
                types = [t for t in self.api.served_types() if t.group == group and t.version == version]
                for rtype in sorted(types, key=lambda t: t.plural):
                    entry: dict[str, Any] = {
                        "resource": rtype.plural,
                        "responseKind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
                        "scope": "Namespaced" if rtype.namespaced else "Cluster",
                        "singularResource": rtype.singular,
                        "verbs": list(rtype.verbs),
                    }
                    if rtype.short_names:
                        entry["shortNames"] = list(rtype.short_names)
                    if rtype.categories:
                        entry["categories"] = list(rtype.categories)
                    subs = []
                    for sub in rtype.subresources:
                        kind = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
                        verbs = ["get", "patch", "update"]
                        if sub == "scale":
                            kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
                        elif sub == "log":
                            kind, verbs = {"group": "", "version": "", "kind": "Pod"}, ["get"]
                        elif sub == "eviction":
                            kind, verbs = {"group": "policy", "version": "v1", "kind": "Eviction"}, ["create"]
                        elif sub == "token":
                            kind = {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}
                            verbs = ["create"]
                        subs.append({"subresource": sub, "responseKind": kind, "verbs": verbs})
                    if subs:
                        entry["subresources"] = subs
                    resources.append(entry)
                version_entries.append({"version": version, "resources": resources, "freshness": "Current"})
            metadata: dict[str, Any] = {"creationTimestamp": None}
            if group:
                metadata["name"] = group
            items.append({"metadata": metadata, "versions": version_entries})
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}

    def _discovery(self, request: web.Request, core: bool) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "apidiscovery.k8s.io" in accept and "v=v2;" in accept.replace(" ", "") + ";":
            body = self._aggregated(core)
            etag = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            return _json(body, headers={"Content-Type": _AGGREGATED, "Etag": f'"{etag}"'}, content_type=_AGGREGATED)
        if core:
            host = request.host
            return _json(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
                }
            )
        groups = []
        for group, versions in self._groups():
            preferred = self._preferred(group, versions)
            groups.append(
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
                }
            )
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    # openapi

    def _openapi(self, request: web.Request) -> web.Response:
        tail = request.match_info.get("tail", "")
        types = self.api.served_types()
        if not tail:
            return _json(openapi.openapi_v3_root(types))
        document = openapi.openapi_v3_document(
            tail.replace("apis/", "", 1) if tail.startswith("apis/") else tail.replace("api/", "", 1), types
        )
        if document is None:
            return _error(status.ApiError(404, "NotFound", "the server could not find the requested resource"))
        return _json(
            document,
            headers={"Cache-Control": "public, immutable" if request.query.get("hash") else "no-cache, private"},
        )

    # resources

    def authorize(self, request: web.Request) -> User:
        """The request's user, if RBAC allows the request (401 or 403 otherwise)."""
        user = self._user(request)
        if self.config.rbac:
            attributes = rbac.request_attributes(request.method, request.path, request.query, user.name, user.groups)
            decision = self.authorizer.authorize(attributes)
            if not decision.allowed:
                body = rbac.forbidden_status(attributes, decision.reason)
                raise status.ApiError(403, "Forbidden", body["message"], details=body.get("details"))
        return user

    async def resource(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self.authorize(request)
            await self.faults.before_request()
            return await self._resource(request, user)
        except status.ApiError as error:
            return _error(error)
        except tables.InvalidTableOptions as error:
            return _error(status.bad_request(str(error)))
        except fieldmanager.FieldManagerError as error:
            return _error(status.ApiError(error.code, error.reason or "InternalError", error.message))
        except patching.PatchError as error:
            return _error(status.ApiError(error.code, error.reason or "InternalError", error.message))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as error:
            # A bug of the sandbox's: say so as a Status, log it, and keep serving.
            logger.exception("internal error on %s %s", request.method, request.path)
            return _error(status.ApiError(500, "InternalError", f"Internal error occurred: {error}"))

    def _route(self, request: web.Request) -> tuple[kinds.ResourceType, str | None, str | None, str]:
        """(type, namespace, name, subresource) from the path."""
        parts = [p for p in request.path.split("/") if p]
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) < 3:
                raise status.ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = parts[1], parts[2], parts[3:]
        if rest and rest[0] == "watch":
            rest = rest[1:]
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and self.api.lookup(group, version, rest[2]) is not None
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest:
            raise status.ApiError(404, "NotFound", "the server could not find the requested resource")
        rtype = self.api.lookup(group, version, rest[0])
        if rtype is None:
            raise status.ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if rtype.builtin and rtype.kind == "Pod" and sub in ("exec", "attach", "portforward"):
            raise status.bad_request(
                f"the sandbox runs no containers, so pods/{sub} is not available "
                f"(kubectl exec, attach and port-forward need a real cluster)"
            )
        if sub and sub not in rtype.subresources and not (rtype.kind == "Namespace" and sub == "finalize"):
            raise status.ApiError(404, "NotFound", "the server could not find the requested resource")
        if rtype.namespaced and namespace is None and name is not None:
            raise status.ApiError(404, "NotFound", "the server could not find the requested resource")
        return rtype, namespace, name, sub

    _TOO_LARGE = f"Request entity too large: limit is {MAX_BODY}"
    _WRITE_TYPES: tuple[str, ...] = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
    _PATCH_TYPES: tuple[str, ...] = (
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    )

    def _content_type(self, request: web.Request) -> str:
        """The request's media type, refused with 415 when the method takes no such body."""
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        if request.method == "PATCH":
            accepted = self._PATCH_TYPES
        elif request.method in ("POST", "PUT"):
            accepted = self._WRITE_TYPES
        else:
            return content_type
        if content_type not in accepted:
            raise status.ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(accepted)}",
            )
        return content_type

    async def _body(self, request: web.Request, rtype: kinds.ResourceType | None = None) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise status.ApiError(413, "RequestEntityTooLarge", self._TOO_LARGE)
        content_type = self._content_type(request)
        raw = bytearray()
        async for chunk in request.content.iter_any():
            raw.extend(chunk)
            if len(raw) > MAX_BODY:
                raise status.ApiError(413, "RequestEntityTooLarge", self._TOO_LARGE)
        if not bytes(raw).strip():
            return None
        if content_type == "application/vnd.kubernetes.protobuf":
            return self._protobuf_body(bytes(raw))
        expected = f" (must be of type {rtype.kind})" if rtype is not None else ""
        try:
            if content_type in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(raw.decode("utf-8"))
            return json.loads(raw)
        except yaml.YAMLError as error:
            raise status.bad_request(
                f"the object provided is unrecognized{expected}: error converting YAML to JSON: yaml: "
                f"{str(error).splitlines()[0]}"
            ) from None
        except (ValueError, UnicodeDecodeError) as error:
            raise status.bad_request(
                f"the object provided is unrecognized{expected}: couldn't get version/kind; json parse error: {error}"
            ) from None

    @staticmethod
    def _check_accept(request: web.Request) -> None:
        """406 when the client accepts none of the media types the sandbox answers with."""
        accept = request.headers.get("Accept", "")
        if not accept.strip():
            return
        for part in accept.split(","):
            media = part.split(";")[0].strip().lower()
            if media in (
                "*/*",
                "application/*",
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
                "application/json;stream=watch",
            ):
                return
        raise status.ApiError(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, "
            "application/vnd.kubernetes.protobuf",
        )

    def _protobuf_body(self, raw: bytes) -> Any:
        """kubectl's typed clients send built-in kinds as protobuf, with no fallback to JSON."""
        from upkeep.sandbox import protobuf

        try:
            return protobuf.decode_request(raw)
        except protobuf.ProtobufUnavailable as error:
            raise status.ApiError(
                415,
                "UnsupportedMediaType",
                f"the sandbox cannot read protobuf bodies here: {error}; send JSON (application/json)",
            ) from None
        except ValueError as error:
            raise status.bad_request(f"the body of the request could not be decoded as protobuf: {error}") from None

    _SUBRESOURCE_METHODS: Mapping[str, tuple[str, ...]] = {
        "status": ("GET", "PUT", "PATCH"),
        "scale": ("GET", "PUT", "PATCH"),
        "log": ("GET",),
        "eviction": ("POST",),
        "finalize": ("PUT",),
        "token": ("POST",),
    }
    _VERB_OF: Mapping[str, str] = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "GET": "get",
        "DELETE": "delete",
    }

    def _check_method(
        self, rtype: kinds.ResourceType, method: str, name: str | None, sub: str, request: web.Request
    ) -> None:
        """405 for what kube-apiserver has no route for: the verbs a resource serves, per subresource."""
        if sub:
            allowed = method in self._SUBRESOURCE_METHODS.get(sub, ())
        elif name is None:
            watch = request.query.get("watch") in ("1", "true") or "/watch/" in request.path
            verb = {"GET": "watch" if watch else "list", "POST": "create", "DELETE": "deletecollection"}.get(method)
            allowed = verb is not None and verb in rtype.verbs
        else:
            verb = self._VERB_OF.get(method)
            allowed = verb is not None and verb in rtype.verbs
        if not allowed:
            raise status.ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                details={"kind": rtype.plural, "group": rtype.group} if rtype.group else {"kind": rtype.plural},
            )

    @staticmethod
    def _integer(query: Mapping[str, str], key: str, default: int, *, minimum: int = 0) -> int:
        text = query.get(key)
        if text in (None, ""):
            return default
        try:
            value = int(str(text))
        except ValueError:
            raise status.bad_request(f'{key}: Invalid value: "{text}": must be an integer') from None
        if value < minimum or value > 2**63 - 1:
            raise status.bad_request(f"{key}: Invalid value: {value}: must be between {minimum} and 2^63-1")
        return value

    def _write_request(self, request: web.Request) -> apiserver.Request:
        query = request.query
        causes: list[dict[str, str]] = []
        validation = query.get("fieldValidation", "Warn")
        if validation not in ("Ignore", "Warn", "Strict"):
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "field": "fieldValidation",
                    "message": f'Unsupported value: "{validation}": supported values: "Ignore", "Strict", "Warn"',
                }
            )
        dry = query.getall("dryRun", [])
        bad_dry = [value for value in dry if value != "All"]
        if bad_dry:
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "field": "dryRun",
                    "message": f'Unsupported value: {json.dumps(bad_dry)}: supported values: "All"',
                }
            )
        manager = query.get("fieldManager", "")
        if len(manager) > 128:
            causes.append(
                {
                    "reason": "FieldValueTooLong",
                    "field": "fieldManager",
                    "message": "Too long: may not be more than 128 bytes",
                }
            )
        policy = query.get("propagationPolicy")
        if policy is not None and policy not in ("Foreground", "Background", "Orphan"):
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "field": "propagationPolicy",
                    "message": f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                }
            )
        if causes:
            kind = {"DELETE": "DeleteOptions", "PATCH": "PatchOptions", "PUT": "UpdateOptions"}.get(
                request.method, "CreateOptions"
            )
            raise status.invalid(kind, "meta.k8s.io", "", causes)
        return apiserver.Request(
            dry_run=bool(dry),
            field_manager=manager,
            field_validation=validation,
            user_agent=request.headers.get("User-Agent", ""),
            force=query.get("force") == "true",
        )

    def _respond(
        self,
        request: web.Request,
        rtype: kinds.ResourceType,
        obj: dict[str, Any],
        code: int = 200,
        warnings: list[str] | None = None,
    ) -> web.Response:
        headers = {}
        if warnings:
            headers["Warning"] = ", ".join(f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"' for w in warnings)
        accept = request.headers.get("Accept", "")
        if "as=Table" in accept:
            table = tables.table(
                rtype,
                [obj],
                now=datetime.datetime.now(datetime.UTC),
                include_object=request.query.get("includeObject", "Metadata"),
                list_metadata=None,
            )
            return _json(table, code, headers=headers)
        if "as=PartialObjectMetadata" in accept:
            return _json(
                {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]},
                code,
                headers=headers,
            )
        return _json(obj, code, headers=headers)

    def _journal(
        self,
        verb: str,
        rtype: kinds.ResourceType,
        namespace: str,
        name: str,
        subresource: str,
        user: User,
        write: apiserver.Request,
    ) -> None:
        """Record a write request that succeeded in the store's journal (``store.Write``)."""
        self.store.record(
            Write(
                rv=self.store.rv,
                verb=verb,
                resource=f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural,
                namespace=namespace,
                name=name,
                subresource=subresource,
                user=user.name,
                manager=write.field_manager or fieldmanager.manager_from_user_agent(write.user_agent),
                dry_run=write.dry_run,
            )
        )

    async def _resource(self, request: web.Request, user: User) -> web.StreamResponse:
        rtype, namespace, name, sub = self._route(request)
        method = request.method
        query = request.query
        ns = namespace or ""
        self._check_method(rtype, method, name, sub, request)
        self._check_accept(request)
        if method == "GET":
            if name is None:
                if query.get("watch") in ("1", "true") or "/watch/" in request.path:
                    return await self._watch(request, rtype, namespace)
                listed = self.api.list_objects(
                    rtype,
                    namespace,
                    label_selector=query.get("labelSelector"),
                    field_selector=query.get("fieldSelector"),
                    limit=self._integer(query, "limit", 0),
                    continue_token=query.get("continue"),
                )
                accept = request.headers.get("Accept", "")
                if "as=Table" in accept:
                    return _json(
                        tables.table(
                            rtype,
                            listed["items"],
                            now=datetime.datetime.now(datetime.UTC),
                            include_object=query.get("includeObject", "Metadata"),
                            list_metadata=listed["metadata"],
                        )
                    )
                if "as=PartialObjectMetadataList" in accept:
                    return _json(
                        {
                            "kind": "PartialObjectMetadataList",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": listed["metadata"],
                            "items": [
                                {
                                    "kind": "PartialObjectMetadata",
                                    "apiVersion": "meta.k8s.io/v1",
                                    "metadata": item["metadata"],
                                }
                                for item in listed["items"]
                            ],
                        }
                    )
                return self._list_response(rtype, listed)
            obj = self.api.get(rtype, ns, name)
            if sub == "scale":
                return _json(self._scale(rtype, obj))
            if sub == "log":
                return web.Response(text=self._log(obj, request.query), content_type="text/plain")
            return self._respond(request, rtype, obj)
        if method == "POST":
            body = await self._body(request, rtype)
            if name is not None and sub == "token":
                return _json(self._token_request(ns, name, body), 201)
            if name is not None and sub == "eviction":
                options = (body.get("deleteOptions") or {}) if isinstance(body, dict) else {}
                write = self._write_request(request)
                dry_run = write.dry_run or "All" in (options.get("dryRun") or [])
                if self.simulation is not None:
                    from upkeep.sandbox.simulation import disruption

                    disruption.check_eviction(self.simulation, self.api.get(rtype, ns, name), dry_run=dry_run)
                if dry_run and not write.dry_run:
                    write = dataclasses.replace(write, dry_run=True)
                self.api.delete(rtype, ns, name, options, write)
                self._journal("create", rtype, ns, name, sub, user, write)
                return _json(
                    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
                )
            if name is not None:
                raise status.ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            if rtype.kind in ("SelfSubjectAccessReview", "SelfSubjectRulesReview", "SelfSubjectReview"):
                return _json(self._review(request, rtype, body), 201)
            write = self._write_request(request)
            result = self.api.create(rtype, ns, body, write)
            self._journal("create", rtype, ns, str(result.obj["metadata"]["name"]), "", user, write)
            return self._respond(request, rtype, result.obj, 201, result.warnings)
        if method == "PUT":
            if name is None:
                raise status.ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            body = await self._body(request, rtype)
            if sub == "scale":
                scaled = self._set_scale(rtype, ns, name, body, request)
                self._journal("update", rtype, ns, name, sub, user, self._write_request(request))
                return _json(scaled)
            write = self._write_request(request)
            result = self.api.update(rtype, ns, name, body, write, subresource=sub, owned=True)
            self._journal("update", rtype, ns, name, sub, user, write)
            return self._respond(request, rtype, result.obj, 200, result.warnings)
        if method == "PATCH":
            if name is None:
                raise status.ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            body = await self._body(request, rtype)
            content_type = self._content_type(request)
            if sub == "scale":
                scaled = self._patch_scale(rtype, ns, name, content_type, body, request)
                self._journal("patch", rtype, ns, name, sub, user, self._write_request(request))
                return _json(scaled)
            write = self._write_request(request)
            result = self.api.patch(rtype, ns, name, content_type, body, write, subresource=sub)
            self._journal("patch", rtype, ns, name, sub, user, write)
            return self._respond(request, rtype, result.obj, 201 if result.created else 200, result.warnings)
        if method == "DELETE":
            body = await self._body(request, rtype)
            options = apiserver.parse_delete_options(body, query)
            write = self._write_request(request)
            dry = options.get("dryRun")
            if dry:
                if dry != ["All"]:
                    raise status.bad_request(f'dryRun: Unsupported value: {json.dumps(dry)}: supported values: "All"')
                write = dataclasses.replace(write, dry_run=True)
            if name is None:
                listed = self.api.delete_collection(
                    rtype,
                    namespace,
                    label_selector=query.get("labelSelector"),
                    field_selector=query.get("fieldSelector"),
                    options=options,
                    request=write,
                )
                self._journal("deletecollection", rtype, ns, "", "", user, write)
                return _json(listed)
            result = self.api.delete(rtype, ns, name, options, write)
            self._journal("delete", rtype, ns, name, "", user, write)
            return self._respond(request, rtype, result.obj)
        raise status.ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    def _log(self, pod: dict[str, Any], query: Mapping[str, str]) -> str:
        """The simulated log of a pod's container (`kubectl logs`, with --previous and --tail)."""
        if self.simulation is None:
            return ""
        from upkeep.sandbox.simulation import kubelet

        container = query.get("container", "")
        tail = self._integer(query, "tailLines", -1, minimum=-1)
        return str(
            kubelet.container_log(
                self.simulation, pod, container, query.get("previous") == "true", None if tail < 0 else tail
            )
        )

    def _list_response(self, rtype: kinds.ResourceType, listed: dict[str, Any]) -> web.Response:
        """A list's JSON assembled from the cached JSON of each stored object."""
        key = conversion.storage_key(rtype.group, rtype.plural)
        items = b",".join(self.store.encoded(key, item) for item in listed["items"])
        head = json.dumps({k: v for k, v in listed.items() if k != "items"}, separators=(",", ":")).encode()
        body = head[:-1] + b',"items":[' + items + b"]}"
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    # scale

    def _scale_paths(self, rtype: kinds.ResourceType) -> tuple[str, str, str]:
        if rtype.builtin:
            return ".spec.replicas", ".status.replicas", ".status.selector"
        paths = rtype.scale_paths
        return (
            str(paths.get("specReplicasPath", ".spec.replicas")),
            str(paths.get("statusReplicasPath", ".status.replicas")),
            str(paths.get("labelSelectorPath", "")),
        )

    def _scale(self, rtype: kinds.ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
        spec_path, status_path, selector_path = self._scale_paths(rtype)
        selector = ""
        if rtype.builtin:
            match = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        elif selector_path:
            selector = str(_dig(obj, selector_path) or "")
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: obj["metadata"][k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in obj["metadata"]
            },
            "spec": {"replicas": int(_dig(obj, spec_path) or 0)},
            "status": {"replicas": int(_dig(obj, status_path) or 0), "selector": selector},
        }

    def _set_scale(
        self, rtype: kinds.ResourceType, ns: str, name: str, body: Any, request: web.Request
    ) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance((body.get("spec") or {}).get("replicas"), int):
            raise status.bad_request("a Scale needs spec.replicas")
        current = self.api.get(rtype, ns, name)
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise status.conflict(rtype.plural, rtype.group, name)
        spec_path = self._scale_paths(rtype)[0]
        patch = _nest(spec_path, body["spec"]["replicas"])
        result = self.api.patch(rtype, ns, name, "application/merge-patch+json", patch, self._write_request(request))
        return self._scale(rtype, result.obj)

    def _patch_scale(
        self, rtype: kinds.ResourceType, ns: str, name: str, content_type: str, body: Any, request: web.Request
    ) -> dict[str, Any]:

        current = self._scale(rtype, self.api.get(rtype, ns, name))
        try:
            if content_type == "application/json-patch+json":
                patched = patching.json_patch(current, body)
            else:
                patched = patching.merge_patch(current, body)
        except patching.PatchError as error:
            raise status.ApiError(error.code, error.reason or "InternalError", error.message) from None
        return self._set_scale(rtype, ns, name, patched, request)

    # reviews

    def _review(self, request: web.Request, rtype: kinds.ResourceType, body: Any) -> dict[str, Any]:
        user = self._user(request)
        out = dict(body) if isinstance(body, dict) else {}
        out.update(apiVersion=rtype.group_version, kind=rtype.kind)
        out.setdefault("metadata", {})
        found = out.get("spec")
        spec: dict[str, Any] = found if isinstance(found, dict) else {}
        try:
            if rtype.kind == "SelfSubjectAccessReview":
                out["status"] = rbac.self_subject_access_review(self.authorizer, user.name, user.groups, spec)
            elif rtype.kind == "SelfSubjectRulesReview":
                out["status"] = rbac.self_subject_rules_review(
                    self.authorizer, user.name, user.groups, str(spec.get("namespace", ""))
                )
            else:
                out["status"] = {
                    "userInfo": {
                        "username": user.name,
                        "uid": user.uid,
                        "groups": list(rbac.user_groups(user.name, user.groups)),
                    }
                }
        except rbac.ReviewError as error:
            if error.code == 422:
                raise status.invalid(rtype.kind, rtype.group, "", [dict(c) for c in error.causes]) from None
            raise status.bad_request(error.message) from None
        return out

    # faults

    async def fault(self, request: web.Request) -> web.Response:
        """POST /upkeep-sandbox/faults {"type": ..., "seconds": N, "code": 503|429, "latencyMs": N}."""
        try:
            user = self._user(request)
            if "system:masters" not in user.groups:
                raise status.forbidden(f'forbidden: User "{user.name}" cannot post path "/upkeep-sandbox/faults"')
            body = await self._body(request)
            if isinstance(body, dict) and body.get("type") in WORKLOAD_FAULT_TYPES:
                if self.simulation is None:
                    raise status.bad_request("this sandbox runs no workloads (--api-only): workload faults need them")
                from upkeep.sandbox.simulation import faultapi

                return _json(faultapi.apply_fault(self.simulation, body))
            if not isinstance(body, dict) or body.get("type") not in FAULT_TYPES:
                raise status.bad_request(
                    f"a fault needs a type, one of: {', '.join(FAULT_TYPES + WORKLOAD_FAULT_TYPES)}"
                )
            kind = str(body["type"])
            seconds = float(body.get("seconds", 10))
            now = asyncio.get_running_loop().time()
            answer: dict[str, Any] = {"type": kind}
            if kind in ("unavailable", "throttle"):
                self.faults.refuse_until = now + seconds
                self.faults.refuse_code = 503 if kind == "unavailable" else 429
                answer["seconds"] = seconds
            elif kind == "latency":
                self.faults.latency = float(body.get("latencyMs", 200)) / 1000
                self.faults.latency_until = now + seconds
                answer.update(seconds=seconds, latencyMs=self.faults.latency * 1000)
            elif kind == "drop-watches":
                answer["dropped"] = self.store.close_all_watches()
            elif kind == "compact":
                self.store.compact()
                answer["compactedTo"] = self.store.rv
            else:
                self.faults.clear()
            logger.warning("fault injected: %s", answer)
            return _json(answer)
        except (status.ApiError, ValueError) as error:
            if isinstance(error, ValueError):
                error = status.bad_request(f"invalid fault: {error}")
            return _error(error)

    # watch

    async def _watch(
        self, request: web.Request, rtype: kinds.ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        query = request.query
        matches = self.api.watch_filter(rtype, query.get("labelSelector"), query.get("fieldSelector"))

        def accepts(obj: dict[str, Any]) -> bool:
            return matches(self.api.as_version(obj, rtype))

        as_table = "as=Table" in request.headers.get("Accept", "")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial = query.get("sendInitialEvents") == "true"
        rv_text = query.get("resourceVersion", "")
        timeout = float(self._integer(query, "timeoutSeconds", 0) or 1800)
        timeout = min(timeout, 24 * 3600.0)
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        await response.prepare(request)
        key = conversion.storage_key(rtype.group, rtype.plural)
        storage_ns = namespace if rtype.namespaced else None
        since: int | None = None
        send_existing = initial or rv_text in ("", "0")
        if rv_text not in ("", "0"):
            try:
                since = int(rv_text)
            except ValueError:
                await self._send(
                    response,
                    {"type": "ERROR", "object": status.bad_request(f"invalid resource version: {rv_text}").status()},
                )
                return response
        try:
            subscription, backlog = self.store.subscribe(key, storage_ns, None if send_existing else since)
        except Gone as error:
            await self._send(response, {"type": "ERROR", "object": status.gone(str(error)).status()})
            return response
        now = datetime.datetime.now(datetime.UTC)

        def encode(obj: dict[str, Any]) -> dict[str, Any]:
            shown = self.api.as_version(obj, rtype)
            if as_table:
                return tables.table(
                    rtype, [shown], now=now, include_object=query.get("includeObject", "Metadata"), list_metadata=None
                )
            return shown

        try:
            if send_existing:
                for obj in self.store.objects(key, storage_ns):
                    if accepts(obj):
                        await self._send(response, {"type": "ADDED", "object": encode(obj)})
                if initial and bookmarks:
                    await self._send(response, self._bookmark(rtype, initial_end=True))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            pending = list(backlog)
            while True:
                if pending:
                    event = pending.pop(0)
                else:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wait = min(remaining, self.config.bookmark_interval) if bookmarks else remaining
                    try:
                        item = await asyncio.wait_for(subscription.queue.get(), wait)
                    except TimeoutError:
                        if bookmarks and loop.time() < deadline:
                            await self._send(response, self._bookmark(rtype))
                        continue
                    if item is None:
                        break
                    event = item
                # As the API server's watch cache does: a selector sees an object arrive and leave.
                matches_now = accepts(event.obj)
                if event.type == "DELETED":
                    if matches_now:
                        await self._send(response, {"type": "DELETED", "object": encode(event.obj)})
                    continue
                matched_before = event.previous is not None and accepts(event.previous)
                if event.type == "MODIFIED" and matched_before and matches_now:
                    await self._send(response, {"type": "MODIFIED", "object": encode(event.obj)})
                elif matches_now:
                    await self._send(response, {"type": "ADDED", "object": encode(event.obj)})
                elif event.type == "MODIFIED" and matched_before:
                    await self._send(response, {"type": "DELETED", "object": encode(event.obj)})
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unsubscribe(subscription)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    def _bookmark(self, rtype: kinds.ResourceType, *, initial_end: bool = False) -> dict[str, Any]:
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {
            "type": "BOOKMARK",
            "object": {"kind": rtype.kind, "apiVersion": rtype.group_version, "metadata": metadata},
        }

    async def _send(self, response: web.StreamResponse, event: dict[str, Any]) -> None:
        await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")


def _table_version(accept: str) -> str:
    """meta.k8s.io/v1 unless the client asked for the v1beta1 Table only."""
    return "meta.k8s.io/v1beta1" if "v=v1beta1" in accept and "v=v1;" not in accept + ";" else "meta.k8s.io/v1"


def _dig(obj: Mapping[str, Any], path: str) -> Any:
    current: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _nest(path: str, value: Any) -> dict[str, Any]:
    parts = path.strip(".").split(".")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


@web.middleware
async def _statuses(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own answers (no route, a method a route lacks, bad encodings) as Kubernetes Status objects."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return _error(
            status.bad_request(
                f'the request body uses Content-Encoding "{encoding}", which the API server does not accept'
            )
        )
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except web.HTTPException as error:
        if error.status < 400:
            raise
        reasons = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}
        messages = {
            404: "the server could not find the requested resource",
            405: "the server does not allow this method on the requested resource",
        }
        return _error(
            status.ApiError(
                error.status, reasons.get(error.status, "BadRequest"), messages.get(error.status, error.reason)
            )
        )


def build_app(store: Store, config: SandboxConfig, simulation: SimulationSettings | None = None) -> web.Application:
    """The aiohttp application of a sandbox over ``store``; with ``simulation``, nodes and controllers run too."""
    sandbox = Sandbox(store, config)
    app = web.Application(client_max_size=MAX_BODY + 1024, middlewares=[_statuses])
    app[SANDBOX_KEY] = sandbox

    def guarded(handler: Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]) -> Any:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                sandbox.authorize(request)
                result = handler(request)
                if asyncio.iscoroutine(result):
                    return await result  # type: ignore[no-any-return]
                return result  # type: ignore[return-value]
            except status.ApiError as error:
                return _error(error)

        return wrapper

    async def warm_protobuf(app: web.Application) -> None:
        """Read kubectl's type metadata off the event loop, so the first protobuf body does not stall it."""
        from upkeep.sandbox import protobuf

        async def load() -> None:
            with contextlib.suppress(protobuf.ProtobufUnavailable, OSError, ValueError):
                await asyncio.to_thread(protobuf.load_schema)

        app[WARMUP_KEY] = asyncio.get_running_loop().create_task(load())

    app.on_startup.append(warm_protobuf)

    if simulation is not None:

        async def start_cluster(app: web.Application) -> None:
            from upkeep.sandbox.simulation import components, runtime

            sandbox.api.graceful_pods = True
            plane = runtime.ControlPlane(sandbox.api, store, simulation, components.default_components())
            sandbox.simulation = plane.ctx
            plane.start()
            app[CONTROL_PLANE_KEY] = plane

        async def stop_cluster(app: web.Application) -> None:
            plane = app.get(CONTROL_PLANE_KEY)
            if plane is not None:
                await plane.stop()

        app.on_startup.append(start_cluster)
        app.on_cleanup.append(stop_cluster)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/healthz", health)
    app.router.add_get("/livez", health)
    app.router.add_get("/readyz", health)
    app.router.add_get("/version", guarded(lambda r: _json(KUBERNETES_VERSION)))
    app.router.add_get("/api", guarded(lambda r: sandbox._discovery(r, core=True)))
    app.router.add_get("/apis", guarded(lambda r: sandbox._discovery(r, core=False)))

    def group_version(request: web.Request) -> web.Response:
        parts = [p for p in request.path.split("/") if p]
        gv = parts[1] if parts[0] == "api" else f"{parts[1]}/{parts[2]}"
        found = sandbox._resource_list(gv)
        if found is None:
            return _error(status.ApiError(404, "NotFound", "the server could not find the requested resource"))
        return _json(found)

    app.router.add_get("/api/{version}", guarded(group_version))
    app.router.add_get("/apis/{group}/{version}", guarded(group_version))
    app.router.add_get("/apis/{group}", guarded(lambda r: _group(sandbox, r)))
    app.router.add_get("/openapi/v3", guarded(sandbox._openapi))
    app.router.add_get("/openapi/v3/{tail:.*}", guarded(sandbox._openapi))
    if config.admin:
        app.router.add_post("/upkeep-sandbox/faults", sandbox.fault)
    app.router.add_route("*", "/api/{version}/{tail:.*}", sandbox.resource)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.*}", sandbox.resource)
    return app


def build_metrics_app(app: web.Application) -> web.Application:
    """A plain-HTTP app serving /metrics (Prometheus text format) of ``app``'s simulated cluster."""
    metrics_app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        sandbox = app[SANDBOX_KEY]
        if sandbox.simulation is None:
            return web.Response(status=404, text="this sandbox runs no workloads (--api-only)\n")
        from upkeep.sandbox.simulation import metrics as metrics_

        return web.Response(
            text=metrics_.render(sandbox.simulation),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    metrics_app.router.add_get("/metrics", metrics)
    return metrics_app


def _group(sandbox: Sandbox, request: web.Request) -> web.Response:
    group = request.match_info["group"]
    for name, versions in sandbox._groups():
        if name == group:
            preferred = sandbox._preferred(group, versions)
            return _json(
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
                }
            )
    return _error(status.ApiError(404, "NotFound", "the server could not find the requested resource"))


def new_token() -> str:
    return secrets.token_urlsafe(24)
