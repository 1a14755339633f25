"""RBAC authorization: rule forms, subjects, bindings, aggregation, the 403 message, access and rules reviews."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upkeep.sandbox import rbac

A = rbac.Attributes


def role(name: str, namespace: str, *rules: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": list(rules)}


def cluster_role(name: str, *rules: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if "labels" in extra:
        metadata["labels"] = extra.pop("labels")
    return {"kind": "ClusterRole", "metadata": metadata, "rules": list(rules), **extra}


def binding(name: str, namespace: str, ref: tuple[str, str], *subjects: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref[0], "name": ref[1]},
        "subjects": list(subjects),
    }


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def account(name: str, namespace: str = "") -> dict[str, Any]:
    found = {"kind": "ServiceAccount", "name": name}
    if namespace:
        found["namespace"] = namespace
    return found


def rule(verbs: str, groups: str = "", resources: str = "", names: str = "", urls: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {"verbs": verbs.split()}
    if resources:
        found["apiGroups"] = ["" if g == '""' else g for g in groups.split()] if groups else [""]
        found["resources"] = resources.split()
    if names:
        found["resourceNames"] = names.split()
    if urls:
        found["nonResourceURLs"] = urls.split()
    return found


class World:
    """The RBAC objects of a store, and an authorizer over them with a generation to bump."""

    def __init__(self, *objects: Mapping[str, Any]) -> None:
        self.objects: list[Mapping[str, Any]] = list(objects)
        self.generation = 0
        self.authorizer = rbac.Authorizer(
            lambda: self.of("Role"),
            lambda: self.of("ClusterRole"),
            lambda: self.of("RoleBinding"),
            lambda: self.of("ClusterRoleBinding"),
            generation=lambda: self.generation,
        )

    def of(self, kind: str) -> list[Mapping[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def add(self, *objects: Mapping[str, Any]) -> None:
        self.objects.extend(objects)
        self.generation += 1

    def can(self, attributes: rbac.Attributes) -> bool:
        return self.authorizer.authorize(attributes).allowed


def granted(*rules: dict[str, Any]) -> World:
    """alice holds ``rules`` cluster-wide."""
    return World(cluster_role("r", *rules), binding("b", "", ("ClusterRole", "r"), user("alice")))


# rule forms


@pytest.mark.parametrize(
    ("rules", "attributes", "allowed"),
    [
        ([rule("get", "", "pods")], A("alice", verb="get", namespace="shop", resource="pods", name="p"), True),
        ([rule("get", "", "pods")], A("alice", verb="list", namespace="shop", resource="pods"), False),
        ([rule("*", "", "pods")], A("alice", verb="deletecollection", namespace="shop", resource="pods"), True),
        ([rule("get", "", "pods")], A("alice", verb="get", api_group="apps", resource="pods"), False),
        ([rule("get", "apps", "deployments")], A("alice", verb="get", api_group="apps", resource="deployments"), True),
        ([rule("get", "apps", "deployments")], A("alice", verb="get", resource="deployments"), False),
        ([rule("get", "*", "deployments")], A("alice", verb="get", api_group="apps", resource="deployments"), True),
        ([rule("get", "apps", "*")], A("alice", verb="get", api_group="apps", resource="statefulsets"), True),
        ([rule("get", "apps", "*")], A("alice", verb="get", api_group="batch", resource="jobs"), False),
        # subresources: "pods" does not grant "pods/log", "pods/log" does not grant "pods", "*" grants both
        ([rule("get", "", "pods")], A("alice", verb="get", resource="pods", subresource="log", name="p"), False),
        ([rule("get", "", "pods/log")], A("alice", verb="get", resource="pods", subresource="log", name="p"), True),
        ([rule("get", "", "pods/log")], A("alice", verb="get", resource="pods", name="p"), False),
        ([rule("get", "", "*")], A("alice", verb="get", resource="pods", subresource="log", name="p"), True),
        # */scale: the scale subresource of every resource in the group, not the resources themselves
        (
            [rule("update", "apps", "*/scale")],
            A("alice", verb="update", api_group="apps", resource="deployments", subresource="scale", name="d"),
            True,
        ),
        (
            [rule("update", "apps", "*/scale")],
            A("alice", verb="update", api_group="apps", resource="deployments", name="d"),
            False,
        ),
        (
            [rule("update", "apps", "*/scale")],
            A("alice", verb="update", api_group="apps", resource="deployments", subresource="status", name="d"),
            False,
        ),
        ([rule("get", "", "pods/*")], A("alice", verb="get", resource="pods", subresource="log", name="p"), False),
        # resourceNames: only requests for those names; a list names nothing
        ([rule("get", "", "secrets", names="x y")], A("alice", verb="get", resource="secrets", name="y"), True),
        ([rule("get", "", "secrets", names="x y")], A("alice", verb="get", resource="secrets", name="z"), False),
        ([rule("list", "", "secrets", names="x")], A("alice", verb="list", resource="secrets"), False),
        ([rule("list", "", "secrets", names="x")], A("alice", verb="list", resource="secrets", name="x"), True),
        # custom verbs
        (
            [rule("impersonate", "", "serviceaccounts")],
            A("alice", verb="impersonate", resource="serviceaccounts"),
            True,
        ),
        # nonResourceURLs: exact, a trailing * for a prefix, * for all; never for resource requests
        ([rule("get", urls="/healthz")], A("alice", verb="get", path="/healthz", resource_request=False), True),
        ([rule("get", urls="/healthz")], A("alice", verb="get", path="/healthz/etcd", resource_request=False), False),
        ([rule("get", urls="/healthz")], A("alice", verb="post", path="/healthz", resource_request=False), False),
        ([rule("get", urls="/apis/*")], A("alice", verb="get", path="/apis/apps/v1", resource_request=False), True),
        ([rule("get", urls="/apis/*")], A("alice", verb="get", path="/apis/", resource_request=False), True),
        ([rule("get", urls="/apis/*")], A("alice", verb="get", path="/apis", resource_request=False), False),
        ([rule("get", urls="/api*")], A("alice", verb="get", path="/apis", resource_request=False), True),
        ([rule("*", urls="*")], A("alice", verb="delete", path="/anything", resource_request=False), True),
        ([rule("get", urls="*")], A("alice", verb="get", resource="pods"), False),
        ([rule("get", "*", "*")], A("alice", verb="get", path="/healthz", resource_request=False), False),
    ],
)
def test_rule_forms(rules: list[dict[str, Any]], attributes: rbac.Attributes, allowed: bool) -> None:
    assert granted(*rules).can(attributes) is allowed


def test_nothing_bound_is_not_allowed_and_gives_no_reason() -> None:
    decision = World().authorizer.authorize(A("alice", verb="get", resource="pods"))
    assert decision == rbac.Decision(False, "")


def test_system_masters_is_always_allowed_without_a_reason() -> None:
    decision = World().authorizer.authorize(A("root", ("system:masters",), "delete", "shop", "", "pods", name="p"))
    assert decision == rbac.Decision(True, "")


# subjects and bindings


def test_subjects_user_group_and_service_account() -> None:
    world = World(
        cluster_role("reader", rule("get list", "", "pods")),
        binding("by-user", "", ("ClusterRole", "reader"), user("alice")),
        binding("by-group", "", ("ClusterRole", "reader"), group("ops")),
        binding("by-account", "", ("ClusterRole", "reader"), account("robot", "tools")),
    )
    pods = functools.partial(A, verb="list", namespace="shop", resource="pods")
    assert world.can(pods("alice"))
    assert world.can(pods("carol", ("ops",)))
    assert world.can(pods("system:serviceaccount:tools:robot"))
    assert not world.can(pods("system:serviceaccount:other:robot"))
    assert not world.can(pods("bob", ("dev",)))
    assert not world.can(pods("ops"))  # a user named like a group is not in it


def test_service_accounts_are_in_their_groups_and_everyone_is_authenticated() -> None:
    world = World(
        cluster_role("reader", rule("list", "", "pods")),
        cluster_role("namespaced", rule("list", "", "configmaps")),
        cluster_role("everyone", rule("list", "", "nodes")),
        binding("all-accounts", "", ("ClusterRole", "reader"), group("system:serviceaccounts")),
        binding("tools-accounts", "", ("ClusterRole", "namespaced"), group("system:serviceaccounts:tools")),
        binding("authenticated", "", ("ClusterRole", "everyone"), group("system:authenticated")),
    )
    robot = "system:serviceaccount:tools:robot"
    assert world.can(A(robot, verb="list", resource="pods"))
    assert world.can(A(robot, verb="list", resource="configmaps"))
    assert not world.can(A("system:serviceaccount:shop:robot", verb="list", resource="configmaps"))
    assert world.can(A("alice", verb="list", resource="nodes"))
    assert not world.can(A("system:anonymous", ("system:unauthenticated",), verb="list", resource="nodes"))
    assert rbac.user_groups(robot, ()) == (
        "system:serviceaccounts",
        "system:serviceaccounts:tools",
        "system:authenticated",
    )
    assert rbac.user_groups("alice", ("dev", "system:authenticated")) == ("dev", "system:authenticated")
    assert rbac.user_groups("system:anonymous", ("system:unauthenticated",)) == ("system:unauthenticated",)
    assert rbac.user_groups("system:serviceaccount:bad", ()) == ("system:authenticated",)


def test_service_account_subject_without_namespace() -> None:
    world = World(
        cluster_role("reader", rule("list", "", "pods")),
        binding("local", "shop", ("ClusterRole", "reader"), account("robot")),
        binding("cluster", "", ("ClusterRole", "reader"), account("other")),
    )
    # in a RoleBinding the binding's namespace; in a ClusterRoleBinding it matches nobody
    assert world.can(A("system:serviceaccount:shop:robot", verb="list", namespace="shop", resource="pods"))
    assert not world.can(A("system:serviceaccount:tools:robot", verb="list", namespace="shop", resource="pods"))
    assert not world.can(A("system:serviceaccount:shop:other", verb="list", namespace="shop", resource="pods"))


def test_unknown_subject_kinds_match_nobody() -> None:
    world = World(
        cluster_role("reader", rule("list", "", "pods")),
        binding("b", "", ("ClusterRole", "reader"), {"kind": "user", "name": "alice"}, {"name": "alice"}),
    )
    assert not world.can(A("alice", verb="list", resource="pods"))


def test_role_binding_to_a_cluster_role_grants_in_its_namespace_only() -> None:
    world = World(
        cluster_role("edit-pods", rule("get list create", "", "pods")),
        binding("alice-edit", "shop", ("ClusterRole", "edit-pods"), user("alice")),
    )
    assert world.can(A("alice", verb="create", namespace="shop", resource="pods"))
    assert not world.can(A("alice", verb="create", namespace="other", resource="pods"))
    assert not world.can(A("alice", verb="list", resource="pods"))  # all namespaces is the cluster scope


def test_role_binding_to_a_role_uses_the_role_of_its_own_namespace() -> None:
    world = World(
        role("pods", "shop", rule("get", "", "pods")),
        role("pods", "other", rule("get", "", "secrets")),
        binding("alice-pods", "shop", ("Role", "pods"), user("alice")),
    )
    assert world.can(A("alice", verb="get", namespace="shop", resource="pods", name="p"))
    assert not world.can(A("alice", verb="get", namespace="shop", resource="secrets", name="s"))
    assert not world.can(A("alice", verb="get", namespace="other", resource="pods", name="p"))


def test_reasons_name_the_binding_the_role_and_the_subject() -> None:
    world = World(
        cluster_role("reader", rule("get", "", "pods")),
        role("writer", "shop", rule("create", "", "pods")),
        binding("cluster-read", "", ("ClusterRole", "reader"), user("bob"), group("ops")),
        binding("shop-write", "shop", ("Role", "writer"), user("nobody"), account("robot")),
    )
    decide = world.authorizer.authorize
    assert decide(A("carol", ("ops",), "get", "shop", "", "pods", name="p")).reason == (
        'RBAC: allowed by ClusterRoleBinding "cluster-read" of ClusterRole "reader" to Group "ops"'
    )
    assert decide(A("system:serviceaccount:shop:robot", (), "create", "shop", "", "pods")).reason == (
        'RBAC: allowed by RoleBinding "shop-write/shop" of Role "writer" to ServiceAccount "robot/shop"'
    )


def test_bindings_to_missing_roles_give_the_reason_only_when_nothing_allows() -> None:
    world = World(
        cluster_role("reader", rule("get", "", "pods")),
        binding("a-gone", "", ("ClusterRole", "gone"), user("alice")),
        binding("b-read", "", ("ClusterRole", "reader"), user("alice")),
        binding("c-gone-again", "", ("ClusterRole", "gone"), user("alice")),
        binding("local-gone", "shop", ("Role", "missing"), user("alice")),
        binding("odd", "shop", ("Policy", "p"), user("bob")),
    )
    decide = world.authorizer.authorize
    assert decide(A("alice", verb="get", namespace="shop", resource="pods", name="p")).allowed
    assert decide(A("alice", verb="list", resource="pods")).reason == (
        'rbac: RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'
    )
    assert decide(A("alice", verb="list", namespace="shop", resource="pods")).reason == (
        'rbac: RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
        'role.rbac.authorization.k8s.io "missing" not found]'
    )
    assert decide(A("bob", verb="list", namespace="shop", resource="pods")).reason == (
        'rbac: RBAC: unsupported role reference kind: "Policy"'
    )


def test_decisions_are_cached_until_the_generation_changes() -> None:
    world = World(cluster_role("reader", rule("list", "", "pods")))
    listing = A("alice", verb="list", resource="pods")
    assert not world.can(listing)
    world.objects.append(binding("b", "", ("ClusterRole", "reader"), user("alice")))
    assert not world.can(listing)  # same generation: the index is not rebuilt
    world.generation += 1
    assert world.can(listing)


def test_without_a_generation_every_call_reads_the_objects() -> None:
    objects: list[dict[str, Any]] = [cluster_role("reader", rule("list", "", "pods"))]
    authorizer = rbac.Authorizer(
        lambda: [],
        lambda: [o for o in objects if o["kind"] == "ClusterRole"],
        lambda: [],
        lambda: [o for o in objects if o["kind"] == "ClusterRoleBinding"],
    )
    listing = A("alice", verb="list", resource="pods")
    assert not authorizer.authorize(listing).allowed
    objects.append(binding("b", "", ("ClusterRole", "reader"), user("alice")))
    assert authorizer.authorize(listing).allowed


# aggregation


def test_aggregation_follows_labels_transitively_and_deduplicates() -> None:
    shared = rule("get list watch", "example.com", "widgets")
    roles = [
        cluster_role("top", aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"to-top": "true"}}]}),
        cluster_role(
            "middle",
            labels={"to-top": "true"},
            aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"to-middle": "true"}}]},
        ),
        cluster_role("b-leaf", shared, rule("create", "example.com", "widgets"), labels={"to-middle": "true"}),
        cluster_role("a-leaf", dict(shared), labels={"to-middle": "true"}),
        cluster_role("top-only", rule("delete", "example.com", "widgets"), labels={"to-top": "true"}),
        cluster_role("unlabelled", rule("*", "*", "*")),
    ]
    found = rbac.aggregated_rules(roles)
    verbs = {name: [r["verbs"] for r in rules] for name, rules in found.items()}
    # leaves sorted by name, the shared rule once
    assert verbs["middle"] == [["get", "list", "watch"], ["create"]]
    assert verbs["top"] == [["get", "list", "watch"], ["create"], ["delete"]]
    world = World(*roles, binding("b", "", ("ClusterRole", "top"), user("alice")))
    widgets = functools.partial(A, "alice", api_group="example.com", resource="widgets", namespace="shop")
    assert world.can(widgets(verb="create"))
    assert world.can(widgets(verb="delete"))
    assert not world.can(widgets(verb="patch"))


def test_aggregated_roles_ignore_their_stored_rules_and_match_expressions() -> None:
    roles = [
        cluster_role(
            "agg",
            rule("*", "*", "*"),  # stale: the controller overwrites it
            aggregationRule={
                "clusterRoleSelectors": [
                    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]},
                    {"matchExpressions": [{"key": "bad", "operator": "Sometimes"}]},
                ]
            },
        ),
        cluster_role("gold", rule("get", "", "pods"), labels={"tier": "gold"}),
        cluster_role("bronze", rule("get", "", "secrets"), labels={"tier": "bronze"}),
    ]
    assert rbac.aggregated_rules(roles) == {"agg": [rule("get", "", "pods")]}
    world = World(*roles, binding("b", "", ("ClusterRole", "agg"), user("alice")))
    assert world.can(A("alice", verb="get", resource="pods"))
    assert not world.can(A("alice", verb="get", resource="secrets"))


def test_an_empty_selector_selects_every_other_role() -> None:
    roles = [
        cluster_role("all", aggregationRule={"clusterRoleSelectors": [{}]}),
        cluster_role("pods", rule("get", "", "pods")),
        cluster_role("secrets", rule("get", "", "secrets"), labels={"any": "thing"}),
    ]
    assert [r["resources"] for r in rbac.aggregated_rules(roles)["all"]] == [["pods"], ["secrets"]]


def test_aggregation_cycles_end() -> None:
    roles = [
        cluster_role(
            "ping",
            rule("get", "", "pods"),
            labels={"p": "1"},
            aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"q": "1"}}]},
        ),
        cluster_role(
            "pong",
            rule("get", "", "secrets"),
            labels={"q": "1"},
            aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"p": "1"}}]},
        ),
    ]
    found = rbac.aggregated_rules(roles)
    # as with the controller, each overwrites the other: they settle on the same rules
    assert found["ping"] == found["pong"]


def test_the_default_admin_edit_view_are_aggregated_and_custom_roles_join_them() -> None:
    defaults = rbac.default_objects()
    by_name = {o["metadata"]["name"]: o for o in defaults if o["kind"] == "ClusterRole"}
    admin, edit, view = (by_name[name]["rules"] for name in ("admin", "edit", "view"))
    assert view == by_name["system:aggregate-to-view"]["rules"]
    assert edit == by_name["system:aggregate-to-edit"]["rules"] + view
    assert admin == edit + by_name["system:aggregate-to-admin"]["rules"]
    widgets = cluster_role(
        "widgets-view",
        rule("get list watch", "example.com", "widgets"),
        labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"},
    )
    world = World(*defaults, widgets, binding("alice-admin", "shop", ("ClusterRole", "admin"), user("alice")))
    assert world.can(A("alice", verb="list", namespace="shop", api_group="example.com", resource="widgets"))
    assert world.can(
        A("alice", verb="create", namespace="shop", api_group="rbac.authorization.k8s.io", resource="rolebindings")
    )
    assert not world.can(A("alice", verb="create", namespace="shop", api_group="example.com", resource="widgets"))


# the defaults of a fresh cluster


def test_default_objects_are_bootstrap_roles_and_bindings() -> None:
    objects = rbac.default_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for name in (
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
    ):
        assert ("ClusterRole", name) in names
    bindings = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRoleBinding"}
    assert [s["name"] for s in bindings["system:public-info-viewer"]["subjects"]] == [
        "system:authenticated",
        "system:unauthenticated",
    ]
    assert bindings["cluster-admin"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}
    ]
    for obj in objects:
        assert obj["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert obj["metadata"]["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    assert rbac.default_objects() is not objects and rbac.default_objects() == objects


def test_defaults_let_anyone_discover_and_review_but_nothing_more() -> None:
    world = World(*rbac.default_objects())
    for path in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/openapi/v3", "/version", "/healthz", "/readyz"):
        assert world.can(A("alice", verb="get", path=path, resource_request=False)), path
    assert not world.can(A("alice", verb="get", path="/metrics", resource_request=False))
    assert not world.can(A("alice", verb="post", path="/api", resource_request=False))
    anonymous = ("system:anonymous", ("system:unauthenticated",))
    assert world.can(A(*anonymous, verb="get", path="/version", resource_request=False))
    assert not world.can(A(*anonymous, verb="get", path="/api", resource_request=False))
    review = functools.partial(A, "alice", api_group="authorization.k8s.io", verb="create")
    assert world.can(review(resource="selfsubjectaccessreviews"))
    assert world.can(review(resource="selfsubjectrulesreviews"))
    assert world.can(A("alice", verb="create", api_group="authentication.k8s.io", resource="selfsubjectreviews"))
    assert not world.can(A("alice", verb="list", namespace="default", resource="pods"))
    assert world.can(A("system:serviceaccount:a:b", verb="get", path="/openid/v1/jwks", resource_request=False))
    assert not world.can(A("alice", verb="get", path="/openid/v1/jwks", resource_request=False))


# the 403


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            A("alice", verb="list", namespace="shop", resource="pods"),
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "shop"',
        ),
        (
            A("alice", verb="get", namespace="shop", resource="secrets", name="x"),
            'secrets "x" is forbidden: User "alice" cannot get resource "secrets" in API group "" '
            'in the namespace "shop"',
        ),
        (
            A("alice", verb="list", resource="nodes"),
            'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope',
        ),
        (
            A("alice", verb="watch", api_group="apps", resource="deployments"),
            'deployments.apps is forbidden: User "alice" cannot watch resource "deployments" in API group "apps" '
            "at the cluster scope",
        ),
        (
            A("alice", verb="create", namespace="shop", resource="pods", subresource="eviction", name="web-1"),
            'pods "web-1" is forbidden: User "alice" cannot create resource "pods/eviction" in API group "" '
            'in the namespace "shop"',
        ),
        (
            A(
                "alice",
                verb="patch",
                namespace="shop",
                api_group="apps",
                resource="deployments",
                subresource="scale",
                name="web",
            ),
            'deployments.apps "web" is forbidden: User "alice" cannot patch resource "deployments/scale" '
            'in API group "apps" in the namespace "shop"',
        ),
        (
            A("alice", verb="get", path="/healthz", resource_request=False),
            'forbidden: User "alice" cannot get path "/healthz"',
        ),
        (
            A("system:serviceaccount:shop:robot", verb="get", namespace="shop", resource="namespaces", name="shop"),
            'namespaces "shop" is forbidden: User "system:serviceaccount:shop:robot" cannot get resource '
            '"namespaces" in API group "" in the namespace "shop"',
        ),
        # Go's %q quoting, and the sanitizer that keeps the message from looking like HTML
        (
            A('a"b\n<c>&', verb="get", path="/x<y>", resource_request=False),
            'forbidden: User "a\\"b\\n&lt;c&gt;&amp;" cannot get path "/x&lt;y&gt;"',
        ),
        (
            A("alice", verb="get", resource="secrets", name='we"ird'),
            'secrets "we\\"ird" is forbidden: User "alice" cannot get resource "secrets" in API group "" '
            "at the cluster scope",
        ),
    ],
)
def test_forbidden_message(attributes: rbac.Attributes, message: str) -> None:
    assert rbac.forbidden_message(attributes) == message


def test_forbidden_message_carries_the_reason() -> None:
    attributes = A("alice", verb="list", namespace="shop", resource="pods")
    assert rbac.forbidden_message(attributes, 'rbac: RBAC: role.rbac.authorization.k8s.io "x" not found') == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "shop": '
        'rbac: RBAC: role.rbac.authorization.k8s.io "x" not found'
    )


def test_forbidden_status() -> None:
    status = rbac.forbidden_status(
        A("alice", verb="get", namespace="shop", api_group="apps", resource="deployments", name="web")
    )
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments" '
        'in API group "apps" in the namespace "shop"',
        "reason": "Forbidden",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 403,
    }
    assert rbac.forbidden_status(A("alice", verb="list", resource="pods"))["details"] == {"kind": "pods"}
    assert rbac.forbidden_status(A("alice", verb="get", path="/", resource_request=False))["details"] == {}


# what a request asks


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/shop/pods", {}, A("u", verb="list", namespace="shop", resource="pods")),
        (
            "GET",
            "/api/v1/namespaces/shop/pods",
            {"watch": "true"},
            A("u", verb="watch", namespace="shop", resource="pods"),
        ),
        (
            "GET",
            "/api/v1/namespaces/shop/pods",
            {"watch": "1"},
            A("u", verb="watch", namespace="shop", resource="pods"),
        ),
        (
            "GET",
            "/api/v1/namespaces/shop/pods",
            {"watch": "False"},
            A("u", verb="list", namespace="shop", resource="pods"),
        ),
        ("GET", "/api/v1/namespaces/shop/pods", {"watch": ""}, A("u", verb="watch", namespace="shop", resource="pods")),
        ("GET", "/api/v1/watch/namespaces/shop/pods", {}, A("u", verb="watch", namespace="shop", resource="pods")),
        (
            "GET",
            "/api/v1/watch/namespaces/shop/pods/p",
            {},
            A("u", verb="watch", namespace="shop", resource="pods", name="p"),
        ),
        (
            "GET",
            "/api/v1/namespaces/shop/pods",
            {"fieldSelector": "metadata.name=web"},
            A("u", verb="list", namespace="shop", resource="pods", name="web"),
        ),
        (
            "GET",
            "/api/v1/pods",
            {"fieldSelector": "spec.nodeName=n,metadata.name==web", "watch": "true"},
            A("u", verb="watch", resource="pods", name="web"),
        ),
        ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name!=web"}, A("u", verb="list", resource="pods")),
        ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name=a/b"}, A("u", verb="list", resource="pods")),
        ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name=a=b"}, A("u", verb="list", resource="pods")),
        (
            "GET",
            "/api/v1/pods",
            {"fieldSelector": "metadata.name=a\\,b"},
            A("u", verb="list", resource="pods", name="a,b"),
        ),
        (
            "GET",
            "/api/v1/namespaces/shop/pods/web/log",
            {},
            A("u", verb="get", namespace="shop", resource="pods", subresource="log", name="web"),
        ),
        (
            "HEAD",
            "/api/v1/namespaces/shop/pods/web",
            {},
            A("u", verb="get", namespace="shop", resource="pods", name="web"),
        ),
        (
            "POST",
            "/api/v1/namespaces/shop/pods/web/eviction",
            {},
            A("u", verb="create", namespace="shop", resource="pods", subresource="eviction", name="web"),
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/shop/deployments",
            {},
            A("u", verb="create", namespace="shop", api_group="apps", resource="deployments"),
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
            {},
            A(
                "u",
                verb="update",
                namespace="shop",
                api_group="apps",
                resource="deployments",
                subresource="scale",
                name="web",
            ),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/web/status",
            {},
            A(
                "u",
                verb="patch",
                namespace="shop",
                api_group="apps",
                resource="deployments",
                subresource="status",
                name="web",
            ),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/shop/configmaps/c",
            {},
            A("u", verb="delete", namespace="shop", resource="configmaps", name="c"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/shop/configmaps",
            {},
            A("u", verb="deletecollection", namespace="shop", resource="configmaps"),
        ),
        # the Namespace itself is in its own namespace
        (
            "GET",
            "/api/v1/namespaces/shop",
            {},
            A("u", verb="get", namespace="shop", resource="namespaces", name="shop"),
        ),
        ("GET", "/api/v1/namespaces", {}, A("u", verb="list", resource="namespaces")),
        (
            "PUT",
            "/api/v1/namespaces/shop/finalize",
            {},
            A("u", verb="update", namespace="shop", resource="namespaces", subresource="finalize", name="shop"),
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            {},
            A("u", verb="get", api_group="rbac.authorization.k8s.io", resource="clusterroles", name="admin"),
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {},
            A("u", verb="create", api_group="authorization.k8s.io", resource="selfsubjectaccessreviews"),
        ),
        # non-resource requests
        ("GET", "/api", {}, A("u", verb="get", path="/api", resource_request=False)),
        ("GET", "/api/v1", {}, A("u", verb="get", path="/api/v1", resource_request=False)),
        ("GET", "/apis/apps/v1", {}, A("u", verb="get", path="/apis/apps/v1", resource_request=False)),
        ("GET", "/apis/apps", {}, A("u", verb="get", path="/apis/apps", resource_request=False)),
        (
            "GET",
            "/openapi/v3/apis/apps/v1",
            {},
            A("u", verb="get", path="/openapi/v3/apis/apps/v1", resource_request=False),
        ),
        ("GET", "/healthz", {}, A("u", verb="get", path="/healthz", resource_request=False)),
        ("POST", "/version", {}, A("u", verb="post", path="/version", resource_request=False)),
        ("GET", "/", {}, A("u", verb="get", path="/", resource_request=False)),
    ],
)
def test_request_attributes(method: str, path: str, query: dict[str, str], expected: rbac.Attributes) -> None:
    assert rbac.request_attributes(method, path, query, "u") == expected


def test_request_attributes_keep_the_user() -> None:
    found = rbac.request_attributes("GET", "/api/v1/pods", {}, "alice", ["dev"])
    assert (found.user, found.groups) == ("alice", ("dev",))


# kubectl auth can-i


def shop_world() -> World:
    return World(
        *rbac.default_objects(),
        role("pod-reader", "shop", rule("get list watch", "", "pods"), rule("get", "", "pods/log")),
        binding("alice-pods", "shop", ("Role", "pod-reader"), user("alice")),
        binding("alice-gone", "shop", ("Role", "gone"), user("alice")),
    )


def test_self_subject_access_review() -> None:
    authorizer = shop_world().authorizer
    review = rbac.self_subject_access_review
    spec = {"resourceAttributes": {"namespace": "shop", "verb": "list", "resource": "pods"}}
    assert review(authorizer, "alice", ["system:authenticated"], spec) == {
        "allowed": True,
        "reason": 'RBAC: allowed by RoleBinding "alice-pods/shop" of Role "pod-reader" to User "alice"',
    }
    secrets = {"resourceAttributes": {"namespace": "shop", "verb": "get", "resource": "secrets", "version": "v1"}}
    assert review(authorizer, "alice", [], secrets) == {
        "allowed": False,
        "reason": 'rbac: RBAC: role.rbac.authorization.k8s.io "gone" not found',
    }
    assert review(authorizer, "bob", [], secrets) == {"allowed": False}
    logs = {"resourceAttributes": {"namespace": "shop", "verb": "get", "resource": "pods", "subresource": "log"}}
    assert review(authorizer, "alice", [], logs)["allowed"] is True
    healthz = {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}
    assert review(authorizer, "bob", [], healthz)["allowed"] is True
    assert review(authorizer, "root", ["system:masters"], secrets) == {"allowed": True}


def test_self_subject_access_review_needs_exactly_one_kind_of_attributes() -> None:
    authorizer = World().authorizer
    with pytest.raises(rbac.ReviewError) as neither:
        rbac.self_subject_access_review(authorizer, "alice", [], {})
    assert neither.value.code == 422
    assert neither.value.causes == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.resourceAttributes",
            "message": "Invalid value: null: "
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        }
    ]
    assert str(neither.value) == (
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: null: '
        "exactly one of nonResourceAttributes or resourceAttributes must be specified"
    )
    both = {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/<x>", "verb": "get"}}
    with pytest.raises(rbac.ReviewError) as error:
        rbac.self_subject_access_review(authorizer, "alice", [], both)
    assert error.value.causes[0]["field"] == "spec.nonResourceAttributes"
    assert error.value.causes[0]["message"] == (
        'Invalid value: {"Path":"/\\u003cx\\u003e","Verb":"get"}: cannot be specified in combination with '
        "resourceAttributes"
    )


def test_self_subject_rules_review() -> None:
    status = rbac.self_subject_rules_review(shop_world().authorizer, "alice", ["system:authenticated"], "shop")
    assert status["incomplete"] is False
    assert status["evaluationError"] == 'role.rbac.authorization.k8s.io "gone" not found'
    assert status["resourceRules"] == [
        {
            "verbs": ["create"],
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        },
        {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
    ]
    assert status["nonResourceRules"] == [
        {
            "verbs": ["get"],
            "nonResourceURLs": [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
        },
        {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]},
    ]
    elsewhere = rbac.self_subject_rules_review(shop_world().authorizer, "alice", [], "other")
    assert "evaluationError" not in elsewhere
    assert [r["resources"] for r in elsewhere["resourceRules"]] == [
        ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ["selfsubjectreviews"],
    ]


def test_self_subject_rules_review_lists_both_halves_of_a_mixed_rule_and_names() -> None:
    mixed = {
        "verbs": ["get"],
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["c"],
        "nonResourceURLs": ["/x"],
    }
    status = rbac.self_subject_rules_review(granted(mixed).authorizer, "alice", [], "shop")
    assert status == {
        "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["c"]}],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}],
        "incomplete": False,
    }


def test_self_subject_rules_review_needs_a_namespace() -> None:
    with pytest.raises(rbac.ReviewError) as error:
        rbac.self_subject_rules_review(World().authorizer, "alice", [], "")
    assert (error.value.code, error.value.message) == (400, "no namespace on request")


# properties

NAMES = ("alice", "bob", "system:serviceaccount:shop:robot")
GROUPS = ("ops", "dev")
NAMESPACES = ("shop", "other")
RULES = st.builds(
    lambda verbs, groups, resources, names: rule(
        " ".join(verbs), " ".join(groups), " ".join(resources), " ".join(names)
    ),
    st.lists(st.sampled_from(["get", "list", "create", "*"]), min_size=1, max_size=2),
    st.lists(st.sampled_from(['""', "apps", "*"]), min_size=1, max_size=2),
    st.lists(st.sampled_from(["pods", "pods/log", "deployments", "*", "*/scale"]), min_size=1, max_size=2),
    st.lists(st.sampled_from(["a", "b"]), max_size=1),
)
SUBJECTS = st.one_of(
    st.builds(user, st.sampled_from(NAMES)),
    st.builds(group, st.sampled_from((*GROUPS, "system:authenticated", "system:serviceaccounts"))),
    st.builds(account, st.just("robot"), st.sampled_from(("", *NAMESPACES))),
)
ROLE_NAMES = st.sampled_from(["r1", "r2", "r3"])


@st.composite
def bindings(draw: st.DrawFn) -> dict[str, Any]:
    namespace = draw(st.sampled_from(("", *NAMESPACES)))
    kind = "ClusterRole" if not namespace else draw(st.sampled_from(["Role", "ClusterRole"]))
    name = draw(st.text("abcxyz", min_size=1, max_size=3))
    return binding(name, namespace, (kind, draw(ROLE_NAMES)), *draw(st.lists(SUBJECTS, min_size=1, max_size=3)))


@st.composite
def worlds(draw: st.DrawFn) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for name in draw(st.lists(ROLE_NAMES, unique=True)):
        objects.append(cluster_role(name, *draw(st.lists(RULES, max_size=3))))
    for name in draw(st.lists(ROLE_NAMES, unique=True)):
        objects.append(role(name, draw(st.sampled_from(NAMESPACES)), *draw(st.lists(RULES, max_size=3))))
    objects.extend(draw(st.lists(bindings(), max_size=4)))
    return objects


REQUESTS = st.builds(
    A,
    user=st.sampled_from(NAMES),
    groups=st.lists(st.sampled_from(GROUPS), max_size=2, unique=True).map(tuple),
    verb=st.sampled_from(["get", "list", "create", "update"]),
    namespace=st.sampled_from(("", *NAMESPACES)),
    api_group=st.sampled_from(["", "apps"]),
    resource=st.sampled_from(["pods", "deployments"]),
    subresource=st.sampled_from(["", "log", "scale"]),
    name=st.sampled_from(["", "a", "b"]),
)


@settings(max_examples=150, deadline=None)
@given(worlds(), bindings(), st.lists(REQUESTS, min_size=1, max_size=8))
def test_adding_a_binding_never_removes_a_permission(
    objects: list[dict[str, Any]], extra: dict[str, Any], requests: list[rbac.Attributes]
) -> None:
    world = World(*objects)
    before = [world.can(request) for request in requests]
    world.add(extra)
    after = [world.can(request) for request in requests]
    assert all(a or not b for b, a in zip(before, after, strict=True))


@settings(max_examples=150, deadline=None)
@given(worlds(), st.lists(REQUESTS, min_size=1, max_size=8))
def test_the_rules_review_lists_a_rule_for_every_allowed_request(
    objects: list[dict[str, Any]], requests: list[rbac.Attributes]
) -> None:
    world = World(*objects)
    for request in requests:
        if not request.namespace:
            continue
        rules, _ = world.authorizer.rules_for(request.user, request.groups, request.namespace)
        lone = World(cluster_role("all", *rules), binding("all", "", ("ClusterRole", "all"), user(request.user)))
        assert world.can(request) == lone.can(request)


def test_attributes_with_groups_as_a_list_still_work() -> None:
    world = granted(rule("get", "", "pods"))
    attributes = A("alice", ["dev"], "get", resource="pods")  # type: ignore[arg-type]
    assert attributes.groups == ("dev",)
    assert world.can(attributes)
