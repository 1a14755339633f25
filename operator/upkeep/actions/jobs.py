"""runJob: create a Job from a template, wait for it, and capture its result.

``params.template`` is a Job's spec (``{template: {spec: ...}, backoffLimit: 0}``) or a whole Job
manifest (``{spec: ...}``, e.g. a failed Job's own, as ``kubectl get job -o json`` prints it, or a
CronJob's, whose jobTemplate is used): what
the API server set on that Job (its selector, its controller-uid labels, uid, status) is dropped so
that the copy is accepted as a new Job. The Job is named ``<template name or "upkeep-job">-<digest
of the key>`` and carries the key as an annotation: a restart finds it by name instead of starting
a second one. ``run`` creates it; ``verify`` waits for it (Complete: Succeeded; Failed: Failed with
the failing pod's message); output: the Job's name and result. ``params.timeout`` (default: the
step's timeout) bounds the wait. A dry run creates the Job with ``dryRun=All``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from upkeep.actions import base, deadlines, records, selectors, targets
from upkeep.engine import durations

__all__ = ["RunJob", "job_body"]

_SERVER_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)


def job_body(template: Mapping[str, Any], key: str, namespace: str) -> dict[str, Any]:
    """The Job to create for ``key`` from ``template`` (a Job spec or a Job manifest)."""
    manifest = copy.deepcopy(dict(template))
    if manifest.get("kind") == "CronJob":
        job_template = (manifest.get("spec") or {}).get("jobTemplate") or {}
        manifest = {"metadata": {"name": (manifest.get("metadata") or {}).get("name")}, **job_template}
    elif "spec" not in manifest:
        manifest = {"spec": manifest}
    given = dict(manifest.get("metadata") or {})
    spec = dict(manifest.get("spec") or {})
    spec.pop("selector", None)
    spec.pop("manualSelector", None)
    pod_template = dict(spec.get("template") or {})
    pod_metadata = dict(pod_template.get("metadata") or {})
    labels = {k: v for k, v in (pod_metadata.get("labels") or {}).items() if k not in _SERVER_LABELS}
    if labels:
        pod_metadata["labels"] = labels
    else:
        pod_metadata.pop("labels", None)
    pod_template["metadata"] = pod_metadata
    pod_spec = dict(pod_template.get("spec") or {})
    pod_spec.setdefault("restartPolicy", "Never")
    pod_template["spec"] = pod_spec
    spec["template"] = pod_template
    base_name = str(given.get("name") or given.get("generateName") or "upkeep-job")
    job_labels = {k: v for k, v in (given.get("labels") or {}).items() if k not in _SERVER_LABELS}
    metadata: dict[str, Any] = {
        "name": targets.name_from_key(base_name, key),
        "namespace": namespace,
        "labels": {**job_labels, "app.kubernetes.io/managed-by": "upkeep"},
        "annotations": {base.ACTION_KEY_ANNOTATION: key},
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _pod_message(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or (container.get("lastState") or {}).get(
            "terminated"
        )
        if terminated and terminated.get("exitCode", 0) != 0:
            detail = terminated.get("message") or terminated.get("reason") or "failed"
            return f"container {container.get('name')} exited {terminated.get('exitCode')}: {detail}"
    return str(status.get("message") or status.get("reason") or "")


class RunJob:
    """The ``runJob`` action (see the module docstring)."""

    name = "runJob"

    def _body(self, ctx: base.ActionContext) -> dict[str, Any]:
        template = ctx.params.get("template")
        if not isinstance(template, Mapping) or not template:
            raise base.ActionFailed("runJob.template must be a Job spec or a Job manifest")
        return job_body(template, ctx.key, ctx.namespace)

    async def describe(self, ctx: base.ActionContext) -> str:
        body = self._body(ctx)
        containers = (((body["spec"].get("template") or {}).get("spec") or {}).get("containers")) or []
        images = ", ".join(str(container.get("image")) for container in containers) or "no image"
        return f"Run Job {ctx.namespace}/{body['metadata']['name']} ({images}) and wait for its result."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        name = self._body(ctx)["metadata"]["name"]
        found = await ctx.cluster.get("batch/v1", "Job", ctx.namespace, name)
        if found is None or targets.key_annotation(found) != ctx.key:
            return None
        await records.record(ctx, self.name, found, "JobStarted", f"Upkeep started Job {name} (step {ctx.key}).")
        return base.Outcome("Succeeded", f"Started Job {ctx.namespace}/{name}.", {"job": name})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        body = self._body(ctx)
        name = body["metadata"]["name"]
        try:
            created = await ctx.cluster.create(body, dry_run=ctx.dry_run)
        except Exception as error:
            # 409: the Job of this key exists (run twice for one key); it is the one to wait for.
            done = await self.already_done(ctx) if getattr(error, "status", None) == 409 else None
            if done is None:
                raise
            return done
        await records.record(ctx, self.name, created, "JobStarted", f"Upkeep started Job {name} (step {ctx.key}).")
        verb = "Would start" if ctx.dry_run else "Started"
        return base.Outcome("Succeeded", f"{verb} Job {ctx.namespace}/{name}.", {"job": name})

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        name = self._body(ctx)["metadata"]["name"]
        found = await ctx.cluster.get("batch/v1", "Job", ctx.namespace, name)
        if found is None:
            return base.Outcome("Failed", f"Job {ctx.namespace}/{name} is gone", {"job": name})
        if _condition(found, "Complete") is not None:
            succeeded = int((found.get("status") or {}).get("succeeded") or 0)
            return base.Outcome(
                "Succeeded", f"Job {name} completed", {"job": name, "result": "Complete", "succeeded": succeeded}
            )
        failed = _condition(found, "Failed")
        if failed is not None:
            message = str(failed.get("message") or failed.get("reason") or "")
            query = selectors.to_query((found.get("spec") or {}).get("selector"))
            for pod in await ctx.cluster.list("v1", "Pod", ctx.namespace, label_selector=query):
                if (pod.get("status") or {}).get("phase") == "Failed" or _pod_message(pod):
                    message = _pod_message(pod) or message
                    break
            return base.Outcome(
                "Failed", f"Job {name} failed: {message}", {"job": name, "result": "Failed", "message": message}
            )
        given = ctx.params.get("timeout")
        limit = durations.parse_duration(str(given)) if given else ctx.timeout
        if deadlines.elapsed(ctx) > limit:
            return base.Outcome("Failed", f"Job {name} did not finish within {limit}", {"job": name})
        return base.Outcome("Running", f"Job {name} is running", {"job": name})
