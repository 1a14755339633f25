"""``upkeep plan``: what a pull request would change, for a reviewer and for CI.

Given a local repository and two refs, it renders the manifests at each Release's path (or at
the paths asked for) at both refs, diffs them field by field, validates the head revision as
``upkeep validate`` would, and names the risk factors a reviewer should look at. Files are read
straight from git objects (``git ls-tree`` and ``git cat-file``), so the work tree, its
uncommitted edits and its checked-out branch do not matter.

Risk factors are a short, documented list (docs/plan.md), each a code and a sentence:

- ``image-changed``: a container image of a workload changed;
- ``replicas-changed``: a workload's replicas changed;
- ``crd-changed``: a CustomResourceDefinition is added, removed or changed;
- ``namespace-removed``, ``pvc-removed``: an object whose deletion deletes data;
- ``rbac-changed``: a Role, ClusterRole, RoleBinding or ClusterRoleBinding is added, removed or changed;
- ``limit-lowered``: a container's cpu or memory limit is lowered (or removed).

With a live cluster (``cluster=``, ``upkeep plan --cluster``) the "before" side of each object is
the object in the cluster instead of the base ref: compared only on the fields the head declares
(``gitops.drift.drifted_fields``, as drift detection compares them), so server defaults, the status
and fields other managers own are no change; an object the cluster lacks is added; with a base ref
too, an object the base declares and the head no longer does, still in the cluster, is removed.

Exit codes (``EXIT_*``): 0 nothing changes, 1 the head revision is invalid, 2 usage error (not a
repository, an unknown ref, a path that leaves the repository, a cluster that cannot be read),
3 valid changes found.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from upkeep.gitops import diff, documents, drift, render, validation

__all__ = [
    "EXIT_CHANGES",
    "EXIT_INVALID",
    "EXIT_NO_CHANGES",
    "EXIT_USAGE",
    "LiveObjects",
    "Plan",
    "PlanError",
    "ReleaseRef",
    "Risk",
    "make_plan",
    "read_tree",
    "resolve",
    "to_json",
    "to_markdown",
]

EXIT_NO_CHANGES = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_CHANGES = 3

_WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"})
_RBAC = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_LIMIT = re.compile(r"(^|\.)resources\.limits\.(cpu|memory)$")
_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


class PlanError(Exception):
    """A usage problem: not a repository, an unknown ref, a bad path. Nothing was planned."""


class LiveObjects(Protocol):
    """The live cluster a plan compares the head with (``gitops.live.ClusterReader``; a fake in unit tests)."""

    @property
    def context(self) -> str:
        """The cluster's name for people (the kubeconfig context)."""
        ...

    def get(self, body: Mapping[str, Any], namespace: str = "") -> Mapping[str, Any] | None:
        """The live object ``body`` declares (``namespace`` if it names none), or None when there is none."""
        ...


@dataclass(frozen=True)
class ReleaseRef:
    """A Release declared in the repository, and the path of its manifests."""

    namespace: str
    name: str
    path: str
    file: str
    target_namespace: str = ""
    """``spec.targetNamespace``: where the path's namespaced objects that name no namespace go."""


@dataclass(frozen=True)
class Risk:
    """One reason a reviewer should look closer, tied to the object (and field) that raised it."""

    code: str
    object: str
    message: str
    field: str = ""


@dataclass(frozen=True)
class PathPlan:
    """One rendered path: the Releases that deploy it and what changes there."""

    path: str
    releases: tuple[ReleaseRef, ...]
    changes: tuple[diff.ObjectDiff, ...]


@dataclass(frozen=True)
class Plan:
    """What the head ref changes relative to the base ref, or to the live cluster when ``cluster`` is set."""

    base: str
    head: str
    base_sha: str
    head_sha: str
    paths: tuple[PathPlan, ...]
    findings: tuple[validation.Finding, ...]
    """Validation findings of the head revision (errors and warnings), render errors included."""
    risks: tuple[Risk, ...]
    cluster: str | None = None
    """The context of the live cluster compared with, or None for a plan between two refs."""

    @property
    def errors(self) -> list[validation.Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def changed(self) -> bool:
        return any(path.changes for path in self.paths)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_INVALID
        return EXIT_CHANGES if self.changed else EXIT_NO_CHANGES


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=False)
    except OSError as error:
        raise PlanError(f"cannot run git: {error}") from error
    if done.returncode != 0:
        raise PlanError(done.stderr.decode("utf-8", "replace").strip() or f"git {args[0]} failed")
    return done.stdout


def resolve(repo: Path, ref: str) -> str:
    """The commit sha ``ref`` names in ``repo``; PlanError when it names none."""
    if ref.startswith("-"):
        raise PlanError(f"{ref!r} is not a ref")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except PlanError as error:
        raise PlanError(f"{ref!r} names no commit in {repo}") from error


def read_tree(repo: Path, commit: str) -> dict[str, bytes]:
    """Every file (blob) of ``commit``, by path: one ls-tree and one cat-file --batch for all of them."""
    listing = _git(repo, "ls-tree", "-r", "-z", "--full-tree", commit)
    entries: list[tuple[str, str]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_name = record.partition(b"\t")
        _mode, kind, sha = meta.decode().split(" ")
        if kind == "blob":
            entries.append((raw_name.decode("utf-8", "surrogateescape"), sha))
    if not entries:
        return {}
    output = _git(repo, "cat-file", "--batch", data="".join(f"{sha}\n" for _, sha in entries).encode())
    tree: dict[str, bytes] = {}
    offset = 0
    for name, _sha in entries:
        header_end = output.index(b"\n", offset)
        size = int(output[offset:header_end].split(b" ")[2])
        start = header_end + 1
        tree[name] = output[start : start + size]
        offset = start + size + 1
    return tree


def _releases(tree: Mapping[str, bytes]) -> list[ReleaseRef]:
    """The Releases declared anywhere in the tree (any YAML file), with their normalized paths."""
    found: list[ReleaseRef] = []
    for file in sorted(tree):
        if not file.endswith((".yaml", ".yml")) or b"Release" not in tree[file]:
            continue
        try:
            text = tree[file].decode("utf-8")
        except UnicodeDecodeError:
            continue
        loaded, _ = documents.load_text(text, file)
        for document in loaded:
            body = document.body
            if not isinstance(body, Mapping) or body.get("kind") != "Release":
                continue
            if not str(body.get("apiVersion") or "").startswith("upkeep.dev/"):
                continue
            spec = body.get("spec") if isinstance(body.get("spec"), Mapping) else {}
            metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
            assert isinstance(spec, Mapping) and isinstance(metadata, Mapping)
            try:
                path = render.normalize_path(str(spec.get("path") or "./"))
            except ValueError:
                continue  # validation of the head reports it
            found.append(
                ReleaseRef(
                    str(metadata.get("namespace") or ""),
                    str(metadata.get("name") or ""),
                    path,
                    file,
                    str(spec.get("targetNamespace") or ""),
                )
            )
    return found


def _quantity(value: Any) -> Decimal | None:
    text = str(value).strip()
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)", text)
    if not match or (match.group(2) and match.group(2) not in _SUFFIXES):
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    return number * _SUFFIXES[match.group(2)] if match.group(2) else number


def risks_of(change: diff.ObjectDiff) -> list[Risk]:
    """The risk factors one object's change raises (see the module docstring for the list)."""
    key: render.ObjectKey = change.key
    name = str(key)
    out: list[Risk] = []
    if key.kind == "CustomResourceDefinition":
        out.append(Risk("crd-changed", name, f"a CustomResourceDefinition is {change.change}"))
    if key.kind in _RBAC:
        out.append(Risk("rbac-changed", name, f"RBAC: a {key.kind} is {change.change}"))
    if change.change == "removed" and key.kind == "Namespace":
        out.append(Risk("namespace-removed", name, "removing a Namespace deletes everything in it"))
    if change.change == "removed" and key.kind == "PersistentVolumeClaim":
        out.append(Risk("pvc-removed", name, "removing a PersistentVolumeClaim may delete its volume's data"))
    if change.change != "changed" or key.kind not in _WORKLOADS:
        return out
    for field in change.fields:
        if field.path.endswith(".image") and "containers[" in field.path:
            out.append(Risk("image-changed", name, f"image {field.old} → {field.new}", field.path))
        elif field.path == "spec.replicas":
            out.append(Risk("replicas-changed", name, f"replicas {field.old} → {field.new}", field.path))
        elif _LIMIT.search(field.path):
            old, new = _quantity(field.old), _quantity(field.new)
            if field.new is diff.ABSENT or (old is not None and new is not None and new < old):
                after = "removed" if field.new is diff.ABSENT else str(field.new)
                out.append(Risk("limit-lowered", name, f"limit {field.old} → {after}", field.path))
    return out


def _against_cluster(
    cluster: LiveObjects,
    declared: Mapping[render.ObjectKey, Mapping[str, Any]],
    dropped: Mapping[render.ObjectKey, Mapping[str, Any]],
    namespace: str,
) -> list[diff.ObjectDiff]:
    """What applying ``declared`` (and pruning ``dropped``) would change in the live cluster."""
    out: list[diff.ObjectDiff] = []
    for key in sorted(set(declared) | set(dropped), key=str):
        if key not in declared:
            if cluster.get(dropped[key], namespace) is not None:
                out.append(diff.ObjectDiff(key, "removed"))
            continue
        live = cluster.get(declared[key], namespace)
        if live is None:
            out.append(diff.ObjectDiff(key, "added"))
            continue
        fields = tuple(
            diff.FieldChange(field.path, diff.ABSENT if field.live is None else field.live, field.desired)
            for field in drift.drifted_fields(declared[key], live)
        )
        if fields:
            out.append(diff.ObjectDiff(key, "changed", fields))
    return out


def make_plan(
    repo: Path, base: str | None, head: str, paths: Sequence[str] = (), *, cluster: LiveObjects | None = None
) -> Plan:
    """Plan the change from ``base`` (or the live ``cluster``) to ``head`` in ``repo``; PlanError for a usage problem.

    With ``cluster``, ``base`` is optional: given, the objects it declares that ``head`` drops are
    looked up in the cluster and reported removed (as pruning would remove them).
    """
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        raise PlanError(f"{repo} is not a git repository")
    if base is None and cluster is None:
        raise PlanError("--base is required, unless --cluster compares the head with the live cluster")
    head_sha = resolve(repo, head)
    base_sha = resolve(repo, base) if base is not None else ""
    base_tree, head_tree = read_tree(repo, base_sha) if base_sha else {}, read_tree(repo, head_sha)
    releases = _releases(head_tree) + [
        release for release in _releases(base_tree) if release not in _releases(head_tree)
    ]
    try:
        wanted = [render.normalize_path(path) for path in paths]
    except ValueError as error:
        raise PlanError(f"--path: {error}") from error
    if not wanted:
        wanted = sorted({release.path for release in releases}) or ["."]
    plans: list[PathPlan] = []
    findings: list[validation.Finding] = []
    risks: list[Risk] = []
    for path in wanted:
        before, after = render.render(base_tree, path), render.render(head_tree, path)
        old = {key: item.body for key, item in before.objects.items()}
        new = {key: item.body for key, item in after.objects.items()}
        deploying = tuple(r for r in releases if r.path == path)
        if cluster is None:
            changes = tuple(diff.diff_sets(old, new))
        else:
            # A namespaced object that names no namespace goes where the Release deploying it puts it.
            target = next(
                (r.target_namespace or r.namespace for r in deploying if r.target_namespace or r.namespace), ""
            )
            dropped = {key: body for key, body in old.items() if key not in new}
            changes = tuple(_against_cluster(cluster, new, dropped, target))
        for change in changes:
            risks.extend(risks_of(change))
        plans.append(PathPlan(path, deploying, changes))
        if not after.files and not any(r.path == path for r in _releases(head_tree)):
            continue  # the path is gone at head with its Release: nothing there to validate
        findings.extend(
            validation.Finding(problem.file, 0, problem.line, problem.field, problem.message, code="render.error")
            for problem in after.errors
        )
        report = validation.validate_documents(list(after.documents))
        findings.extend(report.findings)
    unique = list(dict.fromkeys(findings))
    return Plan(
        base or "",
        head,
        base_sha,
        head_sha,
        tuple(plans),
        tuple(unique),
        tuple(dict.fromkeys(risks)),
        cluster.context if cluster is not None else None,
    )


def _value(value: Any) -> str:
    if value is diff.ABSENT:
        return "(none)"
    text = value if isinstance(value, str) else _compact(value)
    return f"`{text}`"


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _object_dict(change: diff.ObjectDiff) -> dict[str, Any]:
    key: render.ObjectKey = change.key
    out: dict[str, Any] = {
        "group": key.group,
        "kind": key.kind,
        "namespace": key.namespace,
        "name": key.name,
        "change": change.change,
    }
    if change.change == "changed":
        out["fields"] = [field.to_dict() for field in change.fields]
    return out


def to_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data (docs/plan.md describes every field)."""
    base: dict[str, Any] = {"ref": plan.base, "sha": plan.base_sha} if plan.base_sha else {}
    if plan.cluster is not None:
        base = {"cluster": True, "context": plan.cluster, **base}
    return {
        "base": base,
        "head": {"ref": plan.head, "sha": plan.head_sha},
        "changed": plan.changed,
        "valid": not plan.errors,
        "exitCode": plan.exit_code,
        "paths": [
            {
                "path": path.path,
                "releases": [{"namespace": r.namespace, "name": r.name, "file": r.file} for r in path.releases],
                "objects": [_object_dict(change) for change in path.changes],
            }
            for path in plan.paths
        ],
        "risks": [
            {"code": risk.code, "object": risk.object, "field": risk.field, "message": risk.message}
            for risk in plan.risks
        ],
        "findings": [finding.to_dict() for finding in plan.findings],
    }


def _release_names(releases: Iterable[ReleaseRef]) -> str:
    names = [f"`{r.namespace}/{r.name}`" if r.namespace else f"`{r.name}`" for r in releases]
    return ", ".join(names) if names else "no Release"


def to_markdown(plan: Plan) -> str:
    """The plan as a pull-request comment: verdict, risks, then per path its objects and fields."""
    if plan.cluster is None:
        before = f"`{plan.base}` ({plan.base_sha[:12]})"
    else:
        before = f"against the live cluster (context `{plan.cluster}`)"
        if plan.base_sha:
            before += f", removals from `{plan.base}` ({plan.base_sha[:12]})"
    lines = [f"## upkeep plan: {before} → `{plan.head}` ({plan.head_sha[:12]})", ""]
    count = sum(len(path.changes) for path in plan.paths)
    if plan.errors:
        lines.append(f"**Invalid**: {len(plan.errors)} validation errors in `{plan.head}`.")
    elif plan.changed:
        lines.append(f"**{count} objects change.**")
    else:
        lines.append("**No changes.**")
    lines.append("")
    if plan.risks:
        lines += ["### Risks", ""]
        lines += [
            f"- `{risk.code}` {risk.object}" + (f" `{risk.field}`" if risk.field else "") + f": {risk.message}"
            for risk in plan.risks
        ]
        lines.append("")
    if plan.findings:
        lines += ["### Validation", ""]
        lines += [
            f"- {f.severity}: `{f.file}:{f.line}`" + (f" `{f.field}`" if f.field else "") + f": {f.message}"
            for f in plan.findings
        ]
        lines.append("")
    for path in plan.paths:
        if not path.changes:
            continue
        lines += [f"### `{path.path}` ({_release_names(path.releases)})", ""]
        for change in path.changes:
            lines.append(f"- **{change.change}** {change.key}")
            for field in change.fields:
                lines.append(f"  - `{field.path}`: {_value(field.old)} → {_value(field.new)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
