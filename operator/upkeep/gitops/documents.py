"""Multi-document YAML manifests, read with the line of every field.

Manifests are read the way kubectl reads them, not the way plain PyYAML does: timestamps
stay strings (``2026-01-31T12:00:00Z`` is a string to the API), and a key given twice in
one mapping is an error instead of a silent overwrite. Each document keeps a map from
field path to line so that an error can say where it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from upkeep.model import paths

__all__ = ["Document", "FieldPath", "LoadError", "format_path", "load_file", "load_text", "manifest_files"]

FieldPath = paths.FieldPath
format_path = paths.format_path


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (the wheels are): nine times faster than the pure-Python one
on a thousand manifests (bench/gitops.py), with the same nodes, marks and errors."""


class _ManifestLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader without the timestamp type: the Kubernetes API has no such type."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class LoadError:
    """A document that could not be read at all."""

    file: str
    document: int
    line: int
    message: str
    field: str = ""


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: its value and the line of each field."""

    file: str
    index: int
    """Position in the file, counting from 0, empty documents included."""
    body: Any
    line: int
    """The document's first line (1-based)."""
    lines: Mapping[FieldPath, int] = field(default_factory=dict)

    def line_of(self, path: FieldPath) -> int:
        """The line of ``path``, or of its nearest ancestor that exists."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return self.line


def _walk(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int], problems: list[tuple[int, str, str]]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in seen:
                problems.append(
                    (
                        line,
                        format_path(child),
                        f"duplicate key {key!r} (first given on line {seen[key]}); keep one",
                    )
                )
            seen[key] = line
            lines[child] = line
            _walk(value_node, child, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for number, item in enumerate(node.value):
            child = (*path, number)
            lines[child] = item.start_mark.line + 1
            _walk(item, child, lines, problems)


def load_text(text: str, file: str) -> tuple[list[Document], list[LoadError]]:
    """Every document of ``text``; a syntax error ends the file with one LoadError."""
    documents: list[Document] = []
    errors: list[LoadError] = []
    loader = _ManifestLoader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                index += 1
                continue
            lines: dict[FieldPath, int] = {}
            problems: list[tuple[int, str, str]] = []
            _walk(node, (), lines, problems)
            body = loader.construct_document(node)
            if body is None:
                index += 1
                continue
            for line, path, message in problems:
                errors.append(LoadError(file, index, line, message, path))
            documents.append(Document(file, index, body, node.start_mark.line + 1, lines))
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        reason = " ".join(part for part in (error.context, error.problem) if part)
        errors.append(LoadError(file, index, line, f"not valid YAML: {reason}"))
    except yaml.YAMLError as error:
        errors.append(LoadError(file, index, 1, f"not valid YAML: {error}"))
    finally:
        loader.dispose()
    return documents, errors


def load_file(path: Path) -> tuple[list[Document], list[LoadError]]:
    """Every document of a file (see ``load_text``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [], [LoadError(str(path), 0, 1, "not UTF-8 text")]
    return load_text(text, str(path))


def manifest_files(root: Path) -> Iterator[Path]:
    """The ``.yaml`` and ``.yml`` files of a file or directory tree, sorted, hidden ones skipped."""
    if root.is_file():
        yield root
        return
    for found in sorted(root.rglob("*")):
        relative = found.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if found.is_file() and found.suffix in (".yaml", ".yml"):
            yield found
