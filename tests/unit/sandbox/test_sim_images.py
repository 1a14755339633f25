"""The image catalog: references, the default catalog, behaviours from image/command/env/limits/faults, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from upkeep.sandbox.simulation import images

MiB = 2**20


@pytest.fixture(scope="module")
def catalog() -> images.Catalog:
    return images.Catalog.load(images.DEFAULT_CATALOG)


# references


@pytest.mark.parametrize(
    ("written", "repository", "tag", "requested"),
    [
        ("nginx", "docker.io/library/nginx", "latest", "nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx", "1.27", "nginx:1.27"),
        ("library/nginx:1.27", "docker.io/library/nginx", "1.27", "library/nginx:1.27"),
        ("docker.io/library/nginx:1.27", "docker.io/library/nginx", "1.27", "docker.io/library/nginx:1.27"),
        ("index.docker.io/library/nginx:1", "docker.io/library/nginx", "1", "index.docker.io/library/nginx:1"),
        ("curlimages/curl", "docker.io/curlimages/curl", "latest", "curlimages/curl:latest"),
        ("ghcr.io/upkeep-dev/shop:1.0", "ghcr.io/upkeep-dev/shop", "1.0", "ghcr.io/upkeep-dev/shop:1.0"),
        ("localhost:5000/app:v2", "localhost:5000/app", "v2", "localhost:5000/app:v2"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause", "3.10", "registry.k8s.io/pause:3.10"),
    ],
)
def test_references_are_normalised_as_containerd_does(written: str, repository: str, tag: str, requested: str) -> None:
    found = images.parse_reference(written)
    assert isinstance(found, images.Reference)
    assert (found.repository, found.tag, found.requested) == (repository, tag, requested)


def test_a_digest_reference_keeps_its_digest() -> None:
    digest = "sha256:" + "ab" * 32
    found = images.parse_reference(f"nginx@{digest}")
    assert isinstance(found, images.Reference)
    assert found.digest == digest and found.requested == f"nginx@{digest}"
    assert found.normalized == f"docker.io/library/nginx@{digest}"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "NGINX",
            'couldn\'t parse image name "NGINX": invalid reference format: repository name (library/NGINX) '
            "must be lowercase",
        ),
        ("nginx:", 'couldn\'t parse image name "nginx:": invalid reference format'),
        ("nginx@sha256:short", 'couldn\'t parse image name "nginx@sha256:short": invalid reference format'),
        ("", 'couldn\'t parse image name "": invalid reference format'),
    ],
)
def test_invalid_references_say_why(written: str, message: str) -> None:
    found = images.parse_reference(written)
    assert isinstance(found, images.InvalidImage)
    assert found.message == message


# the default catalog


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.27",
        "nginx:1.27.3",
        "nginx:1.27-alpine",
        "busybox",
        "busybox:1.36",
        "alpine:3.20",
        "python:3.12",
        "python:3.12-slim",
        "redis:7",
        "postgres:16",
        "httpd:2.4",
        "node:22",
        "golang:1.24",
        "ubuntu:24.04",
        "debian:12",
        "registry.k8s.io/pause:3.10",
        "curlimages/curl:8.14.1",
        "ghcr.io/upkeep-dev/shop:1.0",
        "ghcr.io/upkeep-dev/shop:1.1-crash",
        "ghcr.io/upkeep-dev/shop:1.2-oom",
        "ghcr.io/upkeep-dev/shop:1.3-unready",
        "ghcr.io/upkeep-dev/shop:1.4-slow",
    ],
)
def test_the_default_catalog_has_the_common_images(catalog: images.Catalog, image: str) -> None:
    found = catalog.lookup(image)
    assert found is not None, image
    assert found.size > 100_000
    assert found.image_id.startswith(found.reference.repository + "@sha256:")


def test_variants_have_their_own_size(catalog: images.Catalog) -> None:
    full, slim = catalog.lookup("python:3.12"), catalog.lookup("python:3.12-slim")
    assert full is not None and slim is not None
    assert slim.size < full.size


def test_missing_images_fail_as_a_registry_says(catalog: images.Catalog) -> None:
    tag = catalog.resolve("nginx:0.0.0-missing")
    assert isinstance(tag, images.PullFailure)
    assert tag.message == (
        'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nginx:0.0.0-missing": '
        'failed to resolve reference "docker.io/library/nginx:0.0.0-missing": '
        "docker.io/library/nginx:0.0.0-missing: not found"
    )
    repository = catalog.resolve("someone/unknown:1")
    assert isinstance(repository, images.PullFailure)
    assert "pull access denied, repository does not exist or may require authorization" in repository.message
    host = catalog.resolve("registry.invalid/app:1")
    assert isinstance(host, images.PullFailure)
    assert "dial tcp: lookup registry.invalid: no such host" in host.message
    untagged = catalog.resolve("ghcr.io/upkeep-dev/shop")
    assert isinstance(untagged, images.PullFailure)  # no :latest in the registry


def test_a_pinned_digest_finds_its_tag(catalog: images.Catalog) -> None:
    tagged = catalog.lookup("registry.k8s.io/pause:3.10")
    assert tagged is not None
    pinned = catalog.lookup(f"registry.k8s.io/pause@{tagged.digest}")
    assert pinned is not None and pinned.digest == tagged.digest
    assert catalog.lookup("registry.k8s.io/pause@sha256:" + "0" * 64) is None


def test_metrics_profiles_for_the_demo_images(catalog: images.Catalog) -> None:
    good = images.app_metrics_profile("ghcr.io/upkeep-dev/shop:1.0", catalog)
    errors = images.app_metrics_profile("ghcr.io/upkeep-dev/shop:1.5-errors", catalog)
    assert good is not None and errors is not None
    assert good["errorRatio"] < 0.01 and errors["errorRatio"] == 0.2
    assert good["requestsPerSecond"] > 0
    buckets = good["latencyBuckets"]
    assert buckets == tuple(sorted(buckets)) and buckets[-1][1] == 1.0
    assert images.app_metrics_profile("busybox:1.36", catalog) is None
    assert images.app_metrics_profile("nginx:0.0.0-missing", catalog) is None


# behaviour


def behaviour(catalog: images.Catalog, **container: Any) -> images.Behaviour:
    fault = container.pop("fault", None)
    limit = container.pop("limit", None)
    init = container.pop("init", False)
    return catalog.behaviour({"name": "app", **container}, fault=fault, memory_limit=limit, init=init, hostname="pod-1")


def test_servers_keep_running_and_demo_images_misbehave(catalog: images.Catalog) -> None:
    assert behaviour(catalog, image="nginx:1.27").exit_after is None
    crash = behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.1-crash")
    assert (crash.exit_after, crash.exit_code, crash.reason) == (3.0, 2, "Error")
    oom = behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.2-oom", limit=256 * MiB)
    assert oom.reason == "OOMKilled" and oom.exit_code == 137
    assert oom.exit_after == pytest.approx((256 - 64) / 32)
    assert behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.3-unready").ready is False
    assert behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.4-slow").startup == 30.0


def test_a_steady_memory_use_above_the_limit_is_killed_at_once(catalog: images.Catalog) -> None:
    found = behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.0", limit=32 * MiB)
    assert found.reason == "OOMKilled" and found.exit_after is not None and found.exit_after < 1
    assert behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.0", limit=128 * MiB).exit_after is None


def test_shell_images_without_a_command_exit_at_once(catalog: images.Catalog) -> None:
    found = behaviour(catalog, image="busybox")
    assert (found.exit_after, found.exit_code, found.reason) == (0.0, 0, "Completed")


@pytest.mark.parametrize(
    ("command", "args", "exit_after", "code"),
    [
        (["/bin/false"], [], 0.0, 1),
        (["false"], [], 0.0, 1),
        (["sh", "-c", "exit 3"], [], 0.0, 3),
        (["sh", "-c"], ["exit 3"], 0.0, 3),
        ([], ["sh", "-c", "exit 4"], 0.0, 4),
        (["echo", "hi"], [], 0.0, 0),
        (["sleep", "30"], [], 30.0, 0),
        (["sh", "-c", "sleep 2; exit 1"], [], 2.0, 1),
        (["sleep", "infinity"], [], None, 0),
        (["sh", "-c", "while true; do echo x; sleep 5; done"], [], None, 0),
        (["/app/server", "--port=8080"], [], None, 0),
    ],
)
def test_commands_decide(
    catalog: images.Catalog, command: list[str], args: list[str], exit_after: float | None, code: int
) -> None:
    found = behaviour(catalog, image="busybox:1.36", command=command, args=args)
    assert (found.exit_after, found.exit_code) == (exit_after, code)
    assert found.reason == ("Completed" if code == 0 else "Error")


def test_a_command_in_a_server_image_replaces_the_server(catalog: images.Catalog) -> None:
    job = behaviour(catalog, image="nginx:1.27", command=["sh", "-c", "echo done"])
    assert (job.exit_after, job.exit_code, job.logs.start) == (0.0, 0, ("done",))
    server = behaviour(catalog, image="nginx:1.27", command=["nginx", "-g", "daemon off;"])
    assert server.exit_after is None and server.logs.start[-1].endswith("start worker process 29")


def test_args_go_to_the_images_entrypoint(catalog: images.Catalog) -> None:
    assert behaviour(catalog, image="curlimages/curl:8.14.1").exit_code == 2
    fetch = behaviour(catalog, image="curlimages/curl:8.14.1", args=["-s", "http://web"])
    assert (fetch.exit_code, fetch.cause) == (0, "command")


def test_init_containers_with_their_own_program_finish(catalog: images.Catalog) -> None:
    found = behaviour(catalog, image="busybox:1.36", command=["/scripts/migrate.sh"], init=True)
    assert found.exit_after is not None and found.exit_code == 0
    served = behaviour(catalog, image="busybox:1.36", command=["/scripts/migrate.sh"])
    assert served.exit_after is None


def test_environment_rules(catalog: images.Catalog) -> None:
    refused = behaviour(catalog, image="postgres:16")
    assert (refused.exit_after, refused.exit_code) == (0.0, 1)
    assert refused.logs.exit[0] == "Error: Database is uninitialized and superuser password is not specified."
    assert behaviour(catalog, image="postgres:16", env=[{"name": "POSTGRES_PASSWORD", "value": "x"}]).exit_after is None
    secret = [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    assert behaviour(catalog, image="postgres:16", env=secret).exit_after is None
    crash = behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.0", env=[{"name": "SHOP_FAIL", "value": "crash"}])
    assert crash.exit_code == 2


def test_faults_override_the_image(catalog: images.Catalog) -> None:
    crash = behaviour(catalog, image="nginx:1.27", fault="crashloop")
    assert (crash.exit_after, crash.exit_code, crash.reason, crash.cause) == (2.0, 1, "Error", "fault:crashloop")
    oom = behaviour(catalog, image="nginx:1.27", fault="oom", limit=512 * MiB)
    assert oom.reason == "OOMKilled" and oom.exit_after == pytest.approx(3.0, rel=0.01)
    assert behaviour(catalog, image="nginx:1.27", fault="unready").ready is False


# commands


@pytest.mark.parametrize(
    ("argv", "code", "output"),
    [
        (["sh", "-c", "set -e; false; echo never"], 1, ()),
        (["sh", "-c", "false || echo recovered"], 0, ("recovered",)),
        (["sh", "-c", "true && exit 7"], 7, ()),
        (["sh", "-c", "for i in 1 2 3; do echo $i; done"], 0, ("1", "2", "3")),
        (["sh", "-c", "if true; then echo yes; else echo no; fi"], 0, ("yes",)),
        (["sh", "-c", "until nslookup db; do sleep 2; done; echo ok"], 0, ("ok",)),
        (["sh", "-c", "echo $HOSTNAME ${GREETING}"], 0, ("pod-1 hello",)),
        (["sh", "-ec", "echo a\necho b\nexit 5"], 5, ("a", "b")),
        (["python3", "-c", "import sys; sys.exit(4)"], 4, ()),
        (["perl", "-Mbignum=bpi", "-wle", "print bpi(10)"], 0, ("3.1415926535",)),
    ],
)
def test_scripts(argv: list[str], code: int, output: tuple[str, ...]) -> None:
    found = images.interpret_command(argv, {"HOSTNAME": "pod-1", "GREETING": "hello"})
    assert (found.exit_code, found.output) == (code, output)


def test_a_loop_prints_every_period() -> None:
    found = images.interpret_command(["sh", "-c", "echo start; while true; do date; echo tick; sleep 5; done"])
    assert found.exit_code is None and found.output == ("start",)
    assert found.repeated[1:] == ("tick",) and found.period == 5.0


def test_pi_has_the_digits() -> None:
    digits = images.interpret_command(["perl", "-Mbignum=bpi", "-wle", "print bpi(100)"]).output[0]
    assert digits.startswith("3.14159265358979323846264338327950288419716939937510582097494459230781")
    assert len(digits) == 102


# logs


def test_logs_repeat_deterministically_and_tail(catalog: images.Catalog) -> None:
    found = behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.0")
    context = images.LogContext(pod="web-1", container="app", tag="1.0", seed="abc")
    first = images.render_log(found, started=1000.0, until=1021.0, ending=None, context=context)
    again = images.render_log(found, started=1000.0, until=1021.0, ending=None, context=context)
    assert first == again
    assert len(first) == 3 + 10  # the start lines, then one line every 2 s
    assert '"version":"1.0","pod":"web-1"' in first[0]
    assert images.render_log(found, started=1000.0, until=1021.0, ending=None, context=context, tail=2) == first[-2:]
    scaled = images.render_log(found, started=1000.0, until=1021.0, ending=None, context=context, scale=20)
    assert len(scaled) == 3 + 210


def test_a_crash_ends_its_log_with_the_reason(catalog: images.Catalog) -> None:
    found = behaviour(catalog, image="ghcr.io/upkeep-dev/shop:1.1-crash")
    lines = images.render_log(found, started=0.0, until=3.0, ending="exit", exit_code=2)
    assert lines[-8] == "panic: runtime error: invalid memory address or nil pointer dereference"
    assert "PAYMENT_URL is not set" in lines[-9]


def test_time_placeholders() -> None:
    logs = images.Logs(start=("{time:%Y/%m/%d %H:%M:%S} [notice] ready", "{time}", "{unknown} stays"))
    found = images.render_log(images.Behaviour(exit_after=None, logs=logs), started=0.0, until=0.0, ending=None)
    assert found == ["1970/01/01 00:00:00 [notice] ready", "1970-01-01T00:00:00.000Z", "{unknown} stays"]


# units and formats


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.2, "200ms"), (1.5, "1.5s"), (10.0, "10s"), (80.0, "1m20s"), (300.0, "5m0s"), (3725.0, "1h2m5s")],
)
def test_go_durations(seconds: float, text: str) -> None:
    assert images.go_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "value"), [("128Mi", 128 * MiB), ("1G", 10**9), ("500m", 0.5), ("1e3", 1000), ("1.5Ki", 1536), (42, 42)]
)
def test_quantities(text: Any, value: float) -> None:
    assert images.parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "value"), [("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), (2, 2.0), ("1h", 3600.0)])
def test_durations(text: Any, value: float) -> None:
    assert images.parse_duration(text) == value


def test_bad_durations_and_quantities() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        images.parse_duration("soon")
    with pytest.raises(ValueError, match="not a quantity"):
        images.parse_quantity("lots")


# catalog files


def test_a_catalog_of_ones_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "images": [
                    {
                        "repository": "registry.example.com/team/api",
                        "size": "80Mi",
                        "tags": ["1.*", {"name": "2.0-rc1", "run": "exit", "exitCode": 3, "runFor": "5s"}],
                        "metrics": {"requestsPerSecond": 5, "errorRatio": 0.1},
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv(images.CATALOG_ENV, str(path))
    own = images.Catalog.load()
    api = own.lookup("registry.example.com/team/api:1.4")
    assert api is not None and api.size == 80 * MiB
    rc = own.behaviour({"image": "registry.example.com/team/api:2.0-rc1"})
    assert (rc.exit_after, rc.exit_code) == (5.0, 3)
    assert own.lookup("nginx:1.27") is None
    assert images.app_metrics_profile("registry.example.com/team/api:1.0", own) == {
        "requestsPerSecond": 5.0,
        "errorRatio": 0.1,
        "latencyBuckets": (),
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"images": "nginx"}, "a mapping with a list `images`"),
        ({"images": [{"tags": ["1"]}]}, r"images\[0\]\.repository: required"),
        ({"images": [{"repository": "nginx:1.27", "tags": ["1"]}]}, "is not a repository name"),
        ({"images": [{"repository": "nginx"}]}, r"images\[0\]\.tags: required"),
        ({"images": [{"repository": "nginx", "tags": ["1"], "run": "fly"}]}, r"images\[0\]\.run: one of serve"),
        ({"images": [{"repository": "nginx", "tags": ["1"], "colour": "red"}]}, "unknown fields colour"),
        ({"images": [{"repository": "nginx", "tags": [{"name": "1", "memory": "lots"}]}]}, r"tags\[0\]\.memory"),
        ({"images": [{"repository": "nginx", "tags": ["1"], "metrics": {"errorRatio": 2}}]}, "errorRatio"),
        ({"images": [{"repository": "nginx", "tags": ["1"], "env": [{"run": "exit"}]}]}, r"env\[0\]: an env rule"),
    ],
)
def test_catalog_errors_name_the_field(data: Any, message: str) -> None:
    with pytest.raises(images.CatalogError, match=message):
        images.Catalog.from_data(data, "mine.yaml")


def test_an_unreadable_catalog_says_so(tmp_path: Path) -> None:
    with pytest.raises(images.CatalogError, match="cannot read the image catalog"):
        images.Catalog.load(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("images: [", encoding="utf-8")
    with pytest.raises(images.CatalogError, match="not YAML"):
        images.Catalog.load(broken)
