"""Rendering: the Kubernetes objects that the manifests at a path of a tree declare.

A tree is a mapping of repository-relative file names to their bytes (what git holds at one
revision), so the same rendering serves a fetched GitSource, ``upkeep plan`` on two refs of a
local repository, and tests. A path holds either plain YAML (every ``.yaml``, ``.yml`` and
``.json`` file below it, recursively, sorted, several documents per file) or a kustomization,
which kubectl's built-in kustomize renders from a temporary copy of the tree: Upkeep does not
reimplement kustomize, and the kubectl next to the interpreter is the one the tests and the
operator image ship.

Objects are keyed by (API group, kind, namespace, name) — the version is left out because one
object served at two versions is still one object. Two documents with one key are an error
that names both files, never a silent last-one-wins.
"""

from __future__ import annotations

import posixpath
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from upkeep.gitops import documents

__all__ = [
    "KUSTOMIZATION_FILES",
    "ObjectKey",
    "RenderError",
    "Rendered",
    "RenderedObject",
    "apply_order",
    "kubectl_binary",
    "normalize_path",
    "render",
]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
"""The file names that make a directory a kustomization (kustomize's own list)."""
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_KUSTOMIZE_TIMEOUT = 60.0
"""Seconds kubectl kustomize may take; a remote base that hangs must not hang a sync forever."""


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Which object a manifest declares: its identity in the cluster, whatever its API version."""

    group: str
    """The API group ("" for the core group: v1 Service, ConfigMap, Namespace...)."""
    kind: str
    namespace: str
    """"" for cluster-scoped objects and for namespaced ones that leave it to the Release's targetNamespace."""
    name: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectKey:
        api_version = str(body.get("apiVersion") or "")
        metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
        assert isinstance(metadata, Mapping)
        return cls(
            api_version.rpartition("/")[0] if "/" in api_version else "",
            str(body.get("kind") or ""),
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
        )

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


@dataclass(frozen=True)
class RenderedObject:
    """One object and the document that declared it, so errors can point at the file and line."""

    key: ObjectKey
    body: Mapping[str, Any]
    document: documents.Document


@dataclass(frozen=True)
class RenderError:
    """Why (part of) a path could not be rendered; ``file`` and ``line`` say where when known."""

    file: str
    line: int
    message: str
    field: str = ""

    def render(self) -> str:
        where = f" {self.field}:" if self.field else ""
        return f"{self.file}:{self.line}:{where} {self.message}"


@dataclass(frozen=True)
class Rendered:
    """What a path declares: its objects by key, every document read, and what went wrong."""

    path: str
    kustomized: bool
    objects: Mapping[ObjectKey, RenderedObject]
    documents: tuple[documents.Document, ...]
    errors: tuple[RenderError, ...]
    files: tuple[str, ...]
    """The tree's files that fed the render (for a kustomization: every file under the path)."""

    @property
    def ok(self) -> bool:
        return not self.errors


def normalize_path(path: str) -> str:
    """``./apps/shop/`` → ``apps/shop``; ``./`` and ``""`` → ``.``. ValueError for a path that leaves the tree."""
    cleaned = posixpath.normpath(path.strip() or ".")
    if cleaned.startswith("/"):
        cleaned = cleaned.lstrip("/") or "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise ValueError(f"path {path!r} leaves the repository")
    return cleaned


def _under(file: str, path: str) -> bool:
    return path in (".", file) or file.startswith(f"{path}/")


def _hidden(file: str, path: str) -> bool:
    relative = file if path == "." else file[len(path) + 1 :]
    return any(part.startswith(".") for part in PurePosixPath(relative).parts)


def kubectl_binary() -> str:
    """The kubectl installed next to the interpreter (the venv's, with kustomize built in), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found next to the Python interpreter nor on PATH")
    return found


def render(tree: Mapping[str, bytes], path: str = ".") -> Rendered:
    """The objects the manifests at ``path`` of ``tree`` declare (see the module docstring)."""
    path = normalize_path(path)
    kustomization = next(
        (name for name in KUSTOMIZATION_FILES if posixpath.join(path, name).removeprefix("./") in tree), None
    )
    if kustomization is not None:
        return _render_kustomization(tree, path)
    files = sorted(
        file for file in tree if _under(file, path) and file.endswith(_MANIFEST_SUFFIXES) and not _hidden(file, path)
    )
    loaded: list[documents.Document] = []
    errors: list[RenderError] = []
    for file in files:
        try:
            text = tree[file].decode("utf-8")
        except UnicodeDecodeError:
            errors.append(RenderError(file, 1, "not UTF-8 text"))
            continue
        found, failed = documents.load_text(text, file)
        loaded.extend(found)
        errors.extend(RenderError(error.file, error.line, error.message, error.field) for error in failed)
    if not files and not any(_under(file, path) for file in tree):
        errors.append(RenderError(path, 1, "no such directory in the tree"))
    return _collect(path, False, loaded, errors, tuple(files))


def _render_kustomization(tree: Mapping[str, bytes], path: str) -> Rendered:
    """kubectl kustomize over a temporary copy of the whole tree (bases may sit beside the path)."""
    files = tuple(sorted(file for file in tree if _under(file, path)))
    source = f"{path}/kustomization" if path != "." else "kustomization"
    with tempfile.TemporaryDirectory(prefix="upkeep-render-") as scratch:
        root = Path(scratch)
        for file, content in tree.items():
            target = root / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        try:
            done = subprocess.run(
                [kubectl_binary(), "kustomize", str(root / path)],
                capture_output=True,
                text=True,
                timeout=_KUSTOMIZE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return _collect(path, True, [], [RenderError(source, 1, f"kubectl kustomize failed: {error}")], files)
    if done.returncode != 0:
        message = done.stderr.strip().replace(scratch + "/", "").replace(scratch, ".")
        return _collect(path, True, [], [RenderError(source, 1, f"kubectl kustomize failed: {message}")], files)
    loaded, failed = documents.load_text(done.stdout, f"{source} (kustomize output)")
    errors = [RenderError(error.file, error.line, error.message, error.field) for error in failed]
    return _collect(path, True, loaded, errors, files)


def _collect(
    path: str,
    kustomized: bool,
    loaded: Sequence[documents.Document],
    errors: list[RenderError],
    files: tuple[str, ...],
) -> Rendered:
    objects: dict[ObjectKey, RenderedObject] = {}
    kept: list[documents.Document] = []
    for document in loaded:
        body = document.body
        kept.append(document)
        if not isinstance(body, Mapping) or not body.get("kind") or not body.get("apiVersion"):
            continue  # validation says what is missing, with the line
        key = ObjectKey.of(body)
        earlier = objects.get(key)
        if earlier is not None:
            errors.append(
                RenderError(
                    document.file,
                    document.line,
                    f"{key} is declared twice: in {earlier.document.file} (line {earlier.document.line}) "
                    f"and in {document.file} (line {document.line}); keep one",
                )
            )
            continue
        objects[key] = RenderedObject(key, body, document)
    return Rendered(path, kustomized, objects, tuple(kept), tuple(errors), files)


_ORDER_FIRST = {("", "Namespace"): 0, ("apiextensions.k8s.io", "CustomResourceDefinition"): 1}


def apply_order(keys: Iterable[ObjectKey]) -> list[ObjectKey]:
    """Namespaces, then CRDs, then the rest (each group sorted), so nothing is applied before what it needs."""
    return sorted(keys, key=lambda key: (_ORDER_FIRST.get((key.group, key.kind), 2), key))
