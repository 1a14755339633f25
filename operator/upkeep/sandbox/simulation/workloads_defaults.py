"""The defaults kube-apiserver gives workload objects on create, which kubectl and the controllers rely on.

``kubectl rollout status`` refuses a StatefulSet or DaemonSet without spec.updateStrategy.type,
``kubectl logs job/x`` needs the Job's generated selector, ``kubectl create deployment`` sends
``strategy: {}``. The controllers here read absent fields as these defaults anyway; an API server that
calls ``apply`` on create (and on update, for the fields that may change) shows them as a real one does.
Pod template defaults (restartPolicy, dnsPolicy, ...) are not here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply"]


def _rolling(strategy: dict[str, Any], **defaults: Any) -> None:
    rolling = strategy.setdefault("rollingUpdate", {})
    for key, value in defaults.items():
        rolling.setdefault(key, value)


def _deployment(spec: dict[str, Any]) -> None:
    spec.setdefault("replicas", 1)
    strategy = spec.get("strategy") or {}
    spec["strategy"] = strategy
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _rolling(strategy, maxUnavailable="25%", maxSurge="25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)


def _statefulset(spec: dict[str, Any]) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.get("updateStrategy") or {}
    spec["updateStrategy"] = strategy
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _rolling(strategy, partition=0)
    spec.setdefault("revisionHistoryLimit", 10)
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    spec["persistentVolumeClaimRetentionPolicy"] = policy
    policy.setdefault("whenDeleted", "Retain")
    policy.setdefault("whenScaled", "Retain")


def _daemonset(spec: dict[str, Any]) -> None:
    strategy = spec.get("updateStrategy") or {}
    spec["updateStrategy"] = strategy
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _rolling(strategy, maxUnavailable=1, maxSurge=0)
    spec.setdefault("revisionHistoryLimit", 10)


def _job(obj: dict[str, Any], spec: dict[str, Any]) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    metadata = obj.get("metadata") or {}
    uid = metadata.get("uid")
    if spec.get("manualSelector") or not uid:
        return
    generated = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": metadata.get("name", ""),
        "controller-uid": uid,
        "job-name": metadata.get("name", ""),
    }
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **generated}
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})


def _cronjob(spec: dict[str, Any]) -> None:
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
        job_spec = job_template["spec"]
        if job_spec.get("completions") is None and job_spec.get("parallelism") is None:
            job_spec["completions"] = 1
        job_spec.setdefault("parallelism", 1)
        job_spec.setdefault("backoffLimit", 6)
        job_spec.setdefault("completionMode", "NonIndexed")
        job_spec.setdefault("suspend", False)


def apply(kind: str, obj: dict[str, Any]) -> None:
    """Fill in ``obj`` (a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob) the defaults of
    the API; a Job needs its uid already (its selector and pod labels are made from it)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind == "Deployment":
        _deployment(spec)
    elif kind == "ReplicaSet":
        spec.setdefault("replicas", 1)
    elif kind == "StatefulSet":
        _statefulset(spec)
    elif kind == "DaemonSet":
        _daemonset(spec)
    elif kind == "Job":
        _job(obj, spec)
    elif kind == "CronJob":
        _cronjob(spec)
