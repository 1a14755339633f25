"""Kopf's diff base, computed only for the kinds that have handlers on changes.

For every watch event of every watched object Kopf builds the object's *essence* (a deep copy of
the body without its status and most metadata) to compare with the essence it stored at the last
handled change. Only ``kopf.on.create``/``update``/``resume``/``delete``/``field`` handlers look at
that comparison; event handlers, indexes and daemons do not. Upkeep has such handlers only for
the kinds it accepts or syncs (GitSource, Release, Change, ChangePolicy, SupportPolicy); the kinds
that flood in when many workloads fail at once (pods, ReplicaSets, Deployments, Incidents,
PlaybookRuns) have none. Copying a pod's whole body for every event of a hundred rollouts cost about
a twentieth of the operator's CPU in bench/remediation.py, for a comparison nothing read.

``LeanDiffBase`` gives those kinds an empty essence and every other kind Kopf's own. A unit test
(tests/unit/test_kopf_essence.py) keeps ``WITHOUT_CHANGE_HANDLERS`` true: it registers every
controller and fails if one of these kinds has a handler on changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import kopf

__all__ = ["WITHOUT_CHANGE_HANDLERS", "LeanDiffBase"]

WITHOUT_CHANGE_HANDLERS = frozenset(
    {
        ("", "Pod"),
        ("", "Node"),
        ("", "Namespace"),
        ("apps", "ReplicaSet"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("upkeep.dev", "Incident"),
        ("upkeep.dev", "Problem"),
        ("upkeep.dev", "Playbook"),
        ("upkeep.dev", "PlaybookRun"),
    }
)
"""(API group, kind) of the watched kinds that no controller handles on change: only events, indexes, daemons."""


def _group_kind(body: Any) -> tuple[str, str]:
    api_version = str(body.get("apiVersion") or "")
    group = api_version.rpartition("/")[0]
    return group, str(body.get("kind") or "")


class LeanDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf's annotation diff base, with an empty essence for the kinds in ``WITHOUT_CHANGE_HANDLERS``."""

    def __init__(self, without: Iterable[tuple[str, str]] = WITHOUT_CHANGE_HANDLERS) -> None:
        super().__init__()
        self.without = frozenset(without)

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        if _group_kind(body) in self.without:
            return cast(kopf.BodyEssence, {})
        return super().build(body=body, extra_fields=extra_fields)
