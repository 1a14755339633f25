"""Typed, read-only views over resource bodies (the dicts Kopf and the client hand around).

A view reads; it never writes. Status is written by controllers as patches. ``view()``
picks the view class for a body by its kind; every view answers the common questions
(name, namespace, generation, conditions, phase) and its kind's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upkeep.model import conditions as conditions_

__all__ = [
    "Change",
    "ChangePolicy",
    "GitSource",
    "Incident",
    "ObjectRef",
    "Playbook",
    "PlaybookRun",
    "PlaybookStep",
    "Problem",
    "Release",
    "Resource",
    "SupportPolicy",
    "view",
]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Names one object of the cluster."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_namespace: str = "") -> ObjectRef:
        return cls(
            kind=str(data.get("kind", "")),
            name=str(data.get("name", "")),
            namespace=str(data.get("namespace") or default_namespace),
            api_version=str(data.get("apiVersion", "")),
        )

    def to_dict(self) -> dict[str, str]:
        out = {"kind": self.kind, "name": self.name}
        if self.api_version:
            out["apiVersion"] = self.api_version
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"


class Resource:
    """Any resource body: the questions every kind answers."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def metadata(self) -> Mapping[str, Any]:
        return _mapping(self.body.get("metadata"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @property
    def generation(self) -> int | None:
        value = self.metadata.get("generation")
        return int(value) if value is not None else None

    @property
    def labels(self) -> Mapping[str, str]:
        return _mapping(self.metadata.get("labels"))

    @property
    def annotations(self) -> Mapping[str, str]:
        return _mapping(self.metadata.get("annotations"))

    @property
    def spec(self) -> Mapping[str, Any]:
        return _mapping(self.body.get("spec"))

    @property
    def status(self) -> Mapping[str, Any]:
        return _mapping(self.body.get("status"))

    @property
    def conditions(self) -> list[Mapping[str, Any]]:
        found = self.status.get("conditions")
        return list(found) if isinstance(found, list) else []

    def condition(self, type_: str) -> conditions_.Condition | None:
        return conditions_.find(self.conditions, type_)

    @property
    def phase(self) -> str | None:
        value = self.status.get("phase")
        return str(value) if value else None

    @property
    def suspended(self) -> bool:
        return bool(self.spec.get("suspend", False))

    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.name, self.namespace, self.api_version)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ref()}>"


class GitSource(Resource):
    @property
    def url(self) -> str:
        return str(self.spec.get("url", ""))

    @property
    def ref_spec(self) -> Mapping[str, str]:
        """``{"branch": ...}``, ``{"tag": ...}`` or ``{"commit": ...}``."""
        return _mapping(self.spec.get("ref")) or {"branch": "main"}

    @property
    def interval(self) -> str:
        return str(self.spec.get("interval", "1m"))

    @property
    def artifact_revision(self) -> str | None:
        value = _mapping(self.status.get("artifact")).get("revision")
        return str(value) if value else None


class Release(Resource):
    @property
    def source_name(self) -> str:
        return str(_mapping(self.spec.get("sourceRef")).get("name", ""))

    @property
    def path(self) -> str:
        return str(self.spec.get("path", "./"))

    @property
    def service(self) -> str:
        return str(self.spec.get("service") or self.name)

    @property
    def workload(self) -> ObjectRef | None:
        ref = _mapping(self.spec.get("workloadRef"))
        if not ref:
            return None
        return ObjectRef(
            kind=str(ref.get("kind", "Deployment")),
            name=str(ref.get("name", "")),
            namespace=str(self.spec.get("targetNamespace") or self.namespace),
            api_version=str(ref.get("apiVersion", "apps/v1")),
        )

    @property
    def strategy_type(self) -> str:
        return str(_mapping(self.spec.get("strategy")).get("type", "Direct"))

    @property
    def canary_steps(self) -> list[Mapping[str, Any]]:
        steps = _mapping(_mapping(self.spec.get("strategy")).get("canary")).get("steps")
        return list(steps) if isinstance(steps, list) else []

    @property
    def self_heal(self) -> bool:
        return bool(self.spec.get("selfHeal", False))

    @property
    def prune(self) -> bool:
        return bool(_mapping(self.spec.get("prune")).get("enabled", False))

    @property
    def revision(self) -> str | None:
        value = self.status.get("revision")
        return str(value) if value else None


class Change(Resource):
    @property
    def release_name(self) -> str:
        return str(_mapping(self.spec.get("releaseRef")).get("name", ""))

    @property
    def change_type(self) -> str:
        return str(self.spec.get("type", "Normal"))

    @property
    def author(self) -> str:
        return str(self.spec.get("author", ""))

    @property
    def approvers(self) -> tuple[str, ...]:
        approvals = self.spec.get("approvals")
        if not isinstance(approvals, list):
            return ()
        return tuple(str(item.get("by", "")) for item in approvals if isinstance(item, Mapping))


class ChangePolicy(Resource):
    @property
    def windows(self) -> list[Mapping[str, Any]]:
        found = self.spec.get("windows")
        return list(found) if isinstance(found, list) else []


class Incident(Resource):
    @property
    def severity(self) -> str:
        return str(self.spec.get("severity", ""))

    @property
    def service(self) -> str:
        return str(self.spec.get("service", ""))

    @property
    def signal(self) -> Mapping[str, Any]:
        return _mapping(self.spec.get("signal"))

    @property
    def signal_type(self) -> str:
        return str(self.signal.get("type", ""))

    @property
    def fingerprint(self) -> str:
        return str(self.signal.get("fingerprint", ""))

    @property
    def requested_state(self) -> str | None:
        """The phase a person asked for in ``spec.state``."""
        value = self.spec.get("state")
        return str(value) if value else None

    @property
    def occurrences(self) -> int:
        return int(self.status.get("occurrences", 0) or 0)

    @property
    def workload(self) -> ObjectRef | None:
        ref = _mapping(self.spec.get("workload"))
        return ObjectRef.from_dict(ref, default_namespace=self.namespace) if ref else None


class Problem(Resource):
    @property
    def fingerprint_family(self) -> str:
        return str(self.spec.get("fingerprintFamily", ""))

    @property
    def incidents(self) -> tuple[str, ...]:
        found = self.status.get("incidents")
        return tuple(str(item) for item in found) if isinstance(found, list) else ()


@dataclass(frozen=True)
class PlaybookStep:
    """One step of a Playbook, as declared."""

    name: str
    action: str
    params: Mapping[str, Any]
    timeout: str = "5m"
    continue_on_failure: bool = False
    safe_during_freeze: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlaybookStep:
        return cls(
            name=str(data.get("name", "")),
            action=str(data.get("action", "")),
            params=_mapping(data.get("params")),
            timeout=str(data.get("timeout", "5m")),
            continue_on_failure=bool(data.get("continueOnFailure", False)),
            safe_during_freeze=bool(data.get("safeDuringFreeze", False)),
        )


class Playbook(Resource):
    @property
    def mode(self) -> str:
        return str(self.spec.get("mode", "Automatic"))

    @property
    def order(self) -> int:
        return int(self.spec.get("order", 100))

    @property
    def paused(self) -> bool:
        return bool(self.spec.get("paused", False))

    @property
    def match(self) -> Mapping[str, Any]:
        return _mapping(self.spec.get("match"))

    @property
    def signal_types(self) -> tuple[str, ...]:
        found = self.match.get("signalTypes")
        return tuple(str(item) for item in found) if isinstance(found, list) else ()

    @property
    def steps(self) -> tuple[PlaybookStep, ...]:
        found = self.spec.get("steps")
        if not isinstance(found, list):
            return ()
        return tuple(PlaybookStep.from_dict(item) for item in found if isinstance(item, Mapping))


class PlaybookRun(Resource):
    @property
    def playbook_name(self) -> str:
        return str(_mapping(self.spec.get("playbookRef")).get("name", ""))

    @property
    def incident_name(self) -> str:
        return str(_mapping(self.spec.get("incidentRef")).get("name", ""))

    @property
    def attempt(self) -> int:
        return int(self.spec.get("attempt", 1))

    @property
    def dry_run(self) -> bool:
        return bool(self.spec.get("dryRun", False))


class SupportPolicy(Resource):
    @property
    def channels(self) -> tuple[str, ...]:
        found = self.spec.get("channels")
        if not isinstance(found, list):
            return ()
        return tuple(str(item.get("name", "")) for item in found if isinstance(item, Mapping))


_VIEWS: Mapping[str, type[Resource]] = {
    cls.__name__: cls
    for cls in (
        GitSource,
        Release,
        Change,
        ChangePolicy,
        Incident,
        Problem,
        Playbook,
        PlaybookRun,
        SupportPolicy,
    )
}


def view(body: Mapping[str, Any]) -> Resource:
    """The typed view for a body, by its kind (a plain ``Resource`` for other kinds)."""
    return _VIEWS.get(str(body.get("kind", "")), Resource)(body)
