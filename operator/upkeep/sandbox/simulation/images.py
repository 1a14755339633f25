"""The image catalog: which images a simulated registry has, and what a container of each does.

A container's behaviour follows from what its manifest says: the image (and tag), the command
and arguments, the environment, and its memory limit. The catalog (``images.yaml``, documented in
docs/sandbox-images.md) lists images with the tags that exist, their sizes, and a profile: whether
the image serves until stopped, exits on its own, or is a shell that runs the pod's command; how
much memory it uses and whether that grows; how long it takes to become ready; what it logs; and
the application metrics it would expose. A fault (faults.py) overrides the profile.

Everything here is pure: durations are in the seconds of an object's spec (the kubelet divides
them by ``SimulationSettings.time_scale``), times are seconds since the epoch.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import hashlib
import math
import os
import random
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

__all__ = [
    "CATALOG_ENV",
    "Behaviour",
    "Catalog",
    "CatalogError",
    "CommandOutcome",
    "Image",
    "InvalidImage",
    "LogContext",
    "Logs",
    "Profile",
    "PullFailure",
    "Reference",
    "activate",
    "active",
    "app_metrics_profile",
    "container_env",
    "go_duration",
    "interpret_command",
    "parse_duration",
    "parse_quantity",
    "parse_reference",
    "quote",
    "render_log",
]

CATALOG_ENV = "UPKEEP_SANDBOX_IMAGES"
"""Environment variable naming a catalog file to use instead of the default one."""

DEFAULT_CATALOG = Path(__file__).with_name("images.yaml")

RUN_MODES = ("serve", "exit", "shell")
FAULT_CRASH_AFTER = 2.0
"""Seconds a container under the crashloop fault runs before it dies."""
FAULT_OOM_AFTER = 3.0
"""Seconds a container under the oom fault takes to reach its memory limit."""


class CatalogError(ValueError):
    """A catalog file that cannot be read; the message names the file and the field."""


# quantities and durations


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity ("128Mi", "1.5G", "500m", "1e9", 42) as a number; ValueError if it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    found = _QUANTITY.match(str(value).strip())
    if not found:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = found.group(1), found.group(2) or ""
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not a quantity: {value!r}") from None
    if suffix[:1] in ("e", "E"):
        return base * Decimal(10) ** int(suffix[1:])
    return base * _SUFFIXES[suffix]


def _bytes(value: Any) -> int:
    return math.ceil(parse_quantity(value))


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from a Go-style duration ("1m30s", "500ms") or a number of seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"not a duration: {value!r}")
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    position, total = 0, 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            break
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
        position = part.end()
    if position != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (write e.g. 30s, 1m30s, 500ms)")
    return total


def go_duration(seconds: float) -> str:
    """``seconds`` as Go prints a time.Duration truncated to the millisecond: 200ms, 1.5s, 1m20s, 5m0s."""
    millis = int(max(seconds, 0.0) * 1000 + 1e-6)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def quote(text: str) -> str:
    """``text`` quoted as Go's %q quotes it, for messages that copy the kubelet's."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


# image references


_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """An image reference as containerd reads it: ``nginx`` is ``docker.io/library/nginx:latest``."""

    written: str
    """As the manifest wrote it."""
    domain: str
    path: str
    tag: str
    """The tag, "latest" when neither a tag nor a digest was written."""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def normalized(self) -> str:
        """The fully qualified name a container runtime reports, e.g. docker.io/library/nginx:1.27."""
        text = self.repository
        if self.tag and (not self.digest or self.tagged):
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def tagged(self) -> bool:
        """Whether the reference names a tag of its own (not only a digest, not the default "latest")."""
        base = self.written.split("@", 1)[0]
        return ":" in base.rsplit("/", 1)[-1]

    @property
    def requested(self) -> str:
        """The image the kubelet pulls and names in its events: as written, with ":latest" if it has no tag."""
        if self.tagged or self.digest:
            return self.written
        return f"{self.written}:latest"


@dataclass(frozen=True)
class InvalidImage:
    """A reference that cannot be parsed: the kubelet reports InvalidImageName."""

    written: str
    message: str


def parse_reference(text: str) -> Reference | InvalidImage:
    """Parse an image reference with Docker's normalisation; InvalidImage with the kubelet's message if invalid."""
    written = text

    def invalid(reason: str) -> InvalidImage:
        return InvalidImage(written, f"couldn't parse image name {quote(written)}: invalid reference format{reason}")

    if not text or text != text.strip():
        return invalid("")
    remainder, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        return invalid("")
    name, tag = remainder, ""
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            return invalid("")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not _DOMAIN.match(domain):
            return invalid("")
    else:
        domain, path = "docker.io", name
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if path != path.lower():
        return invalid(f": repository name ({path}) must be lowercase")
    if not _PATH.match(path) or len(f"{domain}/{path}") > 255:
        return invalid("")
    return Reference(written, domain, path, tag or "latest", digest)


# the catalog's records


@dataclass(frozen=True)
class Logs:
    """What a container of an image writes to its log. Lines may hold placeholders (see render_log)."""

    start: tuple[str, ...] = ()
    """Written when the container starts."""
    lines: tuple[str, ...] = ()
    """One of these (picked at random, deterministically) every ``every`` seconds while it runs."""
    every: float = 0.0
    exit: tuple[str, ...] = ()
    """The last lines before it exits on its own (a crash's message)."""
    oom: tuple[str, ...] = ()
    """The last lines before the kernel kills it for memory."""
    stop: tuple[str, ...] = ()
    """Written when it stops on SIGTERM."""


@dataclass(frozen=True)
class Profile:
    """What a container of an image (or of one of its tags) does when it runs."""

    run: str = "serve"
    """serve: runs until stopped; exit: exits on its own after ``run_for``; shell: a shell as the default
    command, which exits at once without a terminal, and runs the pod's command when it gives one."""
    entrypoint: tuple[str, ...] = ()
    """The image's ENTRYPOINT, which the pod's ``args`` are given to when the pod sets no ``command``."""
    run_for: float = 0.0
    exit_code: int = 1
    memory: int = 16 * 2**20
    """Bytes the process uses once started."""
    memory_growth: int = 0
    """Bytes per second it grows by (a leak); above the container's memory limit it is OOMKilled."""
    startup: float = 0.0
    """Seconds from start until it answers probes (a slow start)."""
    ready: bool = True
    """False: readiness probes never pass."""
    live: bool = True
    """False: liveness probes never pass."""
    stop_time: float | None = 0.1
    """Seconds it takes to exit on SIGTERM; None: it ignores SIGTERM and is killed after the grace period."""
    stop_exit_code: int = 0
    size: int = 50_000_000
    logs: Logs = field(default_factory=Logs)
    metrics: Mapping[str, Any] | None = None
    """Simulated application metrics: requestsPerSecond, errorRatio, latencyBuckets ([[le, share], ...])."""


@dataclass(frozen=True)
class EnvRule:
    """Profile changes that apply when a container's environment matches ``when``."""

    when: tuple[tuple[str, str | None], ...]
    """(name, glob pattern); None: the variable must be unset."""
    changes: Mapping[str, Any]

    def matches(self, env: Mapping[str, str]) -> bool:
        for name, pattern in self.when:
            if pattern is None:
                if name in env:
                    return False
            elif name not in env or not fnmatch.fnmatchcase(env[name], pattern):
                return False
        return True


@dataclass(frozen=True)
class TagVariant:
    pattern: str
    changes: Mapping[str, Any]
    digest: str = ""


@dataclass(frozen=True)
class Entry:
    """One repository of the catalog."""

    repository: str
    """Normalised, e.g. docker.io/library/nginx."""
    base: Mapping[str, Any]
    tags: tuple[TagVariant, ...]
    env: tuple[EnvRule, ...] = ()
    description: str = ""

    def variant(self, tag: str, digest: str) -> TagVariant | None:
        """The first tag entry naming ``tag`` (a pinned ``digest`` wins over the tag, as in containerd)."""
        for variant in self.tags:
            if digest:
                if variant.digest == digest:
                    return variant
                if _literal(variant.pattern) and _digest_of(self.repository, variant.pattern) == digest:
                    return variant
            elif fnmatch.fnmatchcase(tag, variant.pattern):
                return variant
        return None


def _literal(pattern: str) -> bool:
    return not any(char in pattern for char in "*?[")


def _digest_of(repository: str, tag: str) -> str:
    return "sha256:" + hashlib.sha256(f"{repository}:{tag}".encode()).hexdigest()


@dataclass(frozen=True)
class Image:
    """An image the simulated registry has: a catalog entry resolved for one reference."""

    reference: Reference
    digest: str
    profile: Profile
    entry: Entry

    @property
    def name(self) -> str:
        """What a runtime reports as the container's image, e.g. docker.io/library/nginx:1.27."""
        if self.reference.digest and not self.reference.tagged:
            return f"{self.reference.repository}@{self.digest}"
        return f"{self.reference.repository}:{self.reference.tag}"

    @property
    def image_id(self) -> str:
        """The container status' imageID, e.g. docker.io/library/nginx@sha256:..."""
        return f"{self.reference.repository}@{self.digest}"

    @property
    def size(self) -> int:
        return self.profile.size


@dataclass(frozen=True)
class PullFailure:
    """An image the registry does not have: the CRI's error, as the kubelet reports it."""

    reference: Reference
    message: str


# the catalog


_PROFILE_KEYS = {
    "run": "run",
    "entrypoint": "entrypoint",
    "runFor": "run_for",
    "exitCode": "exit_code",
    "memory": "memory",
    "memoryGrowth": "memory_growth",
    "startup": "startup",
    "ready": "ready",
    "live": "live",
    "stopTime": "stop_time",
    "stopExitCode": "stop_exit_code",
    "size": "size",
    "logs": "logs",
    "metrics": "metrics",
}
_LOG_KEYS = ("start", "lines", "every", "exit", "oom", "stop")
_METRIC_KEYS = ("requestsPerSecond", "errorRatio", "latencyBuckets")
KNOWN_REGISTRIES = frozenset(
    {
        "docker.io",
        "registry.k8s.io",
        "ghcr.io",
        "quay.io",
        "gcr.io",
        "mcr.microsoft.com",
        "public.ecr.aws",
        "registry.gitlab.com",
    }
)


class Catalog:
    """The images the simulated registry has (``Catalog.load``), and what their containers do."""

    def __init__(self, entries: Iterable[Entry], source: str = "<memory>") -> None:
        self.source = source
        self.entries: dict[str, Entry] = {}
        for entry in entries:
            self.entries.setdefault(entry.repository, entry)
        self.registries = KNOWN_REGISTRIES | {repository.split("/", 1)[0] for repository in self.entries}
        self._cache: dict[str, Image | PullFailure | InvalidImage] = {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalog:
        """The catalog in ``path``; without one, the file $UPKEEP_SANDBOX_IMAGES names, else the default."""
        chosen = Path(path) if path else Path(os.environ[CATALOG_ENV]) if os.environ.get(CATALOG_ENV) else None
        target = chosen or DEFAULT_CATALOG
        try:
            text = target.read_text(encoding="utf-8")
        except OSError as error:
            raise CatalogError(f"{target}: cannot read the image catalog: {error.strerror or error}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise CatalogError(f"{target}: not YAML: {error}") from None
        return cls.from_data(data, str(target))

    @classmethod
    def from_data(cls, data: Any, source: str = "<memory>") -> Catalog:
        """A catalog from parsed YAML (a mapping with ``images``); CatalogError names what is wrong."""
        if not isinstance(data, Mapping) or not isinstance(data.get("images"), list):
            raise CatalogError(f"{source}: an image catalog is a mapping with a list `images`")
        unknown = sorted(set(data) - {"images", "defaults"})
        if unknown:
            raise CatalogError(f"{source}: unknown top-level fields {', '.join(unknown)}")
        defaults = _profile_changes(data.get("defaults") or {}, f"{source}: defaults")
        entries = []
        for index, item in enumerate(data["images"]):
            entries.append(_entry(item, defaults, f"{source}: images[{index}]"))
        return cls(entries, source)

    # looking images up

    def resolve(self, image: str) -> Image | PullFailure | InvalidImage:
        """What pulling ``image`` gives: the image, the registry's error, or an unparsable name."""
        found = self._cache.get(image)
        if found is not None:
            return found
        result = self._resolve(image)
        if len(self._cache) < 10_000:
            self._cache[image] = result
        return result

    def _resolve(self, image: str) -> Image | PullFailure | InvalidImage:
        reference = parse_reference(image)
        if isinstance(reference, InvalidImage):
            return reference
        entry = self.entries.get(reference.repository)
        variant = entry.variant(reference.tag, reference.digest) if entry is not None else None
        if entry is None or variant is None:
            return PullFailure(reference, self.pull_error(reference, known_repository=entry is not None))
        changes = {**entry.base, **variant.changes}
        if "logs" in entry.base and "logs" in variant.changes:
            changes["logs"] = {**entry.base["logs"], **variant.changes["logs"]}
        profile = _build_profile(changes)
        digest = variant.digest or reference.digest or _digest_of(reference.repository, reference.tag)
        return Image(reference, digest, profile, entry)

    def lookup(self, image: str) -> Image | None:
        """The catalog's image for a reference ("nginx:1.27", "docker.io/library/nginx:1.27"), or None."""
        found = self.resolve(image)
        return found if isinstance(found, Image) else None

    def pull_error(self, reference: Reference, *, known_repository: bool = True) -> str:
        """The error a containerd node reports for an image it cannot pull."""
        name = reference.normalized
        prefix = f'failed to pull and unpack image "{name}": failed to resolve reference "{name}"'
        if reference.domain not in self.registries:
            target = f"https://{reference.domain}/v2/{reference.path}/manifests/{reference.digest or reference.tag}"
            host = reference.domain.split(":", 1)[0]
            return (
                f'rpc error: code = Unknown desc = {prefix}: failed to do request: Head "{target}": '
                f"dial tcp: lookup {host}: no such host"
            )
        if reference.domain == "docker.io" and not known_repository:
            return (
                f"rpc error: code = Unknown desc = {prefix}: pull access denied, repository does not exist or may "
                "require authorization: server message: insufficient_scope: authorization failed"
            )
        return f"rpc error: code = NotFound desc = {prefix}: {name}: not found"

    # behaviour

    def behaviour(
        self,
        container: Mapping[str, Any],
        *,
        fault: str | None = None,
        memory_limit: int | None = None,
        init: bool = False,
        image: Image | None = None,
        hostname: str = "",
    ) -> Behaviour:
        """What ``container`` (a pod spec's container) does once started, given its image, command, args,
        env and memory limit, and the fault in force (faults.BEHAVIOURS) if any. ``hostname``: the pod's,
        which its processes see in $HOSTNAME."""
        if image is None:
            image = self.lookup(str(container.get("image") or ""))
        env = {**BASE_ENV, "HOSTNAME": hostname or "localhost", **container_env(container)}
        profile = image.profile if image is not None else Profile(run="shell")
        declared = container_env(container)
        for rule in image.entry.env if image is not None else ():
            if rule.matches(declared):
                profile = _apply(profile, rule.changes)
        command = [str(part) for part in container.get("command") or []]
        args = [str(part) for part in container.get("args") or []]
        outcome: CommandOutcome | None = None
        if command or args:
            argv = command + args if command else [*profile.entrypoint, *args]
            outcome = interpret_command(argv, env)
        return _behaviour(profile, outcome, fault=fault, memory_limit=memory_limit, init=init, image=image)


BASE_ENV = MappingProxyType(
    {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    }
)
"""What every container's environment has besides its own variables (HOSTNAME is the pod's name)."""


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """A container's environment as far as its spec tells (valueFrom counts as set, to an unknown value)."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if isinstance(item, Mapping) and item.get("name"):
            env[str(item["name"])] = str(item.get("value") or "")
    return env


def _apply(profile: Profile, changes: Mapping[str, Any]) -> Profile:
    merged = dict(changes)
    if "logs" in merged:
        current = {key: getattr(profile.logs, key) for key in _LOG_KEYS}
        current.update(merged["logs"])
        merged["logs"] = Logs(**current)
    return dataclasses.replace(profile, **merged)


def _build_profile(changes: Mapping[str, Any]) -> Profile:
    values = dict(changes)
    if "logs" in values:
        values["logs"] = Logs(**values["logs"])
    return Profile(**values)


def _entry(item: Any, defaults: Mapping[str, Any], where: str) -> Entry:
    if not isinstance(item, Mapping):
        raise CatalogError(f"{where}: each image is a mapping with `repository` and `tags`")
    repository = item.get("repository")
    if not isinstance(repository, str) or not repository:
        raise CatalogError(f"{where}.repository: required, a repository such as nginx or ghcr.io/org/app")
    parsed = parse_reference(repository)
    if isinstance(parsed, InvalidImage) or parsed.tagged or parsed.digest:
        raise CatalogError(f"{where}.repository: {repository!r} is not a repository name (no tag or digest)")
    own = {key: value for key, value in item.items() if key not in ("repository", "tags", "env", "description")}
    base = {**defaults, **_profile_changes(own, where)}
    if "logs" in defaults and "logs" in base and base["logs"] is not defaults["logs"]:
        base["logs"] = {**defaults["logs"], **base["logs"]}
    tags = item.get("tags")
    if not isinstance(tags, list) or not tags:
        raise CatalogError(f'{where}.tags: required, a list of tags or tag patterns (e.g. "1.27", "1.27.*")')
    variants = []
    for index, tag in enumerate(tags):
        if isinstance(tag, str | int | float) and not isinstance(tag, bool):
            variants.append(TagVariant(str(tag), {}))
            continue
        if not isinstance(tag, Mapping) or not isinstance(tag.get("name"), str | int | float):
            raise CatalogError(f"{where}.tags[{index}]: a tag, or a mapping with `name` and profile fields")
        rest = {key: value for key, value in tag.items() if key not in ("name", "digest")}
        digest = str(tag.get("digest") or "")
        if digest and not _DIGEST.match(digest):
            raise CatalogError(f"{where}.tags[{index}].digest: must be sha256: and 64 hex digits")
        variants.append(TagVariant(str(tag["name"]), _profile_changes(rest, f"{where}.tags[{index}]"), digest))
    rules = []
    for index, rule in enumerate(item.get("env") or []):
        rules.append(_env_rule(rule, f"{where}.env[{index}]"))
    return Entry(parsed.repository, base, tuple(variants), tuple(rules), str(item.get("description") or ""))


def _env_rule(rule: Any, where: str) -> EnvRule:
    if not isinstance(rule, Mapping) or not isinstance(rule.get("when"), Mapping) or not rule["when"]:
        raise CatalogError(f"{where}: an env rule is a mapping with `when` (NAME: pattern, or null for unset)")
    when = tuple(
        (str(name), None if pattern is None else str(pattern)) for name, pattern in sorted(rule["when"].items())
    )
    rest = {key: value for key, value in rule.items() if key != "when"}
    return EnvRule(when, _profile_changes(rest, where))


def _profile_changes(data: Any, where: str) -> dict[str, Any]:
    """Catalog fields (camelCase) checked and converted into Profile field values."""
    if not isinstance(data, Mapping):
        raise CatalogError(f"{where}: must be a mapping")
    unknown = sorted(set(data) - set(_PROFILE_KEYS))
    if unknown:
        raise CatalogError(f"{where}: unknown fields {', '.join(map(str, unknown))}; known: {', '.join(_PROFILE_KEYS)}")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        name = _PROFILE_KEYS[key]
        try:
            changes[name] = _convert(name, value)
        except (ValueError, TypeError) as error:
            raise CatalogError(f"{where}.{key}: {error}") from None
    return changes


def _convert(name: str, value: Any) -> Any:
    if name == "run":
        if value not in RUN_MODES:
            raise ValueError(f"one of {', '.join(RUN_MODES)}")
        return value
    if name == "entrypoint":
        if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
            raise ValueError("a list of strings")
        return tuple(value)
    if name in ("run_for", "startup"):
        return parse_duration(value)
    if name == "stop_time":
        return None if value in (None, "never") else parse_duration(value)
    if name in ("exit_code", "stop_exit_code"):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError("an exit code from 0 to 255")
        return value
    if name in ("memory", "memory_growth", "size"):
        return _bytes(value)
    if name in ("ready", "live"):
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value
    if name == "logs":
        return _logs(value)
    return _metrics(value)


def _logs(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError("a mapping of start, lines, every, exit, oom, stop")
    unknown = sorted(set(value) - set(_LOG_KEYS))
    if unknown:
        raise ValueError(f"unknown fields {', '.join(map(str, unknown))}; known: {', '.join(_LOG_KEYS)}")
    logs: dict[str, Any] = {}
    for key, item in value.items():
        if key == "every":
            logs[key] = parse_duration(item)
        elif isinstance(item, list) and all(isinstance(line, str) for line in item):
            logs[key] = tuple(item)
        else:
            raise ValueError(f"{key}: a list of lines")
    return logs


def _metrics(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"a mapping of {', '.join(_METRIC_KEYS)}")
    unknown = sorted(set(value) - set(_METRIC_KEYS))
    if unknown:
        raise ValueError(f"unknown fields {', '.join(map(str, unknown))}; known: {', '.join(_METRIC_KEYS)}")
    rate = float(value.get("requestsPerSecond", 0.0))
    errors = float(value.get("errorRatio", 0.0))
    if rate < 0 or not 0.0 <= errors <= 1.0:
        raise ValueError("requestsPerSecond must be >= 0 and errorRatio from 0 to 1")
    buckets: list[tuple[float, float]] = []
    for pair in value.get("latencyBuckets") or []:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError("latencyBuckets: pairs [upper bound in seconds, share of requests at or below it]")
        buckets.append((float(pair[0]), float(pair[1])))
    if buckets != sorted(buckets) or any(not 0.0 <= share <= 1.0 for _, share in buckets):
        raise ValueError("latencyBuckets: bounds and shares must rise, shares from 0 to 1")
    return MappingProxyType({"requestsPerSecond": rate, "errorRatio": errors, "latencyBuckets": tuple(buckets)})


# behaviour of one container run


@dataclass(frozen=True)
class Behaviour:
    """What one run of a container does. Durations in spec seconds (the kubelet scales them)."""

    exit_after: float | None
    """Seconds after its start the process ends on its own; None: it runs until stopped."""
    exit_code: int = 0
    reason: str = "Completed"
    """The terminated reason when it ends on its own: Completed, Error or OOMKilled."""
    startup: float = 0.0
    """Seconds until it answers probes."""
    ready: bool = True
    live: bool = True
    stop_time: float | None = 0.1
    """Seconds to exit on SIGTERM; None: ignores it (killed with exit code 137 after the grace period)."""
    stop_exit_code: int = 0
    memory: int = 0
    """Bytes in use once started."""
    logs: Logs = field(default_factory=Logs)
    metrics: Mapping[str, Any] | None = None
    cause: str = "image"
    """What decided it: image, command, or fault:<behaviour>."""


def _behaviour(
    profile: Profile,
    outcome: CommandOutcome | None,
    *,
    fault: str | None,
    memory_limit: int | None,
    init: bool,
    image: Image | None,
) -> Behaviour:
    logs = profile.logs
    cause = "image"
    exit_after: float | None
    stop_time, stop_code = profile.stop_time, profile.stop_exit_code
    if outcome is not None and not outcome.open_ended:
        # the pod's command replaces the image's process
        cause = "command"
        exit_after = outcome.runs_for if outcome.exit_code is not None else None
        exit_code = outcome.exit_code or 0
        logs = Logs(start=outcome.output, lines=outcome.repeated, every=outcome.period)
        memory = 2 * 2**20
        startup, ready, live = 0.0, True, True
        if outcome.ignores_sigterm:
            stop_time, stop_code = None, 137
        metrics = None
    else:
        run = profile.run
        if outcome is not None and run == "shell" and not init:
            run = "serve"  # an unknown program in a shell image: a server of the user's own
        if run == "serve":
            exit_after, exit_code = None, 0
        elif run == "exit":
            exit_after, exit_code = profile.run_for, profile.exit_code
        else:
            exit_after, exit_code = 0.0, 0
            stop_time, stop_code = None, 137
        if init and exit_after is None and outcome is not None:
            exit_after, exit_code = 1.0, 0  # an init container's own program: it does its job and ends
        if outcome is not None and outcome.output:
            logs = dataclasses.replace(logs, start=outcome.output + logs.start)
        memory = profile.memory
        startup, ready, live = profile.startup, profile.ready, profile.live
        metrics = profile.metrics
    reason = "Completed" if exit_code == 0 else "Error"
    growth = profile.memory_growth if cause == "image" else 0
    if fault == "crashloop":
        cause = "fault:crashloop"
        exit_after, exit_code, reason = FAULT_CRASH_AFTER, 1, "Error"
        logs = dataclasses.replace(logs, exit=logs.exit or _FAULT_CRASH_LINES)
    elif fault == "unready":
        cause, ready = "fault:unready", False
    elif fault == "oom":
        cause = "fault:oom"
        limit = memory_limit or 2**30
        growth = max(1, int((limit - min(memory, limit)) / FAULT_OOM_AFTER) + 1)
    if fault != "crashloop" and memory_limit is not None and (memory >= memory_limit or growth > 0):
        oom_after = 0.5 if memory >= memory_limit else (memory_limit - memory) / growth
        if exit_after is None or oom_after < exit_after:
            exit_after, exit_code, reason = oom_after, 137, "OOMKilled"
            if fault == "oom" and not logs.oom:
                logs = dataclasses.replace(logs, oom=_FAULT_OOM_LINES)
    return Behaviour(
        exit_after=exit_after,
        exit_code=exit_code,
        reason=reason,
        startup=startup,
        ready=ready,
        live=live,
        stop_time=stop_time,
        stop_exit_code=stop_code,
        memory=memory,
        logs=logs,
        metrics=metrics,
        cause=cause,
    )


_FAULT_CRASH_LINES = (
    "fatal error: unexpected signal during runtime execution",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a3f21]",
    "(crash injected by `upkeep sandbox fault crashloop`)",
)
_FAULT_OOM_LINES = ("(memory leak injected by `upkeep sandbox fault oom`)",)


# commands


@dataclass(frozen=True)
class CommandOutcome:
    """What a command line does, as far as the simulation understands it."""

    exit_code: int | None
    """Its exit status; None: it runs until stopped."""
    runs_for: float = 0.0
    """Seconds before it exits (sleeps add up)."""
    output: tuple[str, ...] = ()
    """Lines it prints at once."""
    repeated: tuple[str, ...] = ()
    """Lines it prints every ``period`` seconds while it runs (a loop's body)."""
    period: float = 0.0
    open_ended: bool = False
    """It ends in a program the simulation does not know (a server, the image's own process): the image's
    profile decides what happens from there."""
    ignores_sigterm: bool = False
    """A shell as PID 1 without a trap: SIGTERM does nothing, the kubelet kills it after the grace period."""


_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})
_QUICK = frozenset(
    {
        "apk",
        "apt-get",
        "cat",
        "cd",
        "chmod",
        "chown",
        "cp",
        "dig",
        "export",
        "find",
        "git",
        "grep",
        "host",
        "id",
        "ln",
        "ls",
        "mkdir",
        "mv",
        "nc",
        "npm",
        "nslookup",
        "pip",
        "pwd",
        "rm",
        "sed",
        "tar",
        "touch",
        "uname",
        "unset",
        "wait",
        "whoami",
    }
)
"""Programs that do their job at once and succeed, as far as the simulation cares."""
_KEYWORDS = frozenset({"then", "do", "done", "fi", "else", "elif", "esac", "in"})
_PI_50 = "3.14159265358979323846264338327950288419716939937510"


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Forever(Exception):
    """The script runs on from here (a loop without end, a server, sleep infinity)."""


@dataclass
class _Shell:
    """A very small shell: enough to know what `sh -c "..."` in a manifest will do."""

    env: dict[str, str]
    errexit: bool = False
    status: int = 0
    elapsed: float = 0.0
    output: list[str] = field(default_factory=list)
    repeated: tuple[str, ...] = ()
    period: float = 0.0
    open_ended: bool = False
    trapped: bool = False
    steps: int = 0

    def outcome_of(self, argv: Sequence[str]) -> CommandOutcome:
        """Run ``sh [-flags] -c SCRIPT`` (``argv`` without the shell itself)."""
        script: str | None = None
        index = 0
        while index < len(argv) and script is None:
            arg = argv[index]
            if not arg.startswith("-") or len(arg) == 1:
                break
            if "e" in arg[1:]:
                self.errexit = True
            if "c" in arg[1:]:
                script = argv[index + 1] if index + 1 < len(argv) else ""
            index += 1
        if script is None:
            if index < len(argv):
                return CommandOutcome(exit_code=None, open_ended=True)  # a script file of the image's
            return CommandOutcome(exit_code=0)  # an interactive shell without a terminal ends at once
        try:
            tokens = _tokens(script)
            self._list(tokens, 0, len(tokens), execute=True)
        except _Exit as done:
            return self._result(done.code)
        except _Forever:
            return self._result(None)
        return self._result(self.status)

    def _result(self, code: int | None) -> CommandOutcome:
        return CommandOutcome(
            exit_code=code,
            runs_for=self.elapsed,
            output=tuple(self.output[:5000]),
            repeated=self.repeated,
            period=self.period,
            open_ended=self.open_ended and code is None,
            ignores_sigterm=not self.trapped,
        )

    # structure: lists of commands joined by ; && || & and newlines

    def _list(self, tokens: list[str], position: int, end: int, *, execute: bool) -> None:
        run_next = execute
        while position < end:
            token = tokens[position]
            if token in (";", "&") or token in _KEYWORDS:
                run_next = execute
                position += 1
            elif token == "&&":
                run_next = execute and self.status == 0
                position += 1
            elif token == "||":
                run_next = execute and self.status != 0
                position += 1
            else:
                position = self._command(tokens, position, end, execute=run_next)

    def _command(self, tokens: list[str], position: int, end: int, *, execute: bool) -> int:
        self.steps += 1
        if self.steps > 10_000:
            raise _Forever
        token = tokens[position]
        if token in ("while", "until"):
            return self._loop(tokens, position, end, execute=execute)
        if token == "for":
            return self._for(tokens, position, end, execute=execute)
        if token == "if":
            return self._if(tokens, position, end, execute=execute)
        words: list[str] = []
        while position < end and tokens[position] not in (";", "&", "&&", "||"):
            if tokens[position] == "|":
                words = []  # a pipeline's status is its last command's
            elif tokens[position] not in ("{", "}", "(", ")"):
                words.append(tokens[position])
            position += 1
        if execute and words:
            self._simple(words)
        return position

    @staticmethod
    def _closing(tokens: list[str], position: int, end: int, opening: str, closing: str) -> int:
        """The index of the ``closing`` keyword that matches the ``opening`` one at ``position``."""
        depth = 0
        for index in range(position, end):
            if tokens[index] == opening:
                depth += 1
            elif tokens[index] == closing:
                depth -= 1
                if depth == 0:
                    return index
        return end

    def _loop(self, tokens: list[str], position: int, end: int, *, execute: bool) -> int:
        until = tokens[position] == "until"
        do = tokens.index("do", position, end) if "do" in tokens[position:end] else end
        done = self._closing(tokens, do, end, "do", "done")
        if not execute:
            return done + 1
        condition = [word for word in tokens[position + 1 : do] if word != ";"]
        if not until and condition in (["true"], [":"], ["[", "1", "]"]):
            before_output, before_time = len(self.output), self.elapsed
            self._list(tokens, do + 1, done, execute=True)
            self.repeated = tuple(self.output[before_output:])
            del self.output[before_output:]
            self.period = max(self.elapsed - before_time, 1.0)
            self.elapsed = before_time
            raise _Forever
        # a condition the shell cannot truly evaluate (waiting for a service): the wait ends soon
        for _ in range(2):
            self._list(tokens, position + 1, do, execute=True)
            if (self.status == 0) == until:
                break
            self._list(tokens, do + 1, done, execute=True)
        self.status = 0
        return done + 1

    def _for(self, tokens: list[str], position: int, end: int, *, execute: bool) -> int:
        do = tokens.index("do", position, end) if "do" in tokens[position:end] else end
        done = self._closing(tokens, do, end, "do", "done")
        if execute and position + 1 < do:
            name = tokens[position + 1]
            values: list[str] = []
            for word in tokens[position + 3 : do]:
                if word != ";":
                    values.extend(self._expand(word).split())
            for value in values[:1000]:
                self.env[name] = value
                self._list(tokens, do + 1, done, execute=True)
        return done + 1

    def _if(self, tokens: list[str], position: int, end: int, *, execute: bool) -> int:
        fi = self._closing(tokens, position, end, "if", "fi")
        marks: list[tuple[str, int]] = []
        depth = 0
        for index in range(position, fi):
            token = tokens[index]
            if token == "if":
                depth += 1
            elif token == "fi":
                depth -= 1
            elif depth == 1 and token in ("then", "elif", "else"):
                marks.append((token, index))
        if not execute:
            return fi + 1
        bounds = [at for _, at in marks] + [fi]
        condition_start = position + 1
        for number, (keyword, at) in enumerate(marks):
            following = bounds[number + 1]
            if keyword == "then":
                self._list(tokens, condition_start, at, execute=True)
                if self.status == 0:
                    self._list(tokens, at + 1, following, execute=True)
                    return fi + 1
            elif keyword == "elif":
                condition_start = at + 1
            else:
                self._list(tokens, at + 1, following, execute=True)
        return fi + 1

    # one command

    def _expand(self, word: str) -> str:
        def variable(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2) or match.group(3)
            if name == "?":
                return str(self.status)
            if name == "$":
                return "1"
            return self.env.get(name, "")

        word = re.sub(r"\$\(hostname\)|`hostname`", self.env.get("HOSTNAME", "localhost"), word)
        word = re.sub(r"\$\(date[^)]*\)|`date[^`]*`", _date_text(), word)
        return re.sub(r"\$\{(\w+)\}|\$(\w+)|\$([?$])", variable, word)

    def _simple(self, words: list[str]) -> None:
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            name, _, value = words[0].partition("=")
            self.env[name] = self._expand(value)
            words = words[1:]
        negate = bool(words) and words[0] == "!"
        words = [self._expand(word) for word in words[1 if negate else 0 :]]
        if not words:
            self.status = 0
            return
        program, args = os.path.basename(words[0]), words[1:]
        if program == "exec":
            if args:
                self._hand_over(args, final=True)
            return
        if program == "exit":
            raise _Exit((int(args[0]) if args and args[0].lstrip("-").isdigit() else self.status) % 256)
        status = self.builtin(program, args)
        if status is None:
            self._hand_over(words, final=False)
            return
        self.status = (0 if status else 1) if negate else status
        if self.errexit and self.status != 0 and not negate:
            raise _Exit(self.status)

    def builtin(self, program: str, args: list[str]) -> int | None:
        """Run a command this shell knows; its status, or None when it does not know it."""
        if program in ("true", ":", "[", "test") or program in _QUICK:
            return 0
        if program == "false":
            return 1
        if program == "echo":
            words = args[1:] if args[:1] in (["-n"], ["-e"]) else args
            self.output.extend(" ".join(words).replace("\\n", "\n").split("\n"))
            return 0
        if program == "printf":
            if args:
                text = args[0].replace("\\n", "\n")
                for value in args[1:]:
                    text = text.replace("%s", value, 1).replace("%d", value, 1)
                self.output.extend(line for line in text.split("\n") if line)
            return 0
        if program == "sleep":
            seconds = _sleep_seconds(args)
            if seconds is None:
                raise _Forever
            self.elapsed += seconds
            return 0
        if program == "tail" and ("-f" in args or "-F" in args):
            raise _Forever
        if program == "set":
            self.errexit = self.errexit or any(arg.startswith("-") and "e" in arg for arg in args)
            return 0
        if program == "trap":
            self.trapped = self.trapped or any(arg in ("TERM", "SIGTERM", "15", "INT", "EXIT") for arg in args)
            return 0
        if program == "date":
            self.output.append(_date_text())
            return 0
        if program == "hostname":
            self.output.append(self.env.get("HOSTNAME", "localhost"))
            return 0
        if program == "printenv" or (program == "env" and not args):
            if args:
                self.output.extend(self.env[name] for name in args if name in self.env)
                return 0 if all(name in self.env for name in args) else 1
            self.output.extend(f"{name}={value}" for name, value in sorted(self.env.items()))
            return 0
        if program == "ping":
            count = _option(args, "-c")
            if not count or not count.isdigit():
                raise _Forever
            self.elapsed += float(count)
            return 0
        return None

    def _hand_over(self, words: list[str], *, final: bool) -> None:
        """Run a program the shell does not know itself (``final``: it replaces the shell, as exec does)."""
        outcome = _program(words, self.env)
        if outcome is None or outcome.open_ended:
            self.open_ended = True  # the image's own program, or the user's: the image decides
            raise _Forever
        self.output.extend(outcome.output)
        self.elapsed += outcome.runs_for
        if outcome.exit_code is None:
            self.repeated, self.period = outcome.repeated, outcome.period
            raise _Forever
        if final:
            raise _Exit(outcome.exit_code)
        self.status = outcome.exit_code
        if self.errexit and self.status:
            raise _Exit(self.status)


def _tokens(script: str) -> list[str]:
    """Words and the operators ; & && | || of a script (newlines are ;)."""
    text = script.replace("\r", "").replace("\n", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        raw = list(lexer)
    except ValueError:
        raw = text.split()
    tokens: list[str] = []
    for token in raw:
        if token and set(token) <= set(";&|") and token not in ("&&", "||"):
            tokens.extend(token)
        else:
            tokens.append(token)
    return tokens


def _option(args: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name) and len(arg) > len(name):
            return arg[len(name) :]
    return None


def _sleep_seconds(args: Sequence[str]) -> float | None:
    """The seconds `sleep ARGS` waits; None for infinity."""
    total = 0.0
    for arg in args:
        if arg in ("infinity", "inf"):
            return None
        found = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)", arg)
        if found:
            total += float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]
    return total if total < 10**8 else None


def _date_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


def _program(words: Sequence[str], env: Mapping[str, str]) -> CommandOutcome | None:
    """What a program (not a shell script) does; None when the simulation does not know it."""
    program = os.path.basename(words[0])
    args = list(words[1:])
    if program in _SHELLS:
        return _Shell(dict(env)).outcome_of(args)
    if program == "env" and args:
        scoped = dict(env)
        while args and "=" in args[0] and not args[0].startswith("-"):
            name, _, value = args.pop(0).partition("=")
            scoped[name] = value
        return _program(args, scoped) if args else CommandOutcome(exit_code=0)
    if program in ("curl", "wget"):
        if not args:
            return CommandOutcome(exit_code=2, output=(f"{program}: try '{program} --help' for more information",))
        return CommandOutcome(exit_code=0, runs_for=0.2)
    if program.startswith("perl") and any("bpi" in arg for arg in args):
        digits = next((int(found) for arg in args for found in re.findall(r"bpi\((\d+)\)", arg)), 50)
        return CommandOutcome(exit_code=0, runs_for=5.0, output=(_pi(min(digits, 5000)),))
    if program.startswith("python") and "-c" in args:
        at = args.index("-c") + 1
        return _python(args[at] if at < len(args) else "")
    if program.startswith("node") and "-e" in args:
        at = args.index("-e") + 1
        found = re.search(r"process\.exit\((\d+)\)", args[at] if at < len(args) else "")
        return CommandOutcome(exit_code=int(found.group(1)) if found else 0)
    shell = _Shell(dict(env))
    try:
        status = shell.builtin(program, args)
    except _Forever:
        return CommandOutcome(exit_code=None, output=tuple(shell.output))
    if status is None:
        return None
    return CommandOutcome(exit_code=status, runs_for=shell.elapsed, output=tuple(shell.output))


def _python(code: str) -> CommandOutcome:
    output = tuple(re.findall(r"print\(\s*['\"]([^'\"]*)['\"]\s*\)", code))
    if re.search(r"while\s+True\s*:", code):
        return CommandOutcome(exit_code=None, output=output)
    sleeps = sum(float(value) for value in re.findall(r"sleep\(\s*([0-9.]+)\s*\)", code))
    found = re.search(r"(?:sys\.)?exit\(\s*(\d+)\s*\)", code)
    if found:
        return CommandOutcome(exit_code=int(found.group(1)) % 256, runs_for=sleeps, output=output)
    error = re.search(r"\braise\s+(\w+)(?:\((['\"])(.*?)\2\))?", code)
    if error:
        message = f"{error.group(1)}: {error.group(3)}" if error.group(3) else error.group(1)
        trace = ("Traceback (most recent call last):", '  File "<string>", line 1, in <module>', message)
        return CommandOutcome(exit_code=1, runs_for=sleeps, output=output + trace)
    return CommandOutcome(exit_code=0, runs_for=sleeps, output=output)


def _pi(digits: int) -> str:
    """Pi to ``digits`` decimals (Machin's formula in integers), as `perl -Mbignum=bpi -wle 'print bpi(N)'`."""
    if digits <= 50:
        return _PI_50[: digits + 2]
    guard = 10
    unity = 10 ** (digits + guard)

    def arctan_inverse(x: int) -> int:
        total: int = unity // x
        term: int = total
        square, n, sign = x * x, 1, -1
        while term:
            term //= square
            n += 2
            total += sign * (term // n)
            sign = -sign
        return total

    text = str(4 * (4 * arctan_inverse(5) - arctan_inverse(239)) // 10**guard)
    return f"{text[0]}.{text[1:]}"


def interpret_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> CommandOutcome:
    """What a container's command line does: exits (how, after how long, printing what) or runs on.

    ``sh -c "exit 3"``, ``/bin/false``, ``echo hi``, ``sleep 10``, ``sh -c "while true; do echo x; sleep 5;
    done"`` are understood; a program the simulation does not know gives ``open_ended`` (the image decides).
    """
    environment = dict(env or {})
    if not argv:
        return CommandOutcome(exit_code=None, open_ended=True)
    program = os.path.basename(argv[0])
    if program in _SHELLS:
        return _Shell(environment).outcome_of(list(argv[1:]))
    found = _program(argv, environment)
    if found is None:
        return CommandOutcome(exit_code=None, open_ended=True)
    # a program run directly is PID 1: without a handler of its own, SIGTERM is ignored
    return dataclasses.replace(found, ignores_sigterm=program in ("sleep", "tail"))


# logs


@dataclass(frozen=True)
class LogContext:
    """What log lines may mention: ``{pod}``, ``{namespace}``, ``{container}``, ``{pod_ip}``, ``{tag}``."""

    pod: str = ""
    namespace: str = ""
    container: str = ""
    pod_ip: str = ""
    node_ip: str = ""
    tag: str = ""
    seed: str = ""
    """Makes the random parts (client addresses, status codes, latencies) the same on every read."""


_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


def _fill(line: str, moment: float, context: LogContext, rng: random.Random | None, extra: Mapping[str, str]) -> str:
    stamp = datetime.datetime.fromtimestamp(moment, datetime.UTC)

    def replace(match: re.Match[str]) -> str:
        name, spec = match.group(1), match.group(2)
        if name == "time":
            if spec:
                return stamp.strftime(spec)
            return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
        if name in extra:
            return extra[name]
        simple = {
            "pod": context.pod,
            "namespace": context.namespace,
            "container": context.container,
            "pod_ip": context.pod_ip,
            "node_ip": context.node_ip,
            "tag": context.tag,
        }
        if name in simple:
            return simple[name]
        if rng is not None:
            if name == "client_ip":
                return f"10.244.{rng.randint(0, 3)}.{rng.randint(2, 250)}"
            if name == "latency_ms":
                return str(rng.randint(2, 60))
            if name == "bytes":
                return str(rng.randint(200, 9000))
            if name == "hex":
                return f"{rng.getrandbits(64):016x}"
        return match.group(0)

    return _PLACEHOLDER.sub(replace, line)


def render_log(
    behaviour: Behaviour,
    *,
    started: float,
    until: float,
    ending: str | None,
    exit_code: int = 0,
    scale: float = 1.0,
    context: LogContext | None = None,
    tail: int | None = None,
    limit: int = 2000,
) -> list[str]:
    """The log of one container run from ``started`` to ``until`` (epoch seconds).

    ``ending``: None while it runs; "exit" (ended on its own), "oom" (killed for memory) or "stop" (SIGTERM).
    Periodic lines come every ``logs.every / scale`` seconds, each the same on every call. At most ``limit``
    lines (the latest), or ``tail``.
    """
    context = context or LogContext()
    logs = behaviour.logs
    error_ratio = float((behaviour.metrics or {}).get("errorRatio", 0.0))
    head = [_fill(line, started, context, None, {}) for line in logs.start]
    closing: tuple[str, ...] = ()
    if ending == "exit":
        closing = logs.exit
    elif ending == "oom":
        closing = logs.oom
    elif ending == "stop":
        closing = logs.stop
    tail_lines = [_fill(line, until, context, None, {"exit_code": str(exit_code)}) for line in closing]
    wanted = min(limit, tail) if tail is not None else limit
    period = logs.every / scale if logs.every > 0 else 0.0
    body: list[str] = []
    if logs.lines and period > 0 and until > started:
        count = int((until - started) / period)
        room = max(wanted - len(tail_lines), 0)
        first = max(1, count - room + 1)
        for number in range(first, count + 1):
            rng = random.Random(f"{context.seed}:{number}")
            status = "500" if rng.random() < error_ratio else "200"
            line = logs.lines[rng.randrange(len(logs.lines))]
            moment = started + number * period
            body.append(_fill(line, moment, context, rng, {"status": status, "n": str(number)}))
    lines = head + body + tail_lines
    if tail is not None:
        return lines[-tail:] if tail > 0 else []
    return lines[-limit:]


# the active catalog, for readers without a Context


_active: list[Catalog] = []
_default: list[Catalog] = []


def activate(catalog: Catalog) -> None:
    """Make ``catalog`` the one ``app_metrics_profile`` reads (the kubelet calls this when it loads one)."""
    _active[:] = [catalog]


def active() -> Catalog:
    """The catalog the running simulation uses, or the default one."""
    if _active:
        return _active[0]
    if not _default:
        _default.append(Catalog.load())
    return _default[0]


def app_metrics_profile(image: str, catalog: Catalog | None = None) -> Mapping[str, Any] | None:
    """The simulated application metrics of ``image`` (``{"requestsPerSecond": float, "errorRatio": float,
    "latencyBuckets": ((le seconds, cumulative share), ...)}``), or None for an image without any."""
    found = (catalog or active()).lookup(image)
    return found.profile.metrics if found is not None else None
