"""Bad input against the API server: every refusal is a 4xx Status that names the problem, and nothing kills it.

Malformed JSON and YAML bodies, unknown kinds, custom resources that break their schema, bodies over 3 MiB and
invalid names each get the code and the Status that kube-apiserver answers with; a hypothesis fuzz over paths, query
strings, headers and bodies checks that the sandbox never answers 5xx, never hangs, and keeps serving.

Requests go over HTTPS with the kubeconfig's CA and bearer token through one small pool of kept-alive connections,
so what is tested is the wire, not a client library's reading of it. Where the sandbox is known to answer otherwise
than kube-apiserver, a test states kube-apiserver's answer and is marked ``sandbox_differs``: a strict expected
failure on the sandbox (so a fix shows up as XPASS) and an ordinary test against a real cluster.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import ssl
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration

ON_SANDBOX = not os.environ.get("KUBECONFIG")
"""The conftest's rule: without KUBECONFIG the suite runs against a sandbox it starts itself."""
MAX_BODY = 3 * 1024 * 1024
"""kube-apiserver's limit on request bodies (MaxRequestBodyBytes): 3 MiB, and one byte more is refused."""
REQUEST_TIMEOUT = 10.0
"""Seconds a single request may take before the test calls it a hang."""
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
GROUP = "badinput.upkeep.test"
SUBDOMAIN_PROBLEM = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
LABEL_PROBLEM = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
GADGETS_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gadgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "colour": {"type": "string", "enum": ["red", "blue"]},
                                    "code": {"type": "string", "pattern": "^[A-Z]+$", "maxLength": 5},
                                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                                    "notes": {"type": "string"},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def sandbox_differs(reason: str) -> pytest.MarkDecorator:
    """kube-apiserver's answer, which the sandbox does not give yet: a strict expected failure on the sandbox only."""
    return pytest.mark.xfail(ON_SANDBOX, reason=reason, strict=True)


# The wire: HTTPS with the kubeconfig's CA and token, one pool of kept-alive connections


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as it came over the wire."""

    method: str
    target: str
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        return f"{self.method} {self.target[:200]} -> {self.status} {self.content_type}: {self.body[:800]!r}"


@dataclass(frozen=True)
class WatchAnswer:
    """What a watch request got: its status, the lines it read, and whether the server ended the stream."""

    answer: Answer
    lines: tuple[bytes, ...]
    ended: bool


class RawApi:
    """The cluster's API over HTTPS with the kubeconfig's CA and bearer token; one pool of kept-alive connections."""

    def __init__(self, server: str, context: ssl.SSLContext, token: str) -> None:
        parsed = urllib.parse.urlsplit(server)
        self.host = parsed.hostname or "localhost"
        self.port = parsed.port or 443
        self.root = parsed.path.rstrip("/")
        self.context = context
        self.token = token
        self._idle: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, path: Path) -> RawApi:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))

        def named(section: str, name: str) -> dict[str, Any]:
            for entry in config.get(section) or []:
                if entry.get("name") == name:
                    return dict(entry)
            raise LookupError(f"{path}: no {section} entry named {name!r}")

        context = named("contexts", config["current-context"])["context"]
        cluster = named("clusters", context["cluster"])["cluster"]
        user = named("users", context["user"])["user"]
        token = str(user.get("token") or "")
        if not token and user.get("tokenFile"):
            token = (path.parent / user["tokenFile"]).read_text(encoding="utf-8").strip()
        if not token:
            pytest.skip("these tests authenticate with the kubeconfig user's bearer token, and it has none")
        if cluster.get("insecure-skip-tls-verify"):
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            tls = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            tls = ssl.create_default_context(cafile=str(path.parent / cluster["certificate-authority"]))
        else:
            tls = ssl.create_default_context()
        return cls(str(cluster["server"]), tls, token)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def target(self, path: str, query: Sequence[tuple[str, str]] | Mapping[str, str] | None = None) -> str:
        pairs = list(query.items()) if isinstance(query, Mapping) else list(query or ())
        return self.root + path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")

    def headers(self, given: Mapping[str, str | None] | None, authenticated: bool) -> dict[str, str]:
        """JSON both ways and the token, unless ``given`` says otherwise (None: leave the header out)."""
        sent: dict[str, str | None] = {"Accept": "application/json", "Content-Type": "application/json"}
        if authenticated:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(given or {})
        return {name: value for name, value in sent.items() if value is not None}

    def _take(self, timeout: float) -> tuple[http.client.HTTPSConnection, bool]:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout), False
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection, True

    def _give_back(self, connection: http.client.HTTPSConnection, response: http.client.HTTPResponse) -> None:
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.append(connection)

    @staticmethod
    def _send(
        connection: http.client.HTTPSConnection,
        method: str,
        target: str,
        body: bytes | Iterable[bytes] | None,
        headers: Mapping[str, str],
    ) -> http.client.HTTPResponse:
        # A server may answer (413) and close before it has read a large body; its answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(method, target, body=body, headers=dict(headers))
        return connection.getresponse()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        *,
        query: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        headers: Mapping[str, str | None] | None = None,
        authenticated: bool = True,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Answer:
        """Send one request and read the whole answer (``TimeoutError`` past ``timeout``)."""
        target = self.target(path, query)
        sent = self.headers(headers, authenticated)
        while True:
            connection, reused = self._take(timeout)
            try:
                response = self._send(connection, method, target, body, sent)
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if reused:
                    continue  # the server had closed this kept-alive connection while it was idle
                raise
            except BaseException:
                connection.close()
                raise
            self._give_back(connection, response)
            return Answer(method, target, response.status, response.getheader("Content-Type") or "", data)

    def watch(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        headers: Mapping[str, str | None] | None = None,
        authenticated: bool = True,
        listen: float,
    ) -> WatchAnswer:
        """Open a watch on a connection of its own, read lines for at most ``listen`` seconds, then hang up."""
        target = self.target(path, query)
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=REQUEST_TIMEOUT)
        try:
            response = self._send(connection, "GET", target, None, self.headers(headers, authenticated))
            content_type = response.getheader("Content-Type") or ""
            if response.status != 200:
                answer = Answer("GET", target, response.status, content_type, response.read())
                return WatchAnswer(answer, (), ended=True)
            lines: list[bytes] = []
            deadline = time.monotonic() + listen
            ended = False
            with contextlib.suppress(TimeoutError):
                while (remaining := deadline - time.monotonic()) > 0:
                    assert connection.sock is not None
                    connection.sock.settimeout(remaining)
                    line = response.readline()
                    if not line:
                        ended = True
                        break
                    lines.append(line)
            return WatchAnswer(Answer("GET", target, 200, content_type, b"".join(lines)), tuple(lines), ended)
        finally:
            connection.close()


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def gadget(name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": spec}


def status_problem(answer: Answer) -> str | None:
    """Why ``answer`` (4xx or 5xx) is not a Failure Status carrying its own code, or None when it is one."""
    media = answer.content_type.split(";")[0].strip().lower()
    try:
        if media == "application/vnd.kubernetes.protobuf":
            return None if answer.body.startswith(b"k8s\x00") and b"Status" in answer.body else "not a protobuf Status"
        if media not in ("application/json", "application/yaml"):
            return f"the body is {media or 'of no declared type'}"
        body = yaml.safe_load(answer.body) if media == "application/yaml" else json.loads(answer.body)
    except (ValueError, yaml.YAMLError):
        return f"the body does not parse as {media}"
    if not isinstance(body, dict):
        return "the body is not an object"
    if (body.get("kind"), body.get("apiVersion"), body.get("status")) != ("Status", "v1", "Failure"):
        return "the body is not a v1 Status with status Failure"
    if body.get("code") != answer.status:
        return f"the Status code {body.get('code')!r} is not the HTTP code"
    if not isinstance(body.get("reason"), str) or not body["reason"] or not isinstance(body.get("message"), str):
        return "the Status has no reason or no message"
    return None


def assert_status(answer: Answer, code: int, reason: str, *mentions: str) -> dict[str, Any]:
    """``answer`` is a Failure Status with this code and reason whose message mentions each of ``mentions``."""
    assert answer.status == code, answer.describe()
    assert answer.content_type.split(";")[0].strip() == "application/json", answer.describe()
    problem = status_problem(answer)
    assert problem is None, f"{problem}: {answer.describe()}"
    status: dict[str, Any] = answer.json()
    assert status["reason"] == reason, answer.describe()
    for mention in mentions:
        assert mention.lower() in status["message"].lower(), f"{mention!r} is not in {status['message']!r}"
    return status


# Fixtures


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[RawApi]:
    raw = RawApi.from_kubeconfig(cluster.kubeconfig)
    yield raw
    raw.close()


def new_namespace(api: RawApi, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = api.request(
        "POST", "/api/v1/namespaces", encoded({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    )
    assert created.status == 201, created.describe()
    return name


@pytest.fixture(scope="module")
def space(api: RawApi) -> Iterator[str]:
    """A namespace for this module's objects, deleted at the end."""
    name = new_namespace(api, "bad-input")
    yield name
    api.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def colours(api: RawApi, space: str) -> str:
    """The path of a ConfigMap ``colours`` (colour=blue) that the tests try to break and must not change."""
    created = api.request(
        "POST", f"/api/v1/namespaces/{space}/configmaps", encoded(configmap("colours", colour="blue"))
    )
    assert created.status == 201, created.describe()
    return f"/api/v1/namespaces/{space}/configmaps/colours"


@pytest.fixture(scope="module")
def gadgets(api: RawApi, space: str) -> Iterator[str]:
    """The path of the Gadgets in ``space``: a custom resource with a schema for the tests to break."""
    created = api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", encoded(GADGETS_CRD))
    assert created.status in (201, 409), created.describe()
    path = f"/apis/{GROUP}/v1/namespaces/{space}/gadgets"
    eventually(lambda: api.request("GET", path).status == 200, timeout=30, message="the Gadget CRD is served")
    yield path
    api.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{GROUP}")


# Malformed bodies


def test_malformed_json_is_a_bad_request_that_says_json(api: RawApi, space: str) -> None:
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", b'{"apiVersion": "v1", "metadata": {')
    assert_status(answer, 400, "BadRequest", "json")


def test_malformed_yaml_is_a_bad_request_that_says_yaml(api: RawApi, space: str) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: [\n"
    answer = api.request(
        "POST", f"/api/v1/namespaces/{space}/configmaps", body, headers={"Content-Type": "application/yaml"}
    )
    assert_status(answer, 400, "BadRequest", "yaml")


@pytest.mark.parametrize("body", [b"[1, 2]", b'"a string"', b"42", b""], ids=["array", "string", "number", "empty"])
def test_a_body_that_is_not_an_object_is_a_bad_request(api: RawApi, space: str, body: bytes) -> None:
    assert_status(api.request("POST", f"/api/v1/namespaces/{space}/configmaps", body), 400, "BadRequest")


def test_a_field_of_the_wrong_type_is_a_bad_request_naming_the_field(api: RawApi, space: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typed"}, "data": {"colour": 7}}
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", encoded(body))
    assert_status(
        answer,
        400,
        "BadRequest",
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: '
        "json: cannot unmarshal number into Go struct field ConfigMap.data of type string",
    )


@pytest.mark.parametrize(
    ("content_type", "body", "cause"),
    [
        ("application/json", b'{"apiVersion": "v1", "metadata": {', "couldn't get version/kind; json parse error"),
        ("application/yaml", b"metadata: [\n", "error converting YAML to JSON"),
    ],
    ids=["json", "yaml"],
)
def test_undecodable_bodies_are_worded_as_kube_apiserver_words_them(
    api: RawApi, space: str, content_type: str, body: bytes, cause: str
) -> None:
    path = f"/api/v1/namespaces/{space}/configmaps"
    answer = api.request("POST", path, body, headers={"Content-Type": content_type})
    assert_status(answer, 400, "BadRequest", "the object provided is unrecognized (must be of type ConfigMap)", cause)


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"name": 5}, "cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string"),
        (
            {"name": "labelled", "labels": "app"},
            "cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string",
        ),
        (
            {"name": "owned", "ownerReferences": [1]},
            "cannot unmarshal number into Go struct field ObjectMeta.metadata.ownerReferences "
            "of type v1.OwnerReference",
        ),
        (
            {"name": "final", "finalizers": "x"},
            "cannot unmarshal string into Go struct field ObjectMeta.metadata.finalizers of type []string",
        ),
    ],
    ids=["name", "labels", "owner-references", "finalizers"],
)
def test_metadata_of_the_wrong_type_is_a_bad_request(
    api: RawApi, space: str, metadata: dict[str, Any], complaint: str
) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", encoded(body), query={"dryRun": "All"})
    assert_status(answer, 400, "BadRequest", 'ConfigMap in version "v1" cannot be handled as a ConfigMap', complaint)


def test_an_invalid_label_key_is_invalid(api: RawApi, space: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "labelled", "labels": {"not a key": "x"}}}
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", encoded(body), query={"dryRun": "All"})
    assert_status(
        answer,
        422,
        "Invalid",
        'metadata.labels: Invalid value: "not a key"',
        "name part must consist of alphanumeric characters",
    )


def test_a_json_patch_that_is_not_a_list_is_a_bad_request(api: RawApi, colours: str) -> None:
    answer = api.request("PATCH", colours, b'{"op": "add"}', headers={"Content-Type": "application/json-patch+json"})
    assert_status(answer, 400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")


def test_a_failed_json_patch_test_is_invalid(api: RawApi, colours: str) -> None:
    patch = [
        {"op": "test", "path": "/data/colour", "value": "red"},
        {"op": "replace", "path": "/data/colour", "value": "red"},
    ]
    answer = api.request("PATCH", colours, encoded(patch), headers={"Content-Type": "application/json-patch+json"})
    assert_status(answer, 422, "Invalid", "the server rejected our request due to an error in our request")
    assert api.request("GET", colours).json()["data"] == {"colour": "blue"}


def test_a_malformed_merge_patch_is_a_bad_request(api: RawApi, colours: str) -> None:
    answer = api.request("PATCH", colours, b'{"data": {', headers={"Content-Type": "application/merge-patch+json"})
    assert_status(answer, 400, "BadRequest")


# Unknown kinds


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/{namespace}/widgets",
        "/apis/example.invalid/v1/namespaces/{namespace}/widgets",
        "/apis/apps/v9/namespaces/{namespace}/deployments",
        "/apis/" + GROUP + "/v2/namespaces/{namespace}/gadgets",
    ],
    ids=["core-resource", "group", "version", "custom-resource-version"],
)
def test_an_unknown_resource_is_not_found(api: RawApi, space: str, gadgets: str, method: str, path: str) -> None:
    body = encoded({"metadata": {"name": "x"}}) if method == "POST" else None
    answer = api.request(method, path.format(namespace=space), body)
    assert_status(answer, 404, "NotFound", "the server could not find the requested resource")


@pytest.mark.parametrize(
    ("body", "mention"),
    [
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}, "Pod"),
        ({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "x"}}, "Widget"),
        ({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, "apps/v1"),
    ],
    ids=["another-kind", "unknown-kind", "another-group"],
)
def test_a_body_of_another_kind_is_a_bad_request_naming_it(
    api: RawApi, space: str, body: dict[str, Any], mention: str
) -> None:
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", encoded(body), query={"dryRun": "All"})
    assert_status(answer, 400, "BadRequest", mention)


def test_a_custom_resource_of_another_kind_is_invalid(api: RawApi, gadgets: str) -> None:
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    answer = api.request("POST", gadgets, encoded(body), query={"dryRun": "All"})
    assert_status(answer, 422, "Invalid", 'kind: Invalid value: "Widget"', "must be Gadget")


# Custom resources that break their schema


@pytest.mark.parametrize(
    ("spec", "reason", "field_path", "message"),
    [
        (
            {"size": "three"},
            "FieldValueTypeInvalid",
            "spec.size",
            'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        ({}, "FieldValueRequired", "spec.size", "spec.size: Required value"),
        (
            {"size": 3, "colour": "purple"},
            "FieldValueNotSupported",
            "spec.colour",
            'spec.colour: Unsupported value: "purple": supported values: "red", "blue"',
        ),
        (
            {"size": 11},
            "FieldValueInvalid",
            "spec.size",
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
        ),
        (
            {"size": 3, "code": "abc"},
            "FieldValueInvalid",
            "spec.code",
            "spec.code: Invalid value: \"abc\": spec.code in body should match '^[A-Z]+$'",
        ),
        (
            {"size": 3, "tags": ["a", "b", "c"]},
            "FieldValueTooMany",
            "spec.tags",
            "spec.tags: Too many: 3: must have at most 2 items",
        ),
        (
            "three",
            "FieldValueTypeInvalid",
            "spec",
            'spec: Invalid value: "string": spec in body must be of type object: "string"',
        ),
    ],
    ids=["type", "required", "enum", "maximum", "pattern", "max-items", "not-an-object"],
)
def test_a_schema_violation_is_invalid_naming_the_field(
    api: RawApi, gadgets: str, spec: Any, reason: str, field_path: str, message: str
) -> None:
    answer = api.request("POST", gadgets, encoded(gadget("broken", spec)))
    status = assert_status(answer, 422, "Invalid", f'Gadget.{GROUP} "broken" is invalid: {message}')
    details = status["details"]
    assert (details["name"], details["group"], details["kind"]) == ("broken", GROUP, "Gadget")
    assert [(cause["reason"], cause["field"]) for cause in details["causes"]] == [(reason, field_path)]


def test_several_schema_violations_are_listed_together(api: RawApi, gadgets: str) -> None:
    answer = api.request("POST", gadgets, encoded(gadget("broken", {"size": 0, "colour": "green"})))
    status = assert_status(
        answer,
        422,
        "Invalid",
        f'Gadget.{GROUP} "broken" is invalid: [spec.size: Invalid value: 0: '
        "spec.size in body should be greater than or equal to 1, "
        'spec.colour: Unsupported value: "green": supported values: "red", "blue"]',
    )
    assert sorted(cause["field"] for cause in status["details"]["causes"]) == ["spec.colour", "spec.size"]


def test_strict_field_validation_refuses_an_unknown_field(api: RawApi, gadgets: str) -> None:
    body = gadget("strict", {"size": 3, "bogus": 1})
    answer = api.request("POST", gadgets, encoded(body), query={"fieldValidation": "Strict"})
    assert_status(
        answer,
        400,
        "BadRequest",
        'Gadget in version "v1" cannot be handled as a Gadget: strict decoding error: unknown field "spec.bogus"',
    )


def test_a_patch_that_breaks_the_schema_is_invalid(api: RawApi, gadgets: str) -> None:
    created = api.request("POST", gadgets, encoded(gadget("patched", {"size": 2})))
    assert created.status == 201, created.describe()
    answer = api.request(
        "PATCH",
        f"{gadgets}/patched",
        encoded({"spec": {"size": "x"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert_status(answer, 422, "Invalid", "spec.size in body must be of type integer")
    assert api.request("GET", f"{gadgets}/patched").json()["spec"] == {"size": 2}


def test_a_strategic_merge_patch_of_a_custom_resource_is_unsupported(api: RawApi, gadgets: str) -> None:
    created = api.request("POST", gadgets, encoded(gadget("merged", {"size": 2})))
    assert created.status == 201, created.describe()
    answer = api.request(
        "PATCH",
        f"{gadgets}/merged",
        encoded({"spec": {"size": 1}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert_status(answer, 415, "UnsupportedMediaType", "application/merge-patch+json")


# Bodies over 3 MiB


def oversized_configmap() -> bytes:
    return encoded(configmap("huge", blob="x" * MAX_BODY))


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_3_mib_is_too_large(api: RawApi, space: str, framing: str) -> None:
    body = oversized_configmap()
    sent: bytes | Iterator[bytes] = body
    if framing == "chunked":
        sent = iter([body[offset : offset + 65536] for offset in range(0, len(body), 65536)])
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", sent)
    assert_status(answer, 413, "RequestEntityTooLarge", "large")


def test_a_patch_over_3_mib_is_too_large(api: RawApi, colours: str) -> None:
    patch = encoded({"data": {"blob": "x" * MAX_BODY}})
    answer = api.request("PATCH", colours, patch, headers={"Content-Type": "application/merge-patch+json"})
    assert_status(answer, 413, "RequestEntityTooLarge", "large")


def test_a_body_of_exactly_3_mib_is_not_refused_for_its_size(api: RawApi, gadgets: str) -> None:
    shell = encoded(gadget("full", {"size": 1, "notes": ""}))
    body = encoded(gadget("full", {"size": 1, "notes": "x" * (MAX_BODY - len(shell))}))
    assert len(body) == MAX_BODY
    answer = api.request("POST", gadgets, body, query={"dryRun": "All"})
    assert answer.status == 201, answer.describe()


def test_too_large_is_worded_as_kube_apiserver_words_it(api: RawApi, space: str) -> None:
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", oversized_configmap())
    assert_status(answer, 413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")


def test_a_configmap_over_1_mib_is_invalid(api: RawApi, space: str) -> None:
    body = encoded(configmap("big", blob="x" * (1024 * 1024 + 1)))
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", body, query={"dryRun": "All"})
    assert_status(answer, 422, "Invalid", "1048576")


# Invalid names


@pytest.mark.parametrize(
    ("kind", "name", "problem"),
    [
        ("ConfigMap", "Bad_Name", SUBDOMAIN_PROBLEM),
        ("ConfigMap", "a" * 254, "must be no more than 253 characters"),
        ("Namespace", "Bad.Name", LABEL_PROBLEM),
        ("Namespace", "n" * 64, "must be no more than 63 characters"),
        ("Gadget", "Bad_Name", SUBDOMAIN_PROBLEM),
    ],
    ids=["configmap-characters", "configmap-length", "namespace-characters", "namespace-length", "custom-resource"],
)
def test_an_invalid_name_is_invalid_naming_the_rule(
    api: RawApi, space: str, gadgets: str, kind: str, name: str, problem: str
) -> None:
    if kind == "Namespace":
        path, body, qualified = (
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}},
            kind,
        )
    elif kind == "Gadget":
        path, body, qualified = gadgets, gadget(name, {"size": 1}), f"Gadget.{GROUP}"
    else:
        path, body, qualified = f"/api/v1/namespaces/{space}/configmaps", configmap(name), kind
    answer = api.request("POST", path, encoded(body), query={"dryRun": "All"})
    status = assert_status(
        answer, 422, "Invalid", f'{qualified} "{name}" is invalid: metadata.name: Invalid value: "{name}": {problem}'
    )
    assert status["details"]["name"] == name
    assert status["details"]["kind"] == kind
    assert [(cause["reason"], cause["field"]) for cause in status["details"]["causes"]] == [
        ("FieldValueInvalid", "metadata.name")
    ]


def test_an_invalid_name_in_the_url_of_an_apply_is_invalid(api: RawApi, space: str) -> None:
    answer = api.request(
        "PATCH",
        f"/api/v1/namespaces/{space}/configmaps/Bad_Name",
        encoded(configmap("Bad_Name")),
        query={"fieldManager": "bad-input", "dryRun": "All"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert_status(answer, 422, "Invalid", 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"')


def test_reading_an_invalid_name_is_not_found(api: RawApi, space: str) -> None:
    answer = api.request("GET", f"/api/v1/namespaces/{space}/configmaps/Bad_Name")
    status = assert_status(answer, 404, "NotFound", 'configmaps "Bad_Name" not found')
    assert status["details"] == {"name": "Bad_Name", "kind": "configmaps"}


def test_an_invalid_generate_name_is_reported(api: RawApi, space: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "Bad_"}}
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", encoded(body), query={"dryRun": "All"})
    status = assert_status(answer, 422, "Invalid", 'metadata.generateName: Invalid value: "Bad_"')
    assert "metadata.generateName" in [cause["field"] for cause in status["details"]["causes"]]


# Methods, conflicts, media types, authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/namespaces/{namespace}/configmaps/colours"),
        ("PUT", "/api/v1/namespaces/{namespace}/configmaps"),
        ("PATCH", "/api/v1/namespaces/{namespace}/configmaps"),
        ("POST", "/api/v1/namespaces/{namespace}/pods/nobody/status"),
    ],
    ids=["create-by-name", "replace-a-collection", "patch-a-collection", "create-a-status"],
)
def test_a_method_a_resource_does_not_have_is_not_allowed(
    api: RawApi, space: str, colours: str, method: str, path: str
) -> None:
    answer = api.request(method, path.format(namespace=space), b"{}", query={"dryRun": "All"})
    assert_status(answer, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
        ("DELETE", "/api/v1/namespaces"),
        ("DELETE", "/api/v1/namespaces/{namespace}/pods/nobody/status"),
        ("GET", "/api/v1/namespaces/{namespace}/pods/nobody/eviction"),
        ("PUT", "/api/v1/namespaces/{namespace}/pods/nobody/log"),
    ],
    ids=["list-reviews", "delete-all-namespaces", "delete-a-status", "get-an-eviction", "replace-a-log"],
)
def test_a_verb_kube_apiserver_has_no_route_for_is_not_allowed(api: RawApi, space: str, method: str, path: str) -> None:
    body = b"{}" if method == "PUT" else None
    answer = api.request(method, path.format(namespace=space), body, query={"dryRun": "All"})
    assert_status(answer, 405, "MethodNotAllowed")


def test_creating_an_existing_name_is_already_exists(api: RawApi, space: str, colours: str) -> None:
    answer = api.request("POST", f"/api/v1/namespaces/{space}/configmaps", encoded(configmap("colours")))
    status = assert_status(answer, 409, "AlreadyExists", 'configmaps "colours" already exists')
    assert status["details"] == {"name": "colours", "kind": "configmaps"}


def test_a_stale_update_is_a_conflict(api: RawApi, space: str) -> None:
    path = f"/api/v1/namespaces/{space}/configmaps"
    created = api.request("POST", path, encoded(configmap("contested", colour="blue"))).json()
    moved = api.request(
        "PATCH",
        f"{path}/contested",
        b'{"data":{"colour":"red"}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert moved.status == 200, moved.describe()
    created["data"] = {"colour": "green"}
    answer = api.request("PUT", f"{path}/contested", encoded(created))
    assert_status(
        answer,
        409,
        "Conflict",
        'Operation cannot be fulfilled on configmaps "contested": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


def test_a_delete_with_a_failed_precondition_is_a_conflict(api: RawApi, colours: str) -> None:
    options = {"preconditions": {"uid": "not-the-uid"}, "dryRun": ["All"]}
    answer = api.request("DELETE", colours, encoded(options), query={"dryRun": "All"})
    assert_status(answer, 409, "Conflict", "precondition")
    assert api.request("GET", colours).status == 200


def test_a_dry_run_asked_for_in_the_delete_options_deletes_nothing(api: RawApi, space: str) -> None:
    path = f"/api/v1/namespaces/{space}/configmaps"
    created = api.request("POST", path, encoded(configmap("spared")))
    assert created.status == 201, created.describe()
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]}
    answer = api.request("DELETE", f"{path}/spared", encoded(options))
    assert answer.status == 200, answer.describe()
    assert api.request("GET", f"{path}/spared").status == 200


def test_a_patch_in_an_unknown_format_is_an_unsupported_media_type(api: RawApi, colours: str) -> None:
    answer = api.request("PATCH", colours, b'{"data":{}}', headers={"Content-Type": "text/plain"})
    assert_status(answer, 415, "UnsupportedMediaType", "application/merge-patch+json", "application/json-patch+json")


def test_the_patch_format_is_checked_before_the_object_is_looked_up(api: RawApi, space: str) -> None:
    path = f"/api/v1/namespaces/{space}/configmaps/nobody"
    answer = api.request("PATCH", path, b'{"data":{}}', headers={"Content-Type": "text/plain"})
    assert_status(answer, 415, "UnsupportedMediaType")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json-patch+json"])
def test_a_body_in_an_unknown_format_is_an_unsupported_media_type(api: RawApi, space: str, content_type: str) -> None:
    answer = api.request(
        "POST",
        f"/api/v1/namespaces/{space}/configmaps",
        encoded(configmap("formatted")),
        query={"dryRun": "All"},
        headers={"Content-Type": content_type},
    )
    assert_status(answer, 415, "UnsupportedMediaType", "application/json")


def test_an_answer_in_an_unknown_format_is_not_acceptable(api: RawApi, space: str) -> None:
    answer = api.request("GET", f"/api/v1/namespaces/{space}/configmaps", headers={"Accept": "text/html"})
    assert_status(answer, 406, "NotAcceptable", "application/json")


def test_a_wrong_token_is_unauthorized(api: RawApi, space: str) -> None:
    answer = api.request(
        "GET",
        f"/api/v1/namespaces/{space}/configmaps",
        authenticated=False,
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert_status(answer, 401, "Unauthorized", "Unauthorized")


# Query parameters


@pytest.mark.parametrize(
    ("query", "mention"),
    [
        ({"labelSelector": "app in (web"}, "unable to parse requirement"),
        ({"fieldSelector": "spec.colour=blue"}, "field label not supported: spec.colour"),
    ],
    ids=["label-selector", "field-selector"],
)
def test_a_selector_that_does_not_parse_is_a_bad_request(
    api: RawApi, space: str, query: dict[str, str], mention: str
) -> None:
    answer = api.request("GET", f"/api/v1/namespaces/{space}/configmaps", query=query)
    assert_status(answer, 400, "BadRequest", mention)


@pytest.mark.parametrize("limit", ["abc", "1.5"])
def test_a_limit_that_is_not_an_integer_is_a_bad_request(api: RawApi, space: str, limit: str) -> None:
    answer = api.request("GET", f"/api/v1/namespaces/{space}/configmaps", query={"limit": limit})
    assert_status(answer, 400, "BadRequest", limit)


@pytest.mark.parametrize("timeout", ["abc", "1.5"])
def test_a_watch_timeout_that_is_not_an_integer_is_a_bad_request(api: RawApi, space: str, timeout: str) -> None:
    watched = api.watch(
        f"/api/v1/namespaces/{space}/configmaps", query={"watch": "1", "timeoutSeconds": timeout}, listen=0.5
    )
    assert_status(watched.answer, 400, "BadRequest", timeout)


@pytest.fixture
def private_api(cluster: Cluster, tmp_path: Path) -> Iterator[RawApi]:
    """A sandbox of this test's own (against a real cluster: the cluster), for requests that harm the server."""
    if cluster.sandbox is None:
        raw = RawApi.from_kubeconfig(cluster.kubeconfig)
        yield raw
        raw.close()
        return
    from upkeep.sandbox import runner

    with runner.ThreadedSandbox(kubeconfig=tmp_path / "kubeconfig", bookmark_interval=1.0):
        raw = RawApi.from_kubeconfig(tmp_path / "kubeconfig")
        yield raw
        raw.close()


def test_a_watch_timeout_of_nan_is_a_bad_request(private_api: RawApi) -> None:
    watched = private_api.watch(
        "/api/v1/namespaces/default/configmaps", query={"watch": "1", "timeoutSeconds": "nan"}, listen=0.5
    )
    assert_status(watched.answer, 400, "BadRequest", "nan")


@pytest.mark.parametrize(
    ("method", "query", "mention"),
    [
        ("POST", {"dryRun": "Sometimes"}, "dryRun"),
        ("POST", {"fieldValidation": "Lenient"}, "fieldValidation"),
        ("POST", {"dryRun": "All", "fieldManager": "m" * 129}, "fieldManager"),
        ("DELETE", {"dryRun": "All", "propagationPolicy": "Sideways"}, "propagationPolicy"),
    ],
    ids=["dry-run", "field-validation", "field-manager", "propagation-policy"],
)
def test_an_unsupported_option_is_invalid(
    api: RawApi, space: str, colours: str, method: str, query: dict[str, str], mention: str
) -> None:
    path = colours if method == "DELETE" else f"/api/v1/namespaces/{space}/configmaps"
    body = encoded(configmap("optioned")) if method == "POST" else None
    answer = api.request(method, path, body, query=query)
    assert_status(answer, 422, "Invalid", mention)


def test_an_apply_without_apiversion_and_kind_is_a_bad_request(api: RawApi, space: str) -> None:
    answer = api.request(
        "PATCH",
        f"/api/v1/namespaces/{space}/configmaps/applied",
        b"metadata:\n  name: applied\n",
        query={"fieldManager": "bad-input", "dryRun": "All"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert_status(answer, 400, "BadRequest", "invalid object type")


# The fuzz: odd paths, query strings, headers and bodies; the server answers each below 500 and keeps serving

FUZZ_EXAMPLES = 300
WATCH_EXAMPLES = 12
"""Watches are fuzzed apart and fewer: one with timeoutSeconds=1 takes a second to end, as it must."""
SEED = "seed"
REAL_NAMESPACED = (
    ("/api/v1", "configmaps"),
    ("/api/v1", "pods"),
    ("/api/v1", "secrets"),
    ("/api/v1", "services"),
    ("/api/v1", "events"),
    ("/api/v1", "serviceaccounts"),
    ("/api/v1", "endpoints"),
    ("/apis/apps/v1", "deployments"),
    ("/apis/apps/v1", "statefulsets"),
    ("/apis/batch/v1", "jobs"),
    ("/apis/batch/v1", "cronjobs"),
    ("/apis/policy/v1", "poddisruptionbudgets"),
    ("/apis/coordination.k8s.io/v1", "leases"),
    ("/apis/discovery.k8s.io/v1", "endpointslices"),
    ("/apis/events.k8s.io/v1", "events"),
    ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    (f"/apis/{GROUP}/v1", "gadgets"),
)
NAMESPACED = (
    *REAL_NAMESPACED,
    ("/api/v1", "widgets"),
    ("/apis/example.invalid/v1", "widgets"),
    ("/apis/apps/v9", "deployments"),
)
CLUSTER_SCOPED = (
    ("/api/v1", "namespaces"),
    ("/api/v1", "nodes"),
    ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions"),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
    ("/apis/authorization.k8s.io/v1", "selfsubjectaccessreviews"),
    ("/apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations"),
)
DISCOVERY = ("/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", f"/apis/{GROUP}/v1", "/apis/example.invalid")
PATH_SHAPES = (
    ("collection",) * 5
    + ("object",) * 4
    + ("subresource",) * 2
    + ("cluster",) * 2
    + ("cluster-object", "discovery", "random")
)
SUBRESOURCES = ("status", "scale", "log", "eviction", "finalize", "exec", "bogus")
ODD_NAMES = ("", ".", "..", "Bad_Name", "UPPER", "-lead", "trail-", "a..b", "a" * 254, "n" * 64, "ünï", "a b", "a:b")
RAW_SEGMENTS = ("%2F", "%00", "%2e%2e", "%", "%zz", "%C3%28", ";", "@", "~")
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "application/cbor",
    "text/plain",
    "multipart/form-data; boundary=x",
    "garbage",
)
ACCEPTS = (
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf, application/json",
    TABLE,
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
    "application/json;as=Table;v=v9;g=meta.k8s.io, application/json",
    "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    "*/*",
    "text/html",
    "garbage;;;=",
)
QUERY_VALUES: dict[str, tuple[str, ...]] = {
    "limit": ("-1", "0", "1", "abc", "1.5", "99999999999999999999"),
    "continue": ("garbage", "", "eyJ4IjoxfQ==", base64.b64encode(b'{"start":1,"rv":"x"}').decode()),
    "resourceVersion": ("abc", "-1", "0", "1", "99999999999999999999", ""),
    "resourceVersionMatch": ("Exact", "NotOlderThan", "garbage"),
    "labelSelector": ("a in (", "!", "a==b==c", "a,", "=x", "x notin (a,,b)", "!a", "a!=", "ünï=1", "a=" + "b" * 70),
    "fieldSelector": (
        "metadata.name=seed",
        "metadata.name==x",
        "spec.x=y",
        "foo",
        "=",
        "metadata.name!=",
        "status.phase=Running,",
        "involvedObject.name=a",
        "spec.nodeName=n",
        ",,",
    ),
    "fieldManager": ("", "m" * 200, "tab\tchar", "ünï"),
    "fieldValidation": ("Ignore", "Warn", "Strict", "garbage", ""),
    "propagationPolicy": ("Foreground", "Background", "Orphan", "garbage"),
    "gracePeriodSeconds": ("0", "-1", "abc"),
    "force": ("true", "false", "abc"),
    "includeObject": ("Object", "Metadata", "None", "garbage"),
    "allowWatchBookmarks": ("true", "abc"),
    "sendInitialEvents": ("true", "false", "abc"),
    "pretty": ("true", "abc"),
    "watch": ("false", "0", "abc"),
    "timeoutSeconds": ("1", "0", "abc"),
    "dryRun": ("All", "abc"),
}
STATIC_KINDS = (
    ("/api/v1", "configmaps"),
    ("/api/v1", "secrets"),
    ("/apis/coordination.k8s.io/v1", "leases"),
    ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    (f"/apis/{GROUP}/v1", "gadgets"),
)
"""Kinds no controller of the sandbox writes: if a fuzzed dry-run request changed them, it was not a dry run."""
FREE_TEXT_PARAMETERS = ("labelSelector", "fieldSelector", "fieldManager", "continue", "resourceVersion")
WATCH_TIMEOUTS = ("1", "1", "1", "1", "0", "-1", "abc")
"""Not "nan": the sandbox would hand a NaN deadline to its event loop, which disorders the timers of every other
test in the session (test_a_watch_timeout_of_nan_is_a_bad_request shows it on a sandbox of its own)."""
WRITES = ("POST", "PUT", "PATCH", "DELETE")
STOPPED = "the server stopped answering /readyz or a GET of a namespace"

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
string_maps = st.dictionaries(
    st.sampled_from(["app", "a b", "example.com/x", "", "-x", "ünï", "x" * 70]) | st.text(max_size=10),
    st.text(max_size=10) | scalars,
    max_size=3,
)
owner_references = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "apiVersion": st.sampled_from(["v1", "apps/v1"]) | scalars,
            "kind": st.sampled_from(["ConfigMap", "Deployment"]) | scalars,
            "name": st.sampled_from([SEED, "x"]) | scalars,
            "uid": st.sampled_from(["0000", ""]) | scalars,
            "controller": scalars,
            "blockOwnerDeletion": scalars,
        },
    )
    | scalars,
    max_size=2,
)
metadata_values = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from((SEED, "fuzzed", *ODD_NAMES)) | scalars,
        "generateName": st.sampled_from(["gen-", "Bad_", ""]) | scalars,
        "namespace": st.sampled_from(["other", ""]) | scalars,
        "labels": string_maps | json_values,
        "annotations": string_maps | json_values,
        "finalizers": st.lists(st.sampled_from(["example.com/f", "kubernetes", "Bad Finalizer"]) | scalars, max_size=3)
        | json_values,
        "ownerReferences": owner_references | json_values,
        "resourceVersion": st.sampled_from(["1", "abc", "0"]) | scalars,
        "uid": scalars,
        "generation": scalars,
        "managedFields": json_values,
        "creationTimestamp": st.sampled_from(["2024-01-01T00:00:00Z", "yesterday"]) | scalars,
        "deletionTimestamp": st.sampled_from(["2024-01-01T00:00:00Z", "yesterday"]) | scalars,
    },
)
spec_values = (
    st.fixed_dictionaries(
        {},
        optional={
            "containers": st.lists(
                st.fixed_dictionaries({}, optional={"name": scalars, "image": scalars, "ports": json_values}),
                max_size=2,
            )
            | json_values,
            "replicas": scalars,
            "selector": json_values,
            "template": json_values,
            "ports": json_values,
            "size": scalars,
            "colour": scalars,
            "nodeName": scalars,
        },
    )
    | json_values
)
object_values = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["v1", "apps/v1", f"{GROUP}/v1", "example.invalid/v1", ""]) | scalars,
        "kind": st.sampled_from(["ConfigMap", "Pod", "Deployment", "Gadget", "Namespace", "Status", "List", ""])
        | scalars,
        "metadata": metadata_values | json_values,
        "spec": spec_values,
        "data": string_maps | json_values,
        "stringData": json_values,
        "status": json_values,
        "type": scalars,
        "items": json_values,
    },
)
json_patches = st.lists(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]) | scalars},
        optional={
            "path": st.sampled_from(["/data/x", "/metadata/labels/a", "", "/", "garbage", "/spec/containers/-", "/~2"])
            | st.text(max_size=10),
            "from": st.sampled_from(["/metadata", "/data", "/nowhere"]) | scalars,
            "value": json_values,
        },
    )
    | scalars,
    max_size=3,
)


@dataclass(frozen=True)
class Probe:
    """One fuzzed request."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    watch_timeout: str | None = None
    """For watch requests: the timeoutSeconds sent (``"1"`` means the server must end the stream by itself)."""

    def reproduction(self) -> str:
        target = self.path + ("?" + urllib.parse.urlencode(self.query) if self.query else "")
        headers = {name: value for name, value in self.headers if name != "Authorization"}
        auth = dict(self.headers).get("Authorization")
        shown_auth = "the kubeconfig's token" if auth and auth.startswith("Bearer ") and len(auth) > 30 else auth
        body = "none" if self.body is None else f"{len(self.body)} bytes {self.body[:300]!r}"
        return f"{self.method} {target} headers={headers} Authorization={shown_auth!r} body={body}"


@st.composite
def names(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 9))
    if choice < 4:
        return SEED
    if choice < 7:
        return urllib.parse.quote(draw(st.sampled_from(ODD_NAMES)), safe="")
    if choice < 8:
        return draw(st.sampled_from(RAW_SEGMENTS))
    return urllib.parse.quote(draw(st.text(max_size=12)), safe="")


@st.composite
def paths(draw: st.DrawFn, namespace: str) -> str:
    shape = draw(st.sampled_from(PATH_SHAPES))
    spaces = draw(st.sampled_from((namespace,) * 6 + ("default", "kube-system", "no-such-namespace", "Bad_NS", "%00")))
    if shape in ("collection", "object", "subresource"):
        prefix, plural = draw(st.sampled_from(NAMESPACED))
        path = f"{prefix}/namespaces/{spaces}/{plural}"
        if shape != "collection":
            path += "/" + draw(names())
        if shape == "subresource":
            path += "/" + draw(st.sampled_from(SUBRESOURCES))
        return path
    if shape == "cluster":
        prefix, plural = draw(st.sampled_from(CLUSTER_SCOPED + NAMESPACED))
        return f"{prefix}/{plural}"
    if shape == "cluster-object":
        prefix, plural = draw(st.sampled_from(CLUSTER_SCOPED))
        path = f"{prefix}/{plural}/{draw(names())}"
        if draw(st.booleans()):
            path += "/" + draw(st.sampled_from(SUBRESOURCES))
        return path
    if shape == "discovery":
        return draw(st.sampled_from(DISCOVERY))
    root = draw(st.sampled_from(("/api", "/apis")))
    segments = draw(
        st.lists(
            st.sampled_from(("v1", "apps", "namespaces", namespace, "pods", "configmaps", "status", "", *RAW_SEGMENTS))
            | st.text(max_size=8)
            .filter(lambda text: text != "watch")
            .map(lambda text: urllib.parse.quote(text, safe="")),
            max_size=6,
        )
    )
    return "/".join([root, *segments])


@st.composite
def queries(draw: st.DrawFn) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(sorted(QUERY_VALUES)))
        values = st.sampled_from(QUERY_VALUES[key])
        if key in FREE_TEXT_PARAMETERS:
            values = values | st.text(max_size=16)
        pairs.append((key, draw(values)))
    return pairs


@st.composite
def header_sets(draw: st.DrawFn, token: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    auth = draw(
        st.sampled_from((f"Bearer {token}",) * 12 + ("Bearer not-a-token", "", "Basic dXNlcjpwYXNz", "Bearer "))
    )
    if auth:
        headers["Authorization"] = auth
    content_type = draw(st.sampled_from((*CONTENT_TYPES, "")) | header_text)
    if content_type:
        headers["Content-Type"] = content_type
    accept = draw(st.sampled_from((*ACCEPTS, "")))
    if accept:
        headers["Accept"] = accept
    if draw(st.integers(0, 15)) == 0:
        headers["Content-Encoding"] = draw(st.sampled_from(["gzip", "deflate", "br", "identity", "garbage"]))
    if draw(st.booleans()):
        headers["User-Agent"] = draw(header_text)
    return headers


READ_BODIES = ("none",) * 6 + ("bytes", "json")
WRITE_BODIES = (
    "none",
    "bytes",
    "json",
    "object",
    "object",
    "object",
    "object",
    "patch",
    "patch",
    "protobuf",
    "yaml",
    "huge",
)


@st.composite
def bodies(draw: st.DrawFn, method: str, content_type: str) -> bytes | None:
    shape = draw(st.sampled_from(READ_BODIES if method in ("GET", "HEAD", "OPTIONS") else WRITE_BODIES))
    if shape == "none":
        return None
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    if shape == "protobuf":
        return b"k8s\x00" + draw(st.binary(max_size=120))
    if shape == "yaml":
        return draw(st.text(max_size=80)).encode()
    if shape == "huge":
        return encoded(configmap("huge", blob="x" * MAX_BODY))
    value = draw({"json": json_values, "object": object_values, "patch": json_patches}[shape])
    if "yaml" in content_type:
        return yaml.safe_dump(value, allow_unicode=True).encode()
    return json.dumps(value).encode()


@st.composite
def probes(draw: st.DrawFn, namespace: str, token: str) -> Probe:
    """A request of any method to any path under /api or /apis; writes are dry runs."""
    headers = draw(header_sets(token))
    method = draw(
        st.sampled_from(("GET",) * 4 + ("POST", "POST", "PUT", "PATCH", "PATCH", "DELETE", "HEAD", "OPTIONS"))
    )
    path = draw(paths(namespace))
    query = draw(queries())
    if method in WRITES:
        query.insert(0, ("dryRun", "All"))  # nothing the fuzz sends may change the shared sandbox
    body = draw(bodies(method, headers.get("Content-Type", "")))
    return Probe(method, path, tuple(query), tuple(headers.items()), body)


@st.composite
def watch_probes(draw: st.DrawFn, namespace: str, token: str) -> Probe:
    """A watch of a real collection with a bounded or a broken timeoutSeconds, and odd selectors and headers."""
    headers = draw(header_sets(token))
    prefix, plural = draw(st.sampled_from(REAL_NAMESPACED))
    spaces = draw(st.sampled_from((namespace, namespace, "default", "no-such-namespace")))
    timeout = draw(st.sampled_from(WATCH_TIMEOUTS))
    query = [(key, value) for key, value in draw(queries()) if key not in ("watch", "timeoutSeconds")]
    query.append(("timeoutSeconds", timeout))
    if draw(st.booleans()):
        path = f"{prefix}/watch/namespaces/{spaces}/{plural}"
    else:
        path = f"{prefix}/namespaces/{spaces}/{plural}"
        query.insert(0, ("watch", draw(st.sampled_from(["1", "true"]))))
    return Probe("GET", path, tuple(query), tuple(headers.items()), None, watch_timeout=timeout)


def named_probes(namespace: str, token: str) -> list[Probe]:
    """Requests the fuzz always sends besides the drawn ones: the odd values the issue names, and known failures."""
    auth = ("Authorization", f"Bearer {token}")
    json_headers = (auth, ("Accept", "application/json"), ("Content-Type", "application/json"))
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    listing = [
        {"limit": "-1"},
        {"limit": "abc"},
        {"resourceVersion": "abc"},
        {"resourceVersion": "abc", "resourceVersionMatch": "Exact"},
        {"labelSelector": "app in (web"},
        {"fieldSelector": "spec.colour=blue"},
        {"continue": "garbage"},
    ]
    found = [Probe("GET", configmaps, tuple(query.items()), json_headers, None) for query in listing]
    found += [
        Probe("GET", configmaps, (), (auth, ("Accept", TABLE)), None),
        Probe("GET", f"{configmaps}/{SEED}", (("includeObject", "garbage"),), (auth, ("Accept", TABLE)), None),
        Probe(
            "POST",
            configmaps,
            (("dryRun", "All"),),
            (auth, ("Content-Type", "application/vnd.kubernetes.protobuf")),
            b"k8s\x00\x0a\xff\xff\x01",
        ),
        Probe("POST", configmaps, (("dryRun", "All"),), (*json_headers, ("Content-Encoding", "gzip")), b"not gzip"),
        Probe("POST", configmaps, (("dryRun", "All"),), (*json_headers, ("Content-Encoding", "br")), b"not brotli"),
        Probe(
            "PATCH",
            f"{configmaps}/{SEED}",
            (("dryRun", "All"), ("fieldManager", "fuzz")),
            (auth, ("Content-Type", "application/apply-patch+yaml")),
            b"metadata:\n  name: seed\n",
        ),
        Probe("DELETE", f"{configmaps}/{SEED}", (("dryRun", "All"),), json_headers, b'{"preconditions": "x"}'),
    ]
    for timeout in ("0", "1"):
        query = (("watch", "1"), ("timeoutSeconds", timeout))
        found.append(Probe("GET", configmaps, query, json_headers, None, watch_timeout=timeout))
    return found


@dataclass(frozen=True)
class Finding:
    """A fuzzed request the server did not answer as it should, and how to send it again."""

    problem: str
    reproduction: str
    answer: str
    cause: str = ""
    """For a 500 of the sandbox: the exception it logged, and where it was raised."""


@dataclass
class FuzzReport:
    """What the fuzz saw: how many requests it sent, and each distinct problem with a count and a reproduction."""

    requests: int = 0
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, finding: Finding, signature: str) -> None:
        key = (finding.problem, signature)
        self.findings.setdefault(key, finding)
        self.counts[key] = self.counts.get(key, 0) + 1

    def describe(self, keys: Iterable[tuple[str, str]]) -> str:
        lines = [f"{len(self.findings)} distinct problems in {self.requests} fuzzed requests ({self.seconds:.0f} s):"]
        for key in keys:
            found = self.findings[key]
            lines.append(f"- {found.problem} (x{self.counts[key]}){': ' + found.cause if found.cause else ''}")
            lines.append(f"    send:   {found.reproduction}")
            lines.append(f"    answer: {found.answer}")
        return "\n".join(lines)


class ServerErrors(logging.Handler):
    """The exceptions the in-process sandbox logs as it answers 500, so that a finding can say what broke."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> tuple[str, str]:
        """(where the logged exceptions were raised, what they said) since the last call."""
        with self.lock:  # type: ignore[union-attr]
            records, self.records = self.records, []
        places, causes = [], []
        for record in records:
            error = record.exc_info[1] if record.exc_info else None
            if error is None:
                places.append(record.getMessage()[:80])
                causes.append(record.getMessage()[:200])
                continue
            frames = traceback.extract_tb(error.__traceback__)
            ours = [frame for frame in frames if "upkeep" in frame.filename] or frames
            where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name}" if ours else "?"
            places.append(f"{type(error).__name__} at {where}")
            causes.append(f"{type(error).__name__}: {str(error)[:160]} (at {where})")
        return "; ".join(places), "; ".join(causes)


def check_watch(probe: Probe, watched: WatchAnswer) -> list[str]:
    problems = []
    for line in watched.lines:
        try:
            event = json.loads(line)
        except ValueError:
            problems.append("a watch line is not JSON")
            continue
        if not isinstance(event, dict) or event.get("type") not in (
            "ADDED",
            "MODIFIED",
            "DELETED",
            "BOOKMARK",
            "ERROR",
        ):
            problems.append("a watch event without a known type")
        elif not isinstance(event.get("object"), dict):
            problems.append("a watch event without an object")
        elif event["type"] == "ERROR" and event["object"].get("kind") != "Status":
            problems.append("a watch ERROR event without a Status")
    if probe.watch_timeout == "1" and not watched.ended:
        problems.append("a watch with timeoutSeconds=1 was still open after 5 s")
    return problems


def fuzz_once(api: RawApi, probe: Probe, errors: ServerErrors, report: FuzzReport) -> None:
    """Send ``probe`` exactly as drawn and record what is wrong with the answer."""
    report.requests += 1
    errors.take()
    headers: dict[str, str | None] = {"Accept": None, "Content-Type": None, **dict(probe.headers)}
    problems: list[str] = []
    try:
        if probe.watch_timeout is not None:
            listen = 5.0 if probe.watch_timeout == "1" else 0.5
            watched = api.watch(probe.path, query=probe.query, headers=headers, authenticated=False, listen=listen)
            answer = watched.answer
            if answer.status == 200:
                problems.extend(check_watch(probe, watched))
        else:
            answer = api.request(
                probe.method, probe.path, probe.body, query=probe.query, headers=headers, authenticated=False
            )
    except TimeoutError:
        report.add(Finding(f"no answer within {REQUEST_TIMEOUT:.0f} s", probe.reproduction(), "-"), "timeout")
        return
    except (OSError, http.client.HTTPException) as error:
        where, cause = errors.take()
        broke = Finding("the connection broke without an answer", probe.reproduction(), f"{error!r}", cause)
        report.add(broke, where)
        return
    unlike_status = status_problem(answer) if answer.status >= 400 and probe.method != "HEAD" else None
    if answer.status >= 500:
        problems.append(
            f"answered {answer.status}" + (f", not with a Status: {unlike_status}" if unlike_status else "")
        )
    elif unlike_status is not None:
        problems.append(f"answered {answer.status}, but not with a Status: {unlike_status}")
    media = answer.content_type.split(";")[0].strip()
    answered = 200 <= answer.status < 300 and probe.method != "HEAD" and probe.watch_timeout is None
    if answered and media == "application/json" and not parses(answer.body):
        problems.append("a 2xx JSON answer that does not parse")
    where, cause = errors.take() if answer.status >= 500 else ("", "")
    signature = where or f"{answer.status} {answer.content_type} {answer.body[:60]!r}"
    for problem in problems:
        report.add(Finding(problem, probe.reproduction(), answer.describe()[:500], cause), signature)


def parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def serving(api: RawApi, namespace: str) -> bool:
    try:
        ready = api.request("GET", "/readyz", headers={"Accept": "*/*"})
        found = api.request("GET", f"/api/v1/namespaces/{namespace}")
    except (OSError, http.client.HTTPException):
        return False
    return ready.status == 200 and found.status == 200


def seed(api: RawApi, namespace: str) -> dict[str, str]:
    """Real objects named ``seed`` for the fuzz to aim at; returns each one's path and resourceVersion."""
    pod_spec = {"containers": [{"name": "c", "image": "busybox"}]}
    objects = {
        f"/api/v1/namespaces/{namespace}/configmaps": configmap(SEED, colour="blue"),
        f"/api/v1/namespaces/{namespace}/secrets": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SEED},
            "stringData": {"token": "s3cret"},
        },
        f"/api/v1/namespaces/{namespace}/pods": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": SEED, "labels": {"app": SEED}},
            "spec": pod_spec,
        },
        f"/api/v1/namespaces/{namespace}/services": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SEED},
            "spec": {"selector": {"app": SEED}, "ports": [{"port": 80}]},
        },
        f"/apis/apps/v1/namespaces/{namespace}/deployments": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": SEED},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": SEED}},
                "template": {"metadata": {"labels": {"app": SEED}}, "spec": pod_spec},
            },
        },
        f"/apis/{GROUP}/v1/namespaces/{namespace}/gadgets": gadget(SEED, {"size": 1}),
    }
    for path, body in objects.items():
        created = api.request("POST", path, encoded(body))
        assert created.status == 201, created.describe()
    return snapshot(api, namespace)


def snapshot(api: RawApi, namespace: str) -> dict[str, str]:
    """Objects in ``namespace`` of the kinds nothing but a client writes, by path, with their resourceVersions."""
    found = {}
    for prefix, plural in STATIC_KINDS:
        collection = f"{prefix}/namespaces/{namespace}/{plural}"
        listed = api.request("GET", collection)
        assert listed.status == 200, listed.describe()
        for item in listed.json()["items"]:
            found[f"{collection}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return found


@pytest.fixture(scope="module")
def fuzzing(cluster: Cluster, api: RawApi, gadgets: str) -> Iterator[FuzzReport]:
    """The fuzz, run once for the tests that judge it: against the sandbox only, never against a real cluster."""
    if cluster.sandbox is None:
        pytest.skip("the fuzz sends odd requests by the hundred: it runs against the sandbox only")
    namespace = new_namespace(api, "fuzz")
    before = seed(api, namespace)
    report = FuzzReport()
    errors = ServerErrors()
    watched_loggers = [logging.getLogger(name) for name in ("aiohttp.server", "aiohttp.web", "upkeep")]
    for logger in watched_loggers:
        logger.addHandler(errors)
    stopped: list[Probe] = []

    def send(probe: Probe) -> None:
        if stopped:
            return
        fuzz_once(api, probe, errors, report)
        if not serving(api, namespace):
            stopped.append(probe)
            report.add(Finding(STOPPED, probe.reproduction(), "-", errors.take()[1]), STOPPED)

    def fuzz() -> None:
        configured = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
        requests = given(probes(namespace, api.token))(send)
        watches = given(watch_probes(namespace, api.token))(send)
        for probe in named_probes(namespace, api.token):
            if probe.watch_timeout is None:
                requests = example(probe)(requests)
            else:
                watches = example(probe)(watches)
        settings(configured, max_examples=FUZZ_EXAMPLES)(requests)()
        settings(configured, max_examples=WATCH_EXAMPLES)(watches)()

    started = time.monotonic()
    try:
        fuzz()
    finally:
        report.seconds = time.monotonic() - started
        for logger in watched_loggers:
            logger.removeHandler(errors)
    if not stopped:
        after = snapshot(api, namespace)
        if after != before:
            changed = sorted(set(before.items()) ^ set(after.items()))
            report.add(Finding("a dry-run request changed what is stored", repr(changed[:10]), "-"), "dry-run")
    yield report
    api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def test_fuzzed_requests_leave_the_server_serving(fuzzing: FuzzReport) -> None:
    stopped = [key for key in fuzzing.findings if key[0] == STOPPED]
    assert not stopped, fuzzing.describe(stopped)
    assert fuzzing.requests >= (FUZZ_EXAMPLES + WATCH_EXAMPLES) / 2


@sandbox_differs(
    "aiohttp's HTTP layer answers a Content-Encoding: br body with its own text/plain 400 before the sandbox sees "
    "the request (kube-apiserver would answer a Status)"
)
def test_fuzzed_requests_are_answered_below_500_with_a_status(fuzzing: FuzzReport) -> None:
    assert not fuzzing.findings, fuzzing.describe(sorted(fuzzing.findings))
