"""Real kubectl's protobuf request bodies, decoded, equal the JSON kubectl prints for the same object.

kubectl sends built-in kinds as protobuf, so a throwaway HTTPS listener (127.0.0.1 only, self-signed
certificate) records what it POSTs. The oracle is kubectl itself: ``--dry-run=client -o json`` prints
the object it would have sent; the same command without the dry run sends it as protobuf.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.cluster import kubectl_binary
from upkeep.sandbox import protobuf

pytestmark = pytest.mark.integration

RESOURCES = {
    "/api/v1": (
        "v1",
        [
            {"name": "pods", "namespaced": True, "kind": "Pod"},
            {"name": "pods/eviction", "namespaced": True, "kind": "Eviction", "group": "policy", "version": "v1"},
            {"name": "nodes", "namespaced": False, "kind": "Node"},
            {"name": "secrets", "namespaced": True, "kind": "Secret"},
            {"name": "configmaps", "namespaced": True, "kind": "ConfigMap"},
        ],
    ),
    "/apis/apps/v1": ("apps/v1", [{"name": "deployments", "namespaced": True, "kind": "Deployment"}]),
}
NODE = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "worker", "uid": "n-1"}, "spec": {}}
POD = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {
        "name": "web-1",
        "namespace": "demo",
        "uid": "p-1",
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r-1", "controller": True}
        ],
    },
    "spec": {"nodeName": "worker", "containers": [{"name": "web", "image": "nginx"}]},
    "status": {"phase": "Running"},
}


@dataclass
class Recorder:
    """An HTTPS listener that records the bodies kubectl sends and answers like a minimal API server."""

    schema: protobuf.Schema
    kubeconfig: Path = Path()
    posts: list[tuple[str, str, bytes]] = field(default_factory=list)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def sent(self, *args: str) -> tuple[str, str, bytes]:
        """Run kubectl and return the one request body it POSTed: (path, content type, body)."""
        before = len(self.posts)
        self.kubectl(*args)
        posted = self.posts[before:]
        assert len(posted) == 1, posted
        return posted[0]


def _answer(recorder: Recorder, path: str, content_type: str, body: bytes) -> dict[str, Any]:
    recorder.posts.append((path, content_type, body))
    obj = protobuf.decode_request(body, recorder.schema) if body.startswith(protobuf.MAGIC) else json.loads(body)
    if obj["kind"] == "SelfSubjectAccessReview":
        obj["status"] = {"allowed": True}
    elif obj["kind"] == "SelfSubjectReview":
        obj["status"] = {"userInfo": {"username": "tester", "groups": ["system:authenticated"]}}
    elif obj["kind"] == "TokenRequest":
        obj["status"] = {"token": "issued", "expirationTimestamp": "2030-01-01T00:00:00Z"}
    return obj


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, code: int, obj: Any) -> None:
            payload = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/api":
                self._reply(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
            elif path == "/apis":
                version = {"groupVersion": "apps/v1", "version": "v1"}
                group = {"name": "apps", "versions": [version], "preferredVersion": version}
                self._reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
            elif path in RESOURCES:
                group_version, resources = RESOURCES[path]
                listed = [{"singularName": "", "verbs": ["create", "get", "list", "patch"], **r} for r in resources]
                self._reply(200, {"kind": "APIResourceList", "groupVersion": group_version, "resources": listed})
            elif path == "/api/v1/nodes/worker":
                self._reply(200, NODE)
            elif path == "/api/v1/pods":
                self._reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [POD]})
            else:
                self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

        def do_PATCH(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._reply(200, {**NODE, "spec": {"unschedulable": True}})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                answer = _answer(recorder, self.path, self.headers.get("Content-Type", ""), body)
            except ValueError as error:
                self._reply(500, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": str(error)})
            else:
                self._reply(201, answer)

    return Handler


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "protobuf-recorder")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def kubectl_path() -> Path:
    try:
        return Path(kubectl_binary())
    except RuntimeError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def schema(kubectl_path: Path) -> protobuf.Schema:
    return protobuf.read_schema(kubectl_path)


@pytest.fixture(scope="module")
def recorder(schema: protobuf.Schema, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    folder = tmp_path_factory.mktemp("recorder")
    cert_file, key_file = _certificate(folder)
    recorder = Recorder(schema)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.kubeconfig = folder / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "recorder",
                "cluster": {
                    "server": f"https://127.0.0.1:{server.server_address[1]}",
                    "insecure-skip-tls-verify": True,
                },
            }
        ],
        "users": [{"name": "tester", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "recorder", "context": {"cluster": "recorder", "user": "tester", "namespace": "demo"}}],
        "current-context": "recorder",
    }
    recorder.kubeconfig.write_text(json.dumps(config), encoding="utf-8")
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files the kubectl commands read: a binary blob, a TLS certificate and its key."""
    folder = tmp_path_factory.mktemp("files")
    blob = folder / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    tls_cert, tls_key = _certificate(folder)
    return {"binary_file": blob, "tls_cert": tls_cert, "tls_key": tls_key}


CREATES = [
    pytest.param(["create", "namespace", "demo"], id="namespace"),
    pytest.param(["create", "configmap", "settings", "--from-literal=a=b", "--from-literal=empty="], id="configmap"),
    pytest.param(["create", "configmap", "blob", "--from-file={binary_file}"], id="configmap-binary"),
    pytest.param(
        ["create", "configmap", "saved", "--from-literal=k=grüße ✓", "--save-config"], id="configmap-annotated"
    ),
    pytest.param(
        [
            "create",
            "secret",
            "generic",
            "login",
            "--from-literal=user=admin",
            "--from-literal=password=s3=cr!t",
            "--from-literal=none=",
        ],
        id="secret-generic",
    ),
    pytest.param(
        ["create", "secret", "docker-registry", "pull", "--docker-username=u", "--docker-password=p"],
        id="secret-docker-registry",
    ),
    pytest.param(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=8080"], id="deployment"),
    pytest.param(["create", "service", "clusterip", "web", "--tcp=80:8080", "--tcp=443:8443"], id="service-clusterip"),
    pytest.param(
        ["create", "service", "nodeport", "edge", "--tcp=80:http", "--node-port=30080"], id="service-nodeport"
    ),
    pytest.param(["create", "service", "externalname", "ext", "--external-name=example.com"], id="service-external"),
    pytest.param(["create", "serviceaccount", "robot"], id="serviceaccount"),
    pytest.param(
        ["create", "role", "reader", "--verb=get,list,watch", "--resource=pods,deployments.apps,secrets"], id="role"
    ),
    pytest.param(
        [
            "create",
            "rolebinding",
            "read",
            "--role=reader",
            "--user=alice",
            "--group=devs",
            "--serviceaccount=demo:robot",
        ],
        id="rolebinding",
    ),
    pytest.param(["create", "clusterrole", "health", "--verb=get", "--non-resource-url=/healthz"], id="clusterrole"),
    pytest.param(["create", "clusterrolebinding", "health", "--clusterrole=health", "--user=bob"], id="crb"),
    pytest.param(["create", "job", "once", "--image=busybox:1.36", "--", "echo", "hello world"], id="job"),
    pytest.param(
        ["create", "cronjob", "nightly", "--image=busybox:1.36", "--schedule=0 3 * * *", "--", "date"], id="cronjob"
    ),
    pytest.param(["create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=2"], id="pdb-int"),
    pytest.param(["create", "pdb", "api", "--selector=app=api", "--max-unavailable=25%"], id="pdb-percent"),
    pytest.param(["create", "priorityclass", "high", "--value=1000", "--description=important"], id="priorityclass"),
    pytest.param(["create", "quota", "small", "--hard=cpu=1500m,memory=1Gi,pods=10"], id="quota"),
    pytest.param(["create", "ingress", "shop", "--rule=shop.example.com/api*=api:8080,tls=shop-tls"], id="ingress"),
    pytest.param(["create", "secret", "tls", "site", "--cert={tls_cert}", "--key={tls_key}"], id="secret-tls"),
    pytest.param(["create", "deployment", "pair", "--image=nginx:1.27", "--image=redis:7"], id="deployment-two"),
]


@pytest.mark.parametrize("args", CREATES)
def test_decoded_body_equals_the_json_kubectl_prints(
    recorder: Recorder, files: dict[str, Path], args: list[str]
) -> None:
    args = [a.format(**files) for a in args]
    end = args.index("--") if "--" in args else len(args)
    expected = json.loads(recorder.kubectl(*args[:end], "--dry-run=client", "-o", "json", *args[end:]).stdout)
    path, content_type, body = recorder.sent(*args)
    assert content_type == protobuf.CONTENT_TYPE
    assert body.startswith(protobuf.MAGIC)
    assert protobuf.decode_request(body, recorder.schema) == expected
    assert path.split("?")[0].endswith("s")


@pytest.mark.parametrize(
    ("args", "attributes"),
    [
        (["get", "pods"], {"namespace": "demo", "verb": "get", "resource": "pods"}),
        (
            ["list", "deployments.apps", "--subresource=scale", "-n", "shop"],
            {"namespace": "shop", "verb": "list", "group": "apps", "resource": "deployments", "subresource": "scale"},
        ),
        (["delete", "secrets", "--all-namespaces"], {"verb": "delete", "resource": "secrets"}),
    ],
)
def test_auth_can_i_sends_a_self_subject_access_review(
    recorder: Recorder, args: list[str], attributes: dict[str, str]
) -> None:
    assert recorder.kubectl("auth", "can-i", *args).stdout.strip() == "yes"
    path, content_type, body = recorder.posts[-1]
    assert path.startswith("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert content_type == protobuf.CONTENT_TYPE
    review = protobuf.decode_request(body, recorder.schema)
    assert review["kind"] == "SelfSubjectAccessReview"
    assert review["apiVersion"] == "authorization.k8s.io/v1"
    assert review["metadata"] == {}
    assert review["spec"] == {"resourceAttributes": attributes}


def test_auth_can_i_on_a_non_resource_url(recorder: Recorder) -> None:
    assert recorder.kubectl("auth", "can-i", "get", "/healthz").stdout.strip() == "yes"
    review = protobuf.decode_request(recorder.posts[-1][2], recorder.schema)
    assert review["spec"] == {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


def test_auth_whoami_sends_a_self_subject_review(recorder: Recorder) -> None:
    done = recorder.kubectl("auth", "whoami", "-o", "json")
    assert json.loads(done.stdout)["status"]["userInfo"]["username"] == "tester"
    review = protobuf.decode_request(recorder.posts[-1][2], recorder.schema)
    assert review == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {},
        "status": {"userInfo": {}},
    }


def test_drain_evicts_with_the_body_the_decoder_gives(recorder: Recorder) -> None:
    # kubectl 1.37 was observed to send this Eviction as JSON; decode whichever it sends.
    path, content_type, body = recorder.sent("drain", "worker", "--grace-period=7", "--timeout=20s")
    assert path == "/api/v1/namespaces/demo/pods/web-1/eviction"
    if content_type == protobuf.CONTENT_TYPE:
        eviction = protobuf.decode_request(body, recorder.schema)
    else:
        assert content_type == "application/json"
        eviction = json.loads(body)
    assert eviction == {
        "kind": "Eviction",
        "apiVersion": "policy/v1",
        "metadata": {"name": "web-1", "namespace": "demo"},
        "deleteOptions": {"gracePeriodSeconds": 7},
    }


def test_create_token_sends_a_token_request(recorder: Recorder) -> None:
    path, _, body = recorder.sent("create", "token", "robot", "--duration=1h", "--audience=api", "--audience=vault")
    assert path.startswith("/api/v1/namespaces/demo/serviceaccounts/robot/token")
    request = protobuf.decode_request(body, recorder.schema)
    assert request["kind"] == "TokenRequest"
    assert request["spec"]["expirationSeconds"] == 3600
    assert request["spec"]["audiences"] == ["api", "vault"]


def test_the_schema_knows_the_kinds_kubectl_sends(schema: protobuf.Schema) -> None:
    for api_version, kind in [
        ("v1", "Namespace"),
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "CronJob"),
        ("policy/v1", "Eviction"),
        ("policy/v1", "DeleteOptions"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authentication.k8s.io/v1", "SelfSubjectReview"),
        ("coordination.k8s.io/v1", "Lease"),
        ("events.k8s.io/v1", "Event"),
    ]:
        index = schema.type_for(api_version, kind)
        assert index is not None, (api_version, kind)
        assert schema.types[index].kind == "struct"
    pod = schema.types[schema.type_for("v1", "Pod") or 0]
    assert [(f.json, f.number) for f in pod.fields if not f.inline] == [("metadata", 1), ("spec", 2), ("status", 3)]
    assert schema.go_version.startswith("go1.")


def test_reading_the_binary_is_fast_and_the_disk_cache_round_trips(kubectl_path: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    fresh = protobuf.read_schema(kubectl_path)
    assert time.perf_counter() - started < 3.0
    cached = protobuf.load_schema(kubectl_path, cache=tmp_path)
    files = list(tmp_path.glob("kubectl-protobuf-*.json"))
    assert len(files) == 1
    assert cached == fresh
    assert protobuf.Schema.from_json(json.loads(files[0].read_bytes())) == fresh
    assert protobuf.load_schema(kubectl_path, cache=tmp_path) is cached


def test_kubectl_is_found_through_upkeep_kubectl(kubectl_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPKEEP_KUBECTL", str(kubectl_path))
    assert protobuf.find_kubectl() == kubectl_path
    assert os.access(protobuf.find_kubectl(), os.X_OK)
