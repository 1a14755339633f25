"""Server-side tables: the meta.k8s.io Table a real API server answers to `kubectl get`.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints what comes
back: the column definitions (name, type, format, description, priority) and one row of cells per
object. The server always sends every column, wide ones included (priority 1); kubectl drops the
priority-1 columns unless ``-o wide``. Cells are what the Kubernetes printers compute
(pkg/printers/internalversion), re-implemented here from their documented behaviour:

- built-in kinds with a printer (Pod, Deployment, Node, Event, ...): their columns and cells;
- built-in kinds without one (Role, ClusterRole, CustomResourceDefinition, ...): the default
  convertor's NAME and CREATED AT (an RFC 3339 time, not an age);
- custom resources: NAME, then the version's additionalPrinterColumns, evaluated with the JSONPath
  subset printer columns use; a version without columns gets an AGE column (the server's default).

Each row carries the object as the request's ``includeObject`` asks: ``Metadata`` (the default) a
PartialObjectMetadata, ``Object`` the object itself, ``None`` nothing (JSON null). Rows share their
metadata and objects with the input instead of copying them: serialise the table before the objects
change.

Errors::

    ValueError
     +-- InvalidTableOptions   includeObject is not Metadata, Object, None or empty (answer 400)
     +-- JSONPathError          a printer column's jsonPath cannot be parsed (compile_json_path)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from upkeep.sandbox import kinds

__all__ = [
    "Column",
    "InvalidTableOptions",
    "JSONPath",
    "JSONPathError",
    "column_definitions",
    "compile_json_path",
    "human_duration",
    "object_table",
    "table",
    "table_row",
]

TABLE_API_VERSION: Final = "meta.k8s.io/v1"
INCLUDE_MODES: Final = ("Metadata", "Object", "None")


class InvalidTableOptions(ValueError):
    """The table options of the request are invalid; the server answers 400 BadRequest with this message."""


class JSONPathError(ValueError):
    """A JSONPath expression that cannot be parsed."""


class _EvalError(Exception):
    """A JSONPath that parsed but cannot be evaluated on this object (the cell becomes empty)."""


# ---------------------------------------------------------------------------------------------------------------
# Columns


@dataclass(frozen=True)
class Column:
    """One column of a table, as the Table's columnDefinitions describe it."""

    name: str
    type: str
    description: str
    format: str = ""
    priority: int = 0
    """0: always printed; 1 and more: printed by kubectl only with -o wide."""

    def definition(self) -> dict[str, Any]:
        """The TableColumnDefinition, in the field order the server writes."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


# Descriptions are the API documentation of the fields the columns show, as the printers take them.
_NAME_DOC: Final = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow "
    "a client to request the generation of an appropriate name automatically. Name is primarily intended for "
    "creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATED_DOC: Final = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is "
    "represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_DOC: Final[Mapping[str, str]] = {
    "PodStatus.podIP": (
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
    ),
    "PodSpec.nodeName": (
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for "
        "scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for "
        "this node becomes responsible for the lifecycle of this pod. This field should not be used to "
        "express a desire for the pod to be scheduled on a specific node. "
        "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"
    ),
    "PodStatus.nominatedNodeName": (
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be "
        "scheduled right away as preemption victims receive their graceful termination periods. This "
        "field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to "
        "place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to "
        "give the resources on this node to a higher priority pod that is created after preemption. As a "
        "result, this field may be different than PodSpec.nodeName when the pod is scheduled."
    ),
    "PodSpec.readinessGates": (
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all "
        "its containers are ready AND all conditions specified in the readiness gates have status equal "
        'to "True" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates'
    ),
    "PodSpec.nodeSelector": (
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must "
        "match a node's labels for the pod to be scheduled on that node. More info: "
        "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"
    ),
    "ServiceSpec.type": (
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
        'ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a cluster-internal IP '
        "address for load-balancing to endpoints. Endpoints are determined by the selector or if that is "
        "not specified, by manual construction of an Endpoints object or EndpointSlice objects. If "
        'clusterIP is "None", no virtual IP is allocated and the endpoints are published as a set of '
        'endpoints rather than a virtual IP. "NodePort" builds on ClusterIP and allocates a port on every '
        'node which routes to the same endpoints as the clusterIP. "LoadBalancer" builds on NodePort and '
        "creates an external load-balancer (if supported in the current cloud) which routes to the same "
        'endpoints as the clusterIP. "ExternalName" aliases this service to the specified externalName. '
        "Several other fields do not apply to ExternalName services. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"
    ),
    "ServiceSpec.clusterIP": (
        "clusterIP is the IP address of the service and is usually assigned randomly. If an address is "
        "specified manually, is in-range (as per system configuration), and is not in use, it will be "
        "allocated to the service; otherwise creation of the service will fail. This field may not be "
        "changed through updates unless the type field is also being changed to ExternalName (which "
        "requires this field to be blank) or the type field is being changed from ExternalName (in which "
        'case this field may optionally be specified, as describe above).  Valid values are "None", empty '
        'string (""), or a valid IP address. Setting this to "None" makes a "headless service" (no '
        "virtual IP), which is useful when direct endpoint connections are preferred and proxying is not "
        "required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is "
        "specified when creating a Service of type ExternalName, creation will fail. This field will be "
        "wiped when updating a Service to type ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
    ),
    "ServiceSpec.externalIPs": (
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic "
        "for this service.  These IPs are not managed by Kubernetes.  The user is responsible for "
        "ensuring that traffic arrives at a node with this IP.  A common example is external "
        "load-balancers that are not part of the Kubernetes system."
    ),
    "ServiceSpec.ports": (
        "The list of ports that are exposed by this service. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
    ),
    "ServiceSpec.selector": (
        "Route service traffic to pods with label keys and values matching this selector. If empty or not "
        "present, the service is assumed to have an external process managing its endpoints, which "
        "Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored "
        "if type is ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/"
    ),
    "Endpoints.subsets": (
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets "
        "according to the IPs they share. A single address with multiple ports, some of which are ready "
        "and some of which are not (because they come from different containers) will result in the "
        "address being displayed in different subsets for the different ports. No address will appear in "
        "both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that "
        "comprise a service."
    ),
    "NodeSystemInfo.kubeletVersion": ("Kubelet Version reported by the node."),
    "NodeStatus.addresses": (
        "List of addresses reachable to the node. Queried from cloud provider, if available. More info: "
        "https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as "
        "mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it "
        "is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for "
        "an example. Consumers should assume that addresses can change during the lifetime of a Node. "
        "However, there are some exceptions where this may not be possible, such as Pods that inherit a "
        "Node's address in its own status or consumers of the downward API (status.hostIP)."
    ),
    "NodeSystemInfo.osImage": (
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."
    ),
    "NodeSystemInfo.kernelVersion": (
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
    ),
    "NodeSystemInfo.containerRuntimeVersion": (
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."
    ),
    "Event.lastTimestamp": ("The time at which the most recent occurrence of this event was recorded."),
    "Event.type": ("Type of this event (Normal, Warning), new types could be added in the future"),
    "Event.reason": (
        "This should be a short, machine understandable string that gives the reason for the transition "
        "into the object's current status."
    ),
    "Event.involvedObject": ("The object that this event is about."),
    "ObjectReference.fieldPath": (
        "If referring to a piece of an object instead of an entire object, this string should contain a "
        "valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, "
        "if the object reference is to a container within a pod, this would take on a value like: "
        '"spec.containers{name}" (where "name" refers to the name of the container that triggered the '
        'event) or if no container name is specified "spec.containers[2]" (container with index 2 in this '
        "pod). This syntax is chosen only to have some well-defined way of referencing a part of an "
        "object."
    ),
    "Event.source": ("The component reporting this event. Should be a short machine understandable string."),
    "Event.message": ("A human-readable description of the status of this operation."),
    "Event.firstTimestamp": (
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"
    ),
    "Event.count": ("The number of times this event has occurred."),
    "Secret.type": (
        "Used to facilitate programmatic handling of secret data. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
    ),
    "Secret.data": (
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or "
        "'.'. The serialized form of the secret data is a base64 encoded string, representing the "
        "arbitrary (possibly non-string) data value here. Described in "
        "https://tools.ietf.org/html/rfc4648#section-4"
    ),
    "ServiceAccount.secrets": (
        "Secrets is a list of the secrets in the same namespace that pods running using this "
        "ServiceAccount are allowed to use. Pods are only limited to this list if this service account "
        'has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The '
        '"kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer separate '
        "namespaces to isolate access to mounted secrets. This field should not be used to find "
        "auto-generated service account token secrets for use outside of pods. Instead, tokens can be "
        "requested directly using the TokenRequest API, or service account token secrets can be manually "
        "created. More info: https://kubernetes.io/docs/concepts/configuration/secret"
    ),
    "ConfigMap.data": (
        "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' "
        "or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in "
        "Data must not overlap with the keys in the BinaryData field, this is enforced during validation "
        "process."
    ),
    "ReplicaSetSpec.replicas": (
        "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero "
        "and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicaset"
    ),
    "ReplicaSetStatus.replicas": (
        "Replicas is the most recently observed number of non-terminating pods. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicaset"
    ),
    "ReplicaSetStatus.readyReplicas": (
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."
    ),
    "ReplicaSetSpec.selector": (
        "Selector is a label query over pods that should match the replica count. If the selector is "
        "empty, it is defaulted to the labels present on the pod template. Label keys and values that "
        "must match in order to be controlled by this replica set. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "DaemonSetStatus.desiredNumberScheduled": (
        "The total number of nodes that should be running the daemon pod (including nodes correctly "
        "running the daemon pod). More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
    ),
    "DaemonSetStatus.currentNumberScheduled": (
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon "
        "pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
    ),
    "DaemonSetStatus.numberReady": (
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod "
        "running and ready."
    ),
    "DaemonSetStatus.updatedNumberScheduled": ("The total number of nodes that are running updated daemon pod"),
    "DaemonSetStatus.numberAvailable": (
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod "
        "running and available (ready for at least spec.minReadySeconds)"
    ),
    "DaemonSetSpec.selector": (
        "A label query over pods that are managed by the daemon set. Must match in order to be "
        "controlled. If empty, defaulted to labels on Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "DeploymentStatus.updatedReplicas": (
        "Total number of non-terminating pods targeted by this deployment that have the desired template spec."
    ),
    "DeploymentStatus.availableReplicas": (
        "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by "
        "this deployment."
    ),
    "DeploymentSpec.selector": (
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones "
        "affected by this deployment."
    ),
    "JobStatus.succeeded": (
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given "
        "spec. However, it may decrease in reaction to scale down of elastic indexed jobs."
    ),
    "JobSpec.selector": (
        "A label query over pods that should match the pod count. Normally, the system sets this field "
        "for you. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "CronJobSpec.schedule": ("The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    "CronJobSpec.timeZone": (
        "The time zone name for the given schedule, see "
        "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will "
        "default to the time zone of the kube-controller-manager process. The set of valid time zone "
        "names and the time zone offset is loaded from the system-wide time zone database by the API "
        "server during CronJob validation and the controller manager during execution. If no system-wide "
        "time zone database can be found a bundled version of the database is used instead. If the time "
        "zone name becomes invalid during the lifetime of a CronJob or due to a change in host "
        "configuration, the controller will stop creating new new Jobs and will create a system event "
        "with the reason UnknownTimeZone. More information can be found in "
        "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"
    ),
    "CronJobSpec.suspend": (
        "This flag tells the controller to suspend subsequent executions, it does not apply to already "
        "started executions.  Defaults to false."
    ),
    "CronJobStatus.active": ("A list of pointers to currently running jobs."),
    "CronJobStatus.lastScheduleTime": ("Information when was the last time the job was successfully scheduled."),
    "RoleBinding.roleRef": (
        "roleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. "
        "If the RoleRef cannot be resolved, the Authorizer must return an error."
    ),
    "ClusterRoleBinding.roleRef": (
        "roleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be "
        "resolved, the Authorizer must return an error."
    ),
    "LeaseSpec.holderIdentity": (
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader "
        "Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name "
        "field."
    ),
    "EndpointSlice.addressType": (
        "addressType specifies the type of address carried by this EndpointSlice. All addresses in this "
        "slice must be the same type. This field is immutable after creation. The following address types "
        "are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. "
        "* FQDN: Represents a Fully Qualified Domain Name."
    ),
    "EndpointSlice.ports": (
        "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must "
        "have a unique name. When ports is empty, it indicates that there are no defined ports. When a "
        'port is defined with a nil port value, it indicates "all ports". Each slice may include a '
        "maximum of 100 ports."
    ),
    "EndpointSlice.endpoints": (
        "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."
    ),
}
_CONTAINERS_DOC: Final = "Names of each container in the template."
_IMAGES_DOC: Final = "Images referenced by each container in the template."
_READY_PODS_DOC: Final = "Number of the pod with ready state"
_CUSTOM_COLUMN_DOC: Final = "Custom resource definition column (in JSONPath format): {path}"


def _col(name: str, type_: str, doc: str, *, priority: int = 0, format_: str = "") -> Column:
    return Column(name, type_, _DOC.get(doc, doc), format_, priority)


_NAME: Final = Column("Name", "string", _NAME_DOC, "name")
_AGE: Final = Column("Age", "string", _CREATED_DOC)
_CONTAINERS: Final = Column("Containers", "string", _CONTAINERS_DOC, priority=1)
_IMAGES: Final = Column("Images", "string", _IMAGES_DOC, priority=1)


# ---------------------------------------------------------------------------------------------------------------
# Time


def human_duration(delta: timedelta | float) -> str:
    """A duration as Kubernetes prints ages: "45s", "5m30s", "3h", "2d4h", "2y", with its rounding rules.

    ``delta`` is a timedelta or a number of seconds. Up to 2 minutes: seconds; up to 10 minutes: minutes and
    seconds; up to 3 hours: minutes; up to 8 hours: hours and minutes; up to 2 days: hours; up to 8 days: days
    and hours; up to 2 years: days; up to 8 years: years and days; then years. Every unit is truncated, not
    rounded. A slightly negative duration (clock skew under 2 s) is "0s"; a more negative one "<invalid>".
    """
    if isinstance(delta, timedelta):
        nanos = ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000
    else:
        nanos = int(delta * 1e9)
    seconds = -(-nanos // 1_000_000_000) if nanos < 0 else nanos // 1_000_000_000
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if rest == 0 else f"{hours // 24 // 365}y{rest}d"
    return f"{hours // 24 // 365}y"


_RFC3339: Final = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\Z")
_time_cache: dict[str, datetime | None] = {}


def _parse_time(text: object) -> datetime | None:
    """An RFC 3339 time (what metav1.Time and MicroTime accept), or None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    found = _time_cache.get(text, _MISSING)
    if found is not _MISSING:
        return found  # type: ignore[return-value]
    parsed: datetime | None = None
    if len(text) == 20 and text[10] == "T" and text[19] == "Z" and text[:4].isdigit():
        # the form the server writes; fromisoformat checks the digits
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
    elif match := _RFC3339.match(text):
        base, fraction, zone = match.groups()
        micro = f".{(fraction + '000000')[:6]}" if fraction else ""
        try:
            parsed = datetime.fromisoformat(f"{base}{micro}{'+00:00' if zone == 'Z' else zone}")
        except ValueError:
            parsed = None
    if len(_time_cache) > 65_536:
        _time_cache.clear()
    _time_cache[text] = parsed
    return parsed


_MISSING: Final = object()


def _since(text: object, now: datetime) -> str:
    """translateTimestampSince: the age of a timestamp, "<unknown>" when there is none."""
    when = _parse_time(text)
    return "<unknown>" if when is None else human_duration(now - when)


# ---------------------------------------------------------------------------------------------------------------
# Tolerant accessors: the printers read typed, defaulted objects; ours are plain dicts that may lack fields.


def _m(obj: object, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else _EMPTY


def _l(obj: object, key: str) -> Sequence[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else ()


def _s(obj: object, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _i(obj: object, key: str, default: int = 0) -> int:
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _present(obj: object, key: str) -> bool:
    """Whether a pointer field is set (present and not null)."""
    return isinstance(obj, dict) and obj.get(key) is not None


_EMPTY: Final[Mapping[str, Any]] = {}


def _name(obj: Mapping[str, Any]) -> str:
    return _s(_m(obj, "metadata"), "name")


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    return _since(_m(obj, "metadata").get("creationTimestamp"), now)


def _condition_true(conditions: Iterable[Any], kind: str) -> bool:
    """The status of the first condition of this type is True (hasJobCondition, isPodInitializedConditionTrue)."""
    for condition in conditions:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def _format_labels(labels: Mapping[str, Any]) -> str:
    """labels.FormatLabels: sorted key=value pairs, "<none>" when empty."""
    text = ",".join(f"{key}={labels[key]}" for key in sorted(labels))
    return text or "<none>"


def _selector_string(selector: object) -> str | None:
    """LabelSelectorAsSelector(...).String(); None when the selector is invalid."""
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return None
    for key, value in match_labels.items():
        requirements.append((str(key), f"{key}={value}"))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return None
    for expression in expressions:
        if not isinstance(expression, dict):
            return None
        key, operator = _s(expression, "key"), expression.get("operator")
        values = [str(value) for value in _l(expression, "values")]
        if operator in ("In", "NotIn"):
            if not values:
                return None
            joined = values[0] if len(values) == 1 else ",".join(sorted(values))
            word = "in" if operator == "In" else "notin"
            requirements.append((key, f"{key} {word} ({joined})"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                return None
            requirements.append((key, key if operator == "Exists" else f"!{key}"))
        else:
            return None
    requirements.sort(key=lambda requirement: requirement[0])
    return ",".join(text for _, text in requirements)


def _format_selector(selector: object) -> str:
    """metav1.FormatLabelSelector: "<none>" when it selects everything, "<error>" when invalid."""
    if selector is None:
        return "<none>"
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def _layout_containers(containers: Sequence[Any]) -> tuple[str, str]:
    names = ",".join(_s(container, "name") for container in containers)
    images = ",".join(_s(container, "image") for container in containers)
    return names, images


def _template_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _m(_m(_m(obj, "spec"), "template"), "spec")


# ---------------------------------------------------------------------------------------------------------------
# Printers of the built-in kinds

Cells = list[Any]
RowCells = Callable[[Mapping[str, Any], datetime], Cells]
RowConditions = Callable[[Mapping[str, Any]], list[dict[str, str]] | None]


@dataclass(frozen=True)
class _Printer:
    columns: tuple[Column, ...]
    cells: RowCells
    conditions: RowConditions | None = None

    def definitions(self) -> list[dict[str, Any]]:
        return [column.definition() for column in self.columns]


def _pod_cells(pod: Mapping[str, Any], now: datetime) -> Cells:
    # The hottest printer (10,000-pod lists): accessors are inlined, every shape is still checked.
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        spec = _EMPTY
    status = pod.get("status")
    if not isinstance(status, dict):
        status = _EMPTY
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        meta = _EMPTY
    containers = spec.get("containers")
    total = len(containers) if isinstance(containers, list) else 0
    init_specs = spec.get("initContainers")
    if not isinstance(init_specs, list):
        init_specs = []
    sidecars = set()
    for container in init_specs:
        if isinstance(container, dict) and container.get("restartPolicy") == "Always":
            sidecars.add(container.get("name"))
            total += 1
    phase = status.get("phase")
    if not isinstance(phase, str):
        phase = ""
    reason = status.get("reason")
    if not reason or not isinstance(reason, str):
        reason = phase
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = []
    for condition in conditions:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "PodScheduled"
            and condition.get("reason") == "SchedulingGated"
        ):
            reason = "SchedulingGated"

    restarts = sidecar_restarts = ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    initializing = False
    init_statuses = status.get("initContainerStatuses")
    if isinstance(init_statuses, list) and init_statuses:
        reason, initializing, ready, restarts, last_restart, sidecar_restarts, last_sidecar_restart = _pod_init_status(
            init_statuses, init_specs, sidecars, reason
        )

    if not initializing or _condition_true(conditions, "Initialized"):
        # past the init containers, only the sidecars' restarts count along with the main containers'
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        running = False
        statuses = status.get("containerStatuses")
        for container in reversed(statuses) if isinstance(statuses, list) else ():
            if not isinstance(container, dict):
                continue
            count = container.get("restartCount")
            if type(count) is int:
                restarts += count
            last_state = container.get("lastState")
            if isinstance(last_state, dict) and isinstance(last_state.get("terminated"), dict):
                finished = _parse_time(last_state["terminated"].get("finishedAt"))
                if finished is not None and (last_restart is None or finished > last_restart):
                    last_restart = finished
            state = container.get("state")
            if not isinstance(state, dict):
                state = _EMPTY
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if isinstance(waiting, dict) and waiting.get("reason") and isinstance(waiting["reason"], str):
                reason = waiting["reason"]
            elif isinstance(terminated, dict):
                if terminated.get("reason") and isinstance(terminated["reason"], str):
                    reason = terminated["reason"]
                else:
                    signal = _i(terminated, "signal")
                    reason = f"Signal:{signal}" if signal else f"ExitCode:{_i(terminated, 'exitCode')}"
            elif container.get("ready") is True and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            ready_condition = any(
                isinstance(condition, dict) and condition.get("type") == "Ready" and condition.get("status") == "True"
                for condition in conditions
            )
            reason = "Running" if ready_condition else "NotReady"

    if meta.get("deletionTimestamp") is not None:
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Failed", "Succeeded"):
            reason = "Terminating"

    restart_text = str(restarts)
    if restarts and last_restart is not None:
        restart_text = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ip = status.get("podIP")
    if not pod_ip or not isinstance(pod_ip, str):
        ips = status.get("podIPs")
        pod_ip = _s(ips[0], "ip") if isinstance(ips, list) and ips else ""
    gates = spec.get("readinessGates")
    gates_text = "<none>"
    if isinstance(gates, list) and gates:
        passed = 0
        for gate in gates:
            for condition in conditions:
                if _s(condition, "type") == _s(gate, "conditionType"):
                    passed += _s(condition, "status") == "True"
                    break
        gates_text = f"{passed}/{len(gates)}"
    node = spec.get("nodeName")
    nominated = status.get("nominatedNodeName")
    name = meta.get("name")
    return [
        name if isinstance(name, str) else "",
        f"{ready}/{total}",
        reason,
        restart_text,
        _since(meta.get("creationTimestamp"), now),
        pod_ip or "<none>",
        node if node and isinstance(node, str) else "<none>",
        nominated if nominated and isinstance(nominated, str) else "<none>",
        gates_text,
    ]


def _pod_init_status(
    statuses: Sequence[Any], specs: Sequence[Any], sidecars: set[Any], reason: str
) -> tuple[str, bool, int, int, datetime | None, int, datetime | None]:
    """The init containers' part of the pod status.

    Returns (reason, initializing, ready sidecars, restarts and last restart of all init containers,
    restarts and last restart of the sidecars, the restartable init containers).
    """
    restarts = sidecar_restarts = ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    initializing = False
    for index, container in enumerate(statuses):
        count = _i(container, "restartCount")
        finished = _parse_time(_m(_m(container, "lastState"), "terminated").get("finishedAt"))
        restarts += count
        last_restart = _later(last_restart, finished)
        sidecar = isinstance(container, dict) and container.get("name") in sidecars
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = _m(container, "state")
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, dict) and _i(terminated, "exitCode") == 0:
            continue
        if sidecar and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            if _s(terminated, "reason"):
                reason = "Init:" + _s(terminated, "reason")
            elif _i(terminated, "signal"):
                reason = f"Init:Signal:{_i(terminated, 'signal')}"
            else:
                reason = f"Init:ExitCode:{_i(terminated, 'exitCode')}"
        elif isinstance(waiting, dict) and _s(waiting, "reason") and _s(waiting, "reason") != "PodInitializing":
            reason = "Init:" + _s(waiting, "reason")
        else:
            reason = f"Init:{index}/{len(specs)}"
        initializing = True
        break
    return reason, initializing, ready, restarts, last_restart, sidecar_restarts, last_sidecar_restart


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None or (current is not None and current >= candidate):
        return current
    return candidate


_POD_SUCCEEDED: Final = (
    {"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."},
)
_POD_FAILED: Final = ({"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."},)


def _pod_conditions(pod: Mapping[str, Any]) -> list[dict[str, str]] | None:
    phase = _s(_m(pod, "status"), "phase")
    if phase == "Succeeded":
        return [dict(condition) for condition in _POD_SUCCEEDED]
    if phase == "Failed":
        return [dict(condition) for condition in _POD_FAILED]
    return None


def _deployment_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    names, images = _layout_containers(_l(_template_spec(obj), "containers"))
    selector = _selector_string(spec.get("selector"))
    return [
        _name(obj),
        f"{_i(status, 'readyReplicas')}/{_i(spec, 'replicas', 1)}",
        _i(status, "updatedReplicas"),
        _i(status, "availableReplicas"),
        _age(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


def _replicaset_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    names, images = _layout_containers(_l(_template_spec(obj), "containers"))
    return [
        _name(obj),
        _i(spec, "replicas", 1),
        _i(status, "replicas"),
        _i(status, "readyReplicas"),
        _age(obj, now),
        names,
        images,
        _format_selector(spec.get("selector")),
    ]


def _statefulset_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    names, images = _layout_containers(_l(_template_spec(obj), "containers"))
    return [_name(obj), f"{_i(status, 'readyReplicas')}/{_i(spec, 'replicas', 1)}", _age(obj, now), names, images]


def _daemonset_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    template = _template_spec(obj)
    names, images = _layout_containers(_l(template, "containers"))
    return [
        _name(obj),
        _i(status, "desiredNumberScheduled"),
        _i(status, "currentNumberScheduled"),
        _i(status, "numberReady"),
        _i(status, "updatedNumberScheduled"),
        _i(status, "numberAvailable"),
        _format_labels(_m(template, "nodeSelector")),
        _age(obj, now),
        names,
        images,
        _format_selector(spec.get("selector")),
    ]


_JOB_STATES: Final = ("Suspended", "FailureTarget", "SuccessCriteriaMet")


def _job_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    succeeded = _i(status, "succeeded")
    if _present(spec, "completions"):
        completions = f"{succeeded}/{_i(spec, 'completions')}"
    elif _i(spec, "parallelism", 1) > 1:
        completions = f"{succeeded}/1 of {_i(spec, 'parallelism')}"
    else:
        completions = f"{succeeded}/1"
    started = _parse_time(status.get("startTime"))
    finished = _parse_time(status.get("completionTime"))
    took = ""
    if started is not None:
        took = human_duration((finished or now) - started)
    conditions = _l(status, "conditions")
    state = "Running"
    if _condition_true(conditions, "Complete"):
        state = "Complete"
    elif _condition_true(conditions, "Failed"):
        state = "Failed"
    elif _present(_m(obj, "metadata"), "deletionTimestamp"):
        state = "Terminating"
    else:
        state = next((kind for kind in _JOB_STATES if _condition_true(conditions, kind)), "Running")
    names, images = _layout_containers(_l(_template_spec(obj), "containers"))
    return [_name(obj), state, completions, took, _age(obj, now), names, images, _format_selector(spec.get("selector"))]


def _cronjob_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    job_spec = _m(_m(spec, "jobTemplate"), "spec")
    names, images = _layout_containers(_l(_m(_m(job_spec, "template"), "spec"), "containers"))
    last = status.get("lastScheduleTime")
    suspend = spec.get("suspend")
    return [
        _name(obj),
        _s(spec, "schedule"),
        _s(spec, "timeZone") if _present(spec, "timeZone") else "<none>",
        "True" if suspend is True else "False",
        len(_l(status, "active")),
        "<none>" if last is None else _since(last, now),
        _age(obj, now),
        names,
        images,
        _format_selector(job_spec.get("selector")),
    ]


def _service_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec = _m(obj, "spec")
    kind = _s(spec, "type") or "ClusterIP"
    cluster_ip = _s(spec, "clusterIP") or (_l(spec, "clusterIPs") or [""])[0]
    external = [str(address) for address in _l(spec, "externalIPs")]
    if kind in ("ClusterIP", "NodePort"):
        external_ip = ",".join(external) or "<none>"
    elif kind == "LoadBalancer":
        ingress = sorted(
            {_s(point, "ip") or _s(point, "hostname") for point in _l(_m(_m(obj, "status"), "loadBalancer"), "ingress")}
            - {""}
        )
        balancers = ",".join(ingress)
        external_ip = ",".join([*ingress, *external]) if external else balancers or "<pending>"
    elif kind == "ExternalName":
        external_ip = _s(spec, "externalName")
    else:
        external_ip = "<unknown>"
    ports = []
    for port in _l(spec, "ports"):
        protocol = _s(port, "protocol") or "TCP"
        node_port = _i(port, "nodePort")
        number = _i(port, "port")
        ports.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return [
        _name(obj),
        kind,
        cluster_ip if isinstance(cluster_ip, str) and cluster_ip else "<none>",
        external_ip,
        ",".join(ports) or "<none>",
        _age(obj, now),
        _format_labels(_m(spec, "selector")),
    ]


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoints_text(obj: Mapping[str, Any]) -> str:
    subsets = _l(obj, "subsets")
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for subset in subsets:
        addresses = _l(subset, "addresses")
        ports = _l(subset, "ports")
        if not ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_s(address, "ip"))
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_join_host_port(_s(address, "ip"), _i(port, "port")))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _endpoints_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(obj), _endpoints_text(obj), _age(obj, now)]


def _list_with_more(items: Iterable[str], limit: int = 3) -> str:
    shown: list[str] = []
    count = 0
    for item in items:
        if len(shown) < limit:
            shown.append(item)
        count += 1
    text = ",".join(shown)
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def _endpointslice_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    def port_text(port: Any) -> str:
        if _present(port, "port"):
            return str(_i(port, "port"))
        if _present(port, "name"):
            return _s(port, "name")
        return "*"

    addresses = (str(address) for endpoint in _l(obj, "endpoints") for address in _l(endpoint, "addresses"))
    return [
        _name(obj),
        _s(obj, "addressType"),
        _list_with_more(port_text(port) for port in _l(obj, "ports")),
        _list_with_more(addresses),
        _age(obj, now),
    ]


def _node_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    states: list[str] = []
    ready = None
    for condition in _l(status, "conditions"):
        if _s(condition, "type") == "Ready":
            ready = condition  # the last one wins, as in the printer's condition map
    if ready is not None:
        states.append("Ready" if _s(ready, "status") == "True" else "NotReady")
    else:
        states.append("Unknown")
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")
    roles = set()
    for key, value in _m(_m(obj, "metadata"), "labels").items():
        if key.startswith("node-role.kubernetes.io/") and len(key) > len("node-role.kubernetes.io/"):
            roles.add(key[len("node-role.kubernetes.io/") :])
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    info = _m(status, "nodeInfo")

    def address(kind: str) -> str:
        return next((_s(item, "address") for item in _l(status, "addresses") if _s(item, "type") == kind), "<none>")

    return [
        _name(obj),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(obj, now),
        _s(info, "kubeletVersion"),
        address("InternalIP"),
        address("ExternalIP"),
        _s(info, "osImage") or "<unknown>",
        _s(info, "kernelVersion") or "<unknown>",
        _s(info, "containerRuntimeVersion") or "<unknown>",
    ]


def _event_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    return _core_event_cells(obj, obj, now)


def _events_v1_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    """events.k8s.io/v1 Events share the core Event storage and so its printer, read through the conversion."""
    core = {
        "involvedObject": obj.get("regarding"),
        "message": obj.get("note"),
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount"),
        "source": obj.get("deprecatedSource"),
        "eventTime": obj.get("eventTime"),
        "series": obj.get("series"),
        "reportingComponent": obj.get("reportingController"),
        "reportingInstance": obj.get("reportingInstance"),
        "type": obj.get("type"),
        "reason": obj.get("reason"),
    }
    return _core_event_cells(obj, core, now)


def _core_event_cells(obj: Mapping[str, Any], event: Mapping[str, Any], now: datetime) -> Cells:
    first = _since(event.get("firstTimestamp"), now)
    if _parse_time(event.get("firstTimestamp")) is None:
        first = _since(event.get("eventTime"), now)
    last = first if _parse_time(event.get("lastTimestamp")) is None else _since(event.get("lastTimestamp"), now)
    count = _i(event, "count")
    if _present(event, "series"):
        series = _m(event, "series")
        last = _since(series.get("lastObservedTime"), now)
        count = _i(series, "count")
    elif count == 0:
        count = 1
    involved = _m(event, "involvedObject")
    kind = _s(involved, "kind").lower()
    target = f"{kind}/{_s(involved, 'name')}" if _s(involved, "name") else kind
    source = _m(event, "source")
    component = _s(source, "component") or _s(event, "reportingComponent")
    host = _s(source, "host") or _s(event, "reportingInstance")
    return [
        last,
        _s(event, "type"),
        _s(event, "reason"),
        target,
        _s(involved, "fieldPath"),
        f"{component}, {host}" if host else component,
        _s(event, "message").strip(),
        first,
        count,
        _name(obj),
    ]


def _namespace_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    phase = _s(_m(obj, "status"), "phase")
    if not phase:  # the server sets it; when it did not, say what it would have
        phase = "Terminating" if _present(_m(obj, "metadata"), "deletionTimestamp") else "Active"
    return [_name(obj), phase, _age(obj, now)]


def _secret_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(obj), _s(obj, "type") or "Opaque", len(_m(obj, "data")), _age(obj, now)]


def _configmap_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(obj), len(_m(obj, "data")) + len(_m(obj, "binaryData")), _age(obj, now)]


def _serviceaccount_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(obj), len(_l(obj, "secrets")), _age(obj, now)]


def _lease_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(obj), _s(_m(obj, "spec"), "holderIdentity"), _age(obj, now)]


def _pdb_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    spec = _m(obj, "spec")

    def bound(key: str) -> str:
        value = spec.get(key)
        if value is None:
            return "N/A"
        return str(value) if not isinstance(value, bool) else str(int(value))

    return [
        _name(obj),
        bound("minAvailable"),
        bound("maxUnavailable"),
        _i(_m(obj, "status"), "disruptionsAllowed"),
        _age(obj, now),
    ]


def _webhook_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    return [_name(obj), len(_l(obj, "webhooks")), _age(obj, now)]


def _binding_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    ref = _m(obj, "roleRef")
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in _l(obj, "subjects"):
        kind = _s(subject, "kind")
        if kind == "ServiceAccount":
            accounts.append(f"{_s(subject, 'namespace')}/{_s(subject, 'name')}")
        elif kind == "User":
            users.append(_s(subject, "name"))
        elif kind == "Group":
            groups.append(_s(subject, "name"))
    return [
        _name(obj),
        f"{_s(ref, 'kind')}/{_s(ref, 'name')}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


def _default_cells(obj: Mapping[str, Any], now: datetime) -> Cells:
    created = _parse_time(_m(obj, "metadata").get("creationTimestamp"))
    stamp = "0001-01-01T00:00:00Z" if created is None else created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [_name(obj), stamp]


def _binding_columns(what: str, role_doc: str) -> tuple[Column, ...]:
    return (
        _NAME,
        _col("Role", "string", role_doc),
        _AGE,
        _col("Users", "string", f"Users in the {what}", priority=1),
        _col("Groups", "string", f"Groups in the {what}", priority=1),
        _col("ServiceAccounts", "string", f"ServiceAccounts in the {what}", priority=1),
    )


_EVENT_COLUMNS: Final = (
    _col("Last Seen", "string", "Event.lastTimestamp"),
    _col("Type", "string", "Event.type"),
    _col("Reason", "string", "Event.reason"),
    _col("Object", "string", "Event.involvedObject"),
    _col("Subobject", "string", "ObjectReference.fieldPath", priority=1),
    _col("Source", "string", "Event.source", priority=1),
    _col("Message", "string", "Event.message"),
    _col("First Seen", "string", "Event.firstTimestamp", priority=1),
    _col("Count", "string", "Event.count", priority=1),
    Column("Name", "string", _NAME_DOC, "name", 1),
)
_WEBHOOK_COLUMNS: Final = (
    _NAME,
    _col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
    _AGE,
)

_PRINTERS: Final[Mapping[tuple[str, str], _Printer]] = {
    ("", "Pod"): _Printer(
        (
            _NAME,
            _col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            _col("Status", "string", "The aggregate status of the containers in this pod."),
            _col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when "
                "the last container in this pod has restarted.",
            ),
            _AGE,
            _col("IP", "string", "PodStatus.podIP", priority=1),
            _col("Node", "string", "PodSpec.nodeName", priority=1),
            _col("Nominated Node", "string", "PodStatus.nominatedNodeName", priority=1),
            _col("Readiness Gates", "string", "PodSpec.readinessGates", priority=1),
        ),
        _pod_cells,
        _pod_conditions,
    ),
    ("apps", "Deployment"): _Printer(
        (
            _NAME,
            _col("Ready", "string", _READY_PODS_DOC),
            _col("Up-to-date", "string", "DeploymentStatus.updatedReplicas"),
            _col("Available", "string", "DeploymentStatus.availableReplicas"),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _col("Selector", "string", "DeploymentSpec.selector", priority=1),
        ),
        _deployment_cells,
    ),
    ("apps", "ReplicaSet"): _Printer(
        (
            _NAME,
            _col("Desired", "integer", "ReplicaSetSpec.replicas"),
            _col("Current", "integer", "ReplicaSetStatus.replicas"),
            _col("Ready", "integer", "ReplicaSetStatus.readyReplicas"),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _col("Selector", "string", "ReplicaSetSpec.selector", priority=1),
        ),
        _replicaset_cells,
    ),
    ("apps", "StatefulSet"): _Printer(
        (_NAME, _col("Ready", "string", _READY_PODS_DOC), _AGE, _CONTAINERS, _IMAGES),
        _statefulset_cells,
    ),
    ("apps", "DaemonSet"): _Printer(
        (
            _NAME,
            _col("Desired", "integer", "DaemonSetStatus.desiredNumberScheduled"),
            _col("Current", "integer", "DaemonSetStatus.currentNumberScheduled"),
            _col("Ready", "integer", "DaemonSetStatus.numberReady"),
            _col("Up-to-date", "integer", "DaemonSetStatus.updatedNumberScheduled"),
            _col("Available", "integer", "DaemonSetStatus.numberAvailable"),
            _col("Node Selector", "string", "PodSpec.nodeSelector"),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _col("Selector", "string", "DaemonSetSpec.selector", priority=1),
        ),
        _daemonset_cells,
    ),
    ("batch", "Job"): _Printer(
        (
            _NAME,
            _col("Status", "string", "Status of the job."),
            _col("Completions", "string", "JobStatus.succeeded"),
            _col("Duration", "string", "Time required to complete the job."),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _col("Selector", "string", "JobSpec.selector", priority=1),
        ),
        _job_cells,
    ),
    ("batch", "CronJob"): _Printer(
        (
            _NAME,
            _col("Schedule", "string", "CronJobSpec.schedule"),
            _col("Timezone", "string", "CronJobSpec.timeZone"),
            _col("Suspend", "boolean", "CronJobSpec.suspend"),
            _col("Active", "integer", "CronJobStatus.active"),
            _col("Last Schedule", "string", "CronJobStatus.lastScheduleTime"),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _col("Selector", "string", "JobSpec.selector", priority=1),
        ),
        _cronjob_cells,
    ),
    ("", "Service"): _Printer(
        (
            _NAME,
            _col("Type", "string", "ServiceSpec.type"),
            _col("Cluster-IP", "string", "ServiceSpec.clusterIP"),
            _col("External-IP", "string", "ServiceSpec.externalIPs"),
            _col("Port(s)", "string", "ServiceSpec.ports"),
            _AGE,
            _col("Selector", "string", "ServiceSpec.selector", priority=1),
        ),
        _service_cells,
    ),
    ("", "Endpoints"): _Printer((_NAME, _col("Endpoints", "string", "Endpoints.subsets"), _AGE), _endpoints_cells),
    ("discovery.k8s.io", "EndpointSlice"): _Printer(
        (
            _NAME,
            _col("AddressType", "string", "EndpointSlice.addressType"),
            _col("Ports", "string", "EndpointSlice.ports"),
            _col("Endpoints", "string", "EndpointSlice.endpoints"),
            _AGE,
        ),
        _endpointslice_cells,
    ),
    ("", "Node"): _Printer(
        (
            _NAME,
            _col("Status", "string", "The status of the node"),
            _col("Roles", "string", "The roles of the node"),
            _AGE,
            _col("Version", "string", "NodeSystemInfo.kubeletVersion"),
            _col("Internal-IP", "string", "NodeStatus.addresses", priority=1),
            _col("External-IP", "string", "NodeStatus.addresses", priority=1),
            _col("OS-Image", "string", "NodeSystemInfo.osImage", priority=1),
            _col("Kernel-Version", "string", "NodeSystemInfo.kernelVersion", priority=1),
            _col("Container-Runtime", "string", "NodeSystemInfo.containerRuntimeVersion", priority=1),
        ),
        _node_cells,
    ),
    ("", "Event"): _Printer(_EVENT_COLUMNS, _event_cells),
    ("events.k8s.io", "Event"): _Printer(_EVENT_COLUMNS, _events_v1_cells),
    ("", "Namespace"): _Printer(
        (_NAME, _col("Status", "string", "The status of the namespace"), _AGE), _namespace_cells
    ),
    ("", "Secret"): _Printer(
        (_NAME, _col("Type", "string", "Secret.type"), _col("Data", "string", "Secret.data"), _AGE), _secret_cells
    ),
    ("", "ServiceAccount"): _Printer(
        (_NAME, _col("Secrets", "string", "ServiceAccount.secrets"), _AGE), _serviceaccount_cells
    ),
    ("", "ConfigMap"): _Printer((_NAME, _col("Data", "string", "ConfigMap.data"), _AGE), _configmap_cells),
    ("coordination.k8s.io", "Lease"): _Printer(
        (_NAME, _col("Holder", "string", "LeaseSpec.holderIdentity"), _AGE), _lease_cells
    ),
    ("policy", "PodDisruptionBudget"): _Printer(
        (
            _NAME,
            _col("Min Available", "string", "The minimum number of pods that must be available."),
            _col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
            _col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
            _AGE,
        ),
        _pdb_cells,
    ),
    ("rbac.authorization.k8s.io", "RoleBinding"): _Printer(
        _binding_columns("roleBinding", "RoleBinding.roleRef"), _binding_cells
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _Printer(
        _binding_columns("clusterRoleBinding", "ClusterRoleBinding.roleRef"), _binding_cells
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): _Printer(_WEBHOOK_COLUMNS, _webhook_cells),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _Printer(_WEBHOOK_COLUMNS, _webhook_cells),
}

_DEFAULT_PRINTER: Final = _Printer((_NAME, Column("Created At", "date", _CREATED_DOC)), _default_cells)


# ---------------------------------------------------------------------------------------------------------------
# JSONPath, the subset printer columns use


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Recursive:
    pass


@dataclass(frozen=True)
class _Slice:
    start: int | None
    end: int | None
    step: int | None
    single: bool
    """[n], which the parser turns into [n:n+1] (a derived end)."""


@dataclass(frozen=True)
class _Filter:
    left: tuple[Any, ...]
    operator: str
    """One of == != < > <= >=, or "exists" for [?(@.field)]."""
    right: tuple[Any, ...] | None
    literal: Any = None


_Step = _Field | _Wildcard | _Recursive | _Slice | _Filter
_TERMINATORS: Final = frozenset(" \t\r\n.,[]$@{}")
_FILTER_SPLIT: Final = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$", re.S)
_OPERATORS: Final = frozenset({"==", "!=", "<", ">", "<=", ">="})
_INTEGER: Final = re.compile(r"[+-]?\d+\Z")
_NUMBER: Final = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?\Z")


@dataclass(frozen=True)
class JSONPath:
    """A compiled JSONPath: field names, [n] and slices, [*] and .*, .. and [?(@.x op literal)] filters."""

    text: str
    steps: tuple[_Step, ...]

    def find(self, data: Any) -> list[Any]:
        """Every value the path selects, in order; missing keys select nothing.

        Raises _EvalError where client-go's jsonpath fails (indexing what is not a list, comparing unlike types).
        """
        return _evaluate(self.steps, [data])


def compile_json_path(text: str) -> JSONPath:
    """Parse a printer column's jsonPath (without the braces kubectl's templates use), e.g. ``.status.phase``.

    Raises JSONPathError when the text is not a path this subset understands.
    """
    steps = _parse_steps(text.strip(), text)
    return JSONPath(text, tuple(steps))


def _parse_steps(path: str, whole: str) -> list[_Step]:
    steps: list[_Step] = []
    position = 1 if path.startswith("$") else 0
    if path[position : position + 1] not in ("", ".", "["):
        raise JSONPathError(f"unrecognized JSONPath {whole!r}: it must start with '.' or '['")
    while position < len(path):
        char = path[position]
        if char in " \t":
            position += 1
        elif char == ".":
            if path.startswith("..", position):
                steps.append(_Recursive())
                position += 1
            position += 1
            name, position = _read_field(path, position)
            if name == "*":
                steps.append(_Wildcard())
            elif name:
                steps.append(_Field(name))
        elif char == "[":
            step, position = _read_bracket(path, position, whole)
            steps.extend(step)
        else:
            raise JSONPathError(f"unrecognized character {char!r} at {position} in JSONPath {whole!r}")
    return steps


def _read_field(path: str, position: int) -> tuple[str, int]:
    chars: list[str] = []
    while position < len(path) and path[position] not in _TERMINATORS:
        if path[position] == "\\" and position + 1 < len(path):
            position += 1
        chars.append(path[position])
        position += 1
    return "".join(chars), position


def _read_bracket(path: str, position: int, whole: str) -> tuple[list[_Step], int]:
    if path.startswith("[?(", position):
        end = path.find(")]", position)
        if end < 0:
            raise JSONPathError(f"unclosed filter in JSONPath {whole!r}")
        return [_parse_filter(path[position + 3 : end], whole)], end + 2
    end = position + 1
    quote = ""
    while end < len(path):
        char = path[end]
        if quote:
            if char == "\\":
                end += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "]":
            break
        end += 1
    if end >= len(path):
        raise JSONPathError(f"unclosed '[' in JSONPath {whole!r}")
    inner = path[position + 1 : end].strip()
    if inner == "*":
        return [_Wildcard()], end + 1
    if inner[:1] in ("'", '"'):
        return [_Field(_unquote(inner, whole))], end + 1
    return [_parse_slice(inner, whole)], end + 1


def _unquote(text: str, whole: str) -> str:
    if len(text) < 2 or text[-1] != text[0]:
        raise JSONPathError(f"unterminated quoted string {text!r} in JSONPath {whole!r}")
    if text[0] == '"':
        try:
            value = json.loads(text)
        except ValueError as error:
            raise JSONPathError(f"invalid quoted string {text!r} in JSONPath {whole!r}") from error
        return str(value)
    return text[1:-1]


def _parse_slice(inner: str, whole: str) -> _Slice:
    parts = inner.split(":")
    if len(parts) > 3 or not inner:
        raise JSONPathError(f"invalid array index [{inner}] in JSONPath {whole!r}")
    numbers: list[int | None] = []
    for part in (piece.strip() for piece in parts):
        if not part:
            numbers.append(None)
        elif _INTEGER.match(part):
            numbers.append(int(part))
        else:
            raise JSONPathError(f"invalid array index [{inner}] in JSONPath {whole!r}")
    numbers += [None] * (3 - len(numbers))
    if len(parts) == 1 and numbers[0] is None:
        raise JSONPathError(f"invalid array index [{inner}] in JSONPath {whole!r}")
    return _Slice(numbers[0], numbers[1], numbers[2], single=len(parts) == 1)


def _parse_filter(text: str, whole: str) -> _Filter:
    match = _FILTER_SPLIT.match(text)
    if match is None:
        return _Filter(_parse_operand_path(text.strip(), whole), "exists", None)
    left, operator, right = (part.strip() for part in match.groups())
    if operator not in _OPERATORS:
        raise JSONPathError(f"unrecognized filter operator {operator!r} in JSONPath {whole!r}")
    left_steps = _parse_operand_path(left, whole)
    if right.startswith("@"):
        return _Filter(left_steps, operator, _parse_operand_path(right, whole))
    return _Filter(left_steps, operator, None, _parse_literal(right, whole))


def _parse_operand_path(text: str, whole: str) -> tuple[_Step, ...]:
    if not text.startswith("@"):
        raise JSONPathError(f"a filter must compare a path starting with '@' in JSONPath {whole!r}")
    return tuple(_parse_steps(text[1:], whole))


def _parse_literal(text: str, whole: str) -> Any:
    if text[:1] in ("'", '"'):
        return _unquote(text, whole)
    if text in ("true", "false"):
        return text == "true"
    if _INTEGER.match(text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    raise JSONPathError(f"unrecognized filter value {text!r} in JSONPath {whole!r}")


def _evaluate(steps: Sequence[_Step], values: list[Any]) -> list[Any]:
    for step in steps:
        if not values:
            return values
        values = _apply(step, values)
    return values


def _apply(step: _Step, values: list[Any]) -> list[Any]:
    found: list[Any] = []
    if isinstance(step, _Field):
        for value in values:
            if isinstance(value, dict) and step.name in value:
                found.append(value[step.name])
    elif isinstance(step, _Wildcard):
        for value in values:
            if isinstance(value, dict):
                found.extend(value.values())
            elif isinstance(value, list):
                found.extend(value)
    elif isinstance(step, _Recursive):
        for value in values:
            found.extend(_descend(value))
    elif isinstance(step, _Slice):
        for value in values:
            if value is None:
                continue
            if not isinstance(value, list):
                raise _EvalError(f"{type(value).__name__} is not array or slice")
            chosen = _slice(step, value)
            if chosen is None:
                return found
            found.extend(chosen)
    else:
        for value in values:
            if not isinstance(value, list):
                raise _EvalError(f"{type(value).__name__} is not array or slice and cannot be filtered")
            found.extend(item for item in value if _passes(step, item))
    return found


def _descend(value: Any) -> list[Any]:
    children: list[Any]
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = list(value)
    else:
        return []
    if not children:
        return []
    found = [value]
    for child in children:
        found.extend(_descend(child))
    return found


def _slice(step: _Slice, items: list[Any]) -> list[Any] | None:
    """client-go's array evaluation: None where it stops evaluating (an empty range), errors when out of bounds."""
    length = len(items)
    start = 0 if step.start is None else step.start
    if start < 0:
        start += length
    if step.single:
        end = (step.start or 0) + 1
        if end <= 0:
            end += length
    else:
        end = length if step.end is None else step.end
        if end < 0:
            end += length
    if start == end:
        return None
    if start >= length or start < 0 or end > length or end < 0:
        raise _EvalError(f"array index out of bounds: index {start}, length {length}")
    if start > end:
        raise _EvalError(f"starting index {start} is greater than ending index {end}")
    stride = 1
    if step.step is not None:
        if step.step <= 0:
            raise _EvalError("step must be > 0")
        stride = step.step
    return items[start:end:stride]


def _passes(step: _Filter, item: Any) -> bool:
    if step.operator == "exists":
        try:
            return bool(_evaluate(step.left, [item]))
        except _EvalError:
            return False
    lefts = _evaluate(step.left, [item])
    if not lefts:
        return False
    if len(lefts) > 1:
        raise _EvalError("can only compare one element at a time")
    if step.right is None:
        right = step.literal
    else:
        rights = _evaluate(step.right, [item])
        if not rights:
            return False
        if len(rights) > 1:
            raise _EvalError("can only compare one element at a time")
        right = rights[0]
    return _compare(lefts[0], step.operator, right)


def _basic_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise _EvalError("invalid type for comparison")


def _compare(left: Any, operator: str, right: Any) -> bool:
    """text/template's eq, ne, lt, ...: only values of one basic kind compare; anything else is an error."""
    kind = _basic_kind(left)
    if kind != _basic_kind(right):
        raise _EvalError("incompatible types for comparison")
    if operator == "==":
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    if kind == "bool":
        raise _EvalError("invalid type for comparison")
    if operator == "<":
        return bool(left < right)
    if operator == ">":
        return bool(left > right)
    if operator == "<=":
        return bool(left <= right)
    return bool(left >= right)


# ---------------------------------------------------------------------------------------------------------------
# Custom resources


@dataclass(frozen=True)
class _CustomColumn:
    column: Column
    path: JSONPath | None


_DEFAULT_CUSTOM_COLUMNS: Final = (
    {"name": "Age", "type": "date", "description": _CREATED_DOC, "jsonPath": ".metadata.creationTimestamp"},
)


@lru_cache(maxsize=512)
def _custom_printer(columns_json: str) -> _Printer:
    specs = json.loads(columns_json) or list(_DEFAULT_CUSTOM_COLUMNS)
    custom: list[_CustomColumn] = []
    for spec in specs:
        path_text = str(spec.get("jsonPath", ""))
        try:
            path: JSONPath | None = compile_json_path(path_text)
        except JSONPathError:
            path = None
        priority = spec.get("priority", 0)
        custom.append(
            _CustomColumn(
                Column(
                    str(spec.get("name", "")),
                    str(spec.get("type", "")),
                    str(spec.get("description") or _CUSTOM_COLUMN_DOC.format(path=path_text)),
                    str(spec.get("format") or ""),
                    priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
                ),
                path,
            )
        )
    frozen = tuple(custom)

    def cells(obj: Mapping[str, Any], now: datetime) -> Cells:
        row: Cells = [_name(obj)]
        for item in frozen:
            row.append(_custom_cell(item, obj, now))
        return row

    return _Printer((_NAME, *(item.column for item in frozen)), cells)


def _custom_cell(item: _CustomColumn, obj: Mapping[str, Any], now: datetime) -> Any:
    if item.path is None:
        return None
    try:
        found = item.path.find(obj)
    except _EvalError:
        return None
    if not found:
        return None
    value = found[0]
    kind = item.column.type
    if kind == "string":
        return _jsonpath_text(value)
    if value is None:
        return None
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        if not isinstance(value, str):
            return None
        if value in ("", "null"):
            return "<unknown>"
        when = _parse_time(value)
        return "<invalid>" if when is None else human_duration(now - when)
    return None


def _jsonpath_text(value: Any) -> str:
    """What client-go's jsonpath prints for one value: text for scalars, compact JSON for objects and lists."""
    if value is None:
        return "<no value>"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value, "g")
    return _go_json(value)


def _float_digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits of |value| and the decimal point position: value = 0.DIGITS * 10**point."""
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _go_float(value: float, style: str) -> str:
    """Go's float formatting: "g" is fmt's %v, "json" is encoding/json's."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if value < 0 or (value == 0 and str(value).startswith("-")) else ""
    if value == 0:
        return sign + "0"
    digits, point = _float_digits(value)
    exponent = point - 1
    # %v switches to an exponent outside [1e-4, 1e6); encoding/json outside [1e-6, 1e21).
    scientific = (exponent < -4 or exponent >= 6) if style == "g" else (abs(value) < 1e-6 or abs(value) >= 1e21)
    if scientific:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        if style == "g":
            return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _go_json(value: Any) -> str:
    """encoding/json's compact form: sorted keys, HTML-safe escapes, Go's float format."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_json(str(key))}:{_go_json(value[key])}" for key in sorted(value, key=str)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_json(item) for item in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value, "json")
    return json.dumps(str(value))


# ---------------------------------------------------------------------------------------------------------------
# Tables


def _printer(rtype: kinds.ResourceType) -> _Printer:
    if not rtype.builtin:
        return _custom_printer(json.dumps(list(rtype.printer_columns), sort_keys=True, default=str))
    return _PRINTERS.get((rtype.group, rtype.kind), _DEFAULT_PRINTER)


def _include_mode(include_object: str) -> str:
    if include_object == "":
        return "Metadata"
    if include_object not in INCLUDE_MODES:
        raise InvalidTableOptions(
            f"Unable to convert to Table as requested: includeObject: Invalid value: {json.dumps(include_object)}: "
            "must be 'Metadata', 'Object', 'None', or empty"
        )
    return include_object


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _row(printer: _Printer, obj: Mapping[str, Any], now: datetime, mode: str, api_version: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": printer.cells(obj, now)}
    if printer.conditions is not None:
        conditions = printer.conditions(obj)
        if conditions:
            row["conditions"] = conditions
    if mode == "Metadata":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": api_version,
            "metadata": obj.get("metadata", {}),
        }
    elif mode == "Object":
        row["object"] = obj
    else:
        row["object"] = None
    return row


def column_definitions(rtype: kinds.ResourceType) -> list[dict[str, Any]]:
    """The columnDefinitions of this resource's tables, wide columns (priority 1) included."""
    return _printer(rtype).definitions()


def table_row(
    rtype: kinds.ResourceType,
    obj: Mapping[str, Any],
    *,
    now: datetime,
    include_object: str = "Metadata",
    api_version: str = TABLE_API_VERSION,
) -> dict[str, Any]:
    """One TableRow: the cells of ``obj`` (wide ones included), row conditions, and the object as asked.

    Raises InvalidTableOptions when include_object is not Metadata, Object, None or empty.
    """
    return _row(_printer(rtype), obj, _utc(now), _include_mode(include_object), api_version)


def table(
    rtype: kinds.ResourceType,
    objects: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    include_object: str = "Metadata",
    list_metadata: Mapping[str, Any] | None = None,
    headers: bool = True,
    api_version: str = TABLE_API_VERSION,
) -> dict[str, Any]:
    """The Table for a list of objects: columnDefinitions, one row per object, and the list's metadata.

    ``list_metadata`` is the ListMeta of the list (resourceVersion, continue, remainingItemCount are kept).
    ``headers=False`` leaves columnDefinitions null, as the server does for every watch event after the first.
    ``api_version`` is the Table's group-version the client asked for (meta.k8s.io/v1 or v1beta1); the
    PartialObjectMetadata of each row carries the same.

    Raises InvalidTableOptions when include_object is not Metadata, Object, None or empty.
    """
    printer = _printer(rtype)
    mode = _include_mode(include_object)
    moment = _utc(now)
    metadata: dict[str, Any] = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        value = (list_metadata or _EMPTY).get(key)
        if value not in (None, ""):
            metadata[key] = value
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": printer.definitions() if headers else None,
        "rows": [_row(printer, obj, moment, mode, api_version) for obj in objects],
    }


def object_table(
    rtype: kinds.ResourceType,
    obj: Mapping[str, Any],
    *,
    now: datetime,
    include_object: str = "Metadata",
    headers: bool = True,
    api_version: str = TABLE_API_VERSION,
) -> dict[str, Any]:
    """The Table for one object (a GET, or one watch event): one row, and the object's resourceVersion.

    Raises InvalidTableOptions when include_object is not Metadata, Object, None or empty.
    """
    version = _m(obj, "metadata").get("resourceVersion")
    return table(
        rtype,
        [obj],
        now=now,
        include_object=include_object,
        headers=headers,
        api_version=api_version,
        list_metadata={"resourceVersion": version},
    )
