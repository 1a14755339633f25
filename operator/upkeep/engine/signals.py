"""Signals: what the detectors see failing, turned from object bodies into fingerprinted values.

A ``Signal`` is one failure seen on one object (a pod, node, job or deployment, or an alert
that Alertmanager posted), together with the workload that owns it and a fingerprint. The
fingerprint is the identity an Incident is deduplicated by, so it is built from what stays
the same across restarts and replacement pods: the signal type, the namespace and the
owning workload, never the pod's name::

    crashloopbackoff:shop:deployment:shop
    nodenotready:default:node:worker-2
    alert:shop:highlatency:3f9a0c27d1e4

The detectors here are pure: they read the bodies as the API returns them (list items may
lack ``kind`` and ``apiVersion``, so each detector knows its kind), take the time as ``now``
and never call the cluster. What they decide, per object:

- Pod: ``CrashLoopBackOff`` (a container waiting with that reason); ``ImagePullBackOff``
  (waiting with ``ImagePullBackOff`` or ``ErrImagePull``, and the equally permanent
  ``InvalidImageName`` and ``ErrImageNeverPull``); ``OOMKilled`` (the container's state or
  last state terminated with that reason; a container whose last crash was an OOM kill gives
  ``OOMKilled`` instead of ``CrashLoopBackOff``, since the OOM is the cause and the loop its
  symptom); ``Unschedulable`` (``PodScheduled=False`` with reason ``Unschedulable`` for at
  least the grace since its ``lastTransitionTime``). Init containers count like the others.
  One signal per type per pod; its message is that of the first container showing it, and so is
  its ``container`` (the container's name, ``spec.signal.container`` of the Incident, so that a
  Playbook can address it: ``{{ incident.signal.container }}``). The name is kept apart from
  the labels (the workload's, which severity rules and Playbook selectors match) and from the
  fingerprint (one incident per workload, whichever container fails). A pod being deleted gives
  none: it no longer stands for its workload.
- Deployment: ``ProgressDeadlineExceeded`` (``Progressing=False`` with that reason) and
  ``DeploymentUnavailable`` (``Available=False``, optionally only after a grace).
- Node: ``NodeNotReady`` when ``Ready`` is ``False`` or ``Unknown``; the node is its own workload.
- Job: ``JobFailed`` when ``Failed=True``; the workload is the owning CronJob, else the Job.
- Alertmanager: one ``Alert`` signal per alert of a webhook payload (version 4), with
  whether it fires.

The workload of a pod is the outermost of the owners the caller resolved (pod → ReplicaSet →
Deployment gives the Deployment). Without them it is the pod's controller owner reference,
and a ReplicaSet named ``<name>-<pod-template-hash>`` is taken for the Deployment ``<name>``
(the Deployment controller's naming), so fingerprints survive a rollout's new ReplicaSet.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.model import resources

__all__ = [
    "DETECTABLE_TYPES",
    "POD_TYPES",
    "SIGNAL_TYPES",
    "WORKLOAD_TYPES",
    "Signal",
    "clear_types",
    "family_of",
    "fingerprint_for",
    "signals_from_alertmanager",
    "signals_from_deployment",
    "signals_from_job",
    "signals_from_node",
    "signals_from_pod",
    "without_symptoms",
]

SIGNAL_TYPES: tuple[str, ...] = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "OOMKilled",
    "Unschedulable",
    "DeploymentUnavailable",
    "ProgressDeadlineExceeded",
    "NodeNotReady",
    "JobFailed",
    "Alert",
    "Manual",
)
"""The Incident ``spec.signal.type`` enum of the CRD."""

POD_TYPES = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "OOMKilled", "Unschedulable"})
"""Signal types seen on pods: the causes a workload's failure shows first."""

WORKLOAD_TYPES = frozenset({"DeploymentUnavailable", "ProgressDeadlineExceeded"})
"""Signal types seen on a Deployment: often the symptom of a pod-level cause."""

DETECTABLE_TYPES: Mapping[str, frozenset[str]] = types.MappingProxyType(
    {
        "Pod": POD_TYPES,
        "Deployment": WORKLOAD_TYPES,
        "Node": frozenset({"NodeNotReady"}),
        "Job": frozenset({"JobFailed"}),
    }
)
"""Object kind → the signal types its detector can report."""

_FINGERPRINT = re.compile(r"^[a-z0-9][a-z0-9:._-]{0,252}$")
_MAX_FINGERPRINT = 253
_NOT_IN_PART = re.compile(r"[^a-z0-9._-]+")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})
_INSTANCE_LABELS = frozenset(
    {"pod-template-hash", "controller-revision-hash", "controller-uid", "batch.kubernetes.io/controller-uid"}
)
"""Pod labels that name one instance, not the workload: left out of a pod signal's labels."""

_ALERT_WORKLOAD_LABELS: tuple[tuple[str, str, str], ...] = (
    ("deployment", "Deployment", "apps/v1"),
    ("statefulset", "StatefulSet", "apps/v1"),
    ("daemonset", "DaemonSet", "apps/v1"),
    ("cronjob", "CronJob", "batch/v1"),
    ("job_name", "Job", "batch/v1"),
    ("pod", "Pod", "v1"),
    ("node", "Node", "v1"),
)
"""Alert label → workload kind, first present wins (kube-state-metrics' label names).

The Kubernetes Job is ``job_name``: in Prometheus ``job`` is the scrape job, on every series.
"""

_ALERT_IGNORED_LABELS = frozenset({"alertname", "namespace", "prometheus_replica"})
"""Left out of an alert's identity: already in the fingerprint, or one per Prometheus replica."""

_ALERT_POD_LABELS = frozenset({"pod", "pod_name", "instance", "uid", "pod_ip", "container_id", "pod_template_hash"})
"""Left out of an alert's identity when it names a workload above the pod: they change with each replacement pod."""


@dataclass(frozen=True)
class Signal:
    """One failure seen on one object: the unit the incident controller deduplicates by fingerprint."""

    type: str
    """One of ``SIGNAL_TYPES``."""
    namespace: str
    """Namespace the incident belongs in."""
    affected: resources.ObjectRef
    """The object seen failing: the pod, node, job or deployment."""
    workload: resources.ObjectRef | None
    """The workload that owns it (Deployment, StatefulSet, DaemonSet, Job, CronJob; the Node for NodeNotReady)."""
    reason: str
    """Machine reason, e.g. the container's waiting reason, the condition's reason or the alert name."""
    message: str
    """Human message, e.g. the container status message or the alert's summary."""
    labels: Mapping[str, str] = dataclasses.field(hash=False)
    """The workload's labels, or the alert's labels; read-only."""
    observed_at: datetime.datetime
    """When the detector saw it (aware, UTC)."""
    source: str
    """What produced it: ``detector/pods`` (``/deployments``, ``/nodes``, ``/jobs``) or ``alertmanager``."""
    fingerprint: str
    """The identity incidents are deduplicated by; see ``fingerprint_for``."""
    container: str = ""
    """The container that shows a pod's signal (CrashLoopBackOff, ImagePullBackOff, OOMKilled); '' for the rest.

    Not part of the fingerprint nor of ``labels``: which container fails does not make another incident."""

    def __post_init__(self) -> None:
        if self.type not in SIGNAL_TYPES:
            raise ValueError(f"signal type must be one of {', '.join(SIGNAL_TYPES)}, not {self.type!r}")
        if not _FINGERPRINT.match(self.fingerprint):
            raise ValueError(f"fingerprint {self.fingerprint!r} does not match {_FINGERPRINT.pattern}")
        object.__setattr__(self, "observed_at", _utc(self.observed_at))
        object.__setattr__(self, "labels", types.MappingProxyType({str(k): str(v) for k, v in self.labels.items()}))

    def to_dict(self) -> dict[str, Any]:
        """The signal as an Incident's ``spec.signal`` (``container`` only when there is one)."""
        out: dict[str, Any] = {
            "type": self.type,
            "fingerprint": self.fingerprint,
            "source": self.source,
            "reason": self.reason,
            "message": self.message,
            "labels": dict(self.labels),
        }
        if self.container:
            out["container"] = self.container
        return out


def fingerprint_for(
    signal_type: str,
    namespace: str,
    workload: resources.ObjectRef | None,
    affected: resources.ObjectRef,
    *,
    alert_labels: Mapping[str, str] | None = None,
) -> str:
    """The stable identity of a failure.

    ``<type>:<namespace>:<workload kind>:<workload name>``, all lowercase; the affected object
    stands in when there is no workload (a bare pod). For ``Alert``:
    ``alert:<namespace>:<alertname>:<hash>``, the hash (12 hex digits) over the alert's
    identifying labels, sorted: every label but ``alertname``, ``namespace`` and
    ``prometheus_replica``, and, when the workload is above the pod, without the labels that
    change with each replacement pod (``pod``, ``instance``, ``uid``, …).

    Characters the CRD pattern does not allow become ``-``; a fingerprint longer than 253
    characters is cut and ends in a hash of the whole, so it stays unique.
    """
    kind_part = _part(signal_type)
    if signal_type == "Alert":
        if alert_labels is None:
            raise ValueError("an Alert fingerprint needs the alert's labels")
        identity = {
            str(key): str(value) for key, value in alert_labels.items() if str(key) not in _ALERT_IGNORED_LABELS
        }
        if workload is not None and workload.kind != "Pod":
            identity = {key: value for key, value in identity.items() if key not in _ALERT_POD_LABELS}
        text = "\n".join(f"{key}={value}" for key, value in sorted(identity.items()))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        parts = [kind_part, _part(namespace), _part(str(alert_labels.get("alertname", ""))), digest]
    else:
        owner = workload if workload is not None else affected
        parts = [kind_part, _part(namespace), _part(owner.kind), _part(owner.name)]
    whole = ":".join(parts)
    if len(whole) > _MAX_FINGERPRINT:
        digest = hashlib.sha256(whole.encode("utf-8")).hexdigest()[:12]
        whole = f"{whole[: _MAX_FINGERPRINT - len(digest) - 1]}-{digest}"
    return whole


def family_of(fingerprint: str) -> str:
    """The Problem ``fingerprintFamily`` a fingerprint belongs to: for now the fingerprint itself.

    A Problem's family equals or prefixes (at a ``:``) its incidents' fingerprints; grouping by
    the whole fingerprint groups the recurrences of one failure of one workload.
    """
    return fingerprint


def signals_from_pod(
    pod: Mapping[str, Any],
    owners: Sequence[resources.ObjectRef],
    now: datetime.datetime,
    *,
    unschedulable_grace: datetime.timedelta,
    failure_lookback: datetime.timedelta | None = None,
    workload_labels: Mapping[str, str] | None = None,
) -> list[Signal]:
    """The failures a pod shows, at most one per signal type.

    ``owners`` is the pod's owner chain as the caller resolved it, nearest first (ReplicaSet,
    Deployment); the last is the workload. ``failure_lookback`` limits an OOM kill in a
    container's last state to those that ended within it (None: any), so a container that was
    killed once and has run fine since clears; within it, a container that crashed at least
    twice and runs again is still in its crash loop (None: only ``CrashLoopBackOff`` counts).
    ``workload_labels`` are the workload's labels when the caller has them; otherwise the
    pod's own labels stand in (the workload's template labels, less the per-instance hashes).
    """
    moment = _utc(now)
    view = resources.Resource(pod)
    if view.metadata.get("deletionTimestamp"):
        return []
    namespace = view.namespace or "default"
    affected = resources.ObjectRef("Pod", view.name, namespace, "v1")
    workload = _pod_workload(view, owners, namespace)
    labels = (
        dict(workload_labels)
        if workload_labels is not None
        else {key: value for key, value in view.labels.items() if key not in _INSTANCE_LABELS}
    )
    found: dict[str, tuple[str, str, str]] = {}  # type -> (reason, message, container), first container wins
    for role, status in _container_statuses(view.status):
        container = str(status.get("name", ""))
        for signal_type, reason, message in _container_failures(role, status, moment, failure_lookback):
            found.setdefault(signal_type, (reason, message, container))
    unschedulable = _unschedulable(view, moment, unschedulable_grace)
    if unschedulable is not None:
        found.setdefault("Unschedulable", (*unschedulable, ""))
    return [
        _signal(signal_type, namespace, affected, workload, reason, message, labels, moment, "detector/pods", container)
        for signal_type, (reason, message, container) in found.items()
    ]


def signals_from_deployment(
    deployment: Mapping[str, Any],
    now: datetime.datetime,
    *,
    unavailable_grace: datetime.timedelta = datetime.timedelta(0),
) -> list[Signal]:
    """``ProgressDeadlineExceeded`` and ``DeploymentUnavailable`` of a Deployment.

    ``unavailable_grace``: ``Available=False`` counts only once it has lasted that long, so a
    Deployment that is just starting its pods is not a failure.
    """
    moment = _utc(now)
    view = resources.Resource(deployment)
    namespace = view.namespace or "default"
    ref = resources.ObjectRef("Deployment", view.name, namespace, "apps/v1")
    found: list[tuple[str, str, str]] = []
    progressing = view.condition("Progressing")
    if progressing is not None and progressing.status == "False" and progressing.reason == "ProgressDeadlineExceeded":
        message = progressing.message or f"Deployment {view.name!r} has exceeded its progress deadline"
        found.append(("ProgressDeadlineExceeded", progressing.reason, message))
    available = view.condition("Available")
    if (
        available is not None
        and available.status == "False"
        and _lasted(available.last_transition_time, moment, unavailable_grace)
    ):
        message = available.message or f"Deployment {view.name!r} does not have minimum availability"
        found.append(("DeploymentUnavailable", available.reason, message))
    return [
        _signal(kind, namespace, ref, ref, reason, message, view.labels, moment, "detector/deployments")
        for kind, reason, message in found
    ]


def signals_from_node(node: Mapping[str, Any], now: datetime.datetime, *, namespace: str = "default") -> list[Signal]:
    """``NodeNotReady`` when the node's ``Ready`` condition is ``False`` or ``Unknown``.

    Nodes have no namespace; ``namespace`` is where node incidents are opened (the operator's
    namespace, as the caller configures it).
    """
    moment = _utc(now)
    view = resources.Resource(node)
    ready = view.condition("Ready")
    if ready is None or ready.status == "True":
        return []
    ref = resources.ObjectRef("Node", view.name, "", "v1")
    reason = ready.reason if ready.reason != "Unknown" else "NodeStatusUnknown"
    message = ready.message or f"node {view.name} is not ready (Ready={ready.status})"
    return [_signal("NodeNotReady", namespace, ref, ref, reason, message, view.labels, moment, "detector/nodes")]


def signals_from_job(job: Mapping[str, Any], now: datetime.datetime) -> list[Signal]:
    """``JobFailed`` when the Job's ``Failed`` condition is ``True`` (e.g. ``BackoffLimitExceeded``).

    The workload is the CronJob that owns the Job, so every run of one CronJob shares a
    fingerprint; a Job of its own is its own workload.
    """
    moment = _utc(now)
    view = resources.Resource(job)
    failed = view.condition("Failed")
    if failed is None or failed.status != "True":
        return []
    namespace = view.namespace or "default"
    affected = resources.ObjectRef("Job", view.name, namespace, "batch/v1")
    owner = _controller_owner(view.metadata, namespace)
    workload = owner if owner is not None and owner.kind == "CronJob" else affected
    reason = failed.reason if failed.reason != "Unknown" else "Failed"
    message = failed.message or f"Job {view.name!r} failed"
    return [_signal("JobFailed", namespace, affected, workload, reason, message, view.labels, moment, "detector/jobs")]


def signals_from_alertmanager(payload: Mapping[str, Any], now: datetime.datetime) -> list[tuple[Signal, bool]]:
    """One ``Alert`` signal per alert of an Alertmanager webhook payload, and whether it fires.

    The payload is what Alertmanager's ``webhook_config`` posts (version "4"): ``status``,
    ``alerts[]`` each with ``status`` (``firing`` or ``resolved``), ``labels``,
    ``annotations``, ``startsAt``, ``endsAt`` and ``fingerprint``, plus the group's labels.
    An alert without a status fires unless its ``endsAt`` has passed. The namespace is the
    ``namespace`` label (``default`` without one, or when it is no namespace name); the
    workload comes from the ``deployment``, ``statefulset``, ``daemonset``, ``cronjob``,
    ``job_name``, ``pod`` or ``node`` label, the first present; the message is the
    ``summary`` annotation, then the ``description``. Several alerts may share a fingerprint
    (one per pod of a Deployment): it is clear only when none of them fires.
    """
    moment = _utc(now)
    alerts = payload.get("alerts")
    out: list[tuple[Signal, bool]] = []
    for alert in alerts if isinstance(alerts, list) else ():
        if not isinstance(alert, Mapping):
            continue
        out.append(_alert_signal(alert, moment))
    return out


def clear_types(kind: str, seen: Iterable[Signal]) -> frozenset[str]:
    """The signal types an object of ``kind`` does not show now, given the signals seen on it.

    A controller starts the auto-resolve clock of the incidents of these types; an unknown
    kind has no detectable types, so nothing is clear.
    """
    return DETECTABLE_TYPES.get(kind, frozenset()) - {signal.type for signal in seen}


def without_symptoms(signals: Iterable[Signal]) -> list[Signal]:
    """The signals less the Deployment-level ones whose workload also shows a pod-level cause.

    A crash-looping Deployment is also unavailable and, in a rollout, past its deadline; the
    pods say why, so one incident (the cause) is opened rather than three.
    """
    found = list(signals)
    caused = {(signal.namespace, signal.workload) for signal in found if signal.type in POD_TYPES}
    return [
        signal
        for signal in found
        if not (signal.type in WORKLOAD_TYPES and (signal.namespace, signal.workload) in caused)
    ]


def _signal(
    signal_type: str,
    namespace: str,
    affected: resources.ObjectRef,
    workload: resources.ObjectRef | None,
    reason: str,
    message: str,
    labels: Mapping[str, str],
    moment: datetime.datetime,
    source: str,
    container: str = "",
) -> Signal:
    return Signal(
        type=signal_type,
        namespace=namespace,
        affected=affected,
        workload=workload,
        reason=reason,
        message=message,
        labels=labels,
        observed_at=moment,
        source=source,
        fingerprint=fingerprint_for(signal_type, namespace, workload, affected),
        container=container,
    )


def _alert_signal(alert: Mapping[str, Any], moment: datetime.datetime) -> tuple[Signal, bool]:
    labels = {str(key): str(value) for key, value in _mapping(alert.get("labels")).items()}
    annotations = _mapping(alert.get("annotations"))
    namespace = labels.get("namespace", "")
    if not _NAMESPACE.match(namespace) or len(namespace) > 63:
        namespace = "default"
    workload: resources.ObjectRef | None = None
    for label, kind, api_version in _ALERT_WORKLOAD_LABELS:
        if labels.get(label):
            workload = resources.ObjectRef(kind, labels[label], "" if kind == "Node" else namespace, api_version)
            break
    alertname = labels.get("alertname") or "unnamed"
    if labels.get("pod"):
        affected = resources.ObjectRef("Pod", labels["pod"], namespace, "v1")
    elif workload is not None:
        affected = workload
    else:
        affected = resources.ObjectRef("Alert", alertname, namespace)
    summary = str(annotations.get("summary") or "").strip()
    description = str(annotations.get("description") or "").strip()
    if summary and description and summary != description:
        message = f"{summary}: {description}"
    else:
        message = summary or description or f"alert {alertname} is {alert.get('status') or 'firing'}"
    status = str(alert.get("status") or "")
    if status in ("firing", "resolved"):
        firing = status == "firing"
    else:
        ends = _parse_time(alert.get("endsAt"))
        firing = ends is None or ends.year <= 1 or ends > moment
    signal = Signal(
        type="Alert",
        namespace=namespace,
        affected=affected,
        workload=workload,
        reason=alertname,
        message=message,
        labels=labels,
        observed_at=moment,
        source="alertmanager",
        fingerprint=fingerprint_for("Alert", namespace, workload, affected, alert_labels=labels),
    )
    return signal, firing


def _container_statuses(status: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(role, status) of each container, init containers first (they run first)."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for key, role in (("initContainerStatuses", "init container"), ("containerStatuses", "container")):
        found = status.get(key)
        out.extend((role, item) for item in (found if isinstance(found, list) else ()) if isinstance(item, Mapping))
    return out


def _container_failures(
    role: str, status: Mapping[str, Any], moment: datetime.datetime, failure_lookback: datetime.timedelta | None
) -> list[tuple[str, str, str]]:
    """(type, reason, message) of each failure one container shows; an OOM kill replaces its crash loop."""
    name = str(status.get("name", ""))
    restarts = int(status.get("restartCount") or 0)
    state = _mapping(status.get("state"))
    waiting = _mapping(state.get("waiting"))
    waiting_reason = str(waiting.get("reason") or "")
    waiting_message = str(waiting.get("message") or "")
    out: list[tuple[str, str, str]] = []
    oom = _oom_kill(state, _mapping(status.get("lastState")), moment, failure_lookback)
    if oom is not None:
        detail = f": {oom[1]}" if oom[1] else ""
        message = f"{role} {name} was OOMKilled (exit code {oom[0]}, {restarts} restarts){detail}"
        out.append(("OOMKilled", "OOMKilled", message))
    if oom is None and (
        waiting_reason == "CrashLoopBackOff"
        or _between_crashes(state, _mapping(status.get("lastState")), restarts, moment, failure_lookback)
    ):
        message = waiting_message or f"{role} {name} restarts in a loop ({restarts} restarts)"
        out.append(("CrashLoopBackOff", "CrashLoopBackOff", message))
    if waiting_reason in _IMAGE_PULL_REASONS:
        message = waiting_message or f"{role} {name} cannot pull its image ({waiting_reason})"
        out.append(("ImagePullBackOff", waiting_reason, message))
    return out


CRASH_LOOP_RESTARTS = 2
"""Restarts after which a container that crashed and runs again is still in its crash loop (the
kubelet's back-off starts with the second start, so one restart alone is a crash, not a loop)."""


def _between_crashes(
    state: Mapping[str, Any],
    last_state: Mapping[str, Any],
    restarts: int,
    moment: datetime.datetime,
    lookback: datetime.timedelta | None,
) -> bool:
    """Whether a container of a crash loop is in the moment between two crashes: started again (or just
    ended) after a failed run, within the lookback. A crash loop shows ``CrashLoopBackOff`` only while
    the kubelet waits; without this, the loop would look healed each time the container runs."""
    if restarts < CRASH_LOOP_RESTARTS or lookback is None or "waiting" in state:
        return False
    last = _mapping(last_state.get("terminated"))
    if not last or last.get("reason") == "Completed" or int(last.get("exitCode") or 0) == 0:
        return False
    finished = _parse_time(last.get("finishedAt"))
    return finished is not None and moment - finished <= lookback


def _oom_kill(
    state: Mapping[str, Any],
    last_state: Mapping[str, Any],
    moment: datetime.datetime,
    lookback: datetime.timedelta | None,
) -> tuple[str, str] | None:
    """(exit code, message) of the container's OOM kill, now or in its last state within the lookback."""
    current = _mapping(state.get("terminated"))
    if current.get("reason") == "OOMKilled":
        return str(current.get("exitCode", 137)), str(current.get("message") or "").strip()
    last = _mapping(last_state.get("terminated"))
    if last.get("reason") != "OOMKilled":
        return None
    if lookback is not None:
        finished = _parse_time(last.get("finishedAt"))
        if finished is None or moment - finished > lookback:
            return None
    return str(last.get("exitCode", 137)), str(last.get("message") or "").strip()


def _unschedulable(
    view: resources.Resource, moment: datetime.datetime, grace: datetime.timedelta
) -> tuple[str, str] | None:
    scheduled = view.condition("PodScheduled")
    if scheduled is None or scheduled.status != "False" or scheduled.reason != "Unschedulable":
        return None
    if not _lasted(scheduled.last_transition_time, moment, grace):
        return None
    return scheduled.reason, scheduled.message or f"pod {view.name} cannot be scheduled on any node"


def _lasted(since: str, moment: datetime.datetime, grace: datetime.timedelta) -> bool:
    """Whether a state entered at ``since`` has lasted ``grace`` by ``moment`` (a state of unknown age has not)."""
    if grace <= datetime.timedelta(0):
        return True
    started = _parse_time(since)
    return started is not None and moment - started >= grace


def _pod_workload(
    view: resources.Resource, owners: Sequence[resources.ObjectRef], namespace: str
) -> resources.ObjectRef | None:
    if owners:
        outermost = owners[-1]
        return outermost if outermost.namespace else dataclasses.replace(outermost, namespace=namespace)
    owner = _controller_owner(view.metadata, namespace)
    if owner is None or owner.kind != "ReplicaSet":
        return owner
    template_hash = str(view.labels.get("pod-template-hash") or "")
    suffix = f"-{template_hash}"
    if template_hash and owner.name.endswith(suffix) and len(owner.name) > len(suffix):
        return resources.ObjectRef("Deployment", owner.name[: -len(suffix)], namespace, "apps/v1")
    return owner


def _controller_owner(metadata: Mapping[str, Any], namespace: str) -> resources.ObjectRef | None:
    found = metadata.get("ownerReferences")
    for item in found if isinstance(found, list) else ():
        if isinstance(item, Mapping) and item.get("controller"):
            return resources.ObjectRef(
                str(item.get("kind", "")), str(item.get("name", "")), namespace, str(item.get("apiVersion", ""))
            )
    return None


def _part(text: str) -> str:
    return _NOT_IN_PART.sub("-", text.lower())


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a time must be aware (carry a time zone), not {moment.isoformat()}")
    return moment.astimezone(datetime.UTC)


def _parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 time as aware UTC (a time without offset is taken as UTC), or None."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return parsed.astimezone(datetime.UTC)
    except OverflowError:
        return None
