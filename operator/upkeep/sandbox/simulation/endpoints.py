"""Service endpoints: the EndpointSlices and the legacy Endpoints object of every Service with a selector.

Two controllers, as on a real cluster. The EndpointSlice controller (``endpointslice-controller``)
keeps ``discovery.k8s.io/v1`` slices labelled ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``, owned by the Service,
``addressType: IPv4``, at most 100 endpoints each, one endpoint per pod with an IP that is not
finished: conditions ``ready`` (Ready and not terminating), ``serving`` (Ready) and
``terminating``, ``nodeName``, ``zone`` (from the node's ``topology.kubernetes.io/zone``) and a
``targetRef`` to the pod; ports are the Service's, with named target ports resolved per pod. A
Service that selects no such pod gets one empty placeholder slice. The Endpoints controller
(``endpoint-controller``) keeps the ``v1`` Endpoints object of the same name: ready addresses,
``notReadyAddresses``, ports, grouped into subsets by port set; it skips terminating pods unless
``publishNotReadyAddresses`` is set, and deletes the object with its Service.

Both keep which pods each Service selects from watch events, and look only at those pods when one
Service is reconciled; a pod change that cannot alter an endpoint (its status' timestamps, say)
wakes no Service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from upkeep.sandbox.simulation import runtime
from upkeep.sandbox.store import Event

__all__ = [
    "COMPONENTS",
    "EndpointSliceController",
    "EndpointsController",
    "endpoint_for",
    "find_port",
    "pod_ready",
    "should_be_in_endpoints",
]

SERVICES = "/services"
PODS = "/pods"
NODES = "/nodes"
SLICES = "discovery.k8s.io/endpointslices"
ENDPOINTS = "/endpoints"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100
MAX_ENDPOINTS_CAPACITY = 1000


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def should_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """A pod that is not finished, has an IP, and (unless ``include_terminating``) is not being deleted."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The pod's port for a Service port: a number as it is, a name looked up among the containers' ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def _ip(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    if status.get("podIP"):
        return str(status["podIP"])
    ips = status.get("podIPs") or []
    return str(ips[0].get("ip")) if ips else ""


def _hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        return str(spec["hostname"])
    return ""


def _target_ref(pod: Mapping[str, Any]) -> dict[str, Any]:
    metadata = pod["metadata"]
    return {"kind": "Pod", "namespace": metadata.get("namespace"), "name": metadata["name"], "uid": metadata.get("uid")}


def endpoint_for(pod: Mapping[str, Any], service: Mapping[str, Any], zone: str = "") -> dict[str, Any]:
    """The EndpointSlice endpoint of a pod for a Service."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    serving = publish or pod_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    endpoint: dict[str, Any] = {
        "addresses": [_ip(pod)],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
    }
    hostname = _hostname(pod, service)
    if hostname:
        endpoint["hostname"] = hostname
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    endpoint["targetRef"] = _target_ref(pod)
    if zone:
        endpoint["zone"] = zone
    return endpoint


def _service_labels(service: Mapping[str, Any]) -> dict[str, str]:
    labels = dict(service["metadata"].get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any] | None) -> bool:
    found = labels or {}
    return all(found.get(key) == value for key, value in selector.items())


def _signature(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """Everything of a pod that can change an endpoint built from it."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return (
        repr(pod["metadata"].get("labels")),
        pod["metadata"].get("uid"),
        bool(pod["metadata"].get("deletionTimestamp")),
        status.get("phase"),
        _ip(pod),
        pod_ready(pod),
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
        repr([c.get("ports") for c in spec.get("containers") or []]),
    )


class _ServiceEndpoints(runtime.Controller):
    """What both controllers share: which pods each Service with a selector selects, from watch events."""

    own: str = ""
    """The resource this controller writes; its changes by others bring the Service back."""

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.selectors: dict[tuple[str, str], dict[str, Any]] = {}
        self.services_in: dict[str, set[str]] = {}
        self.pods_in: dict[str, dict[str, dict[str, Any]]] = {}
        self.signatures: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.members: dict[tuple[str, str], set[str]] = {}
        self.memberships: dict[tuple[str, str], set[str]] = {}
        """Pod → the Services selecting it."""

    # indexes

    def _observe_service(self, event: Event) -> list[runtime.Key]:
        service = event.obj
        namespace, name = event.namespace, str(service["metadata"]["name"])
        key = (namespace, name)
        spec = service.get("spec") or {}
        selector = spec.get("selector")
        if event.type == "DELETED" or selector is None or spec.get("type") == "ExternalName":
            was = self.selectors.pop(key, None)
            self.services_in.get(namespace, set()).discard(name)
            for pod_name in self.members.pop(key, set()):
                self.memberships.get((namespace, pod_name), set()).discard(name)
            return [(SERVICES, namespace, name)] if was is not None or event.type == "DELETED" else []
        if self.selectors.get(key) != selector:
            self.selectors[key] = dict(selector)
            self.services_in.setdefault(namespace, set()).add(name)
            selected = {
                pod_name
                for pod_name, pod in self.pods_in.get(namespace, {}).items()
                if _selects(selector, pod["metadata"].get("labels"))
            }
            for pod_name in self.members.get(key, set()) - selected:
                self.memberships.get((namespace, pod_name), set()).discard(name)
            for pod_name in selected:
                self.memberships.setdefault((namespace, pod_name), set()).add(name)
            self.members[key] = selected
        return [(SERVICES, namespace, name)]

    def _observe_pod(self, event: Event) -> list[runtime.Key]:
        pod = event.obj
        namespace, name = event.namespace, str(pod["metadata"]["name"])
        key = (namespace, name)
        before = self.memberships.get(key, set())
        if event.type == "DELETED":
            self.pods_in.get(namespace, {}).pop(name, None)
            self.signatures.pop(key, None)
            self.memberships.pop(key, None)
            for service in before:
                self.members.get((namespace, service), set()).discard(name)
            return [(SERVICES, namespace, service) for service in sorted(before)]
        self.pods_in.setdefault(namespace, {})[name] = pod
        signature = _signature(pod)
        if self.signatures.get(key) == signature:
            return []
        self.signatures[key] = signature
        labels = pod["metadata"].get("labels")
        now = {
            service
            for service in self.services_in.get(namespace, set())
            if _selects(self.selectors[(namespace, service)], labels)
        }
        for service in before - now:
            self.members.get((namespace, service), set()).discard(name)
        for service in now - before:
            self.members.setdefault((namespace, service), set()).add(name)
        if now:
            self.memberships[key] = now
        else:
            self.memberships.pop(key, None)
        return [(SERVICES, namespace, service) for service in sorted(before | now)]

    def _observe_own(self, event: Event) -> list[runtime.Key]:
        return []

    def selected_pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        pods = self.pods_in.get(namespace, {})
        return [pods[pod] for pod in sorted(self.members.get((namespace, name), set())) if pod in pods]

    # the controller

    def initial_keys(self) -> Iterable[runtime.Key]:
        for pod in self.ctx.list(PODS):
            self._observe_pod(Event(0, "ADDED", PODS, str(pod["metadata"].get("namespace") or ""), pod))
        keys: list[runtime.Key] = []
        for service in self.ctx.list(SERVICES):
            keys += self._observe_service(
                Event(0, "ADDED", SERVICES, str(service["metadata"].get("namespace") or ""), service)
            )
        for obj in self.ctx.list(self.own):
            keys += self._observe_own(Event(0, "ADDED", self.own, str(obj["metadata"].get("namespace") or ""), obj))
        return sorted(set(keys))

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == SERVICES:
            return self._observe_service(event)
        if event.resource == PODS:
            return self._observe_pod(event)
        return self._observe_own(event)

    async def reconcile(self, key: runtime.Key) -> float | None:
        _, namespace, name = key
        service = self.ctx.get(SERVICES, namespace, name)
        if service is not None and (namespace, name) not in self.selectors:
            return None  # no selector (or ExternalName): its endpoints are someone else's
        self.sync(namespace, name, service)
        return None

    def sync(self, namespace: str, name: str, service: dict[str, Any] | None) -> None:
        raise NotImplementedError


def _slice_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[tuple[str, int, str, str], ...] | None:
    """The slice ports of a pod for a Service, or None when a named target port is missing (the pod is skipped)."""
    ports = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, service_port)
        if number is None:
            continue
        ports.append(
            (
                str(service_port.get("name") or ""),
                number,
                str(service_port.get("protocol") or "TCP"),
                str(service_port.get("appProtocol") or ""),
            )
        )
    return tuple(ports)


def _port_dicts(ports: Iterable[tuple[str, int, str, str]]) -> list[dict[str, Any]]:
    result = []
    for name, number, protocol, app_protocol in ports:
        port: dict[str, Any] = {"name": name, "port": number, "protocol": protocol}
        if app_protocol:
            port["appProtocol"] = app_protocol
        result.append(port)
    return result


def _ports_key(slice_: Mapping[str, Any]) -> tuple[tuple[str, int, str, str], ...] | None:
    ports = slice_.get("ports")
    if ports is None:
        return None
    return tuple(
        (
            str(p.get("name") or ""),
            int(p.get("port") or 0),
            str(p.get("protocol") or "TCP"),
            str(p.get("appProtocol") or ""),
        )
        for p in ports
    )


class EndpointSliceController(_ServiceEndpoints):
    """discovery.k8s.io/v1 EndpointSlices for Services with a selector."""

    name = "endpointslice-controller"
    own = SLICES
    watches = (SERVICES, PODS, SLICES)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.slices: dict[tuple[str, str], set[str]] = {}
        """(namespace, Service) → names of the slices this controller manages for it."""

    def _observe_own(self, event: Event) -> list[runtime.Key]:
        labels = event.obj["metadata"].get("labels") or {}
        service = labels.get(SERVICE_NAME_LABEL)
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not service:
            return []
        key = (event.namespace, str(service))
        slice_name = str(event.obj["metadata"]["name"])
        if event.type == "DELETED":
            self.slices.get(key, set()).discard(slice_name)
            return [(SERVICES, *key)] if key in self.selectors else []
        known = slice_name in self.slices.get(key, set())
        self.slices.setdefault(key, set()).add(slice_name)
        return [] if known else [(SERVICES, *key)]

    def _zone(self, pod: Mapping[str, Any]) -> str:
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.ctx.get(NODES, "", str(node_name)) if node_name else None
        return str((node["metadata"].get("labels") or {}).get(ZONE_LABEL) or "") if node else ""

    def desired(self, service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[tuple[Any, list[Any]]]:
        """(ports key, endpoints) per slice the Service should have; [(None, [])] for the placeholder."""
        groups: dict[tuple[tuple[str, int, str, str], ...], list[dict[str, Any]]] = {}
        for pod in pods:
            if not should_be_in_endpoints(pod, True) or ":" in _ip(pod):
                continue
            ports = _slice_ports(service, pod)
            if ports is None:
                continue
            groups.setdefault(ports, []).append(endpoint_for(pod, service, self._zone(pod)))
        wanted: list[tuple[Any, list[Any]]] = []
        for ports in sorted(groups):
            endpoints = groups[ports]
            for start in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
                wanted.append((ports, endpoints[start : start + MAX_ENDPOINTS_PER_SLICE]))
        return wanted or [(None, [])]

    def _body(self, service: Mapping[str, Any], ports: Any, endpoints: list[Any]) -> dict[str, Any]:
        metadata = service["metadata"]
        labels = {
            **{k: v for k, v in _service_labels(service).items() if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)},
            SERVICE_NAME_LABEL: metadata["name"],
            MANAGED_BY_LABEL: MANAGED_BY,
        }
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{metadata['name']}-",
                "namespace": metadata.get("namespace"),
                "labels": labels,
                "annotations": {TRIGGER_TIME: runtime.now_text()},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": metadata["name"],
                        "uid": metadata.get("uid"),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "endpoints": endpoints or None,
            "ports": None if ports is None else _port_dicts(ports),
        }

    @staticmethod
    def _same(existing: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
        return bool(
            (existing.get("endpoints") or None) == body["endpoints"]
            and existing.get("ports") == body["ports"]
            and existing.get("addressType") == body["addressType"]
            and (existing["metadata"].get("labels") or {}) == body["metadata"]["labels"]
            and (existing["metadata"].get("ownerReferences") or []) == body["metadata"]["ownerReferences"]
        )

    def sync(self, namespace: str, name: str, service: dict[str, Any] | None) -> None:
        key = (namespace, name)
        existing = [
            found
            for found in (
                self.ctx.get(SLICES, namespace, slice_name) for slice_name in sorted(self.slices.get(key, ()))
            )
            if found is not None
        ]
        if service is None:
            for found in existing:
                self._delete(key, found)
            return
        spare: dict[Any, list[dict[str, Any]]] = {}
        for found in existing:
            spare.setdefault(_ports_key(found), []).append(found)
        for ports, endpoints in self.desired(service, self.selected_pods(namespace, name)):
            body = self._body(service, ports, endpoints)
            candidates = spare.get(ports) or next((group for group in spare.values() if group), [])
            if candidates:
                current = candidates.pop(0)
                if not self._same(current, body):
                    metadata = {
                        **current["metadata"],
                        "labels": body["metadata"]["labels"],
                        "ownerReferences": body["metadata"]["ownerReferences"],
                        "annotations": {
                            **(current["metadata"].get("annotations") or {}),
                            **body["metadata"]["annotations"],
                        },
                    }
                    self.ctx.update(SLICES, {**current, **body, "metadata": metadata}, self.name)
                continue
            created = self.ctx.create(SLICES, namespace, body, self.name)
            if created is not None:
                self.slices.setdefault(key, set()).add(str(created["metadata"]["name"]))
        for group in spare.values():
            for found in group:
                self._delete(key, found)

    def _delete(self, key: tuple[str, str], found: Mapping[str, Any]) -> None:
        slice_name = str(found["metadata"]["name"])
        self.ctx.delete(SLICES, key[0], slice_name)
        self.slices.get(key, set()).discard(slice_name)


class EndpointsController(_ServiceEndpoints):
    """The v1 Endpoints object of each Service with a selector."""

    name = "endpoint-controller"
    own = ENDPOINTS
    watches = (SERVICES, PODS, ENDPOINTS)

    def _observe_own(self, event: Event) -> list[runtime.Key]:
        key = (event.namespace, str(event.obj["metadata"]["name"]))
        if event.type == "DELETED" and key in self.selectors:
            return [(SERVICES, *key)]
        return []

    def subsets(self, service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Ready and not-ready addresses grouped by the set of ports they serve, in a stable order."""
        spec = service.get("spec") or {}
        publish = bool(spec.get("publishNotReadyAddresses"))
        served: dict[tuple[str, str, bool], tuple[dict[str, Any], set[tuple[str, int, str, str]]]] = {}
        for pod in pods:
            if not should_be_in_endpoints(pod, publish):
                continue
            address: dict[str, Any] = {"ip": _ip(pod)}
            hostname = _hostname(pod, service)
            if hostname:
                address["hostname"] = hostname
            if (pod.get("spec") or {}).get("nodeName"):
                address["nodeName"] = pod["spec"]["nodeName"]
            address["targetRef"] = _target_ref(pod)
            ready = publish or pod_ready(pod)
            ports: set[tuple[str, int, str, str]] = set()
            for service_port in spec.get("ports") or []:
                number = find_port(pod, service_port)
                if number is not None:
                    ports.add(
                        (
                            str(service_port.get("name") or ""),
                            number,
                            str(service_port.get("protocol") or "TCP"),
                            str(service_port.get("appProtocol") or ""),
                        )
                    )
            if not ports and (spec.get("ports") or spec.get("clusterIP") != "None"):
                continue
            served[(address["ip"], str(pod["metadata"].get("uid") or ""), ready)] = (address, ports)
        groups: dict[frozenset[tuple[str, int, str, str]], dict[str, list[dict[str, Any]]]] = {}
        for (_, _, ready), (address, ports) in sorted(served.items()):
            group = groups.setdefault(frozenset(ports), {"addresses": [], "notReadyAddresses": []})
            group["addresses" if ready else "notReadyAddresses"].append(address)
        subsets = []
        for ports_set in sorted(groups, key=sorted):
            subset: dict[str, Any] = {k: v for k, v in groups[ports_set].items() if v}
            port_list = [
                {k: v for k, v in port.items() if k != "name" or v}
                for port in _port_dicts(sorted(ports_set, key=lambda p: (p[0], p[1])))
            ]
            if port_list:
                subset["ports"] = port_list
            subsets.append(subset)
        return subsets

    def sync(self, namespace: str, name: str, service: dict[str, Any] | None) -> None:
        current = self.ctx.get(ENDPOINTS, namespace, name)
        if service is None:
            if current is not None:
                self.ctx.delete(ENDPOINTS, namespace, name)
            return
        subsets = self.subsets(service, self.selected_pods(namespace, name))
        annotations = dict((current or {}).get("metadata", {}).get("annotations") or {})
        total = sum(len(s.get("addresses", [])) + len(s.get("notReadyAddresses", [])) for s in subsets)
        if total > MAX_ENDPOINTS_CAPACITY:
            subsets = _truncate(subsets)
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        labels = _service_labels(service)
        if (
            current is not None
            and (current.get("subsets") or []) == subsets
            and (current["metadata"].get("labels") or {}) == labels
            and (current["metadata"].get("annotations") or {}).get(OVER_CAPACITY) == annotations.get(OVER_CAPACITY)
        ):
            return
        annotations[TRIGGER_TIME] = runtime.now_text()
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        }
        if subsets:
            body["subsets"] = subsets
        if current is None:
            self.ctx.create(ENDPOINTS, namespace, body, self.name)
        else:
            metadata = {**current["metadata"], "labels": labels, "annotations": annotations}
            self.ctx.update(ENDPOINTS, {**body, "metadata": metadata}, self.name)


def _truncate(subsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep at most MAX_ENDPOINTS_CAPACITY addresses, ready ones first."""
    room = MAX_ENDPOINTS_CAPACITY
    trimmed = []
    for subset in subsets:
        ready = subset.get("addresses", [])[:room]
        room -= len(ready)
        trimmed.append({**subset, "addresses": ready})
    for subset in trimmed:
        not_ready = subset.get("notReadyAddresses", [])[:room]
        room -= len(not_ready)
        subset["notReadyAddresses"] = not_ready
    return [
        {k: v for k, v in subset.items() if v}
        for subset in trimmed
        if subset["addresses"] or subset["notReadyAddresses"]
    ]


COMPONENTS: list[type[runtime.Controller]] = [EndpointSliceController, EndpointsController]
