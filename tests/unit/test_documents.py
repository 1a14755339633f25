"""Reading manifests as kubectl does, with the line of every field."""

from __future__ import annotations

from upkeep.gitops import documents

TEXT = """\
# a comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: one
  annotations:
    at: 2026-01-31T12:00:00Z
data:
  a: "1"
---
---
apiVersion: v1
kind: List
items:
  - name: first
  - name: second
"""


def test_documents_keep_their_index_and_lines() -> None:
    loaded, errors = documents.load_text(TEXT, "x.yaml")
    assert errors == []
    assert [d.index for d in loaded] == [0, 2]
    first, second = loaded
    assert first.line_of(("metadata", "name")) == 5
    assert first.line_of(("data", "a")) == 9
    assert first.line_of(("data", "missing")) == 8  # the nearest ancestor
    assert second.line_of(("items", 1)) == 16
    assert second.line_of(("items", 1, "name")) == 16


def test_timestamps_stay_strings() -> None:
    loaded, _ = documents.load_text(TEXT, "x.yaml")
    assert loaded[0].body["metadata"]["annotations"]["at"] == "2026-01-31T12:00:00Z"


def test_duplicate_keys_are_errors() -> None:
    _, errors = documents.load_text("a: 1\nb: 2\na: 3\n", "x.yaml")
    assert len(errors) == 1
    assert errors[0].line == 3
    assert errors[0].field == "a"
    assert "first given on line 1" in errors[0].message


def test_syntax_error_names_the_line() -> None:
    loaded, errors = documents.load_text("a: 1\n---\nb: [1, 2\nc: 3\n", "x.yaml")
    assert len(loaded) == 1
    assert errors[0].document == 1
    assert errors[0].line >= 3
    assert "not valid YAML" in errors[0].message


def test_format_path_quotes_odd_keys() -> None:
    path = ("metadata", "labels", "app.kubernetes.io/name")
    assert documents.format_path(path) == 'metadata.labels["app.kubernetes.io/name"]'
    assert documents.format_path(("spec", "steps", 0, "action")) == "spec.steps[0].action"
