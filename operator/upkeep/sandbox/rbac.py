"""RBAC authorization as kube-apiserver decides it: Roles, ClusterRoles and their bindings, over stored objects.

What a request may do is decided as kube-apiserver's authorizer chain does for a user that is
not a node: the ``system:masters`` group is always allowed (the privileged-groups authorizer
in front of the chain), then the RBAC authorizer visits the rules of every ClusterRoleBinding
that names the user, one of their groups or their service account, then (for a namespaced
request) of every RoleBinding in that namespace, and allows on the first rule that covers the
request. Nothing denies: no allowing rule is "no opinion", which the API server answers 403.

The module is pure: the ``Authorizer`` reads the RBAC objects through the callables it is
given, builds its indexes (bindings by subject, roles by name, aggregated ClusterRoles) once
per ``generation`` and caches decisions until the generation changes. Around it:
``request_attributes`` (what kube-apiserver's RequestInfo makes of an HTTP request),
``forbidden_message``/``forbidden_status`` (the 403), ``self_subject_access_review`` and
``self_subject_rules_review`` (``kubectl auth can-i`` and ``--list``), ``aggregated_rules``
(the ClusterRole aggregation controller) and ``default_objects`` (the bootstrap roles and
bindings of a fresh cluster).

Errors: ``ReviewError`` (a ``ValueError``) for review bodies a real server refuses, with the
HTTP code (400 or 422) and, for 422, the causes of the Invalid status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.sandbox import selectors

__all__ = [
    "SUPERUSER_GROUP",
    "Attributes",
    "Authorizer",
    "Decision",
    "ReviewError",
    "aggregated_rules",
    "default_objects",
    "forbidden_message",
    "forbidden_status",
    "request_attributes",
    "self_subject_access_review",
    "self_subject_rules_review",
    "user_groups",
]

SUPERUSER_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
RBAC_GROUP = "rbac.authorization.k8s.io"

_AUTHORIZER_NAME = "rbac"
"""The name kube-apiserver gives the RBAC authorizer built from ``--authorization-mode=RBAC``.

Since 1.37 the union of authorizers prefixes the reasons of "no opinion" answers with it."""
_CACHE_LIMIT = 8192
"""Decisions (and resolved rule lists) kept per generation; past this the cache starts over."""

Lister = Callable[[], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class Attributes:
    """What is asked: who, which verb, on which resource or non-resource path (authorizer.Attributes)."""

    user: str
    groups: tuple[str, ...] = ()
    verb: str = ""
    """get, list, watch, create, update, patch, delete, deletecollection (or any custom verb); for
    non-resource requests the lowercase HTTP method."""
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    """The URL path of a non-resource request (/healthz, /version, /api)."""
    resource_request: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.groups, tuple):  # attributes are cache keys: groups given as a list still hash
            object.__setattr__(self, "groups", tuple(self.groups))


@dataclass(frozen=True)
class Decision:
    """The answer: allowed or not, and the reason the API server reports (may be empty)."""

    allowed: bool
    reason: str = ""


class ReviewError(ValueError):
    """A SelfSubjectAccessReview or SelfSubjectRulesReview the API server refuses.

    ``code`` is 400 (BadRequest, the message is the whole Status message) or 422 (Invalid:
    ``causes`` are the StatusCauses, each with reason, field and message).
    """

    def __init__(self, code: int, message: str, causes: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.causes = [dict(cause) for cause in causes]


# the user as the authenticators leave it


def user_groups(user: str, groups: Iterable[str]) -> tuple[str, ...]:
    """The groups kube-apiserver's authenticators give ``user``: those of its token, plus the
    service-account groups for ``system:serviceaccount:<ns>:<name>`` and ``system:authenticated``
    for everyone but the anonymous user."""
    found = list(groups)
    namespace = _service_account_namespace(user)
    if namespace:
        for group in (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}"):
            if group not in found:
                found.append(group)
    if user != ANONYMOUS_USER and AUTHENTICATED_GROUP not in found and UNAUTHENTICATED_GROUP not in found:
        found.append(AUTHENTICATED_GROUP)
    return tuple(found)


def _service_account_namespace(user: str) -> str:
    if not user.startswith(SERVICE_ACCOUNT_PREFIX):
        return ""
    parts = user[len(SERVICE_ACCOUNT_PREFIX) :].split(":")
    if len(parts) != 2 or not all(parts):
        return ""
    return parts[0]


# rules


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        return ()
    return tuple(str(item) for item in value)


@dataclass(frozen=True, slots=True)
class _Rule:
    """A PolicyRule prepared for matching, with the stored rule it came from."""

    source: Mapping[str, Any]
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    urls: frozenset[str]
    url_prefixes: tuple[str, ...]

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> _Rule:
        urls = _strings(rule.get("nonResourceURLs"))
        return cls(
            source=rule,
            verbs=frozenset(_strings(rule.get("verbs"))),
            api_groups=frozenset(_strings(rule.get("apiGroups"))),
            resources=frozenset(_strings(rule.get("resources"))),
            resource_names=frozenset(_strings(rule.get("resourceNames"))),
            urls=frozenset(urls),
            url_prefixes=tuple(url.rstrip("*") for url in urls if url.endswith("*")),
        )

    def allows(self, attributes: Attributes) -> bool:
        if "*" not in self.verbs and attributes.verb not in self.verbs:
            return False
        if not attributes.resource_request:
            path = attributes.path
            return "*" in self.urls or path in self.urls or any(path.startswith(p) for p in self.url_prefixes)
        if "*" not in self.api_groups and attributes.api_group not in self.api_groups:
            return False
        if "*" not in self.resources:
            sub = attributes.subresource
            combined = f"{attributes.resource}/{sub}" if sub else attributes.resource
            if combined not in self.resources and not (sub and f"*/{sub}" in self.resources):
                return False
        return not self.resource_names or attributes.name in self.resource_names


def _rule_key(rule: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    """A rule for semantic equality: missing and empty lists are the same, as in apimachinery."""
    return tuple(
        _strings(rule.get(field)) for field in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
    )


# aggregation


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def _rules_of(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rules = obj.get("rules")
    if not isinstance(rules, list):
        return []
    return [rule for rule in rules if isinstance(rule, Mapping)]


def aggregated_rules(cluster_roles: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rules the ClusterRole aggregation controller gives every ClusterRole with an aggregationRule.

    For each selector in order, the ClusterRoles whose labels it selects (sorted by name, not the
    role itself) contribute their rules, each rule once. Aggregated roles may select other
    aggregated roles (admin selects edit, edit selects view): the controller reaches a fixed
    point by re-syncing as rules change; this computes that fixed point. A selector that does
    not parse selects nothing.
    """
    roles = {_name(role): role for role in cluster_roles if _name(role)}
    current: dict[str, list[Mapping[str, Any]]] = {name: _rules_of(role) for name, role in roles.items()}
    plans: dict[str, list[list[str]]] = {}
    for name, role in sorted(roles.items()):
        rule = role.get("aggregationRule")
        if not isinstance(rule, Mapping):
            continue
        plan: list[list[str]] = []
        for raw in rule.get("clusterRoleSelectors") or []:
            try:
                # a selector without requirements ({} or null) selects every ClusterRole
                selector = selectors.selector_from_match(raw if isinstance(raw, Mapping) else None)
            except selectors.SelectorError:
                plan.append([])
                continue
            plan.append([other for other in sorted(roles) if other != name and selector.matches(_labels(roles[other]))])
        plans[name] = plan
    for _ in range(len(plans) + 1):
        changed = False
        for name, plan in plans.items():
            found: list[Mapping[str, Any]] = []
            seen: set[tuple[tuple[str, ...], ...]] = set()
            for selected in plan:
                for other in selected:
                    for rule in current[other]:
                        key = _rule_key(rule)
                        if key not in seen:
                            seen.add(key)
                            found.append(rule)
            if [_rule_key(rule) for rule in found] != [_rule_key(rule) for rule in current[name]]:
                current[name] = found
                changed = True
        if not changed:
            break
    return {name: [_copy_rule(rule) for rule in current[name]] for name in plans}


def _copy_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, list) else value for key, value in rule.items()}


# the index


@dataclass(frozen=True, slots=True)
class _Binding:
    kind: str
    """RoleBinding or ClusterRoleBinding."""
    name: str
    namespace: str
    role_kind: str
    role_name: str
    subjects: tuple[Mapping[str, Any], ...]


def _binding(kind: str, obj: Mapping[str, Any]) -> _Binding:
    metadata = obj.get("metadata") or {}
    ref = obj.get("roleRef") or {}
    subjects = tuple(subject for subject in obj.get("subjects") or [] if isinstance(subject, Mapping))
    return _Binding(
        kind=kind,
        name=str(metadata.get("name") or ""),
        namespace=str(metadata.get("namespace") or "") if kind == "RoleBinding" else "",
        role_kind=str(ref.get("kind") or ""),
        role_name=str(ref.get("name") or ""),
        subjects=subjects,
    )


def _subject_key(subject: Mapping[str, Any], namespace: str) -> tuple[str, str] | None:
    """How a subject is looked up: ("user", name) or ("group", name); service accounts by user name."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return ("user", name)
    if kind == "Group":
        return ("group", name)
    if kind == "ServiceAccount":
        account_namespace = str(subject.get("namespace") or "") or namespace
        if not account_namespace:
            return None
        return ("user", f"{SERVICE_ACCOUNT_PREFIX}{account_namespace}:{name}")
    return None


def _describe_subject(subject: Mapping[str, Any], namespace: str) -> str:
    kind, name = str(subject.get("kind") or ""), str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return f"{kind} {_go_quote(name + '/' + (str(subject.get('namespace') or '') or namespace))}"
    return f"{kind} {_go_quote(name)}"


def _describe(binding: _Binding, subject: Mapping[str, Any]) -> str:
    """The source of an allowing rule, as the RBAC authorizer names it in its reason."""
    if binding.kind == "ClusterRoleBinding":
        title = _go_quote(binding.name)
    else:
        title = _go_quote(f"{binding.name}/{binding.namespace}")
    return (
        f"{binding.kind} {title} of {binding.role_kind} {_go_quote(binding.role_name)} "
        f"to {_describe_subject(subject, binding.namespace)}"
    )


@dataclass(frozen=True, slots=True)
class _Grant:
    """One binding that applies to a user: where its rules come from, and the rules (or why there are none)."""

    source: str
    rules: tuple[_Rule, ...]
    error: str = ""


class _BindingIndex:
    """Bindings of one scope (the cluster, or one namespace), found by subject."""

    def __init__(self, bindings: list[_Binding]) -> None:
        self.bindings = sorted(bindings, key=lambda binding: binding.name)
        self.by_subject: dict[tuple[str, str], list[int]] = {}
        for position, binding in enumerate(self.bindings):
            for subject in binding.subjects:
                key = _subject_key(subject, binding.namespace)
                if key is not None:
                    positions = self.by_subject.setdefault(key, [])
                    if not positions or positions[-1] != position:
                        positions.append(position)

    def applying(self, keys: Sequence[tuple[str, str]]) -> list[tuple[_Binding, Mapping[str, Any]]]:
        """The bindings naming one of ``keys``, in order, each with the first subject that names one."""
        positions: set[int] = set()
        for key in keys:
            positions.update(self.by_subject.get(key, ()))
        wanted = set(keys)
        found = []
        for position in sorted(positions):
            binding = self.bindings[position]
            for subject in binding.subjects:
                if _subject_key(subject, binding.namespace) in wanted:
                    found.append((binding, subject))
                    break
        return found


class _Index:
    """Everything a decision needs, built once per generation of the RBAC objects."""

    def __init__(
        self,
        roles: Iterable[Mapping[str, Any]],
        cluster_roles: Iterable[Mapping[str, Any]],
        role_bindings: Iterable[Mapping[str, Any]],
        cluster_role_bindings: Iterable[Mapping[str, Any]],
    ) -> None:
        self.roles: dict[tuple[str, str], tuple[_Rule, ...]] = {}
        for role in roles:
            namespace = str((role.get("metadata") or {}).get("namespace") or "")
            self.roles[(namespace, _name(role))] = tuple(_Rule.of(rule) for rule in _rules_of(role))
        listed = list(cluster_roles)
        aggregated = aggregated_rules(listed)
        self.cluster_roles: dict[str, tuple[_Rule, ...]] = {}
        for role in listed:
            name = _name(role)
            rules = aggregated.get(name)
            self.cluster_roles[name] = tuple(_Rule.of(rule) for rule in (_rules_of(role) if rules is None else rules))
        self.cluster_bindings = _BindingIndex([_binding("ClusterRoleBinding", obj) for obj in cluster_role_bindings])
        by_namespace: dict[str, list[_Binding]] = {}
        for obj in role_bindings:
            binding = _binding("RoleBinding", obj)
            by_namespace.setdefault(binding.namespace, []).append(binding)
        self.namespace_bindings = {namespace: _BindingIndex(found) for namespace, found in by_namespace.items()}

    def _role_rules(self, binding: _Binding) -> tuple[tuple[_Rule, ...], str]:
        if binding.role_kind == "Role":
            rules = self.roles.get((binding.namespace, binding.role_name))
            if rules is None:
                return (), f"role.{RBAC_GROUP} {_go_quote(binding.role_name)} not found"
            return rules, ""
        if binding.role_kind == "ClusterRole":
            rules = self.cluster_roles.get(binding.role_name)
            if rules is None:
                return (), f"clusterrole.{RBAC_GROUP} {_go_quote(binding.role_name)} not found"
            return rules, ""
        return (), f"unsupported role reference kind: {_go_quote(binding.role_kind)}"

    def grants(self, user: str, groups: tuple[str, ...], namespace: str) -> tuple[_Grant, ...]:
        """The bindings that apply to the user, cluster ones first, in the order the rules are visited."""
        keys = [("user", user), *(("group", group) for group in groups)]
        applying = self.cluster_bindings.applying(keys)
        if namespace and namespace in self.namespace_bindings:
            applying += self.namespace_bindings[namespace].applying(keys)
        found = []
        for binding, subject in applying:
            rules, error = self._role_rules(binding)
            found.append(_Grant(_describe(binding, subject), rules, error))
        return tuple(found)


class Authorizer:
    """kube-apiserver's authorizer chain for users that are not nodes: system:masters, then RBAC.

    ``roles``, ``cluster_roles``, ``role_bindings`` and ``cluster_role_bindings`` list the stored
    objects (every namespace). ``generation`` returns a number that changes whenever any of
    them changes; indexes and cached decisions are rebuilt only then. Without it, every call
    rebuilds (fine for tests, slow for a server).
    """

    def __init__(
        self,
        roles: Lister,
        cluster_roles: Lister,
        role_bindings: Lister,
        cluster_role_bindings: Lister,
        *,
        generation: Callable[[], int] | None = None,
    ) -> None:
        self._listers = (roles, cluster_roles, role_bindings, cluster_role_bindings)
        self._generation = generation
        self._built_for: int | None = None
        self._index: _Index | None = None
        self._decisions: dict[Attributes, Decision] = {}
        self._grants: dict[tuple[str, tuple[str, ...], str], tuple[_Grant, ...]] = {}
        self._groups: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    def _current(self) -> _Index:
        generation = self._generation() if self._generation is not None else None
        if self._index is None or generation is None or generation != self._built_for:
            roles, cluster_roles, role_bindings, cluster_role_bindings = self._listers
            self._index = _Index(roles(), cluster_roles(), role_bindings(), cluster_role_bindings())
            self._built_for = generation
            self._decisions.clear()
            self._grants.clear()
        return self._index

    def _user_groups(self, user: str, groups: tuple[str, ...]) -> tuple[str, ...]:
        found = self._groups.get((user, groups))
        if found is None:
            if len(self._groups) >= _CACHE_LIMIT:
                self._groups.clear()
            found = self._groups[(user, groups)] = user_groups(user, groups)
        return found

    def _grants_for(self, index: _Index, user: str, groups: tuple[str, ...], namespace: str) -> tuple[_Grant, ...]:
        key = (user, groups, namespace)
        found = self._grants.get(key)
        if found is None:
            if len(self._grants) >= _CACHE_LIMIT:
                self._grants.clear()
            found = self._grants[key] = index.grants(user, groups, namespace)
        return found

    def authorize(self, attributes: Attributes) -> Decision:
        """Allowed, with the RBAC authorizer's reason; or not, with the reason the union of authorizers gives."""
        index = self._current()
        found = self._decisions.get(attributes)
        if found is not None:
            return found
        groups = self._user_groups(attributes.user, tuple(attributes.groups))
        decision = self._decide(index, attributes, groups)
        if len(self._decisions) >= _CACHE_LIMIT:
            self._decisions.clear()
        self._decisions[attributes] = decision
        return decision

    def _decide(self, index: _Index, attributes: Attributes, groups: tuple[str, ...]) -> Decision:
        if SUPERUSER_GROUP in groups:
            return Decision(True)
        errors: list[str] = []
        for grant in self._grants_for(index, attributes.user, groups, attributes.namespace):
            if grant.error:
                errors.append(grant.error)
                continue
            for rule in grant.rules:
                if rule.allows(attributes):
                    return Decision(True, f"RBAC: allowed by {grant.source}")
        if errors:
            return Decision(False, f"{_AUTHORIZER_NAME}: RBAC: {_aggregate(errors)}")
        return Decision(False)

    def rules_for(self, user: str, groups: Iterable[str], namespace: str) -> tuple[list[Mapping[str, Any]], list[str]]:
        """Every rule that applies to the user in ``namespace`` ("" for cluster bindings only), and the
        errors met resolving them (bindings to missing roles), as the RBAC rule resolver lists them."""
        index = self._current()
        effective = self._user_groups(user, tuple(groups))
        rules: list[Mapping[str, Any]] = []
        errors: list[str] = []
        for grant in self._grants_for(index, user, effective, namespace):
            if grant.error:
                errors.append(grant.error)
            rules.extend(rule.source for rule in grant.rules)
        return rules, errors


def _aggregate(messages: Sequence[str]) -> str:
    """An aggregate error's text: one message alone, several deduplicated in brackets."""
    if len(messages) == 1:
        return messages[0]
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# what kube-apiserver makes of a request


_SPECIAL_VERBS = ("proxy", "watch")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def request_attributes(
    method: str, path: str, query: Mapping[str, str], user: str, groups: Iterable[str] = ()
) -> Attributes:
    """The attributes kube-apiserver's RequestInfo gives an HTTP request (``query``: first value per key).

    /api/v1/... and /apis/{group}/{version}/... with a resource are resource requests; the verb
    comes from the method (GET get/list/watch, POST create, PUT update, PATCH patch, DELETE
    delete/deletecollection) or a /watch/ prefix; /namespaces/{ns} sets the namespace (also for
    the Namespace itself); a list or watch with ``fieldSelector=metadata.name=x`` is named x.
    Everything else is a non-resource request for ``path`` with the lowercase method as verb.
    """
    method = method.upper()
    plain = Attributes(user=user, groups=tuple(groups), verb=method.lower(), path=path, resource_request=False)
    parts = path.strip("/").split("/") if path.strip("/") else []
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return plain
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return plain
        group, rest = rest[0], rest[1:]
    rest = rest[1:]  # the version
    special = rest[0] in _SPECIAL_VERBS
    if special:
        if len(rest) < 2:
            return Attributes(user=user, groups=tuple(groups), verb=rest[0], api_group=group)
        verb, rest = rest[0], rest[1:]
    else:
        verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch"}.get(method, "")
        verb = "delete" if method == "DELETE" else verb
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        # query booleans are true unless "0" or "false" (any case), even when empty
        watch = query.get("watch")
        verb = "watch" if watch is not None and watch != "0" and watch.lower() != "false" else "list"
        name = _exact_name(query.get("fieldSelector"))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        user=user,
        groups=tuple(groups),
        verb=verb,
        namespace=namespace,
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
    )


def _exact_name(selector: str | None) -> str:
    """The name a field selector requires exactly (``metadata.name=x`` or ``==x``), as fields.ParseSelector
    and RequiresExactMatch find it; "" when there is none, the selector does not parse, or the name
    is no valid path segment."""
    if not selector:
        return ""
    terms, start, escaped = [], 0, False
    for position, char in enumerate(selector):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(selector[start:position])
            start = position + 1
    terms.append(selector[start:])
    found = ""
    for term in sorted(terms):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            return ""
        field, operator, raw = split
        value = _unescape(raw)
        if value is None:
            return ""
        if operator != "!=" and field == "metadata.name" and not found:
            found = value
    if found in (".", "..") or "/" in found or "%" in found:
        return ""
    return found


def _split_term(term: str) -> tuple[str, str, str] | None:
    for position in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, position):
                return term[:position], operator, term[position + len(operator) :]
    return None


def _unescape(value: str) -> str | None:
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in ("\\", ",", "="):
                return None
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in (",", "="):
            return None
        else:
            out.append(char)
    return None if escaped else "".join(out)


# the 403


def _go_quote(text: str) -> str:
    """``text`` as Go's %q writes it (strconv.Quote)."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _refusal(attributes: Attributes) -> str:
    """responsewriters.forbiddenMessage: what the user cannot do, with HTML-looking characters escaped."""
    user = _go_quote(attributes.user)
    if not attributes.resource_request:
        text = f"User {user} cannot {attributes.verb} path {_go_quote(attributes.path)}"
    else:
        resource = attributes.resource
        if attributes.subresource:
            resource = f"{resource}/{attributes.subresource}"
        text = (
            f"User {user} cannot {attributes.verb} resource {_go_quote(resource)} "
            f"in API group {_go_quote(attributes.api_group)}"
        )
        if attributes.namespace:
            text += f" in the namespace {_go_quote(attributes.namespace)}"
        else:
            text += " at the cluster scope"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def forbidden_message(attributes: Attributes, reason: str = "") -> str:
    """The message of the 403 Status kube-apiserver sends when ``attributes`` are not authorized.

    ``pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "shop"``;
    a named object: ``secrets "x" is forbidden: ...``; a group: ``deployments.apps is forbidden: ...``;
    no namespace: ``... at the cluster scope``; non-resource: ``forbidden: User "alice" cannot get path "/healthz"``.
    A non-empty ``reason`` (the decision's) is appended after ": ".
    """
    detail = _refusal(attributes)
    if reason:
        detail = f"{detail}: {reason}"
    resource = attributes.resource if attributes.resource_request else ""
    group = attributes.api_group if attributes.resource_request else ""
    if not resource and not group:
        return f"forbidden: {detail}"
    qualified = f"{resource}.{group}" if group else resource
    if attributes.name and attributes.resource_request:
        return f"{qualified} {_go_quote(attributes.name)} is forbidden: {detail}"
    return f"{qualified} is forbidden: {detail}"


def forbidden_status(attributes: Attributes, reason: str = "") -> dict[str, Any]:
    """The whole 403 Status body, details as the API server fills them (empty fields left out)."""
    details: dict[str, Any] = {}
    if attributes.resource_request:
        if attributes.name:
            details["name"] = attributes.name
        if attributes.api_group:
            details["group"] = attributes.api_group
        if attributes.resource:
            details["kind"] = attributes.resource
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": forbidden_message(attributes, reason),
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


# reviews


def _go_json(value: Any) -> str:
    """Go's json.Marshal of a value: compact, with <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def self_subject_access_review(
    authorizer: Authorizer, user: str, groups: Iterable[str], spec: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The status of a SelfSubjectAccessReview with ``spec``, for the requesting user.

    ``{"allowed": bool}`` plus ``reason`` when there is one (``denied`` would be true only for an
    authorizer that denies, which RBAC never does). Raises ``ReviewError`` (422) unless exactly
    one of resourceAttributes and nonResourceAttributes is given.
    """
    spec = spec if isinstance(spec, Mapping) else {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    causes = []
    if resource is not None and non_resource is not None:
        shown = {"Path": str(_field(non_resource, "path")), "Verb": str(_field(non_resource, "verb"))}
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "field": "spec.nonResourceAttributes",
                "message": f"Invalid value: {_go_json(shown)}: "
                "cannot be specified in combination with resourceAttributes",
            }
        )
    if resource is None and non_resource is None:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "field": "spec.resourceAttributes",
                "message": "Invalid value: null: "
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            }
        )
    if causes:
        summary = ", ".join(f"{cause['field']}: {cause['message']}" for cause in causes)
        if len(causes) > 1:
            summary = f"[{summary}]"
        raise ReviewError(422, f'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: {summary}', causes)
    groups = tuple(groups)
    if resource is not None:
        attributes = Attributes(
            user=user,
            groups=groups,
            verb=str(_field(resource, "verb")),
            namespace=str(_field(resource, "namespace")),
            api_group=str(_field(resource, "group")),
            resource=str(_field(resource, "resource")),
            subresource=str(_field(resource, "subresource")),
            name=str(_field(resource, "name")),
        )
    else:
        attributes = Attributes(
            user=user,
            groups=groups,
            verb=str(_field(non_resource, "verb")),
            path=str(_field(non_resource, "path")),
            resource_request=False,
        )
    decision = authorizer.authorize(attributes)
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _field(attributes: Any, name: str) -> Any:
    if not isinstance(attributes, Mapping):
        return ""
    value = attributes.get(name)
    return "" if value is None else value


def self_subject_rules_review(
    authorizer: Authorizer, user: str, groups: Iterable[str], namespace: str
) -> dict[str, Any]:
    """The status of a SelfSubjectRulesReview for ``namespace``: every rule of every binding that applies.

    resourceRules and nonResourceRules as the rule resolver lists them (cluster bindings first, a
    rule with both kinds in both lists), ``incomplete`` false, and ``evaluationError`` naming
    bindings whose role is missing. Raises ``ReviewError`` (400) for an empty namespace.
    """
    if not namespace:
        raise ReviewError(400, "no namespace on request")
    rules, errors = authorizer.rules_for(user, groups, namespace)
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    for rule in rules:
        resources = list(_strings(rule.get("resources")))
        urls = list(_strings(rule.get("nonResourceURLs")))
        verbs = list(_strings(rule.get("verbs")))
        if resources:
            entry: dict[str, Any] = {"verbs": verbs}
            if api_groups := list(_strings(rule.get("apiGroups"))):
                entry["apiGroups"] = api_groups
            entry["resources"] = resources
            if names := list(_strings(rule.get("resourceNames"))):
                entry["resourceNames"] = names
            resource_rules.append(entry)
        if urls:
            non_resource_rules.append({"verbs": verbs, "nonResourceURLs": urls})
    status: dict[str, Any] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }
    if errors:
        status["evaluationError"] = _aggregate(errors)
    return status


# the bootstrap policy


_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_READ_WRITE = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"


def _rule(verbs: Sequence[str], group: str, resources: str) -> dict[str, Any]:
    """A rule for one API group; ``resources`` separated by spaces."""
    return {"verbs": list(verbs), "apiGroups": [group], "resources": resources.split()}


def _urls(urls: str) -> dict[str, Any]:
    return {"nonResourceURLs": urls.split(), "verbs": ["get"]}


def _bootstrap_rules() -> dict[str, list[dict[str, Any]]]:
    """The rules of the bootstrap ClusterRoles, as kube-apiserver stores them (sorted lists).

    From plugin/pkg/auth/authorizer/rbac/bootstrappolicy and its testdata/cluster-roles.yaml.
    """
    read, write, both = _READ, _WRITE, _READ_WRITE
    return {
        "cluster-admin": [
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
        "system:discovery": [
            _urls("/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz /version /version/")
        ],
        "system:public-info-viewer": [_urls("/healthz /livez /readyz /version /version/")],
        "system:basic-user": [
            _rule(["create"], "authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews"),
            _rule(["create"], "authentication.k8s.io", "selfsubjectreviews"),
        ],
        "system:monitoring": [_urls("/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*")],
        "system:service-account-issuer-discovery": [
            _urls(
                "/.well-known/openid-configuration /.well-known/openid-configuration/ /openid/v1/jwks /openid/v1/jwks/"
            )
        ],
        "system:aggregate-to-admin": [
            _rule(["create"], "authorization.k8s.io", "localsubjectaccessreviews"),
            _rule(both, RBAC_GROUP, "rolebindings roles"),
        ],
        "system:aggregate-to-edit": [
            _rule(read, "", "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy"),
            _rule(["impersonate"], "", "serviceaccounts"),
            _rule(write, "", "pods pods/attach pods/exec pods/portforward pods/proxy"),
            _rule(["create"], "", "pods/eviction"),
            _rule(
                write,
                "",
                "configmaps events persistentvolumeclaims replicationcontrollers replicationcontrollers/scale"
                " secrets serviceaccounts services services/proxy",
            ),
            _rule(["create"], "", "serviceaccounts/token"),
            _rule(
                write,
                "apps",
                "daemonsets deployments deployments/rollback deployments/scale replicasets replicasets/scale"
                " statefulsets statefulsets/scale",
            ),
            _rule(write, "autoscaling", "horizontalpodautoscalers"),
            _rule(write, "batch", "cronjobs jobs"),
            _rule(
                write,
                "extensions",
                "daemonsets deployments deployments/rollback deployments/scale ingresses networkpolicies"
                " replicasets replicasets/scale replicationcontrollers/scale",
            ),
            _rule(write, "policy", "poddisruptionbudgets"),
            _rule(write, "networking.k8s.io", "ingresses networkpolicies"),
            _rule(both, "coordination.k8s.io", "leases"),
        ],
        "system:aggregate-to-view": [
            _rule(
                read,
                "",
                "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods"
                " replicationcontrollers replicationcontrollers/scale serviceaccounts services services/status",
            ),
            _rule(
                read,
                "",
                "bindings events limitranges namespaces/status pods/log pods/status replicationcontrollers/status"
                " resourcequotas resourcequotas/status",
            ),
            _rule(read, "", "namespaces"),
            _rule(read, "discovery.k8s.io", "endpointslices"),
            _rule(
                read,
                "apps",
                "controllerrevisions daemonsets daemonsets/status deployments deployments/scale deployments/status"
                " replicasets replicasets/scale replicasets/status statefulsets statefulsets/scale statefulsets/status",
            ),
            _rule(read, "autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status"),
            _rule(read, "batch", "cronjobs cronjobs/status jobs jobs/status"),
            _rule(
                read,
                "extensions",
                "daemonsets daemonsets/status deployments deployments/scale deployments/status ingresses"
                " ingresses/status networkpolicies replicasets replicasets/scale replicasets/status"
                " replicationcontrollers/scale",
            ),
            _rule(read, "policy", "poddisruptionbudgets poddisruptionbudgets/status"),
            _rule(read, "networking.k8s.io", "ingresses ingresses/status networkpolicies"),
        ],
    }


_AGGREGATING = {
    # name: (the label its selector matches, labels of the role itself)
    "admin": ("admin", {}),
    "edit": ("edit", {f"{_AGGREGATE_TO}admin": "true"}),
    "view": ("view", {f"{_AGGREGATE_TO}edit": "true"}),
}
_AGGREGATED_INTO = {
    "system:aggregate-to-admin": {f"{_AGGREGATE_TO}admin": "true"},
    "system:aggregate-to-edit": {f"{_AGGREGATE_TO}edit": "true"},
    "system:aggregate-to-view": {f"{_AGGREGATE_TO}view": "true"},
}
_BOOTSTRAP_BINDINGS = {
    "cluster-admin": [SUPERUSER_GROUP],
    "system:basic-user": [AUTHENTICATED_GROUP],
    "system:discovery": [AUTHENTICATED_GROUP],
    "system:monitoring": ["system:monitoring"],
    "system:public-info-viewer": [AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP],
    "system:service-account-issuer-discovery": [SERVICE_ACCOUNTS_GROUP],
}


def _bootstrap_metadata(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }


def default_objects() -> list[dict[str, Any]]:
    """The ClusterRoles and ClusterRoleBindings a fresh cluster has for people (not its own components).

    cluster-admin (bound to system:masters), admin, edit and view (aggregated from
    system:aggregate-to-*, their rules filled in as the aggregation controller leaves them),
    system:basic-user and system:discovery (bound to system:authenticated),
    system:public-info-viewer (also to system:unauthenticated), system:monitoring and
    system:service-account-issuer-discovery (to system:serviceaccounts). Fresh dicts each call.
    """
    api_version = f"{RBAC_GROUP}/v1"
    roles: list[dict[str, Any]] = []
    for name, rules in _bootstrap_rules().items():
        roles.append(
            {
                "apiVersion": api_version,
                "kind": "ClusterRole",
                "metadata": _bootstrap_metadata(name, _AGGREGATED_INTO.get(name)),
                "rules": rules,
            }
        )
    for name, (selected, labels) in _AGGREGATING.items():
        roles.append(
            {
                "apiVersion": api_version,
                "kind": "ClusterRole",
                "metadata": _bootstrap_metadata(name, labels),
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {f"{_AGGREGATE_TO}{selected}": "true"}}]},
                "rules": [],
            }
        )
    aggregated = aggregated_rules(roles)
    for role in roles:
        if role["metadata"]["name"] in aggregated:
            role["rules"] = aggregated[role["metadata"]["name"]]
    roles.sort(key=lambda role: str(role["metadata"]["name"]))
    bindings = [
        {
            "apiVersion": api_version,
            "kind": "ClusterRoleBinding",
            "metadata": _bootstrap_metadata(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group} for group in groups],
        }
        for name, groups in _BOOTSTRAP_BINDINGS.items()
    ]
    return roles + bindings
