"""Write-back: what the operator changed for a fix, proposed to git as a branch for people to review.

Two kinds of proposal, each one commit on top of the tip of the GitSource's branch, pushed as a new
branch (never to the branch itself, never force-pushed):

- ``revert_branch``: a rollback, put into git. The commit's tree is the tip's with ``path`` (a
  Release's manifests) restored to what it was at the good (stable) commit; nothing outside ``path``
  changes, so later unrelated commits stay.
- ``patch_branch``: a proposed fix (proposeFix: a raised memory limit, more replicas). The manifest
  that declares the target object is edited in place: the value's text at the field path is
  replaced and everything else of the file stays byte for byte (comments, key order, quoting).

A commit message is a subject, a body, and trailers in git's format (``git interpret-trailers
--parse`` reads them back): ``Upkeep-Incident``, ``Upkeep-Release``, ``Upkeep-Change`` and
``Upkeep-PlaybookRun``, the ones given, in that order.

Idempotent: the caller names the branch after what it is for (``fix_branch_name``,
``revert_branch_name``), and when that branch on the remote already holds a commit with the same
trailers and the same tree, nothing is pushed again (``Pushed.already_there``); a restart does not
push twice. A branch that exists with other commits is never overwritten: ``PushRejected``.

The work is done in a temporary bare repository that borrows the objects of the GitSource's cache
repository (``gitops.git``, through git's alternates), so nothing is cloned again and the cache's
refs are not touched; it is removed afterwards. Every function here blocks: the controller runs it
on a thread.

Errors, each with a CamelCase ``reason`` for a status and a ``message`` for people, never holding a
token::

    git.GitError
     ├── git.FetchError                the base branch could not be fetched (Unreachable,
     │                                 AuthenticationFailed, RefMissing as ``git.fetch`` raises them)
     ├── git.PathMissing               the path is neither at the tip nor at the good commit
     └── WriteBackError
          ├── PushRejected             the remote refused the branch (it exists with other commits, a hook said no)
          ├── ObjectNotFound           the good commit is not in the repository
          └── NotEditable              the fix cannot be written into the manifests here: make it by hand

Credentials are those of ``git.fetch``: ``token`` (with ``username``) as HTTP basic auth, in git's
configuration through the environment, never in a URL, an argument or a message; over SSH, ``identity``
and ``known_hosts``, written to private files for the one push. Pushing with a
token that the server refuses is ``git.AuthenticationFailed``; no answer is ``git.Unreachable``.

Opening a pull request on a hosting service is a ``PullRequestProvider``, passed in; none is built
in. The pushed branch is the contract: any hosting service, or a person, can take it from there.

Limits of the in-place edit (``edit_document``), each a ``NotEditable`` that says so rather than a
wrong edit: the document must be block-style YAML at the level of the change (flow mappings such as
``{cpu: 1}`` are edited only when empty); a missing list item (``containers[name=x]`` with no such
container) is not added; a block scalar (``|``, ``>``) is not replaced. For a kustomization the object
must be declared as it is in one of the files its ``resources`` lists (not made by a generator, and
not changed at that field by a patch): the result is rendered again and must show the new value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from upkeep.engine import fieldpaths, quantities
from upkeep.gitops import documents, git, render

__all__ = [
    "DEFAULT_AUTHOR",
    "TRAILER_KEYS",
    "NotEditable",
    "NothingToDo",
    "ObjectNotFound",
    "PullRequestProvider",
    "PushRejected",
    "Pushed",
    "Target",
    "WriteBackError",
    "commit_message",
    "edit_document",
    "fix_branch_name",
    "patch_branch",
    "revert_branch",
    "revert_branch_name",
]

DEFAULT_AUTHOR = "Upkeep <upkeep@localhost>"
"""Author and committer of a write-back commit unless the caller names someone."""
TRAILER_KEYS = ("Upkeep-Incident", "Upkeep-Release", "Upkeep-Change", "Upkeep-PlaybookRun")
"""The trailers a write-back commit may carry, in the order they are written."""
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")
_BRANCH_PIECE = re.compile(r"[^A-Za-z0-9._-]+")
_ZERO = "0" * 40


class WriteBackError(git.GitError):
    """A proposal could not be written to git."""

    reason = "WriteBackFailed"


class PushRejected(WriteBackError):
    """The remote refused the branch: it exists with other commits, or a hook or a protection rule said no."""

    reason = "PushRejected"


class ObjectNotFound(WriteBackError):
    """A commit the proposal needs (the good commit of a revert) is not in the repository."""

    reason = "ObjectNotFound"


class NotEditable(WriteBackError):
    """The fix cannot be written into the manifests as they are (see the module docstring): make it by hand."""

    reason = "NotEditable"


@dataclass(frozen=True)
class Target:
    """The object a fix is for: as the cluster names it (the namespace may be one the Release gives)."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Target:
        """From ``{apiVersion, kind, namespace, name}`` (proposeFix's ``workload``); apiVersion defaults to apps/v1."""
        return cls(
            str(data.get("apiVersion") or "apps/v1"),
            str(data.get("kind") or ""),
            str(data.get("namespace") or ""),
            str(data.get("name") or ""),
        )

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Pushed:
    """The proposal is on the remote as ``branch`` at ``commit``."""

    url: str
    """The repository, without credentials."""
    branch: str
    commit: str
    base_commit: str
    """The tip of the base branch the commit was made on."""
    files: tuple[str, ...]
    """Repository-relative files the commit changes."""
    already_there: bool = False
    """True when the branch already held this proposal (same trailers and tree) and nothing was pushed."""
    pull_request: str | None = None
    """What the ``PullRequestProvider`` returned (its URL), when one was given."""


@dataclass(frozen=True)
class NothingToDo:
    """Git already says what the proposal would make it say; no branch is pushed."""

    message: str
    base_commit: str


class PullRequestProvider(Protocol):
    """Opens (or finds) a pull request for a pushed branch on a hosting service.

    None is built in: the pushed branch is the contract, and a provider for GitHub, GitLab, Gitea...
    is a small class with this method. It is called after every successful write-back, also when the
    branch was already there, so it must find an open pull request for the branch rather than open a
    second one. Its answer (a URL, or None) goes into ``Pushed.pull_request``; its exceptions reach the
    caller, after the branch is pushed.
    """

    def open(self, url: str, branch: str, base_branch: str, title: str, body: str) -> str | None: ...


def fix_branch_name(incident: str, step_key: str, *, prefix: str = "upkeep/fix/") -> str:
    """``upkeep/fix/<incident>-<12 hex digits of the step key's SHA-256>``: one branch per proposeFix step.

    A step's idempotency key (``<run uid>/<index>``) is long and has a slash; its hash is short and the same
    after a restart.
    """
    return _branch(f"{prefix}{incident}-{hashlib.sha256(step_key.encode()).hexdigest()[:12]}")


def revert_branch_name(prefix: str, release: str, bad_commit: str) -> str:
    """``<prefix><release>-<12 hex digits of the bad commit>``: one branch per rollback of a revision."""
    return _branch(f"{prefix}{release}-{bad_commit[:12]}")


def _branch(name: str) -> str:
    pieces = [_BRANCH_PIECE.sub("-", piece).strip(".-") for piece in name.split("/")]
    cleaned = "/".join(piece for piece in pieces if piece)
    if not cleaned or cleaned.endswith(".lock"):
        raise ValueError(f"{name!r} does not make a branch name")
    return cleaned


def commit_message(subject: str, body: str, trailers: Mapping[str, str]) -> str:
    """Subject, blank line, body, blank line, trailers (``Key: value``), as ``git interpret-trailers`` reads them.

    Only ``TRAILER_KEYS`` are allowed; an empty value leaves its trailer out. A value is one line.
    """
    unknown = sorted(set(trailers) - set(TRAILER_KEYS))
    if unknown:
        raise ValueError(f"unknown trailer {', '.join(unknown)}: use {', '.join(TRAILER_KEYS)}")
    lines = [
        f"{key}: {' '.join(str(trailers[key]).split())}"
        for key in TRAILER_KEYS
        if key in trailers and str(trailers[key]).strip()
    ]
    title = " ".join(subject.split()) or "Upkeep write-back"
    text = body.strip()
    parts = [title, *([text] if text else []), *(["\n".join(lines)] if lines else [])]
    return "\n\n".join(parts) + "\n"


# -- the two proposals


def revert_branch(
    url: str,
    *,
    base_branch: str,
    path: str,
    good_commit: str,
    bad_commit: str,
    branch: str,
    subject: str,
    body: str,
    trailers: Mapping[str, str],
    author: str = DEFAULT_AUTHOR,
    token: str | None = None,
    username: str | None = None,
    identity: bytes | None = None,
    known_hosts: bytes | None = None,
    cache_dir: Path,
    timeout: float = git.DEFAULT_TIMEOUT,
    pull_requests: PullRequestProvider | None = None,
) -> Pushed | NothingToDo:
    """Push ``branch``: the tip of ``base_branch`` with ``path`` as it was at ``good_commit`` (module docstring).

    ``bad_commit`` is the revision being reverted; it is named in the message, not needed in the repository.
    Nothing to do when ``path`` at the tip is already what it was at ``good_commit``.
    """
    cleaned = _repo_path(path)

    def build(work: _Workspace) -> _Built | NothingToDo:
        good = work.commit_of(good_commit)
        wanted = work.entries(good, cleaned)
        if not wanted:
            raise git.PathMissing(f"{cleaned!r} is not in commit {good[:12]}, so it cannot be restored from there")
        current = work.entries(work.base, cleaned)
        if current == wanted:
            return NothingToDo(
                f"{cleaned or 'the repository'} at the tip of {base_branch} is already as at {good[:12]}, "
                f"before {bad_commit[:12]}",
                work.base,
            )
        changed = sorted(
            {name for name in current if current.get(name) != wanted.get(name)} | set(wanted) - set(current)
        )
        updates = [f"0 {_ZERO}\t{name}" for name in current if name not in wanted]
        updates += [f"{mode} blob {oid}\t{name}" for name, (mode, oid) in wanted.items()]
        return _Built(work.tree_with(updates), tuple(changed))

    return _propose(
        url,
        base_branch=base_branch,
        branch=branch,
        message=commit_message(subject, body, trailers),
        trailers=trailers,
        author=author,
        auth=_Auth(token, username, identity, known_hosts),
        cache_dir=cache_dir,
        timeout=timeout,
        build=build,
        pull_requests=pull_requests,
    )


def patch_branch(
    url: str,
    *,
    base_branch: str,
    path: str,
    target: Target,
    field_path: str,
    value: Any,
    branch: str,
    subject: str,
    body: str,
    trailers: Mapping[str, str],
    author: str = DEFAULT_AUTHOR,
    token: str | None = None,
    username: str | None = None,
    identity: bytes | None = None,
    known_hosts: bytes | None = None,
    cache_dir: Path,
    timeout: float = git.DEFAULT_TIMEOUT,
    pull_requests: PullRequestProvider | None = None,
) -> Pushed | NothingToDo:
    """Push ``branch``: the tip of ``base_branch`` with ``field_path`` of ``target`` set to ``value``.

    See the module docstring for how the manifest is found and edited.

    Nothing to do when the manifests at the tip already declare that value.
    """
    fieldpaths.parse(field_path)  # a bad path is the caller's error, before any network work
    cleaned = _repo_path(path)

    def build(work: _Workspace) -> _Built | NothingToDo:
        tree = git.read_tree(work.artifact, "")
        file, text = _patched_file(tree, cleaned, target, field_path, value)
        if file is None:
            return NothingToDo(f"{field_path} of {target} is already {value} in {cleaned}", work.base)
        mode = work.entries(work.base, file)[file][0]
        blob = work.blob(text.encode("utf-8"))
        return _Built(work.tree_with([f"{mode} blob {blob}\t{file}"]), (file,))

    return _propose(
        url,
        base_branch=base_branch,
        branch=branch,
        message=commit_message(subject, body, trailers),
        trailers=trailers,
        author=author,
        auth=_Auth(token, username, identity, known_hosts),
        cache_dir=cache_dir,
        timeout=timeout,
        build=build,
        pull_requests=pull_requests,
    )


# -- finding and editing the manifest


def _patched_file(
    tree: Mapping[str, bytes], path: str, target: Target, field_path: str, value: Any
) -> tuple[str | None, str]:
    """The file to change and its new text; ``(None, "")`` when the manifests already say ``value``."""
    before = render.render(tree, path)
    if before.errors:
        raise NotEditable(
            f"the manifests at {path} do not render, so the fix cannot be written there: {before.errors[0].render()}"
        )
    key, rendered = _find_rendered(before, target, path)
    current = _get(rendered.body, field_path, target)
    if _same(current, value):
        return None, ""
    if before.kustomized:
        file, index = _declaring_document(tree, path, target, key)
    else:
        file, index = rendered.document.file, rendered.document.index
    text = tree[file].decode("utf-8")
    edited = edit_document(text, index, field_path, value)
    after = render.render({**tree, file: edited.encode("utf-8")}, path)
    wanted = fieldpaths.with_value(rendered.body, field_path, value)
    found = after.objects.get(key)
    if after.errors or found is None or found.body != wanted:
        raise NotEditable(
            f"editing {file} does not give {field_path} = {value} for {target} at {path} "
            "(the kustomization changes that field, or the edit cannot be made in place): make the fix by hand"
        )
    others = {k: v.body for k, v in after.objects.items() if k != key}
    if others != {k: v.body for k, v in before.objects.items() if k != key}:
        raise NotEditable(f"editing {file} would change other objects than {target}: make the fix by hand")
    return file, edited


def _find_rendered(rendered: render.Rendered, target: Target, path: str) -> tuple[render.ObjectKey, Any]:
    matches = [
        (key, found)
        for key, found in rendered.objects.items()
        if key.group == target.group
        and key.kind == target.kind
        and key.name == target.name
        and key.namespace in ("", target.namespace)
    ]
    if not matches:
        raise NotEditable(f"no manifest at {path} declares {target}: the fix must be made by hand where it is declared")
    if len(matches) > 1:
        raise NotEditable(f"{target} is declared more than once at {path}: make the fix by hand")
    return matches[0]


def _declaring_document(tree: Mapping[str, bytes], path: str, target: Target, key: render.ObjectKey) -> tuple[str, int]:
    """The file and document index, among a kustomization's ``resources`` files, that declare the target as it is."""
    name = next(
        (
            posixpath.join(path, n).removeprefix("./")
            for n in render.KUSTOMIZATION_FILES
            if posixpath.join(path, n) in tree
        ),
        posixpath.join(path, "kustomization.yaml"),
    )
    try:
        kustomization = yaml.safe_load(tree[name].decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, KeyError) as error:
        raise NotEditable(f"{name} cannot be read ({error}): make the fix by hand") from None
    prefix, suffix = str(kustomization.get("namePrefix") or ""), str(kustomization.get("nameSuffix") or "")
    found: list[tuple[str, int]] = []
    for resource in kustomization.get("resources") or []:
        file = posixpath.normpath(posixpath.join(path, str(resource)))
        if file.startswith("../") or file not in tree or not file.endswith((".yaml", ".yml")):
            continue  # a directory (another kustomization), a URL, or outside the repository
        loaded, _ = documents.load_text(tree[file].decode("utf-8", "replace"), file)
        for document in loaded:
            if not isinstance(document.body, Mapping):
                continue
            declared = render.ObjectKey.of(document.body)
            if (
                (declared.group, declared.kind) == (key.group, key.kind)
                and f"{prefix}{declared.name}{suffix}" == target.name
                and declared.namespace in ("", key.namespace, target.namespace)
            ):
                found.append((file, document.index))
    if len(found) != 1:
        raise NotEditable(
            f"{target} is not declared directly in one file of the resources of {name} (it comes from a base, a "
            "generator or a patch): make the fix by hand"
        )
    return found[0]


def _get(body: Mapping[str, Any], field_path: str, target: Target) -> Any:
    try:
        return fieldpaths.get(body, field_path)
    except fieldpaths.FieldPathError as error:
        raise NotEditable(f"{target}: {error}; make the fix by hand") from None


def _same(first: Any, second: Any) -> bool:
    if first is None or second is None:
        return first is second
    if first == second or str(first) == str(second):
        return True
    try:
        return quantities.amount(first) == quantities.amount(second)
    except (quantities.QuantityError, TypeError, ValueError):
        return False


def edit_document(text: str, index: int, field_path: str, value: Any) -> str:
    """``text`` with ``field_path`` of its document ``index`` set to ``value``, everything else kept byte for byte.

    An existing scalar has its text replaced, in its quoting style; missing keys are added under the
    nearest mapping that exists, as block YAML indented like its keys. ``NotEditable`` where that is not
    possible (module docstring). The caller checks the result by parsing it again.
    """
    root = _document_node(text, index)
    steps = fieldpaths.parse(field_path)
    parent_key: yaml.Node | None = None
    node: yaml.Node = root
    for position, step in enumerate(steps):
        if isinstance(step, fieldpaths.Key):
            if isinstance(node, yaml.MappingNode):
                pair = next((pair for pair in node.value if _scalar_text(pair[0]) == step.name), None)
                if pair is not None:
                    parent_key, node = pair
                    continue
            return _insert(text, node, parent_key, steps[position:], value, field_path)
        if not isinstance(node, yaml.SequenceNode):
            raise NotEditable(f"{field_path}: a list selector on something that is not a list; make the fix by hand")
        item = _sequence_item(node, step)
        if item is None:
            raise NotEditable(f"{field_path}: the list has no {_describe(step)}; add it by hand")
        parent_key, node = None, item
    if not isinstance(node, yaml.ScalarNode) or node.style in ("|", ">"):
        raise NotEditable(f"{field_path} is not a one-line value in the manifest; make the fix by hand")
    return text[: node.start_mark.index] + _render(value, node.style) + text[node.end_mark.index :]


def _document_node(text: str, index: int) -> yaml.Node:
    """The node of document ``index``, counted as ``documents.load_text`` counts (empty documents included)."""
    loader = yaml.SafeLoader(text)
    try:
        position = 0
        while loader.check_node():
            node = loader.get_node()
            if position == index and node is not None:
                return node
            position += 1
    except yaml.YAMLError as error:
        raise NotEditable(f"the manifest is not valid YAML: {error}") from None
    finally:
        loader.dispose()
    raise NotEditable(f"the manifest has no document {index}")


def _scalar_text(node: yaml.Node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _sequence_item(node: yaml.SequenceNode, step: fieldpaths.Step) -> yaml.Node | None:
    if isinstance(step, fieldpaths.Index):
        return node.value[step.position] if step.position < len(node.value) else None
    assert isinstance(step, fieldpaths.Select)
    for item in node.value:
        if isinstance(item, yaml.MappingNode) and any(
            _scalar_text(key) == step.field and _scalar_text(val) == step.value for key, val in item.value
        ):
            return item
    return None


def _describe(step: fieldpaths.Step) -> str:
    if isinstance(step, fieldpaths.Select):
        return f"item with {step.field}={step.value}"
    return f"item {step.position}" if isinstance(step, fieldpaths.Index) else repr(step.name)


def _insert(
    text: str,
    node: yaml.Node,
    parent_key: yaml.Node | None,
    missing: Sequence[fieldpaths.Step],
    value: Any,
    field_path: str,
) -> str:
    """Add the ``missing`` keys (with ``value`` at the end) to the mapping ``node``, or in place of an empty value."""
    names = [step.name for step in missing if isinstance(step, fieldpaths.Key)]
    if len(names) != len(missing):
        raise NotEditable(f"{field_path}: a list item that the manifest does not have cannot be added; do it by hand")

    def block(indent: int) -> list[str]:
        lines = [" " * (indent + 2 * depth) + f"{_render(name, None)}:" for depth, name in enumerate(names)]
        lines[-1] += f" {_render(value, None)}"
        return lines

    empty = (isinstance(node, yaml.MappingNode) and not node.value) or (
        isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
    )
    if empty:
        if parent_key is None:
            raise NotEditable(f"{field_path}: the document is empty where the field goes; make the fix by hand")
        lines = block(parent_key.start_mark.column + 2)
        start = node.start_mark.index
        while start > 0 and text[start - 1] in " \t":
            start -= 1  # no trailing blank after the key
        end = max(node.end_mark.index, start)
        return text[:start] + "\n" + "\n".join(lines) + text[end:]
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        raise NotEditable(f"{field_path}: the manifest holds something else there, in a form not edited in place")
    first_key, first_value = node.value[0]
    column = first_key.start_mark.column
    line_start = first_key.start_mark.index - column
    lines = block(column)
    if not text[line_start : first_key.start_mark.index].strip():
        return text[:line_start] + "".join(f"{line}\n" for line in lines) + text[line_start:]
    # The first key shares its line with a list's dash (``- name: shop``): the new keys go below that line.
    if isinstance(first_value, yaml.ScalarNode) and first_value.start_mark.line == first_value.end_mark.line:
        end = text.find("\n", first_value.end_mark.index)
        if end == -1:
            return text + "\n" + "\n".join(lines) + "\n"
        return text[: end + 1] + "".join(f"{line}\n" for line in lines) + text[end + 1 :]
    raise NotEditable(f"{field_path}: cannot find where to add the field in place; make the fix by hand")


def _render(value: Any, style: str | None) -> str:
    """``value`` as a one-line YAML scalar, in the quoting style of the value it replaces (plain when none)."""
    if isinstance(value, str) and style == '"':
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and style == "'":
        return "'" + value.replace("'", "''") + "'"
    dumped = str(yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)).strip()
    return dumped.removesuffix("\n...").removesuffix("...").strip()


# -- the commit and the push


@dataclass(frozen=True)
class _Auth:
    token: str | None
    username: str | None
    identity: bytes | None = None
    known_hosts: bytes | None = None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``git.fetch`` and ``git.remote``."""
        return {
            "token": self.token,
            "username": self.username,
            "identity": self.identity,
            "known_hosts": self.known_hosts,
        }

    def __repr__(self) -> str:  # a token or key must not reach a log through a repr
        return f"_Auth(token={'***' if self.token else None}, username={self.username!r}, ssh={bool(self.identity)})"


@dataclass(frozen=True)
class _Built:
    tree: str
    files: tuple[str, ...]


class _Workspace:
    """A temporary bare repository borrowing the cache's objects, with an index of its own."""

    def __init__(
        self,
        folder: Path,
        remote: git.Remote,
        artifact: git.Artifact,
        env: Mapping[str, str],
        source: str,
        auth: _Auth,
    ) -> None:
        self.folder = folder
        self._source = source
        self._auth = auth
        self.remote = remote
        self.artifact = artifact
        self.base = artifact.sha
        self.url = artifact.url
        self._env = dict(env)

    def git(self, args: Sequence[str], *, input: str | bytes | None = None) -> str:
        """A local git command (no network) in the workspace; its standard output."""
        done = subprocess.run(
            ["git", "--git-dir", str(self.folder / "repo.git"), *args],
            input=input.encode() if isinstance(input, str) else input,
            capture_output=True,
            env=self._env,
            check=False,
        )
        if done.returncode != 0:
            raise WriteBackError(
                f"git {args[0]} failed: {self.remote.scrub(done.stderr.decode(errors='replace').strip())}"
            )
        return done.stdout.decode("utf-8", "replace")

    def commit_of(self, name: str) -> str:
        """The full SHA of commit ``name``, fetched from the remote when the cache does not have it."""
        found = self._resolve(name)
        if found is None:
            with contextlib.suppress(git.FetchError, ValueError):
                git.fetch(
                    self._source,
                    git.Ref("commit", name),
                    self.folder.parent,
                    **self._auth.options(),
                )
            found = self._resolve(name)
        if found is None:
            raise ObjectNotFound(f"commit {name[:12]} is not in {self.url}")
        return found

    def _resolve(self, name: str) -> str | None:
        try:
            return self.git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"]).strip()
        except WriteBackError:
            return None

    def entries(self, commit: str, path: str) -> dict[str, tuple[str, str]]:
        """The blobs (and links) under ``path`` at ``commit``: name → (mode, object id)."""
        listing = self.git(["ls-tree", "-r", "-z", commit, *(["--", path] if path else [])])
        found: dict[str, tuple[str, str]] = {}
        for line in filter(None, listing.split("\0")):
            meta, name = line.split("\t", 1)
            mode, kind, oid = meta.split()
            if kind == "blob":
                found[name] = (mode, oid)
        return found

    def blob(self, content: bytes) -> str:
        return self.git(["hash-object", "-w", "--stdin"], input=content).strip()

    def tree_with(self, updates: Sequence[str]) -> str:
        """The base's tree with ``updates`` (``git update-index --index-info`` lines; mode 0 removes)."""
        self.git(["read-tree", self.base])
        self.git(["update-index", "-z", "--index-info"], input="".join(f"{line}\0" for line in updates))
        return self.git(["write-tree"]).strip()

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        try:
            self.git(["merge-base", "--is-ancestor", ancestor, commit])
        except WriteBackError:
            return False
        return True

    def tree_of(self, commit: str) -> str:
        return self.git(["rev-parse", f"{commit}^{{tree}}"]).strip()

    def trailers_of(self, commit: str) -> dict[str, str]:
        message = self.git(["log", "-1", "--format=%B", commit])
        parsed = self.git(["interpret-trailers", "--parse"], input=message)
        found: dict[str, str] = {}
        for line in parsed.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in TRAILER_KEYS:
                found[key.strip()] = value.strip()
        return found


def _propose(
    url: str,
    *,
    base_branch: str,
    branch: str,
    message: str,
    trailers: Mapping[str, str],
    author: str,
    auth: _Auth,
    cache_dir: Path,
    timeout: float,
    build: Callable[[_Workspace], _Built | NothingToDo],
    pull_requests: PullRequestProvider | None,
) -> Pushed | NothingToDo:
    """Fetch, build, check the remote branch for the same proposal, commit and push (module docstring)."""
    git.Ref("branch", branch)  # a ValueError for a name git would refuse, before any network work
    if branch == base_branch:
        raise ValueError(f"write-back pushes a branch of its own, not {base_branch!r} itself")
    name, email = _identity(author)
    artifact = git.fetch(url, git.Ref("branch", base_branch), cache_dir, timeout=timeout, **auth.options())
    try:
        existing: str | None = git.fetch(
            url, git.Ref("branch", branch), cache_dir, timeout=timeout, **auth.options()
        ).sha
    except git.RefMissing:
        existing = None
    with _workspace(artifact, cache_dir, url, auth, timeout, name, email) as work:
        built = build(work)
        if isinstance(built, NothingToDo):
            return built
        wanted = {key: " ".join(str(value).split()) for key, value in trailers.items() if str(value).strip()}
        if existing is not None:
            for commit in work.git(["rev-list", "--max-count=200", existing, f"^{work.base}"]).split():
                if work.tree_of(commit) == built.tree and work.trailers_of(commit) == wanted:
                    pushed = Pushed(work.url, branch, commit, work.base, built.files, already_there=True)
                    return _with_pull_request(pushed, pull_requests, base_branch, message)
        commit = work.git(["commit-tree", built.tree, "-p", work.base, "-F", "-"], input=message).strip()
        _push(work, commit, branch, existing)
        return _with_pull_request(
            Pushed(work.url, branch, commit, work.base, built.files), pull_requests, base_branch, message
        )


def _with_pull_request(pushed: Pushed, provider: PullRequestProvider | None, base_branch: str, message: str) -> Pushed:
    if provider is None:
        return pushed
    title, _, body = message.partition("\n\n")
    opened = provider.open(pushed.url, pushed.branch, base_branch, title, body.strip())
    return Pushed(
        pushed.url, pushed.branch, pushed.commit, pushed.base_commit, pushed.files, pushed.already_there, opened
    )


def _push(work: _Workspace, commit: str, branch: str, existing: str | None) -> None:
    if existing is not None and not work.is_ancestor(existing, commit):
        raise PushRejected(
            f"branch {branch} of {work.url} exists with other commits (at {existing[:12]}); a branch under review is "
            "never overwritten: merge or delete it, and the next attempt proposes again"
        )
    # A new branch goes with a lease on its absence: one that appeared since it was read is not overwritten.
    # An existing one (an ancestor of the commit) moves by fast-forward only, which git checks on its own.
    lease = [f"--force-with-lease=refs/heads/{branch}:"] if existing is None else []
    done = work.remote.git(
        ["push", "--porcelain", "--no-verify", *lease, work.remote.source, f"{commit}:refs/heads/{branch}"],
        check=False,
    )
    if done.returncode == 0:
        return
    report = work.remote.scrub(done.stdout)
    rejected = next((line for line in report.splitlines() if line.startswith("!")), None)
    if rejected is not None:
        why = rejected.split("\t")[-1].strip()
        raise PushRejected(
            f"{work.url} refused branch {branch}: {why}. A branch of that name with other commits is never "
            "overwritten: merge or delete it, and the next attempt proposes again"
        )
    raise work.remote.failure(done.stderr)


@contextlib.contextmanager
def _workspace(
    artifact: git.Artifact, cache_dir: Path, url: str, auth: _Auth, timeout: float, name: str, email: str
) -> Iterator[_Workspace]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".writeback-", dir=cache_dir))
    try:
        repository = folder / "repo.git"
        env = _local_env(folder, name, email)
        subprocess.run(["git", "init", "--bare", "--quiet", str(repository)], check=True, env=env, capture_output=True)
        alternates = repository / "objects" / "info" / "alternates"
        alternates.write_text(f"{(artifact.repository / 'objects').resolve()}\n", encoding="utf-8")
        with git.remote(repository, url, timeout=timeout, **auth.options()) as remote:
            yield _Workspace(folder, remote, artifact, env, url, auth)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _local_env(folder: Path, name: str, email: str) -> dict[str, str]:
    """Local git's environment: English, no prompt, no configuration of this machine, the given identity."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        LC_ALL="C",
        LANGUAGE="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_INDEX_FILE=str(folder / "index"),
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email,
    )
    return env


def _identity(author: str) -> tuple[str, str]:
    match = _AUTHOR.match(author)
    if match is None:
        raise ValueError(f"author {author!r} is not 'Name <email>'")
    return match["name"], match["email"]


def _repo_path(path: str) -> str:
    try:
        cleaned = render.normalize_path(path)
    except ValueError as error:
        raise git.PathMissing(str(error)) from None
    return "" if cleaned == "." else cleaned
