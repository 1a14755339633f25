"""The kubelets of the simulated nodes: they register the Nodes, renew their Leases, and run the pods bound to them.

``NodeAgent`` registers ``settings.nodes`` Nodes (sandbox-node-1..N) with capacity, conditions and a
Lease in kube-node-lease renewed every ``heartbeat_interval``; a node in the fault table's
``nodes_down`` stops renewing and its kubelet stops updating pods, until it comes back.

``Kubelet`` runs every pod bound to one of those nodes through the lifecycle a real kubelet gives it:
image pull (Pulling, Pulled, or ErrImagePull then ImagePullBackOff with back-off), Created and
Started, readiness after the probe's initial delay, exits and restarts with the kubelet's crash
back-off (CrashLoopBackOff), OOM kills, probe failures (Unhealthy), init containers in order, and
graceful termination ending in the pod's removal. What a container does comes from the image
catalog (images.py) and the fault table (faults.py). Statuses and Events read as a real node's.

State kept in memory is small and indexed (pods by node); a restarted sandbox picks up where the
pods' statuses say they were. Nothing polls: every wait is a timer on the controller's queue.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import heapq
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upkeep.sandbox import apiserver, status
from upkeep.sandbox.simulation import faults, images
from upkeep.sandbox.simulation.runtime import Context, Controller, Key
from upkeep.sandbox.store import Event

__all__ = [
    "COMPONENTS",
    "KUBELET_VERSION",
    "Kubelet",
    "NodeAgent",
    "catalog_for",
    "container_log",
    "kill_container",
    "node_names",
    "qos_class",
]

MANAGER = "kubelet"
"""Field manager and Event source of everything here, as on a real node."""
KUBELET_VERSION = "v1.37.0"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
"""The kubelet's nodeLeaseDurationSeconds."""
EVENT_BURST = 25
"""Events the kubelet may post about one pod at once; then one per EVENT_REFILL seconds (client-go's spam filter)."""
EVENT_REFILL = 300.0
NODE_STATUS_REPORTS = 30
"""The node's status is reported every NODE_STATUS_REPORTS heartbeats when nothing changes (5 minutes by default)."""
DEFAULT_PROBE_PERIOD = 10.0
EVICTION_MEMORY = 100 * 2**20
"""memory.available<100Mi: what allocatable memory leaves out of capacity."""
TERMINAL = ("Succeeded", "Failed")
_TICK: Key = ("kubelet", "", "tick")
_ZONES = ("a", "b", "c")


def _text(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_text(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# nodes


@dataclass
class NodeInfo:
    """What the kubelet of one simulated node knows of itself."""

    name: str
    index: int
    address: str
    zone: str
    memory: int
    """Allocatable memory in bytes: the limit of a container that sets none."""
    images: dict[str, tuple[list[str], int]] = field(default_factory=dict)
    """Image ID → (names, size): what the node has pulled (reported in its status)."""
    deleted: bool = False
    """Someone deleted the Node: this kubelet no longer reports (a real one would not re-register either)."""


def node_names(count: int) -> list[str]:
    """The names of ``count`` simulated nodes."""
    return [f"sandbox-node-{number}" for number in range(1, count + 1)]


def nodes_for(ctx: Context) -> dict[str, NodeInfo]:
    """The simulated nodes of ``ctx`` (shared by the node agent and the kubelet)."""
    found = ctx.data.get("kubelet-nodes")
    if isinstance(found, dict):
        return found
    memory = int(images.parse_quantity(ctx.settings.node_memory)) - EVICTION_MEMORY
    nodes = {
        name: NodeInfo(name, number, f"10.0.0.{10 + number}", f"sandbox-{_ZONES[(number - 1) % 3]}", memory)
        for number, name in enumerate(node_names(ctx.settings.nodes), start=1)
    }
    ctx.data["kubelet-nodes"] = nodes
    return nodes


def catalog_for(ctx: Context) -> images.Catalog:
    """The image catalog of ``ctx``: settings' ``images`` path, else $UPKEEP_SANDBOX_IMAGES, else the default."""
    found = ctx.data.get("images")
    if isinstance(found, images.Catalog):
        return found
    path = str(getattr(ctx.settings, "images", "") or "") or None
    catalog = images.Catalog.load(path)
    images.activate(catalog)
    ctx.data["images"] = catalog
    return catalog


def _hostname(pod: Mapping[str, Any]) -> str:
    """The hostname a pod's containers see: spec.hostname, else the pod's name."""
    return str((pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"])


def _ending(reason: str, code: int) -> str:
    """How a terminated container most likely ended, from its status, for its log."""
    if reason == "OOMKilled":
        return "oom"
    return "stop" if code in (0, 137, 143) else "exit"


def _node_ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


class NodeAgent(Controller):
    """Registers the simulated Nodes, renews their Leases and reports their status, while they are up."""

    name = MANAGER
    watches = ("/nodes",)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.nodes = nodes_for(ctx)
        self._renewed: dict[str, float] = {}
        self._reported: dict[str, float] = {}
        self._reported_images: dict[str, int] = {}
        self._down: set[str] = set()
        self._boot_ids = {name: str(uuid.uuid4()) for name in self.nodes}

    def initial_keys(self) -> Iterable[Key]:
        return [("/nodes", "", name) for name in self.nodes]

    def map_event(self, event: Event) -> Iterable[Key]:
        name = str(event.obj["metadata"]["name"])
        info = self.nodes.get(name)
        if info is None:
            return []
        if event.type == "DELETED":
            info.deleted = True
            return []
        if not _node_ready(event.obj):
            return [("/nodes", "", name)]  # marked NotReady or Unknown by someone: report again if up
        return []

    async def reconcile(self, key: Key) -> float | None:
        name = key[2]
        info = self.nodes.get(name)
        if info is None or info.deleted:
            return None
        interval = self.ctx.settings.heartbeat_interval
        if name in faults.table(self.ctx.data).nodes_down:
            self._down.add(name)
            return interval  # the kubelet is down: no heartbeat; look again at the next one
        now = time.time()
        node = self.ctx.get("/nodes", "", name)
        if node is None:
            node = self._register(info)
            if node is None:
                return interval
        if now - self._renewed.get(name, 0.0) >= interval * 0.95:
            self._renew(node, now)
        if self._report_due(node, info, now):
            self._report(node, info, now)
        return max(interval - (time.time() - self._renewed.get(name, now)), 0.01)

    def _register(self, info: NodeInfo) -> dict[str, Any] | None:
        cidr = f"10.244.{info.index}.0/24"
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": info.name,
                "labels": {
                    "beta.kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": info.name,
                    "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/region": "sandbox",
                    "topology.kubernetes.io/zone": info.zone,
                },
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        }
        try:
            self.ctx.create("/nodes", "", body, MANAGER)
        except status.ApiError:
            return None
        return self.ctx.get("/nodes", "", info.name)

    def _renew(self, node: Mapping[str, Any], now: float) -> None:
        name = str(node["metadata"]["name"])
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION, "renewTime": _micro_text(now)}
        lease = self.ctx.get("coordination.k8s.io/leases", LEASE_NAMESPACE, name)
        try:
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": name,
                        "namespace": LEASE_NAMESPACE,
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
                        ],
                    },
                    "spec": spec,
                }
                self.ctx.create("coordination.k8s.io/leases", LEASE_NAMESPACE, body, MANAGER)
            else:
                self.ctx.update(
                    "coordination.k8s.io/leases", {**lease, "spec": {**lease.get("spec", {}), **spec}}, MANAGER
                )
        except status.ApiError:
            return
        self._renewed[name] = now

    def _report_due(self, node: Mapping[str, Any], info: NodeInfo, now: float) -> bool:
        name = info.name
        if name in self._down or name not in self._reported or not _node_ready(node):
            return True
        if self._reported_images.get(name) != len(info.images):
            return True
        return now - self._reported[name] >= self.ctx.settings.heartbeat_interval * NODE_STATUS_REPORTS

    def _report(self, node: dict[str, Any], info: NodeInfo, now: float) -> None:
        moment = _text(now)
        old = node.get("status") or {}
        previous = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, Mapping)}
        wanted = (
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        )
        conditions = [c for c in old.get("conditions") or [] if c.get("type") not in {w[0] for w in wanted}]
        for kind, state, reason, message in wanted:
            before = previous.get(kind) or {}
            since = before.get("lastTransitionTime") if before.get("status") == state else None
            conditions.append(
                {
                    "type": kind,
                    "status": state,
                    "lastHeartbeatTime": moment,
                    "lastTransitionTime": since or moment,
                    "reason": reason,
                    "message": message,
                }
            )
        settings = self.ctx.settings
        memory = int(images.parse_quantity(settings.node_memory))
        pods = str(settings.node_pods)
        digest = hashlib.sha256(info.name.encode()).hexdigest()
        report = {
            **old,
            "capacity": {
                "cpu": str(settings.node_cpu),
                "ephemeral-storage": "101430960Ki",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": f"{memory // 1024}Ki",
                "pods": pods,
            },
            "allocatable": {
                "cpu": str(settings.node_cpu),
                "ephemeral-storage": "93478772582",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": f"{(memory - EVICTION_MEMORY) // 1024}Ki",
                "pods": pods,
            },
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": info.address}, {"type": "Hostname", "address": info.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": digest[:32],
                "systemUUID": str(uuid.UUID(digest[32:64])),
                "bootID": self._boot_ids[info.name],
                "kernelVersion": "6.12.38+deb13-cloud-amd64",
                "osImage": "Debian GNU/Linux 13 (trixie)",
                "containerRuntimeVersion": "containerd://2.1.4",
                "kubeletVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [
                {"names": names, "sizeBytes": size}
                for names, size in sorted(info.images.values(), key=lambda item: -item[1])[:50]
            ],
        }
        if not report["images"]:
            report.pop("images")
        updated = self.ctx.update("/nodes", {**node, "status": report}, MANAGER, subresource="status")
        if updated is not None:
            self._reported[info.name] = now
            self._reported_images[info.name] = len(info.images)
            self._down.discard(info.name)


# pods: what the kubelet remembers of them


@dataclass
class Run:
    """One instance of a container (a container ID): when it started, what it does, how it ended."""

    container_id: str
    image: images.Image
    behaviour: images.Behaviour
    fault: str | None
    started: float
    exits_at: float | None
    """When it ends on its own (an exit or an OOM kill), if ever."""
    stop_at: float | None = None
    """When a stop the kubelet asked for (SIGTERM, then SIGKILL after the grace period) completes."""
    stop_code: int = 0
    finished: float | None = None
    exit_code: int = 0
    reason: str = ""
    ending: str | None = None
    """How it ended, for its log: exit, oom or stop."""
    message: str = ""
    killed: int | None = None
    """The exit code of a kill -9 from outside (the pod-kill fault), due at once."""

    def terminated(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": _text(self.started),
            "finishedAt": _text(self.finished if self.finished is not None else self.started),
            "containerID": f"containerd://{self.container_id}",
        }
        if self.message:
            found["message"] = self.message
        return found


@dataclass
class Probe:
    kind: str
    """startup, readiness or liveness."""
    spec: Mapping[str, Any] | None
    """None: the readiness the kubelet assumes for a container without a readiness probe."""
    next_at: float | None
    period: float
    threshold: int
    failures: int = 0


@dataclass
class Container:
    """The kubelet's view of one container of a pod, across its restarts."""

    name: str
    kind: str
    """init, sidecar (an init container with restartPolicy Always) or main."""
    stage: str = "new"
    """new, pulling, pull-failed, pull-backoff, creating, running, stopping, exited, crash-backoff, done, stuck."""
    until: float | None = None
    """When the current stage ends (the next thing happens)."""
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    run: Run | None = None
    previous: Run | None = None
    pulled: images.Image | None = None
    pull_started: float = 0.0
    pull_backoff: float = 0.0
    pull_message: str = ""
    backoff: float = 0.0
    backoff_updated: float = 0.0
    restart_now: bool = False
    ready: bool = False
    started: bool = False
    probes: list[Probe] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """A regular init container that has done its job (exited 0)."""
        return self.stage == "done" and self.run is not None and self.run.exit_code == 0


@dataclass
class PodRuntime:
    """One pod on one node, as its kubelet tracks it."""

    uid: str
    namespace: str
    name: str
    node: str
    ip: str
    host_ip: str
    start_time: str
    containers: list[Container]
    has_init: bool
    written_rv: str = ""
    killing: bool = False
    stopped: bool = False
    finished: bool = False
    event_tokens: float = float(EVENT_BURST)
    event_refilled: float = 0.0

    def container(self, name: str) -> Container | None:
        for candidate in self.containers:
            if candidate.name == name:
                return candidate
        return None


class _Addresses:
    """Pod IPs of one node: 10.244.<node>.2-254, then 10.245.<node>.x and on (253 a block, 256 blocks)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.used: dict[str, int] = {}
        self.free: list[int] = []
        """A heap of numbers given back (the lowest is handed out first); stale entries are skipped."""
        self.freed: set[int] = set()
        self.next = 0

    def address(self, number: int) -> str:
        block, host = divmod(number, 253)
        return f"10.{(244 + block) % 256}.{self.index}.{2 + host}"

    def number_of(self, address: str) -> int | None:
        parts = address.split(".")
        if len(parts) != 4 or parts[0] != "10" or parts[2] != str(self.index):
            return None
        try:
            second, host = int(parts[1]), int(parts[3])
        except ValueError:
            return None
        if not (0 <= second <= 255 and 2 <= host <= 254):
            return None
        return ((second - 244) % 256) * 253 + host - 2

    def take(self, wanted: str = "") -> str:
        """An unused address: ``wanted`` (a pod's address before a restart) if it is free."""
        number = self.number_of(wanted) if wanted and wanted not in self.used else None
        if number is not None:
            if number >= self.next:
                for gap in range(self.next, number):
                    heapq.heappush(self.free, gap)
                    self.freed.add(gap)
                self.next = number + 1
            elif number in self.freed:
                self.freed.discard(number)
            else:
                number = None
        while number is None and self.free:
            candidate = heapq.heappop(self.free)
            if candidate in self.freed:
                self.freed.discard(candidate)
                number = candidate
        if number is None:
            number = self.next
            self.next += 1
        found = self.address(number)
        self.used[found] = number
        return found

    def release(self, address: str) -> None:
        number = self.used.pop(address, None)
        if number is not None and number not in self.freed:
            heapq.heappush(self.free, number)
            self.freed.add(number)


def qos_class(spec: Mapping[str, Any]) -> str:
    """The pod's QoS class from its containers' requests and limits (Guaranteed, Burstable, BestEffort)."""
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    guaranteed, any_set = True, False
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        for resource in ("cpu", "memory"):
            limit, request = limits.get(resource), requests.get(resource)
            if limit is not None or request is not None:
                any_set = True
            if limit is None:
                guaranteed = False
            elif request is not None:
                try:
                    if images.parse_quantity(limit) != images.parse_quantity(request):
                        guaranteed = False
                except ValueError:
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _phase(
    spec: Mapping[str, Any], init: Sequence[Mapping[str, Any]], main: Sequence[Mapping[str, Any]], terminal: bool
) -> str:
    """The pod phase from its container statuses, as the kubelet's getPhase decides it."""
    by_name = {str(item.get("name")): item for item in [*init, *main]}
    pending_init = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for container in spec.get("initContainers") or []:
        found = by_name.get(str(container.get("name")))
        state = (found or {}).get("state") or {}
        last = ((found or {}).get("lastState") or {}).get("terminated")
        if container.get("restartPolicy") == "Always":
            if found is None:
                unknown += 1
            elif "running" in state:
                if not found.get("started"):
                    pending_init += 1
                running += 1
            elif "waiting" in state and last is None:
                pending_init += 1
                waiting += 1
            continue
        if found is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            failed_init += state["terminated"].get("exitCode", 0) != 0
        elif "waiting" in state:
            if last is not None:
                failed_init += last.get("exitCode", 0) != 0
            else:
                pending_init += 1
        else:
            pending_init += 1
    any_started = False
    for container in spec.get("containers") or []:
        found = by_name.get(str(container.get("name")))
        if found is None:
            unknown += 1
            continue
        state = found.get("state") or {}
        last = (found.get("lastState") or {}).get("terminated")
        if "running" in state:
            running += 1
            any_started = True
        elif "terminated" in state:
            stopped += 1
            any_started = True
            succeeded += state["terminated"].get("exitCode", 0) == 0
        elif "waiting" in state and last is not None:
            stopped += 1
            any_started = True
        elif "waiting" in state:
            waiting += 1
        else:
            unknown += 1
    policy = spec.get("restartPolicy") or "Always"
    if failed_init and policy == "Never":
        return "Failed"
    if (pending_init and not any_started) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


_OWNED_STATUS = frozenset(
    {
        "phase",
        "conditions",
        "hostIP",
        "hostIPs",
        "podIP",
        "podIPs",
        "initContainerStatuses",
        "containerStatuses",
        "qosClass",
        "startTime",
        "observedGeneration",
    }
)
_KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
_WORKLOADS = {"ReplicaSet": "apps/replicasets", "Job": "batch/jobs"}
"""Owners whose own owner is looked up too (a Deployment's ReplicaSet, a CronJob's Job)."""


class Kubelet(Controller):
    """Runs the pods bound to the simulated nodes."""

    name = MANAGER
    watches = ("/pods", "/nodes")

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings
        self.catalog = catalog_for(ctx)
        self.nodes = nodes_for(ctx)
        self.pods: dict[Key, PodRuntime] = {}
        self.by_node: dict[str, set[Key]] = {}
        self._parked: dict[str, set[Key]] = {}
        self._addresses = {name: _Addresses(info.index) for name, info in self.nodes.items()}
        self._node_ready: dict[str, bool] = {}
        self._down_seen: frozenset[str] = frozenset()
        ctx.data["kubelet"] = self

    # feeding the queue

    def initial_keys(self) -> Iterable[Key]:
        keys: list[Key] = [_TICK]
        for pod in self.ctx.list("/pods"):
            node = (pod.get("spec") or {}).get("nodeName")
            if node in self.nodes:
                key: Key = ("/pods", str(pod["metadata"].get("namespace") or ""), str(pod["metadata"]["name"]))
                self.by_node.setdefault(str(node), set()).add(key)
                keys.append(key)
        return keys

    def map_event(self, event: Event) -> Iterable[Key]:
        metadata = event.obj["metadata"]
        if event.resource == "/nodes":
            name = str(metadata["name"])
            ready = _node_ready(event.obj) and event.type != "DELETED"
            before = self._node_ready.get(name)
            self._node_ready[name] = ready
            if ready and before is False:
                return [*self._parked.pop(name, set()), *self.by_node.get(name, set())]
            return []
        key: Key = ("/pods", str(metadata.get("namespace") or ""), str(metadata["name"]))
        if event.type == "DELETED":
            self._gone(key, event.obj)
            return []
        node = (event.obj.get("spec") or {}).get("nodeName")
        if node not in self.nodes:
            return []
        self.by_node.setdefault(str(node), set()).add(key)
        known = self.pods.get(key)
        if known is not None and known.written_rv == metadata.get("resourceVersion"):
            return []  # our own status write coming back
        return [key]

    def kill(self, pod: Mapping[str, Any], container: str, exit_code: int) -> bool:
        """Kill a running container's process (``kill -9``): it ends with ``exit_code`` and is restarted as
        the pod's restart policy says. False when this kubelet has no such running container."""
        metadata = pod["metadata"]
        key: Key = ("/pods", str(metadata.get("namespace") or ""), str(metadata["name"]))
        runtime = self.pods.get(key)
        found = runtime.container(container) if runtime is not None and runtime.uid == metadata.get("uid") else None
        if found is None or found.run is None or found.stage != "running":
            return False
        found.run.killed = exit_code
        found.until = time.time()
        self.enqueue(key)
        return True

    # reconciling

    async def reconcile(self, key: Key) -> float | None:
        if key == _TICK:
            return self._tick()
        pod = self.ctx.get(*key)
        if pod is None:
            self._gone(key, None)
            return None
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        info = self.nodes.get(node)
        if info is None:
            return None
        if info.deleted or node in faults.table(self.ctx.data).nodes_down:
            self._parked.setdefault(node, set()).add(key)
            return None  # a stopped kubelet updates nothing; it looks again when the node is back
        runtime = self.pods.get(key)
        if runtime is None or runtime.uid != pod["metadata"]["uid"]:
            if runtime is not None:
                self._release(runtime)
            runtime = self._admit(pod, info)
        now = time.time()
        if pod["metadata"].get("deletionTimestamp"):
            return self._terminate(pod, runtime, now)
        if runtime.finished:
            self._write(pod, runtime, now)
            return None
        self._follow_spec(pod, runtime, now)
        self._advance(pod, runtime, now)
        self._write(pod, runtime, now)
        return self._next(runtime, now)

    def _tick(self) -> float:
        """Notice nodes coming back (the fault table sends no events). Faults need no look: the kubelet
        reads them whenever a container starts, which is when a fault shows (faultapi.py)."""
        down = frozenset(faults.table(self.ctx.data).nodes_down)
        if down != self._down_seen:
            for node in self._down_seen - down:
                for key in [*self._parked.pop(node, set()), *self.by_node.get(node, set())]:
                    self.enqueue(key)
            self._down_seen = down
        return self.settings.heartbeat_interval

    def _gone(self, key: Key, obj: Mapping[str, Any] | None) -> None:
        runtime = self.pods.get(key)
        if runtime is not None and obj is not None and obj["metadata"].get("uid") != runtime.uid:
            return  # an older pod of the same name (a StatefulSet's): the one we run is newer
        self.pods.pop(key, None)
        for keys in (*self.by_node.values(), *self._parked.values()):
            keys.discard(key)
        if runtime is None:
            return
        self._release(runtime)
        info = self.nodes.get(runtime.node)
        down = info is None or info.deleted or runtime.node in faults.table(self.ctx.data).nodes_down
        if obj is not None and not runtime.stopped and not down:
            # removed without a graceful termination (force deleted, or by the sandbox's API at once)
            for container in runtime.containers:
                if container.stage in ("running", "stopping"):
                    self._event(obj, runtime, "Normal", "Killing", f"Stopping container {container.name}", container)

    def _release(self, runtime: PodRuntime) -> None:
        pool = self._addresses.get(runtime.node)
        if pool is not None and runtime.ip != runtime.host_ip:
            pool.release(runtime.ip)

    # admitting a pod (or adopting one after a restart of the sandbox)

    def _admit(self, pod: Mapping[str, Any], info: NodeInfo) -> PodRuntime:
        metadata, spec = pod["metadata"], pod.get("spec") or {}
        old = pod.get("status") or {}
        wanted_ip = str(old.get("podIP") or "")
        ip = info.address if spec.get("hostNetwork") else self._addresses[info.name].take(wanted_ip)
        containers = [
            Container(str(c["name"]), "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers") or []
        ]
        containers += [Container(str(c["name"]), "main") for c in spec.get("containers") or []]
        runtime = PodRuntime(
            uid=str(metadata["uid"]),
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata["name"]),
            node=info.name,
            ip=ip,
            host_ip=info.address,
            start_time=str(old.get("startTime") or _text(time.time())),
            containers=containers,
            has_init=bool(spec.get("initContainers")),
            event_refilled=time.time(),
        )
        key: Key = ("/pods", runtime.namespace, runtime.name)
        self.pods[key] = runtime
        self.by_node.setdefault(info.name, set()).add(key)
        self._adopt(pod, runtime)
        return runtime

    def _adopt(self, pod: Mapping[str, Any], runtime: PodRuntime) -> None:
        """Take over what the pod's status says (the sandbox restarted with --state): a real kubelet
        restarting finds its containers still running in the runtime."""
        old = pod.get("status") or {}
        statuses = {
            str(item.get("name")): item
            for item in [*(old.get("initContainerStatuses") or []), *(old.get("containerStatuses") or [])]
            if isinstance(item, Mapping)
        }
        if old.get("phase") in TERMINAL:
            runtime.finished = True
        now = time.time()
        for container in runtime.containers:
            found = statuses.get(container.name)
            if found is None:
                continue
            container.restarts = int(found.get("restartCount") or 0)
            container.last_state = dict(found.get("lastState") or {})
            state = found.get("state") or {}
            spec = self._spec(pod, container)
            image = self.catalog.lookup(str(spec.get("image") or ""))
            container_id = str(found.get("containerID") or "").removeprefix("containerd://") or secrets.token_hex(32)
            if image is not None and ("running" in state or "terminated" in state):
                started = _parse_time((state.get("running") or state.get("terminated") or {}).get("startedAt")) or now
                behaviour = self.catalog.behaviour(
                    spec, memory_limit=self._memory_limit(spec, runtime.node), image=image, hostname=_hostname(pod)
                )
                exits = (
                    started + self.settings.scaled(behaviour.exit_after) if behaviour.exit_after is not None else None
                )
                run = Run(container_id, image, behaviour, None, started, max(exits, now) if exits else None)
                container.run, container.pulled = run, image
                self.nodes[runtime.node].images[image.image_id] = ([image.image_id, image.name], image.size)
            if "running" in state and container.run is not None:
                container.stage, container.until = "running", container.run.exits_at
                container.state = {"running": dict(state["running"])}
                container.started = bool(found.get("started", True))
                container.ready = bool(found.get("ready"))
                self._arm_probes(pod, container, now, adopted=True)
            elif "terminated" in state and container.run is not None:
                terminated = state["terminated"]
                container.run.finished = _parse_time(terminated.get("finishedAt")) or now
                container.run.exit_code = int(terminated.get("exitCode") or 0)
                container.run.reason = str(terminated.get("reason") or "")
                container.run.ending = _ending(container.run.reason, container.run.exit_code)
                container.state = {"terminated": dict(terminated)}
                restart = not runtime.finished and self._restarts(pod, container, container.run.exit_code)
                container.stage, container.until = ("exited", now) if restart else ("done", None)
            elif (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                container.stage, container.until = "crash-backoff", now + self.settings.backoff_base
                container.backoff, container.backoff_updated = self.settings.backoff_base, now
                container.state = {"waiting": dict(state["waiting"])}
            elif (state.get("waiting") or {}).get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                container.stage, container.until = "pull-backoff", now + self.settings.image_pull_backoff_base
                container.pull_backoff = self.settings.image_pull_backoff_base
                container.state = {"waiting": dict(state["waiting"])}

    # what the pod asks for

    @staticmethod
    def _spec(pod: Mapping[str, Any], container: Container) -> Mapping[str, Any]:
        spec = pod.get("spec") or {}
        group = "containers" if container.kind == "main" else "initContainers"
        for item in spec.get(group) or []:
            if item.get("name") == container.name:
                return dict(item)
        return {"name": container.name}

    def _memory_limit(self, spec: Mapping[str, Any], node: str = "") -> int:
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is not None:
            with contextlib.suppress(ValueError):
                return int(images.parse_quantity(limit))
        info = self.nodes.get(node)
        return info.memory if info is not None else int(images.parse_quantity(self.settings.node_memory))

    def _owners(self, pod: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(kind, name) of the pod's controllers up the chain: ReplicaSet then Deployment, Job then CronJob."""
        owners: list[tuple[str, str]] = []
        namespace = str(pod["metadata"].get("namespace") or "")
        current: Mapping[str, Any] | None = pod
        for _ in range(3):
            if current is None:
                break
            refs = current["metadata"].get("ownerReferences") or []
            ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
            if ref is None:
                break
            kind, name = str(ref.get("kind")), str(ref.get("name"))
            owners.append((kind, name))
            resource = _WORKLOADS.get(kind)
            current = self.ctx.get(resource, namespace, name) if resource else None
        return owners

    def _fault(self, pod: Mapping[str, Any]) -> str | None:
        table = faults.table(self.ctx.data)
        if not table.pods and not table.workloads:
            return None
        return table.behaviour_for(pod, self._owners(pod))

    @staticmethod
    def _policy(pod: Mapping[str, Any]) -> str:
        return str((pod.get("spec") or {}).get("restartPolicy") or "Always")

    def _restarts(self, pod: Mapping[str, Any], container: Container, code: int) -> bool:
        if container.kind == "sidecar":
            return True
        policy = self._policy(pod)
        if container.kind == "init":
            return code != 0 and policy != "Never"
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def _grace(self, pod: Mapping[str, Any]) -> float:
        marked = pod["metadata"].get("deletionGracePeriodSeconds")
        if isinstance(marked, int) and not isinstance(marked, bool) and marked > 0:
            return self.settings.scaled(marked)
        own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        if isinstance(own, int) and not isinstance(own, bool) and own >= 0:
            return self.settings.scaled(own)
        return self.settings.termination_grace

    # Events

    def _event(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        kind: str,
        reason: str,
        message: str,
        container: Container | None = None,
    ) -> None:
        now = time.time()
        refill = max(self.settings.scaled(EVENT_REFILL), 0.001)
        runtime.event_tokens = min(float(EVENT_BURST), runtime.event_tokens + (now - runtime.event_refilled) / refill)
        runtime.event_refilled = now
        if runtime.event_tokens < 1:
            return
        runtime.event_tokens -= 1
        subject: Mapping[str, Any] = pod
        if container is not None:
            # Context.event names the first container in fieldPath: put this one first
            spec = dict(pod.get("spec") or {})
            spec["containers"] = [self._spec(pod, container)]
            subject = {**pod, "spec": spec}
        with contextlib.suppress(status.ApiError):
            self.ctx.event(subject, kind, reason, message, MANAGER, host=runtime.node)

    # the state machine

    def _advance(self, pod: Mapping[str, Any], runtime: PodRuntime, now: float) -> None:
        for _ in range(500):
            due = [c for c in runtime.containers if c.until is not None and c.until <= now]
            probing = [
                (p.next_at, c, p)
                for c in runtime.containers
                if c.stage == "running"
                for p in c.probes
                if p.next_at is not None and p.next_at <= now
            ]
            if due:
                container = min(due, key=lambda c: c.until or 0.0)
                moment = container.until or now
                if probing and min(p[0] or 0.0 for p in probing) < moment:
                    at, container, probe = min(probing, key=lambda p: p[0] or 0.0)
                    self._probe(pod, runtime, container, probe, at or now)
                    continue
                container.until = None
                self._step(pod, runtime, container, moment)
                continue
            if probing:
                at, container, probe = min(probing, key=lambda p: p[0] or 0.0)
                self._probe(pod, runtime, container, probe, at or now)
                continue
            starting = self._next_to_start(runtime)
            if starting is None:
                break
            self._begin(pod, runtime, starting, now, first=True)
        self._stop_sidecars_when_done(pod, runtime, now)

    def _next_to_start(self, runtime: PodRuntime) -> Container | None:
        if runtime.killing or runtime.finished:
            return None
        for container in runtime.containers:
            if container.kind == "main":
                continue
            if container.stage == "new":
                return container
            if container.kind == "sidecar" and not container.started:
                return None
            if container.kind == "init" and not container.complete:
                return None
        for container in runtime.containers:
            if container.kind != "main":
                continue
            if container.stage in ("pulling", "creating"):
                return None  # the kubelet starts a pod's containers one after the other
            if container.stage == "new":
                return container
        return None

    def _step(self, pod: Mapping[str, Any], runtime: PodRuntime, container: Container, at: float) -> None:
        stage = container.stage
        if stage == "pulling":
            self._pulled(pod, runtime, container, at)
        elif stage == "pull-failed":
            self._pull_backoff(pod, runtime, container, at)
        elif stage == "pull-backoff":
            self._begin(pod, runtime, container, at, first=False, pull=True)
        elif stage == "creating":
            self._start(pod, runtime, container, at)
        elif stage == "running":
            run = container.run
            if run is not None and run.killed is not None:
                self._finish(pod, runtime, container, at, run.killed, "Error", "kill")
            elif run is not None:
                ending = "oom" if run.behaviour.reason == "OOMKilled" else "exit"
                self._finish(pod, runtime, container, at, run.behaviour.exit_code, run.behaviour.reason, ending)
        elif stage == "stopping":
            run = container.run
            if run is not None:
                code = run.stop_code
                self._finish(pod, runtime, container, at, code, "Completed" if code == 0 else "Error", "stop")
        elif stage == "exited":
            self._after_exit(pod, runtime, container, at)
        elif stage == "crash-backoff":
            container.backoff = min(container.backoff * 2, self.settings.backoff_cap)
            container.backoff_updated = at
            self._begin(pod, runtime, container, at, first=False)

    def _begin(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        container: Container,
        at: float,
        *,
        first: bool,
        pull: bool = False,
    ) -> None:
        """Get the container's image (pull or find it on the node) on the way to creating the container."""
        spec = self._spec(pod, container)
        written = str(spec.get("image") or "")
        found = self.catalog.resolve(written)
        if first:
            container.state = {"waiting": {"reason": "PodInitializing" if runtime.has_init else "ContainerCreating"}}
        if isinstance(found, images.InvalidImage):
            message = f"Failed to apply default image tag {images.quote(written)}: {found.message}"
            self._event(pod, runtime, "Warning", "InspectFailed", message, container)
            self._event(pod, runtime, "Warning", "Failed", "Error: InvalidImageName", container)
            container.stage, container.until = "stuck", None
            container.state = {"waiting": {"reason": "InvalidImageName", "message": message}}
            return
        reference = found.reference
        requested = reference.requested
        policy = str(
            spec.get("imagePullPolicy")
            or ("Always" if reference.tag == "latest" and not reference.digest else "IfNotPresent")
        )
        node = self.nodes[runtime.node]
        present = isinstance(found, images.Image) and found.image_id in node.images
        if self._fault(pod) == "imagepull":
            present = False  # the fault takes the image off the node as well
        if present and policy != "Always" and not pull:
            self._event(
                pod,
                runtime,
                "Normal",
                "Pulled",
                f"Container image {images.quote(requested)} already present on machine and can be accessed by the pod",
                container,
            )
            container.pulled = found if isinstance(found, images.Image) else None
            container.stage, container.until = "creating", at + self.settings.container_start
            return
        if policy == "Never" and not present:
            message = f"Container image {images.quote(requested)} is not present with pull policy of Never"
            self._event(pod, runtime, "Warning", "ErrImageNeverPull", message, container)
            self._event(pod, runtime, "Warning", "Failed", "Error: ErrImageNeverPull", container)
            container.stage, container.until = "stuck", None
            container.state = {"waiting": {"reason": "ErrImageNeverPull", "message": message}}
            return
        self._event(pod, runtime, "Normal", "Pulling", f"Pulling image {images.quote(requested)}", container)
        container.stage, container.pull_started = "pulling", at
        container.until = at + self._pull_time(found, present)

    def _pull_time(self, found: images.Image | images.PullFailure, present: bool) -> float:
        base = self.settings.image_pull
        if not isinstance(found, images.Image):
            return base * 0.5
        share = min(max(found.size / 100_000_000, 0.2), 3.0)
        return base * share * (0.25 if present else 1.0)

    def _pulled(self, pod: Mapping[str, Any], runtime: PodRuntime, container: Container, at: float) -> None:
        spec = self._spec(pod, container)
        written = str(spec.get("image") or "")
        found = self.catalog.resolve(written)
        if isinstance(found, images.InvalidImage):
            self._begin(pod, runtime, container, at, first=False)
            return
        requested = found.reference.requested
        if self._fault(pod) == "imagepull" and isinstance(found, images.Image):
            found = images.PullFailure(found.reference, self.catalog.pull_error(found.reference))
        if isinstance(found, images.PullFailure):
            container.pull_message = found.message
            container.pull_backoff = (
                self.settings.image_pull_backoff_base
                if container.pull_backoff <= 0
                else min(container.pull_backoff * 2, self.settings.backoff_cap)
            )
            self._event(
                pod,
                runtime,
                "Warning",
                "Failed",
                f"Failed to pull image {images.quote(requested)}: {found.message}",
                container,
            )
            self._event(pod, runtime, "Warning", "Failed", "Error: ErrImagePull", container)
            container.stage, container.until = "pull-failed", at + container.pull_backoff / 2
            container.state = {"waiting": {"reason": "ErrImagePull", "message": found.message}}
            return
        took = images.go_duration(at - container.pull_started)
        self._event(
            pod,
            runtime,
            "Normal",
            "Pulled",
            f"Successfully pulled image {images.quote(requested)} in {took} ({took} including waiting). "
            f"Image size: {found.size} bytes.",
            container,
        )
        self.nodes[runtime.node].images[found.image_id] = ([found.image_id, found.name], found.size)
        container.pulled, container.pull_backoff = found, 0.0
        container.stage, container.until = "creating", at + self.settings.container_start

    def _pull_backoff(self, pod: Mapping[str, Any], runtime: PodRuntime, container: Container, at: float) -> None:
        requested = str(self._spec(pod, container).get("image") or "")
        parsed = images.parse_reference(requested)
        if isinstance(parsed, images.Reference):
            requested = parsed.requested
        self._event(pod, runtime, "Normal", "BackOff", f"Back-off pulling image {images.quote(requested)}", container)
        self._event(pod, runtime, "Warning", "Failed", "Error: ImagePullBackOff", container)
        message = f"Back-off pulling image {images.quote(requested)}: ErrImagePull: {container.pull_message}"
        container.state = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
        container.stage, container.until = "pull-backoff", at + container.pull_backoff / 2

    def _start(self, pod: Mapping[str, Any], runtime: PodRuntime, container: Container, at: float) -> None:
        image = container.pulled
        if image is None:
            self._begin(pod, runtime, container, at, first=False, pull=True)
            return
        spec = self._spec(pod, container)
        fault = self._fault(pod)
        behaviour = self.catalog.behaviour(
            spec,
            fault=fault,
            memory_limit=self._memory_limit(spec, runtime.node),
            init=container.kind == "init",
            image=image,
            hostname=_hostname(pod),
        )
        exits = at + self.settings.scaled(behaviour.exit_after) if behaviour.exit_after is not None else None
        run = Run(secrets.token_hex(32), image, behaviour, fault, at, exits)
        if container.run is not None:
            container.restarts += 1
            container.previous = container.run
        container.run = run
        self._event(pod, runtime, "Normal", "Created", f"Created container: {container.name}", container)
        self._event(pod, runtime, "Normal", "Started", f"Started container {container.name}", container)
        container.state = {"running": {"startedAt": _text(at)}}
        container.stage, container.until = "running", exits
        container.ready = False
        self._arm_probes(pod, container, at)

    def _arm_probes(self, pod: Mapping[str, Any], container: Container, at: float, *, adopted: bool = False) -> None:
        spec = self._spec(pod, container)
        run = container.run
        if run is None:
            return
        container.probes = []
        scaled = self.settings.scaled
        wanted = [
            ("startup", spec.get("startupProbe")),
            ("readiness", spec.get("readinessProbe")),
            ("liveness", spec.get("livenessProbe")),
        ]
        if container.kind == "init":
            wanted = []
        for kind, probe in wanted:
            if kind == "readiness" and not isinstance(probe, Mapping):
                # without a readiness probe a container is ready once started (and, here, once its app is up)
                container.probes.append(Probe("readiness", None, run.started, scaled(DEFAULT_PROBE_PERIOD), 1))
                continue
            if not isinstance(probe, Mapping):
                continue
            delay = scaled(float(probe.get("initialDelaySeconds") or 0))
            period = scaled(float(probe.get("periodSeconds") or DEFAULT_PROBE_PERIOD))
            threshold = int(probe.get("failureThreshold") or 3)
            container.probes.append(Probe(kind, probe, run.started + delay, max(period, 0.001), max(threshold, 1)))
        container.started = not any(p.kind == "startup" for p in container.probes) or (adopted and container.started)
        if adopted:
            for probe in container.probes:
                probe.next_at = at if not (container.ready and container.started) else None

    def _probe(
        self, pod: Mapping[str, Any], runtime: PodRuntime, container: Container, probe: Probe, at: float
    ) -> None:
        run = container.run
        if run is None or container.stage != "running":
            probe.next_at = None
            return
        if probe.kind != "startup" and not container.started:
            probe.next_at = None  # readiness and liveness wait for the startup probe
            return
        behaviour = run.behaviour
        up = at >= run.started + self.settings.scaled(behaviour.startup)
        passing = up and (behaviour.ready if probe.kind == "readiness" else behaviour.live)
        if passing:
            probe.failures = 0
            probe.next_at = None  # it keeps passing until something changes (a fault re-arms the probes)
            if probe.kind == "startup":
                container.started = True
                for other in container.probes:
                    if other.kind != "startup" and other.spec is not None:
                        other.next_at = max(other.next_at or at, at)
                    elif other.kind == "readiness":
                        other.next_at = at
            elif probe.kind == "readiness":
                container.ready = True
            return
        probe.failures += 1
        probe.next_at = at + probe.period
        if probe.kind == "readiness" and probe.spec is None and behaviour.ready:
            # the assumed readiness of a container without a probe: quietly ready when its app is up
            probe.next_at = run.started + self.settings.scaled(behaviour.startup)
            return
        label = {"startup": "Startup", "readiness": "Readiness", "liveness": "Liveness"}[probe.kind]
        self._event(
            pod,
            runtime,
            "Warning",
            "Unhealthy",
            f"{label} probe failed: {self._probe_error(probe, runtime, up)}",
            container,
        )
        if probe.kind == "readiness":
            if probe.failures >= probe.threshold or not container.ready:
                container.ready = False
            return
        if probe.failures >= probe.threshold:
            message = f"Container {container.name} failed {probe.kind} probe, will be restarted"
            self._event(pod, runtime, "Normal", "Killing", message, container)
            grace = (probe.spec or {}).get("terminationGracePeriodSeconds")
            seconds = self.settings.scaled(float(grace)) if isinstance(grace, int) else self._grace(pod)
            self._stop(container, at, seconds)

    def _probe_error(self, probe: Probe, runtime: PodRuntime, up: bool) -> str:
        spec = probe.spec or {"httpGet": {"path": "/healthz", "port": 8080}}
        if "httpGet" in spec:
            action = spec["httpGet"] or {}
            if up:
                return "HTTP probe failed with statuscode: 503"
            scheme = str(action.get("scheme") or "HTTP").lower()
            host = str(action.get("host") or runtime.ip)
            port = action.get("port", 80)
            path = str(action.get("path") or "/")
            return f'Get "{scheme}://{host}:{port}{path}": dial tcp {host}:{port}: connect: connection refused'
        if "tcpSocket" in spec:
            action = spec["tcpSocket"] or {}
            host = str(action.get("host") or runtime.ip)
            return f"dial tcp {host}:{action.get('port')}: connect: connection refused"
        if "grpc" in spec:
            port = (spec["grpc"] or {}).get("port")
            if up:
                return 'service unhealthy (responded with "NOT_SERVING")'
            return f'timeout: failed to connect service "{runtime.ip}:{port}" within 1s'
        command = [str(part) for part in (spec.get("exec") or {}).get("command") or []]
        if len(command) >= 2 and command[0].endswith("cat"):
            return f"cat: can't open '{command[1]}': No such file or directory"
        return ""

    def _stop(self, container: Container, at: float, grace: float) -> None:
        """SIGTERM the container; it exits when its program does, or is killed when the grace period ends."""
        run = container.run
        if run is None:
            return
        behaviour = run.behaviour
        stop_time = self.settings.scaled(behaviour.stop_time) if behaviour.stop_time is not None else None
        if stop_time is not None and stop_time <= grace:
            run.stop_at, run.stop_code = at + stop_time, behaviour.stop_exit_code
        else:
            run.stop_at, run.stop_code = at + grace, 137
        if run.exits_at is not None and run.exits_at < run.stop_at:
            run.stop_at = run.exits_at
        container.stage, container.until = "stopping", run.stop_at
        container.probes = []

    def _finish(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        container: Container,
        at: float,
        code: int,
        reason: str,
        ending: str,
    ) -> None:
        run = container.run
        if run is None:
            return
        run.finished, run.exit_code, run.reason, run.ending = at, code, reason, ending
        spec = self._spec(pod, container)
        if code != 0 and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = images.render_log(
                run.behaviour,
                started=run.started,
                until=at,
                ending=ending,
                exit_code=code,
                scale=self.settings.time_scale,
                context=self._log_context(runtime, container, run),
                tail=80,
            )
            run.message = "\n".join(lines)[-2048:]
        container.ready = container.started = False
        container.probes = []
        container.state = {"terminated": run.terminated()}
        if runtime.killing or not self._restarts(pod, container, code):
            container.stage, container.until = "done", None
            return
        container.stage, container.until = "exited", at + self.settings.container_start

    def _after_exit(self, pod: Mapping[str, Any], runtime: PodRuntime, container: Container, at: float) -> None:
        """The kubelet's next sync after a container exited: restart it now, or wait out the crash back-off."""
        run = container.run
        if run is None:
            return
        container.last_state = dict(container.state)
        finished = run.finished if run.finished is not None else at
        settings = self.settings
        if container.restart_now:
            container.restart_now = False
            self._begin(pod, runtime, container, at, first=False)
            return
        if container.backoff <= 0 or finished - container.backoff_updated > settings.backoff_reset:
            container.backoff, container.backoff_updated = settings.backoff_base, at
            self._begin(pod, runtime, container, at, first=False)
            return
        if at - finished >= container.backoff:
            container.backoff = min(container.backoff * 2, settings.backoff_cap)
            container.backoff_updated = at
            self._begin(pod, runtime, container, at, first=False)
            return
        identity = f"{runtime.name}_{runtime.namespace}({runtime.uid})"
        self._event(
            pod,
            runtime,
            "Warning",
            "BackOff",
            f"Back-off restarting failed container {container.name} in pod {identity}",
            container,
        )
        delay = images.go_duration(container.backoff)
        message = f"back-off {delay} restarting failed container={container.name} pod={identity}"
        container.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        container.stage, container.until = "crash-backoff", finished + container.backoff

    def _stop_sidecars_when_done(self, pod: Mapping[str, Any], runtime: PodRuntime, now: float) -> None:
        """Sidecars stop once every regular container has ended for good (a Job pod's completion)."""
        mains = [c for c in runtime.containers if c.kind == "main"]
        if not mains or any(c.stage != "done" for c in mains):
            return
        for container in runtime.containers:
            if container.kind == "sidecar" and container.stage == "running":
                self._event(pod, runtime, "Normal", "Killing", f"Stopping container {container.name}", container)
                self._stop(container, now, self._grace(pod))
            elif container.kind == "sidecar" and container.stage not in ("stopping", "done"):
                container.stage, container.until = "done", None

    # spec changes for running containers

    def _follow_spec(self, pod: Mapping[str, Any], runtime: PodRuntime, now: float) -> None:
        """A running container whose image changed in the pod's spec is restarted with the new one."""
        for container in runtime.containers:
            run = container.run
            if container.stage != "running" or run is None:
                continue
            written = str(self._spec(pod, container).get("image") or "")
            if written == run.image.reference.written:
                continue
            message = f"Container {container.name} definition changed, will be restarted"
            self._event(pod, runtime, "Normal", "Killing", message, container)
            container.restart_now = True
            self._stop(container, now, self._grace(pod))

    # termination

    def _terminate(self, pod: Mapping[str, Any], runtime: PodRuntime, now: float) -> float | None:
        """deletionTimestamp is set: stop every container, report the final status, remove the pod."""
        if runtime.stopped:
            return None  # done; what keeps the pod now is someone else's finalizer
        if not runtime.killing:
            runtime.killing = True
            grace = self._grace(pod)
            for container in runtime.containers:
                if container.stage == "running":
                    self._event(pod, runtime, "Normal", "Killing", f"Stopping container {container.name}", container)
                    self._stop(container, now, grace)
                elif container.stage != "stopping":
                    container.stage, container.until = "done", None
        for container in runtime.containers:
            if container.stage == "stopping" and container.until is not None and container.until <= now:
                moment = container.until
                container.until = None
                run = container.run
                code = run.stop_code if run is not None else 137
                self._finish(pod, runtime, container, moment, code, "Completed" if code == 0 else "Error", "stop")
        pending = [c.until for c in runtime.containers if c.stage == "stopping" and c.until is not None]
        if pending:
            return max(min(pending) - now, 0.001)
        runtime.stopped = True
        self._write(pod, runtime, now, terminal=True)
        try:
            self.ctx.api.delete(
                self.ctx.rtype("", "pods"),
                runtime.namespace,
                runtime.name,
                {"gracePeriodSeconds": 0, "preconditions": {"uid": runtime.uid}},
                apiserver.Request(field_manager=MANAGER),
            )
        except status.ApiError as error:
            if error.code not in (404, 409):
                raise
        return None

    # the status

    def _write(self, pod: Mapping[str, Any], runtime: PodRuntime, now: float, *, terminal: bool = False) -> None:
        wanted = self._status(pod, runtime, now, terminal=terminal)
        if wanted == pod.get("status"):
            return
        if wanted.get("phase") in TERMINAL:
            runtime.finished = True
            for container in runtime.containers:
                container.until = None
                container.probes = []
        stored = self.ctx.update("/pods", {**pod, "status": wanted}, MANAGER, subresource="status")
        if stored is not None:
            runtime.written_rv = str(stored["metadata"]["resourceVersion"])

    def _status(self, pod: Mapping[str, Any], runtime: PodRuntime, now: float, *, terminal: bool) -> dict[str, Any]:
        spec = pod.get("spec") or {}
        old = pod.get("status") or {}
        init = [self._container_status(pod, runtime, c) for c in runtime.containers if c.kind != "main"]
        main = sorted(
            (self._container_status(pod, runtime, c) for c in runtime.containers if c.kind == "main"),
            key=lambda item: str(item["name"]),
        )
        phase = _phase(spec, init, main, terminal or runtime.killing)
        if old.get("phase") in TERMINAL:
            phase = str(old["phase"])  # pods do not leave a terminal phase
        found = {key: value for key, value in old.items() if key not in _OWNED_STATUS}
        if phase != old.get("phase"):
            found.pop("reason", None)
            found.pop("message", None)
        generation = pod["metadata"].get("generation")
        found["phase"] = phase
        found["conditions"] = self._conditions(pod, runtime, old, init, main, phase, now, generation)
        found["hostIP"] = runtime.host_ip
        found["hostIPs"] = [{"ip": runtime.host_ip}]
        found["podIP"] = runtime.ip
        found["podIPs"] = [{"ip": runtime.ip}]
        found["startTime"] = runtime.start_time
        if init:
            found["initContainerStatuses"] = init
        found["containerStatuses"] = main
        found["qosClass"] = qos_class(spec)
        if isinstance(generation, int):
            found["observedGeneration"] = generation
        return found

    def _container_status(self, pod: Mapping[str, Any], runtime: PodRuntime, container: Container) -> dict[str, Any]:
        spec = self._spec(pod, container)
        run = container.run
        image = run.image if run is not None else None
        ready = container.ready
        if container.kind == "init":
            ready = container.complete
        found: dict[str, Any] = {
            "name": container.name,
            "state": container.state
            or {"waiting": {"reason": "PodInitializing" if runtime.has_init else "ContainerCreating"}},
            "lastState": container.last_state,
            "ready": ready,
            "restartCount": container.restarts,
            "image": image.name if image is not None else str(spec.get("image") or ""),
            "imageID": image.image_id if image is not None else "",
            "started": container.started and container.stage in ("running", "stopping"),
        }
        if run is not None:
            found["containerID"] = f"containerd://{run.container_id}"
        mounts = [
            {
                "name": mount.get("name"),
                "mountPath": mount.get("mountPath"),
                **({"readOnly": True, "recursiveReadOnly": "Disabled"} if mount.get("readOnly") else {}),
            }
            for mount in spec.get("volumeMounts") or []
            if isinstance(mount, Mapping)
        ]
        if mounts:
            found["volumeMounts"] = mounts
        return found

    def _conditions(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        old: Mapping[str, Any],
        init: Sequence[Mapping[str, Any]],
        main: Sequence[Mapping[str, Any]],
        phase: str,
        now: float,
        generation: Any,
    ) -> list[dict[str, Any]]:
        spec = pod.get("spec") or {}
        previous = [c for c in old.get("conditions") or [] if isinstance(c, Mapping)]
        others = [dict(c) for c in previous if c.get("type") not in _KUBELET_CONDITIONS]
        by_name = {str(item["name"]): item for item in [*init, *main]}

        def condition(kind: str, state: bool, reason: str = "", message: str = "") -> dict[str, Any]:
            found: dict[str, Any] = {"type": kind, "status": "True" if state else "False"}
            if isinstance(generation, int):
                found["observedGeneration"] = generation
            if reason:
                found["reason"] = reason
            if message:
                found["message"] = message
            return found

        sandbox = not (phase in TERMINAL or runtime.stopped)
        wanted = [condition("PodReadyToStartContainers", sandbox)]
        any_started = any(
            "running" in (s.get("state") or {})
            or "terminated" in (s.get("state") or {})
            or (s.get("lastState") or {}).get("terminated")
            for s in main
        )
        incomplete = []
        for container in spec.get("initContainers") or []:
            found = by_name.get(str(container.get("name"))) or {}
            done = found.get("started") if container.get("restartPolicy") == "Always" else found.get("ready")
            if not done:
                incomplete.append(str(container.get("name")))
        if phase == "Succeeded":
            wanted.append(condition("Initialized", True, "PodCompleted"))
        elif incomplete and not any_started:
            wanted.append(
                condition(
                    "Initialized",
                    False,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(incomplete)}]",
                )
            )
        else:
            wanted.append(condition("Initialized", True))
        unready = [
            str(c.get("name"))
            for c in [
                *(x for x in spec.get("initContainers") or [] if x.get("restartPolicy") == "Always"),
                *(spec.get("containers") or []),
            ]
            if not (by_name.get(str(c.get("name"))) or {}).get("ready")
        ]
        if phase in TERMINAL:
            containers_ready = condition(
                "ContainersReady", False, "PodCompleted" if phase == "Succeeded" else "PodFailed"
            )
        elif unready:
            containers_ready = condition(
                "ContainersReady", False, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
            )
        else:
            containers_ready = condition("ContainersReady", True)
        ready = {**containers_ready, "type": "Ready"}
        if containers_ready["status"] == "True":
            gates = []
            present = {str(c.get("type")): c for c in others}
            for gate in spec.get("readinessGates") or []:
                kind = str(gate.get("conditionType"))
                if kind not in present:
                    gates.append(f"corresponding condition of pod readiness gate {images.quote(kind)} does not exist.")
                elif present[kind].get("status") != "True":
                    state = present[kind].get("status")
                    gates.append(f'the status of pod readiness gate {images.quote(kind)} is not "True", but {state}')
            if gates:
                ready = condition("Ready", False, "ReadinessGatesNotReady", ", ".join(gates))
        wanted += [ready, containers_ready]
        scheduled = next(
            (dict(c) for c in previous if c.get("type") == "PodScheduled" and c.get("status") == "True"), None
        )
        wanted.append(scheduled or {"type": "PodScheduled", "status": "True"})
        moment = _text(now)
        before = {str(c.get("type")): c for c in previous}
        for item in wanted:
            earlier = before.get(item["type"])
            if earlier is not None and earlier.get("status") == item["status"] and earlier.get("lastTransitionTime"):
                item["lastTransitionTime"] = earlier["lastTransitionTime"]
            else:
                item.setdefault("lastTransitionTime", moment)
            item["lastProbeTime"] = None
        return others + wanted

    def _next(self, runtime: PodRuntime, now: float) -> float | None:
        moments = [c.until for c in runtime.containers if c.until is not None]
        moments += [
            p.next_at for c in runtime.containers if c.stage == "running" for p in c.probes if p.next_at is not None
        ]
        if not moments:
            return None
        return max(min(moments) - now, 0.001)

    # logs

    def _log_context(self, runtime: PodRuntime, container: Container, run: Run) -> images.LogContext:
        return images.LogContext(
            pod=runtime.name,
            namespace=runtime.namespace,
            container=container.name,
            pod_ip=runtime.ip,
            node_ip=runtime.host_ip,
            tag=run.image.reference.tag,
            seed=run.container_id,
        )

    def find_run(
        self, pod: Mapping[str, Any], container: str, container_id: str
    ) -> tuple[Run, images.LogContext] | None:
        """The run of ``container`` with ``container_id`` in ``pod``, if this kubelet still has it."""
        metadata = pod["metadata"]
        runtime = self.pods.get(("/pods", str(metadata.get("namespace") or ""), str(metadata["name"])))
        if runtime is None or runtime.uid != metadata.get("uid"):
            return None
        found = runtime.container(container)
        if found is None:
            return None
        for run in (found.run, found.previous):
            if run is not None and run.container_id == container_id:
                return run, self._log_context(runtime, found, run)
        return None


def kill_container(ctx: Context, pod: Mapping[str, Any], container: str, exit_code: int = 137) -> None:
    """The pod-kill fault: ``container``'s process dies with ``exit_code`` (reason Error) and its kubelet
    restarts it as the restart policy says; status.ApiError 409 when it is not running on a simulated node."""
    kubelet = ctx.data.get("kubelet")
    if not isinstance(kubelet, Kubelet) or not kubelet.kill(pod, container, exit_code):
        name = pod["metadata"]["name"]
        raise status.ApiError(
            409, "Conflict", f'container "{container}" of pod "{name}" is not running: there is no process to kill'
        )


def container_log(ctx: Context, pod: dict[str, Any], container: str, previous: bool, tail: int | None) -> str:
    """The simulated log of ``container`` in ``pod`` (its last run with ``previous``), as the pods/log
    subresource returns it; status.ApiError (400) when there is none, worded as the kubelet words it."""
    name = str(pod["metadata"]["name"])
    spec = pod.get("spec") or {}
    regular = [str(c.get("name")) for c in spec.get("containers") or []]
    init = [str(c.get("name")) for c in spec.get("initContainers") or []]
    if not container:
        if len(regular) == 1 and not init:
            container = regular[0]
        else:
            message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(regular)}]"
            if init:
                message += f" or one of the init containers: [{' '.join(init)}]"
            raise status.bad_request(message)
    if container not in regular and container not in init:
        raise status.bad_request(f"container {container} is not valid for pod {name}")
    pod_status = pod.get("status") or {}
    found = next(
        (
            item
            for item in [*(pod_status.get("containerStatuses") or []), *(pod_status.get("initContainerStatuses") or [])]
            if item.get("name") == container
        ),
        None,
    )
    quoted = f"container {images.quote(container)} in pod {images.quote(name)}"
    if found is None:
        raise status.bad_request(f"{quoted} is waiting to start: ContainerCreating")
    state = found.get("state") or {}
    last = (found.get("lastState") or {}).get("terminated")
    chosen: Mapping[str, Any] | None
    if previous:
        if not last or not last.get("containerID"):
            raise status.bad_request(
                f"previous terminated container {images.quote(container)} in pod {images.quote(name)} not found"
            )
        chosen = last
    elif "running" in state:
        chosen = {**state["running"], "containerID": found.get("containerID")}
    elif "terminated" in state:
        chosen = state["terminated"] if state["terminated"].get("containerID") else last
        if not chosen or not chosen.get("containerID"):
            raise status.bad_request(f"{quoted} is terminated")
    elif last is not None:
        if not last.get("containerID"):
            raise status.bad_request(f"{quoted} is terminated")
        chosen = last
    elif "waiting" in state:
        reason = str((state["waiting"] or {}).get("reason") or "")
        if reason == "ErrImagePull":
            raise status.bad_request(f"{quoted} is waiting to start: image can't be pulled")
        if reason == "ImagePullBackOff":
            raise status.bad_request(f"{quoted} is waiting to start: trying and failing to pull image")
        raise status.bad_request(f"{quoted} is waiting to start: {reason}")
    else:
        raise status.bad_request(f"{quoted} is waiting to start - no logs yet")
    container_id = str(chosen.get("containerID") or "").removeprefix("containerd://")
    kubelet = ctx.data.get("kubelet")
    known = kubelet.find_run(pod, container, container_id) if isinstance(kubelet, Kubelet) else None
    now = time.time()
    if known is not None:
        run, context = known
        behaviour, started = run.behaviour, run.started
        until = run.finished if run.finished is not None else now
        ending = run.ending if run.finished is not None else None
        code = run.exit_code
    else:
        # after a restart of the sandbox: what the status and the catalog say
        catalog = catalog_for(ctx)
        container_spec: Mapping[str, Any] = next(
            (
                c
                for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
                if c.get("name") == container
            ),
            {},
        )
        image = catalog.lookup(str(container_spec.get("image") or ""))
        if image is None:
            return ""
        behaviour = catalog.behaviour(container_spec, image=image, hostname=_hostname(pod))
        started = _parse_time(chosen.get("startedAt")) or now
        finished = _parse_time(chosen.get("finishedAt"))
        until = finished if finished is not None else now
        code = int(chosen.get("exitCode") or 0)
        reason = str(chosen.get("reason") or "")
        ending = None if finished is None else _ending(reason, code)
        context = images.LogContext(
            pod=name,
            namespace=str(pod["metadata"].get("namespace") or ""),
            container=container,
            pod_ip=str(pod_status.get("podIP") or ""),
            node_ip=str(pod_status.get("hostIP") or ""),
            tag=image.reference.tag,
            seed=container_id,
        )
    lines = images.render_log(
        behaviour,
        started=started,
        until=until,
        ending=ending,
        exit_code=code,
        scale=ctx.settings.time_scale,
        context=context,
        tail=tail,
    )
    return "".join(f"{line}\n" for line in lines)


COMPONENTS: list[type[Controller]] = [NodeAgent, Kubelet]
