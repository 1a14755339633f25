"""The GitSource controller: fetch each source on its interval, on spec changes and on signed push webhooks.

One ``kopf.daemon`` per GitSource runs the loop: accept the spec (``engine.acceptance``; an invalid
spec is reported and never fetched), fetch the ref with ``gitops.git`` on a thread, verify the
commit's signature with ``gitops.signatures`` when ``spec.verify`` asks, and write the status.

Choices, and why:

- **The previous artifact stays.** On any failure (unreachable, credentials refused, ref missing,
  a force push, a signature that does not verify) ``status.artifact`` keeps the last good commit:
  Releases go on using it, and ``Ready=False`` says why the new one was not taken.
- **A force push is not followed on its own.** The new commit is named in the condition; a person
  accepts it by annotating the source ``upkeep.dev/accept-history-rewrite=<sha>`` (7 to 40 hex
  digits of the new commit). Pinning ``spec.ref.commit`` works too.
- **Quiet.** Status is written only when it changes, not every interval: ``artifact.fetchedAt``
  is when the revision was first fetched. A ``Fetched`` Event when the revision changes; a Warning
  when a failure's reason changes, not at every interval that fails the same way.
- **Webhooks.** ``POST`` on ``status.webhookPath`` (``spec.webhook.path``, default
  ``/hooks/<namespace>/<name>``) on the operator's HTTP server. The body's HMAC is checked with the
  key ``token`` of ``spec.webhook.secretRef`` (``gitops.webhooks``), read on every request so a
  rotated Secret counts at once; 401 without detail when it does not match, 404 for a path no
  source has, 202 when the fetch is started. The daemon posts a ``WebhookReceived`` Event, so the
  time of the last push is visible without a status write per push.
- **Credentials** come from the Secret of ``spec.secretRef`` in the source's namespace (``token``,
  or ``username`` and ``password``; ``identity`` and ``known_hosts`` for SSH), read at each fetch;
  they are never logged and never written into status, Events or messages.
- Fetches and verifications run on a small pool of threads of their own (``FETCH_THREADS``), so a
  slow server does not take the threads the Kubernetes client's calls run on.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import datetime
import functools
import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import kopf
from aiohttp import web

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import daemons
from upkeep.controllers import events as events_
from upkeep.controllers import http as http_
from upkeep.engine import acceptance, durations
from upkeep.gitops import git, signatures, webhooks
from upkeep.model import conditions

__all__ = [
    "ACCEPT_REWRITE_ANNOTATION",
    "KIND",
    "PLURAL",
    "FetchAuth",
    "GitSourceController",
    "SourceError",
    "credentials",
    "fetch_auth",
    "register",
    "webhook_path",
]

logger = logging.getLogger(__name__)

KIND = "GitSource"
PLURAL = "gitsources"
ACCEPT_REWRITE_ANNOTATION = "upkeep.dev/accept-history-rewrite"
"""Annotation naming the new commit (7 to 40 hex digits) of a rewritten branch that may be taken."""
WEBHOOK_PREFIX = "/hooks"
WEBHOOK_KEY = "token"
"""The data key of ``spec.webhook.secretRef`` that holds the shared HMAC key."""
FETCHED = "Fetched"
VERIFICATION_FAILED = "VerificationFailed"
FETCH_THREADS = 4
"""Fetches (and signature checks) at once in one operator. git fetches are mostly waiting on the network;
four keep a handful of slow servers from delaying every other source, without a thread per source."""
RETRY_AFTER = 30.0
"""Seconds before trying again after the controller itself failed (an API error writing status)."""

T = TypeVar("T")
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""


class SourceCluster(Protocol):
    """What the controller reads and writes besides its watch (``cluster.KubernetesCluster`` is one)."""

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Secret (``data`` base64 as the API returns it), or None when there is none of that name."""
        ...

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        """A JSON merge patch of an Upkeep object (of its status subresource when ``status``)."""
        ...


class SourceError(Exception):
    """A GitSource cannot be fetched as configured: ``reason`` for its condition, ``message`` with the fix."""

    def __init__(self, reason: str, message: str, *, stalled: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.stalled = stalled
        """Retrying cannot help until the spec changes."""


@dataclasses.dataclass(frozen=True)
class FetchAuth:
    """The credentials of a GitSource, as ``git.fetch`` takes them."""

    token: str | None = None
    username: str | None = None
    identity: bytes | None = None
    """SSH: the private key."""
    known_hosts: bytes | None = None
    """SSH: the server's host key lines."""

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``git.fetch`` (``token``, ``username``, ``identity``, ``known_hosts``)."""
        return {
            "token": self.token,
            "username": self.username,
            "identity": self.identity,
            "known_hosts": self.known_hosts,
        }

    def __repr__(self) -> str:  # a token or key must not reach a log through a repr
        hidden = {"token": self.token, "identity": self.identity}
        shown = ", ".join(f"{key}={'***' if value else None}" for key, value in hidden.items())
        return f"FetchAuth({shown}, username={self.username!r}, known_hosts={bool(self.known_hosts)})"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _key(body: Mapping[str, Any]) -> tuple[str, str]:
    metadata = _mapping(body.get("metadata"))
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's values, decoded (``stringData`` only appears in what people write, but take it too)."""
    values = {str(key): base64.b64decode(str(value)) for key, value in _mapping(secret.get("data")).items()}
    for key, value in _mapping(secret.get("stringData")).items():
        values.setdefault(str(key), str(value).encode())
    return values


async def _read_secret(cluster: SourceCluster, namespace: str, name: str, field: str) -> dict[str, bytes]:
    secret = await cluster.get_secret(namespace, name)
    if secret is None:
        raise SourceError(
            "SecretNotFound", f"the Secret {name!r} of {field} is not in namespace {namespace}: create it there"
        )
    return _secret_data(secret)


async def fetch_auth(cluster: SourceCluster, namespace: str, gitsource_body: Mapping[str, Any]) -> FetchAuth:
    """The credentials of a GitSource from its ``spec.secretRef`` (none without one).

    For http(s): ``token`` (sent with the user name ``username`` when the Secret has one), or ``username``
    and ``password``. For SSH: ``identity`` (the private key) and ``known_hosts``. ``SourceError``
    (``SecretNotFound``, ``InvalidSecret``) when the Secret is missing or has none of these.
    """
    reference = _mapping(_mapping(gitsource_body.get("spec")).get("secretRef"))
    name = str(reference.get("name") or "")
    if not name:
        return FetchAuth()
    data = await _read_secret(cluster, namespace, name, "spec.secretRef")
    username = data["username"].decode().strip() if data.get("username") else None
    ssh = {"identity": data.get("identity") or None, "known_hosts": data.get("known_hosts") or None}
    if data.get("token"):
        return FetchAuth(data["token"].decode().strip(), username, **ssh)
    if data.get("password") and username:
        return FetchAuth(data["password"].decode().strip(), username, **ssh)
    if ssh["identity"] or ssh["known_hosts"]:
        return FetchAuth(None, username, **ssh)
    raise SourceError(
        "InvalidSecret",
        f"the Secret {name!r} of spec.secretRef has none of the keys token, username and password, or identity "
        "and known_hosts: add the ones the URL needs",
    )


async def credentials(cluster: SourceCluster, namespace: str, gitsource_body: Mapping[str, Any]) -> str | None:
    """The token (or password) of a GitSource, for ``git.fetch(..., token=...)``; None without ``secretRef``.

    ``fetch_auth`` gives the user name too, for a Secret with ``username`` and ``password``.
    """
    return (await fetch_auth(cluster, namespace, gitsource_body)).token


def webhook_path(gitsource_body: Mapping[str, Any]) -> str | None:
    """The path that receives the source's pushes: ``spec.webhook.path``, default ``/hooks/<ns>/<name>``.

    None when the source has no ``spec.webhook``.
    """
    webhook = _mapping(gitsource_body.get("spec")).get("webhook")
    if not isinstance(webhook, Mapping):
        return None
    namespace, name = _key(gitsource_body)
    return str(webhook.get("path") or f"{WEBHOOK_PREFIX}/{namespace}/{name}")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class _Source:
    """What this process knows of one GitSource between its daemon's rounds."""

    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    latest: Mapping[str, Any] | None = None
    """The newest body the watch delivered."""
    status: dict[str, Any] | None = None
    """The status this process wrote last (newer than what the watch may have delivered yet)."""
    seen: tuple[Any, ...] | None = None
    """(generation, accept annotation): a change of either wakes the daemon."""
    artifact_for: tuple[str, str] | None = None
    """(url, ref) the artifact in status was fetched for; another one is no ancestor to check against."""
    warned: str = ""
    """The reason of the last Warning posted; "" after a success, so the next failure is told again."""
    invalid_told: int | None = None
    """The generation whose invalid spec was told in an Event."""
    pushes: list[str] = dataclasses.field(default_factory=list)
    """Webhook pushes not yet told in an Event: the header each was verified under."""
    verdicts: dict[tuple[str, str, str], signatures.Verdict] = dataclasses.field(default_factory=dict)
    """Signature verdicts by (commit, provider, digest of the trusted keys): a commit is checked once."""


@dataclasses.dataclass(frozen=True)
class _Outcome:
    """One round's result: the artifact to keep in status, and the Ready condition to set."""

    artifact: dict[str, Any] | None
    ready: bool
    reason: str
    message: str
    stalled: bool = False
    new_revision: bool = False


class GitSourceController:
    """Fetches every GitSource of the operator's namespaces; ``routes()`` serves their webhooks."""

    def __init__(
        self,
        settings: settings_.OperatorSettings,
        cluster: SourceCluster,
        *,
        post_event: EventPoster = events_.post,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.cache_dir = Path(settings.gitops.cache_path())
        self._post_event = post_event
        self._clock = clock
        self._sources: dict[tuple[str, str], _Source] = {}
        self._hooks: dict[str, set[tuple[str, str]]] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    # -- what others call

    def routes(self) -> list[http_.Route]:
        """The webhook receiver: any path not taken by another route, answered 404 unless a source has it."""
        return [http_.Route("*", "/{path:.*}", self.receive)]

    def kick(self, namespace: str, name: str) -> bool:
        """Fetch this source now instead of at its next interval; False when this process does not know it."""
        source = self._sources.get((namespace, name))
        if source is None:
            return False
        source.wake.set()
        return True

    def close(self) -> None:
        """Let the fetch threads go (a fetch under way ends by its own timeout)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- the watch

    def observe(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Every watch event of a GitSource: keep its webhook path, wake its daemon when its spec or the
        accept annotation changed (not for the status writes of this controller)."""
        key = _key(body)
        for keys in self._hooks.values():
            keys.discard(key)
        self._hooks = {path: keys for path, keys in self._hooks.items() if keys}
        if deleted:
            self._sources.pop(key, None)
            return
        path = webhook_path(body)
        if path is not None:
            self._hooks.setdefault(path, set()).add(key)
        source = self._source(key)
        source.latest = dict(body)
        metadata = _mapping(body.get("metadata"))
        seen = (metadata.get("generation"), _mapping(metadata.get("annotations")).get(ACCEPT_REWRITE_ANNOTATION))
        if source.seen is not None and seen != source.seen:
            source.wake.set()
        source.seen = seen

    def _source(self, key: tuple[str, str]) -> _Source:
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = _Source()
        return source

    # -- the daemon

    async def run(self, body: Mapping[str, Any], stopped: Any) -> None:
        """Fetch one source on its interval and when woken, until the daemon is stopped (``stopped``: Kopf's flag)."""
        key = _key(body)
        source = self._source(key)
        if source.latest is None:
            source.latest = body
        while not stopped:
            source.wake.clear()
            try:
                delay = await self.reconcile(source.latest or body)
            except Exception:
                logger.exception("gitsource %s/%s: the round failed; trying again in %gs", *key, RETRY_AFTER)
                delay = RETRY_AFTER
            await daemons.wait_any(source.wake, stopped, delay)

    async def reconcile(self, body: Mapping[str, Any]) -> float | None:
        """One round for one source; seconds until the next (None: only when woken)."""
        namespace, name = key = _key(body)
        source = self._source(key)
        metadata = _mapping(body.get("metadata"))
        generation = int(metadata["generation"]) if metadata.get("generation") is not None else None
        spec = _mapping(body.get("spec"))
        current = dict(source.status if source.status is not None else _mapping(body.get("status")))
        for push in source.pushes:
            self._post_event(body, "Normal", "WebhookReceived", f"push notification ({push}) at {self._stamp()}")
        source.pushes.clear()

        verdict = acceptance.assess(body)
        if not verdict.accepted:
            status = {**current, **acceptance.status_patch(body, verdict), "phase": "Failed"}
            await self._write(source, body, current, status)
            if source.invalid_told != generation:
                source.invalid_told = generation
                self._post_event(body, "Warning", verdict.reason, verdict.message)
            return None

        accepted_conditions = conditions.set_condition(
            current.get("conditions"),
            conditions.Condition(acceptance.ACCEPTED, "True", verdict.reason, verdict.message, generation),
        )
        if spec.get("suspend"):
            return None
        ready = conditions.find(current.get("conditions"), conditions.READY)
        if ready is None or ready.observed_generation != generation or ready.reason == "NotReconciled":
            # The first visit of this generation says it is under way before a fetch that may take a while.
            progressing = {
                **current,
                "observedGeneration": generation,
                "conditions": conditions.mark_reconciling(
                    accepted_conditions, generation=generation, message="Fetching the repository"
                ),
            }
            progressing["phase"] = _phase(progressing)
            current = await self._write(source, body, current, progressing)
            accepted_conditions = list(current.get("conditions") or [])

        interval = durations.parse_duration(str(spec.get("interval") or "1m")).total_seconds()
        outcome = await self._fetch(source, body, _mapping(current.get("artifact")) or None)
        if outcome.ready:
            marked = conditions.mark_ready(
                accepted_conditions, reason=outcome.reason, message=outcome.message, generation=generation
            )
        else:
            marked = conditions.mark_failed(
                accepted_conditions,
                reason=outcome.reason,
                message=outcome.message,
                generation=generation,
                stalled=outcome.stalled,
            )
        status = {**current, "observedGeneration": generation, "conditions": marked}
        status["artifact"] = outcome.artifact
        status["webhookPath"] = webhook_path(body)
        status["phase"] = _phase(status)
        await self._write(source, body, current, status)

        if outcome.ready:
            source.warned = ""
            if outcome.new_revision:
                logger.info("gitsource %s/%s: %s", namespace, name, outcome.message)
                self._post_event(body, "Normal", FETCHED, outcome.message)
        elif outcome.reason != source.warned:
            source.warned = outcome.reason
            logger.warning("gitsource %s/%s: %s: %s", namespace, name, outcome.reason, outcome.message)
            self._post_event(body, "Warning", outcome.reason, outcome.message)
        return None if outcome.stalled else interval

    def _stamp(self) -> str:
        return _timestamp(self._clock())

    async def _write(
        self, source: _Source, body: Mapping[str, Any], current: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Patch the status when it differs from ``current``; the status in force afterwards."""
        wanted = {key: value for key, value in status.items() if value is not None}
        if wanted == {key: value for key, value in current.items() if value is not None}:
            return dict(current)
        patch = {key: wanted.get(key) for key in {*current, *wanted}}  # None removes a key (merge patch)
        namespace, name = _key(body)
        written = await self.cluster.patch_custom(PLURAL, namespace, name, {"status": patch}, status=True)
        source.status = dict(_mapping(written.get("status")))
        return source.status

    # -- fetching

    async def _in_thread(self, call: Callable[[], T]) -> T:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="upkeep-git")
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def _fetch(self, source: _Source, body: Mapping[str, Any], previous: Mapping[str, Any] | None) -> _Outcome:
        """Fetch, check the history and the signature; the artifact to keep and the Ready condition."""
        namespace, name = _key(body)
        spec = _mapping(body.get("spec"))
        url = str(spec.get("url") or "")
        try:
            ref = git.Ref.from_spec(cast(Mapping[str, str] | None, spec.get("ref")))
        except ValueError as error:
            return _Outcome(dict(previous) if previous else None, False, "InvalidSpec", f"spec.ref: {error}", True)
        keep = dict(previous) if previous else None
        timeout = durations.parse_duration(str(spec.get("timeout") or "60s")).total_seconds()
        identity = (url, str(ref))
        previous_sha = str((previous or {}).get("commit") or "") or None
        same_source = source.artifact_for == identity or (
            source.artifact_for is None and str((previous or {}).get("revision") or "").startswith(f"{ref.name}@")
        )
        try:
            auth = await fetch_auth(self.cluster, namespace, body)
            artifact = await self._fetch_accepting(
                body, url, ref, auth, previous_sha if ref.kind == "branch" and same_source else None, timeout
            )
        except SourceError as error:
            return _Outcome(keep, False, error.reason, error.message, error.stalled)
        except git.HistoryRewritten as error:
            return _Outcome(keep, False, error.reason, _rewritten_message(error, namespace, name))
        except git.FetchError as error:
            return _Outcome(keep, False, error.reason, f"{error.message}; {_fix_for(error.reason)}")
        except ValueError as error:
            # Not stalled: the fix may be in a Secret (known_hosts), whose change does not wake the daemon.
            return _Outcome(keep, False, "InvalidSource", f"spec.url: {error}")

        verified: bool = False
        note = ""
        verify = spec.get("verify")
        if isinstance(verify, Mapping):
            try:
                verdict = await self._verify(source, namespace, artifact, verify)
            except SourceError as error:
                return _Outcome(keep, False, error.reason, f"{error.message} (spec.verify.secretRef)", error.stalled)
            if not verdict.verified:
                still = f"; {keep['revision']} stays in use" if keep else ""
                return _Outcome(
                    keep,
                    False,
                    VERIFICATION_FAILED,
                    f"{artifact.revision} is not used: {verdict.message} ({verdict.reason}){still}",
                )
            verified, note = True, f"; {verdict.message}"

        source.artifact_for = identity
        same = bool(previous) and (previous or {}).get("revision") == artifact.revision
        fetched_at = str((previous or {}).get("fetchedAt")) if same and (previous or {}).get("fetchedAt") else None
        kept = {
            "revision": artifact.revision,
            "commit": artifact.sha,
            "fetchedAt": fetched_at or _timestamp(artifact.fetched_at),
            "verified": verified,
        }
        return _Outcome(kept, True, FETCHED, f"fetched {artifact.revision}{note}", new_revision=not same)

    async def _fetch_accepting(
        self,
        body: Mapping[str, Any],
        url: str,
        ref: git.Ref,
        auth: FetchAuth,
        previous_sha: str | None,
        timeout: float,
    ) -> git.Artifact:
        """``git.fetch``, taking a rewritten branch's new commit when the accept annotation names it."""
        fetch = functools.partial(git.fetch, url, ref, self.cache_dir, timeout=timeout, **auth.options())
        try:
            return await self._in_thread(functools.partial(fetch, previous_sha=previous_sha))
        except git.HistoryRewritten as error:
            annotations = _mapping(_mapping(body.get("metadata")).get("annotations"))
            accepted = str(annotations.get(ACCEPT_REWRITE_ANNOTATION) or "").strip().lower()
            if len(accepted) < 7 or not error.sha.startswith(accepted):
                raise
            # Accepted: the new commit is the base now; should the branch have moved on again, it must descend from it.
            return await self._in_thread(functools.partial(fetch, previous_sha=error.sha))

    async def _verify(
        self, source: _Source, namespace: str, artifact: git.Artifact, verify: Mapping[str, Any]
    ) -> signatures.Verdict:
        provider = cast(signatures.Provider, str(verify.get("provider") or "gpg"))
        secret_name = str(_mapping(verify.get("secretRef")).get("name") or "")
        keys = await _read_secret(self.cluster, namespace, secret_name, "spec.verify.secretRef")
        digest = hashlib.sha256(
            b"".join(name.encode() + b"\0" + value + b"\0" for name, value in sorted(keys.items()))
        ).hexdigest()
        cache_key = (artifact.sha, provider, digest)
        known = source.verdicts.get(cache_key)
        if known is not None:
            return known
        verdict = await self._in_thread(
            functools.partial(signatures.verify_commit, artifact, artifact.sha, provider, keys)
        )
        if verdict.reason != signatures.VERIFIER_FAILED:
            if len(source.verdicts) > 64:
                source.verdicts.clear()
            source.verdicts[cache_key] = verdict
        return verdict

    # -- webhooks

    async def receive(self, request: web.Request) -> web.StreamResponse:
        """A push notification: 202 and a fetch at once when signed with a source's key; 401; 404."""
        keys = sorted(self._hooks.get(request.path, ()))
        if not keys:
            raise web.HTTPNotFound()
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        payload = await request.read()
        accepted = 0
        for namespace, name in keys:
            source = self._sources.get((namespace, name))
            body = source.latest if source is not None else None
            webhook = _mapping(_mapping(_mapping(body).get("spec")).get("webhook"))
            secret_name = str(_mapping(webhook.get("secretRef")).get("name") or "")
            try:
                data = await _read_secret(self.cluster, namespace, secret_name, "spec.webhook.secretRef")
            except SourceError as error:
                logger.warning("gitsource %s/%s: webhook refused: %s", namespace, name, error.message)
                continue
            except Exception as error:
                logger.warning("gitsource %s/%s: webhook refused: cannot read its Secret: %s", namespace, name, error)
                continue
            check = webhooks.check(request.headers, payload, data.get(WEBHOOK_KEY, b"").strip())
            if not check.accepted:
                logger.info("gitsource %s/%s: webhook on %s refused: %s", namespace, name, request.path, check.why)
                continue
            if source is not None:
                source.pushes.append(check.header)
            accepted += self.kick(namespace, name)
        if not accepted:
            return web.Response(status=401)
        return web.Response(status=202, text="accepted\n")


def _phase(status: Mapping[str, Any]) -> str:
    """The one-word summary, from the Ready condition."""
    ready = conditions.find(status.get("conditions"), conditions.READY)
    if ready is None or ready.status == "Unknown":
        return "Pending"
    return "Ready" if ready.status == "True" else "Failed"


_FIXES = {
    "Unreachable": "check spec.url and that the server answers from the operator's network (spec.timeout)",
    "AuthenticationFailed": (
        "check the Secret of spec.secretRef: a token with read access (key token), or username and password"
    ),
    "RefNotFound": "push the ref, or set spec.ref to a branch, tag or commit that exists",
}


def _fix_for(reason: str) -> str:
    return _FIXES.get(reason, "see the operator's log")


def _rewritten_message(error: git.HistoryRewritten, namespace: str, name: str) -> str:
    return (
        f"{error.message}; the new commit {error.sha} is not used. To take it: kubectl annotate gitsource "
        f"-n {namespace} {name} --overwrite {ACCEPT_REWRITE_ANNOTATION}={error.sha}"
    )


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    cluster: SourceCluster | None = None,
) -> GitSourceController:
    """Register the GitSource watch and fetch daemon on ``registry``; the controller (for its routes) is returned."""
    controller = GitSourceController(settings, cluster or cluster_.KubernetesCluster())

    async def on_source(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.observe(body, deleted=type == "DELETED")

    async def fetcher(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
        await controller.run(body, stopped)

    async def cleanup(**_: Any) -> None:
        controller.close()

    kopf.on.event(GROUP, VERSION, PLURAL, id="gitsources", registry=registry)(on_source)
    kopf.daemon(GROUP, VERSION, PLURAL, id="gitsource-fetch", registry=registry, cancellation_timeout=5.0)(fetcher)
    kopf.on.cleanup(id="gitsources-cleanup", registry=registry)(cleanup)
    return controller
