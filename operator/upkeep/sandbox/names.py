"""Object names as Kubernetes validates and generates them."""

from __future__ import annotations

import re
import secrets

__all__ = ["generate", "label_problem", "subdomain_problem"]

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The alphabet Kubernetes uses for generateName suffixes: no vowels, no look-alikes.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate(prefix: str) -> str:
    """``prefix`` plus five random characters, cut so the result stays within 63 characters."""
    return prefix[:58] + "".join(secrets.choice(_ALPHABET) for _ in range(5))


def subdomain_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 subdomain (most kinds' names), or None."""
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not _SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return None


def label_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 label (Namespace and Service names), or None."""
    if len(name) > 63:
        return "must be no more than 63 characters"
    if not _LABEL.match(name):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
            "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return None


def path_segment_problem(name: str) -> str | None:
    """Why ``name`` cannot be a path segment (the rule for RBAC objects' names), or None."""
    if name in (".", ".."):
        return f"may not be '{name}'"
    for bad in ("/", "%"):
        if bad in name:
            return f"may not contain '{bad}'"
    return None


_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_NAME_PART_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a qualified name (label and annotation keys: [prefix/]name), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or subdomain_problem(prefix)):
        return "prefix part " + (subdomain_problem(prefix) or "must be non-empty")
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return _NAME_PART_RULE
    return None


def label_causes(labels: object) -> list[dict[str, str]]:
    """The 422 causes for invalid label keys and values, as ValidateLabels words them."""
    if not isinstance(labels, dict):
        return []
    causes = []
    for key, value in labels.items():
        problem = qualified_name_problem(str(key))
        if problem:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.labels",
                    "message": f'Invalid value: "{key}": {problem}',
                }
            )
        text = str(value)
        if text and (len(text) > 63 or not _QUALIFIED_NAME.match(text)):
            rule = "must be no more than 63 characters" if len(text) > 63 else _VALUE_RULE
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.labels",
                    "message": f'Invalid value: "{text}": {rule}',
                }
            )
    return causes
