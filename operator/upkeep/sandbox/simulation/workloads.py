"""The workload controllers of the simulated control plane: Deployment, ReplicaSet, StatefulSet, DaemonSet,
Job and CronJob, as kube-controller-manager runs them.

They create pods without a node (the scheduler binds them, the kubelet runs them) and read back the
pods' state to report status, conditions and Events the way the real controllers write them, so kubectl
(`get`, `describe`, `rollout status|undo|restart|pause|resume`, `scale`) reads as on a real cluster.
Each controller lives in a module of its own; this one lists them for the control plane.
"""

from __future__ import annotations

from collections.abc import Callable

from upkeep.sandbox.simulation import (
    runtime,
    workloads_cronjob,
    workloads_daemonset,
    workloads_deployment,
    workloads_job,
    workloads_replicaset,
    workloads_statefulset,
)

__all__ = ["COMPONENTS"]

COMPONENTS: list[Callable[[runtime.Context], runtime.Controller]] = [
    workloads_deployment.DeploymentController,
    workloads_replicaset.ReplicaSetController,
    workloads_statefulset.StatefulSetController,
    workloads_daemonset.DaemonSetController,
    workloads_job.JobController,
    workloads_cronjob.CronJobController,
]
