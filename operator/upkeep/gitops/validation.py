"""Validation of a set of manifests before anything is applied (`upkeep validate`).

Three passes, all of them over the whole set before a verdict:

1. Upkeep's kinds against the schemas of ``crds/`` (and any other kind against a CRD
   that the set itself defines), strict about unknown fields;
2. the checks a schema cannot express (``upkeep.engine.semantics``), over the set with
   the schemas' defaults applied, so references between objects are seen;
3. Kubernetes' built-in kinds against the published schemas of ``kubernetes-validate``.

Every ``Finding`` names the file, the document index, the line, the field path and what
was expected.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import referencing

from upkeep.engine import semantics
from upkeep.gitops import documents
from upkeep.model import schemas

__all__ = ["Finding", "Report", "validate_documents", "validate_paths", "validate_text"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object (a mapping of fields)",
    "array": "a list",
    "null": "null",
}


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth a look) in one document."""

    file: str
    document: int
    line: int
    field: str
    message: str
    severity: str = "error"
    code: str = ""
    kind: str = ""
    name: str = ""

    def render(self) -> str:
        what = f"{self.kind}/{self.name}" if self.kind else "document"
        where = f" {self.field}:" if self.field else ":"
        return (
            f"{self.file}:{self.line}: {self.severity}: {what} (document {self.document}){where} "
            f"{self.message} [{self.code}]"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """What validating a set found."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    documents: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.ok,
            "files": self.files,
            "documents": self.documents,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [finding.to_dict() for finding in self.findings],
        }


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", value):
        raise ValueError(value)
    datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_messages(error: jsonschema.ValidationError) -> list[tuple[documents.FieldPath, str, str]]:
    """(path, message, code) for one jsonschema error, in our words."""
    path: documents.FieldPath = tuple(error.absolute_path)
    validator = str(error.validator)
    expected: Any = error.validator_value
    instance: Any = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    code = f"schema.{validator}"
    if validator == "required":
        present = instance if isinstance(instance, Mapping) else {}
        missing = [name for name in expected if name not in present]
        out = []
        for name in missing:
            described = schema.get("properties", {}).get(name, {}).get("description", "")
            hint = f" ({described.split('. ')[0].rstrip('.')})" if described else ""
            out.append(((*path, name), f"required field is missing{hint}", code))
        return out
    if validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = [name for name in instance if name not in known] if isinstance(instance, Mapping) else []
        return [
            ((*path, name), f"unknown field; fields allowed here: {', '.join(known)}", "schema.unknown-field")
            for name in extra
        ]
    if validator == "enum":
        allowed = ", ".join(str(item) for item in expected)
        return [(path, f"must be one of {allowed} (got {_describe(instance)})", code)]
    if validator == "type":
        types = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_JSON_TYPES.get(str(item), str(item)) for item in types)
        return [(path, f"must be {wanted} (got {_describe(instance)})", code)]
    if validator == "pattern":
        return [(path, f"must match the pattern {expected} (got {_describe(instance)})", code)]
    if validator == "format":
        example = " like 2026-01-31T12:00:00Z" if expected == "date-time" else ""
        return [(path, f"must be a {expected}{example} (got {_describe(instance)})", code)]
    if validator in ("minimum", "exclusiveMinimum"):
        return [(path, f"must be at least {expected} (got {_describe(instance)})", code)]
    if validator in ("maximum", "exclusiveMaximum"):
        return [(path, f"must be at most {expected} (got {_describe(instance)})", code)]
    if validator in ("minLength", "maxLength"):
        bound = "at least" if validator == "minLength" else "at most"
        return [(path, f"must be {bound} {expected} characters long (got {len(instance)})", code)]
    if validator in ("minItems", "maxItems"):
        bound = "at least" if validator == "minItems" else "at most"
        return [(path, f"must have {bound} {expected} items (got {len(instance)})", code)]
    if validator in ("minProperties", "maxProperties"):
        keys = ", ".join(instance) if isinstance(instance, Mapping) else ""
        choices = ", ".join(schema.get("properties", {}))
        if validator == "maxProperties" and expected == 1:
            return [(path, f"set exactly one of {choices} (got {keys})", code)]
        bound = "at least" if validator == "minProperties" else "at most"
        plural = "field" if expected == 1 else "fields"
        hint = f" of {choices}" if choices else ""
        return [(path, f"must set {bound} {expected} {plural}{hint} (got {keys or 'none'})", code)]
    if validator == "uniqueItems":
        return [(path, "items must be unique", code)]
    return [(path, error.message, code)]


def _schema_findings(
    document: documents.Document, validator: jsonschema.protocols.Validator, kind: str, name: str
) -> list[Finding]:
    found: list[Finding] = []
    for error in sorted(validator.iter_errors(document.body), key=lambda e: list(map(str, e.absolute_path))):
        for path, message, code in _schema_messages(error):
            found.append(
                Finding(
                    file=document.file,
                    document=document.index,
                    line=document.line_of(path),
                    field=documents.format_path(path),
                    message=message,
                    code=code,
                    kind=kind,
                    name=name,
                )
            )
    return found


@functools.cache
def _crd_validator(kind: str) -> jsonschema.protocols.Validator:
    resource = schemas.by_kind()[kind]
    return jsonschema.Draft202012Validator(resource.json_schema, format_checker=_FORMATS)


def _validator_for_schema(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schemas.to_json_schema(schema), format_checker=_FORMATS)


@functools.cache
def _builtin_validator(api_version: str, kind: str, version: str) -> jsonschema.protocols.Validator | None:
    """A validator for a built-in kind from kubernetes-validate's strict schemas, or None."""
    from kubernetes_validate import utils as kv

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"v{version}-local-strict"
    try:
        schema = kv.schema_contents(f"kubernetes-json-schema/{folder}/{kind.lower()}-{group_version}.json", version)
        definitions = kv.schema_contents(f"kubernetes-json-schema/{folder}/_definitions.json", version)
    except FileNotFoundError:
        return None
    registry: referencing.Registry[Any] = referencing.Registry()
    registry = referencing.Resource.from_contents(schema) @ registry
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _kubernetes_version() -> str:
    from kubernetes_validate import utils as kv

    return str(kv.latest_version())


def _metadata_findings(document: documents.Document, kind: str, name: str, namespaced: bool | None) -> list[Finding]:
    body = document.body
    metadata = body.get("metadata")
    out: list[Finding] = []

    def add(path: documents.FieldPath, message: str, code: str) -> None:
        out.append(
            Finding(
                document.file,
                document.index,
                document.line_of(path),
                documents.format_path(path),
                message,
                code=code,
                kind=kind,
                name=name,
            )
        )

    if not isinstance(metadata, Mapping):
        add(("metadata",), "required field is missing (metadata.name names the object)", "schema.required")
        return out
    if not metadata.get("name") and not metadata.get("generateName"):
        add(("metadata", "name"), "required field is missing (the object's name)", "schema.required")
    elif metadata.get("name") and not _NAME.match(str(metadata["name"])):
        add(
            ("metadata", "name"),
            "must be a DNS subdomain name: lower-case letters, digits, '-' and '.', starting and ending "
            f"with a letter or digit (got {_describe(metadata['name'])})",
            "schema.pattern",
        )
    if namespaced is False and metadata.get("namespace"):
        add(
            ("metadata", "namespace"),
            f"{kind} is cluster-scoped: remove metadata.namespace",
            "semantic.scope",
        )
    return out


def validate_documents(
    items: Sequence[documents.Document],
    *,
    load_errors: Iterable[documents.LoadError] = (),
    kubernetes_version: str | None = None,
) -> Report:
    """Validate documents as one set (references between them are checked)."""
    report = Report(documents=len(items))
    report.findings.extend(
        Finding(error.file, error.document, error.line, error.field, error.message, code="yaml")
        for error in load_errors
    )
    ours = schemas.by_kind()
    group_versions = {resource.api_version for resource in ours.values()}
    defined = _crds_defined_in(items)
    version = kubernetes_version or _kubernetes_version()
    defaulted: list[tuple[documents.Document, dict[str, Any]]] = []

    for document in items:
        body = document.body
        if not isinstance(body, Mapping):
            report.findings.append(
                Finding(
                    document.file,
                    document.index,
                    document.line,
                    "",
                    f"a manifest must be a mapping with apiVersion and kind (got {type(body).__name__})",
                    code="schema.type",
                )
            )
            continue
        api_version, kind = body.get("apiVersion"), body.get("kind")
        name = str((body.get("metadata") or {}).get("name", "")) if isinstance(body.get("metadata"), Mapping) else ""
        missing = [key for key in ("apiVersion", "kind") if not body.get(key)]
        if missing:
            for key in missing:
                report.findings.append(
                    Finding(
                        document.file,
                        document.index,
                        document.line,
                        key,
                        "required field is missing (every manifest names its apiVersion and kind)",
                        code="schema.required",
                        kind=str(kind or ""),
                        name=name,
                    )
                )
            continue
        kind, api_version = str(kind), str(api_version)
        if kind in ours and api_version.split("/")[0] == schemas.by_kind()[kind].group:
            resource = ours[kind]
            if api_version != resource.api_version:
                report.findings.append(
                    Finding(
                        document.file,
                        document.index,
                        document.line_of(("apiVersion",)),
                        "apiVersion",
                        f"must be {resource.api_version} (got {_describe(api_version)})",
                        code="schema.enum",
                        kind=kind,
                        name=name,
                    )
                )
                continue
            report.findings += _metadata_findings(document, kind, name, resource.namespaced)
            report.findings += _schema_findings(document, _crd_validator(kind), kind, name)
            defaulted.append((document, schemas.apply_defaults(resource.schema, body)))
        elif api_version.split("/")[0] in {gv.split("/")[0] for gv in group_versions}:
            report.findings.append(
                Finding(
                    document.file,
                    document.index,
                    document.line_of(("kind",)),
                    "kind",
                    f"Upkeep has no kind {kind!r}; its kinds are {', '.join(sorted(ours))}",
                    code="schema.enum",
                    kind=kind,
                    name=name,
                )
            )
        elif (api_version, kind) in defined:
            scope_namespaced, schema = defined[(api_version, kind)]
            report.findings += _metadata_findings(document, kind, name, scope_namespaced)
            report.findings += _schema_findings(document, _validator_for_schema(schema), kind, name)
        else:
            validator = _builtin_validator(api_version, kind, version)
            if validator is None:
                report.findings.append(
                    Finding(
                        document.file,
                        document.index,
                        document.line_of(("kind",)),
                        "kind",
                        f"no schema known for {api_version} {kind}: not checked (a CRD in the set would be used)",
                        severity="warning",
                        code="schema.unknown-kind",
                        kind=kind,
                        name=name,
                    )
                )
                continue
            report.findings += _metadata_findings(document, kind, name, None)
            report.findings += _schema_findings(document, validator, kind, name)

    objects = semantics.ObjectSet.of(body for _, body in defaulted)
    for document, body in defaulted:
        kind = str(body["kind"])
        name = str((body.get("metadata") or {}).get("name", ""))
        schema_errors = [
            f.field for f in report.findings if f.file == document.file and f.document == document.index and f.field
        ]
        for issue in semantics.check(body, objects):
            if _under_any(documents.format_path(issue.path), schema_errors):
                continue  # the schema already said what is wrong there
            report.findings.append(
                Finding(
                    document.file,
                    document.index,
                    document.line_of(issue.path),
                    documents.format_path(issue.path),
                    issue.message,
                    issue.severity,
                    issue.code,
                    kind,
                    name,
                )
            )
    report.findings.sort(key=lambda f: (f.file, f.document, f.line, f.field))
    return report


def _under_any(field: str, parents: Iterable[str]) -> bool:
    """Whether ``field`` is one of ``parents`` or lies inside one of them."""
    return any(field == parent or field.startswith((f"{parent}.", f"{parent}[")) for parent in parents)


def _crds_defined_in(
    items: Sequence[documents.Document],
) -> dict[tuple[str, str], tuple[bool, Mapping[str, Any]]]:
    """(apiVersion, kind) → (namespaced, schema) for the CRDs the set itself defines."""
    found: dict[tuple[str, str], tuple[bool, Mapping[str, Any]]] = {}
    for document in items:
        body = document.body
        if not isinstance(body, Mapping) or body.get("kind") != "CustomResourceDefinition":
            continue
        try:
            spec = body["spec"]
            for version in spec["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = (
                    spec.get("scope") != "Cluster",
                    schema,
                )
        except (KeyError, TypeError):
            continue
    return found


def validate_paths(paths: Iterable[Path], *, kubernetes_version: str | None = None) -> Report:
    """Validate every manifest file under ``paths`` as one set.

    ``FileNotFoundError`` for a path that does not exist (a usage error, not a finding).
    Kustomize's own files (kustomization.yaml) are not manifests and are skipped.
    """
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        files.extend(documents.manifest_files(path))
    items: list[documents.Document] = []
    errors: list[documents.LoadError] = []
    for file in files:
        if file.name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
            continue
        loaded, failed = documents.load_file(file)
        items.extend(loaded)
        errors.extend(failed)
    report = validate_documents(items, load_errors=errors, kubernetes_version=kubernetes_version)
    report.files = len(files)
    return report


def validate_text(text: str, file: str = "<text>", *, kubernetes_version: str | None = None) -> Report:
    """Validate the documents of one YAML text as a set."""
    loaded, failed = documents.load_text(text, file)
    report = validate_documents(loaded, load_errors=failed, kubernetes_version=kubernetes_version)
    report.files = 1
    return report
