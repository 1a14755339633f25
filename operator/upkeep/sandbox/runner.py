"""Starting and stopping a sandbox: in the foreground, detached, or on a thread (for tests).

A running sandbox leaves a run file (pid, URL, kubeconfig) in its home directory, so
`upkeep sandbox down` and `status` find it. With a state directory the objects, the
resourceVersion counter and the admin token persist; without one, everything is in memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiohttp import web

from upkeep.sandbox import certificates, server
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store, Write

__all__ = ["Endpoint", "ThreadedSandbox", "default_home", "load_tokens", "read_run_file", "serve", "write_kubeconfig"]

CONTEXT = "upkeep-sandbox"


def default_home() -> Path:
    return Path(os.environ.get("UPKEEP_SANDBOX_HOME", Path.home() / ".upkeep" / "sandbox"))


@dataclass(frozen=True)
class Endpoint:
    """Where a running sandbox answers, and how to reach it."""

    url: str
    token: str
    kubeconfig: Path
    pid: int


def load_tokens(path: Path) -> dict[str, server.User]:
    """A static token file as kube-apiserver reads it: ``token,user,uid,"group1,group2"`` per line."""
    import csv

    tokens: dict[str, server.User] = {}
    with path.open(encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise ValueError(f"{path}: each line needs at least token,user")
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            tokens[row[0].strip()] = server.User(row[1].strip(), row[2].strip() if len(row) > 2 else "", groups)
    return tokens


def _admin_token(state: Path | None) -> str:
    if state is None:
        return secrets.token_urlsafe(24)
    path = state / "admin-token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    state.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return token


def write_kubeconfig(path: Path, url: str, token: str, ca_pem: bytes) -> None:
    """A kubeconfig with the context ``upkeep-sandbox`` (namespace default), readable by its owner only."""
    authority = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url, "certificate-authority-data": authority}}],
        "users": [{"name": f"{CONTEXT}-admin", "user": {"token": token}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": f"{CONTEXT}-admin", "namespace": "default"}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


def _config(state: Path | None, token_file: Path | None, admin: bool = False) -> tuple[server.SandboxConfig, str]:
    token = _admin_token(state)
    tokens = {token: server.User("upkeep-sandbox-admin", "admin", ("system:masters", "system:authenticated"))}
    if token_file is not None:
        tokens.update(load_tokens(token_file))
    return server.SandboxConfig(tokens=tokens, admin=admin, signing_key=_signing_key(state)), token


def _signing_key(state: Path | None) -> bytes:
    """The service-account token key: kept in the state directory, so tokens outlive a restart."""
    if state is None:
        return secrets.token_bytes(32)
    path = state / "service-account.key"
    if path.exists():
        return path.read_bytes()
    state.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    path.write_bytes(key)
    path.chmod(0o600)
    return key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_atomically(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``path`` so that a reader sees the old content or the new, never a part."""
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text, encoding=encoding)
    partial.replace(path)


def read_run_file(home: Path) -> Endpoint | None:
    """The sandbox that ``home`` says is running, if its process is alive."""
    path = home / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent, or not written yet
    try:
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError):
        return None
    return Endpoint(str(data["url"]), str(data["token"]), Path(data["kubeconfig"]), int(data["pid"]))


def _tls(folder: Path) -> tuple[ssl.SSLContext, bytes]:
    found = certificates.ensure_certificates(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(found.cert_file, found.key_file)
    return context, found.ca_pem


def ready(url: str, timeout: float = 1.0) -> bool:
    """Whether the sandbox at ``url`` answers /readyz (its certificate is not checked: loopback only)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout, context=context) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


async def _serve(
    port: int,
    state: Path | None,
    kubeconfig: Path,
    home: Path,
    token_file: Path | None,
    announce: bool,
    admin: bool = False,
    simulation: SimulationSettings | None = None,
    metrics_port: int | None = None,
) -> None:
    store = Store(state)
    config, token = _config(state, token_file, admin)
    app = server.build_app(store, config, simulation)
    context, ca_pem = _tls(state / "tls" if state else home / "tls")
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port or _free_port(), ssl_context=context)
    await site.start()
    actual = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"https://127.0.0.1:{actual}"
    write_kubeconfig(kubeconfig, url, token, ca_pem)
    home.mkdir(parents=True, exist_ok=True)
    _write_atomically(
        home / "run.json",
        json.dumps({"pid": os.getpid(), "url": url, "token": token, "kubeconfig": str(kubeconfig)}),
        encoding="utf-8",
    )
    metrics_runner: web.AppRunner | None = None
    if metrics_port is not None:
        metrics_runner = web.AppRunner(server.build_metrics_app(app), access_log=None, handle_signals=False)
        await metrics_runner.setup()
        metrics_site = web.TCPSite(metrics_runner, "127.0.0.1", metrics_port)
        await metrics_site.start()
        actual_metrics = metrics_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if announce:
            print(f"sandbox: Prometheus metrics on http://127.0.0.1:{actual_metrics}/metrics")
    if announce:
        print(f"sandbox: Kubernetes API on {url} (state: {state or 'in memory'})")
        print(f"sandbox: kubeconfig {kubeconfig} (context {CONTEXT})")
        print(f"  export KUBECONFIG={kubeconfig}")
        print("  kubectl get namespaces")
        print("sandbox: Ctrl-C or `upkeep sandbox down` stops it", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        store.close_all_watches()
        await runner.cleanup()
        store.close()
        with contextlib.suppress(FileNotFoundError):
            (home / "run.json").unlink()
        if announce:
            print("sandbox: stopped", flush=True)


def serve(
    *,
    port: int,
    state: Path | None,
    kubeconfig: Path | None,
    home: Path,
    token_file: Path | None,
    admin: bool = False,
    simulation: SimulationSettings | None = None,
    metrics_port: int | None = None,
) -> None:
    """Run a sandbox in the foreground until SIGINT or SIGTERM."""
    asyncio.run(
        _serve(
            port,
            state,
            kubeconfig or home / "kubeconfig",
            home,
            token_file,
            announce=True,
            admin=admin,
            simulation=simulation,
            metrics_port=metrics_port,
        )
    )


def post_fault(url: str, token: str, body: dict[str, object], timeout: float = 10.0) -> dict[str, object]:
    """Ask the sandbox at ``url`` for a fault (it must run with --admin); returns its answer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # loopback only, and the token is the sandbox's own
    request = urllib.request.Request(
        f"{url}/upkeep-sandbox/faults",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as error:
        try:
            detail = str(json.loads(error.read() or b"{}").get("message") or error.reason)
        except ValueError:
            detail = str(error.reason)
        if error.code == 404 and detail == "the server could not find the requested resource":
            raise RuntimeError(
                "this sandbox serves no fault endpoint: start it with `upkeep sandbox up --admin`"
            ) from None
        raise RuntimeError(f"the sandbox refused the fault: {detail}") from None


class ThreadedSandbox:
    """A sandbox on a thread of this process, for tests: ``with ThreadedSandbox() as sandbox: ...``."""

    def __init__(
        self,
        state: Path | None = None,
        *,
        kubeconfig: Path,
        token_file: Path | None = None,
        bookmark_interval: float = 10.0,
        admin: bool = False,
        simulation: SimulationSettings | None = None,
        metrics: bool = False,
    ) -> None:
        self.admin = admin
        self.simulation = simulation
        self.metrics = metrics
        self.metrics_url = ""
        """http://127.0.0.1:PORT/metrics when ``metrics`` is on: the simulated cluster's Prometheus metrics."""
        self._metrics_runner: web.AppRunner | None = None
        self.state = state
        self.kubeconfig = kubeconfig
        self.token_file = token_file
        self.bookmark_interval = bookmark_interval
        self.url = ""
        self.token = ""
        self.ca_pem = b""
        self.store: Store | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> ThreadedSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="upkeep-sandbox", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the sandbox did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"the sandbox failed to start: {self._error}") from self._error

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
        except BaseException as error:
            self._error = error
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _start(self) -> None:
        self.store = Store(self.state)
        config, self.token = _config(self.state, self.token_file, self.admin)
        config.bookmark_interval = self.bookmark_interval
        app = server.build_app(self.store, config, self.simulation)
        context, self.ca_pem = _tls(self.state / "tls" if self.state else self.kubeconfig.parent / "tls")
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"https://127.0.0.1:{port}"
        write_kubeconfig(self.kubeconfig, self.url, self.token, self.ca_pem)
        if self.metrics:
            self._metrics_runner = web.AppRunner(server.build_metrics_app(app), access_log=None, handle_signals=False)
            await self._metrics_runner.setup()
            metrics_site = web.TCPSite(self._metrics_runner, "127.0.0.1", 0)
            await metrics_site.start()
            metrics_port = metrics_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    async def _cleanup(self) -> None:
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        if self.store is not None:
            self.store.close_all_watches()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.store is not None:
            self.store.close()

    def call(self, function: object) -> None:
        """Run a callable on the sandbox's loop (for faults in tests)."""
        assert self._loop is not None
        done = threading.Event()

        def run() -> None:
            try:
                function()  # type: ignore[operator]
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def writes(self) -> list[Write]:
        """Every write request clients made so far, oldest first (the store's journal, read on its loop)."""
        assert self.store is not None
        store = self.store
        found: list[Write] = []
        self.call(lambda: found.extend(store.journal))
        return found

    @contextlib.contextmanager
    def listening(self, listener: Callable[[Write], None]) -> Iterator[None]:
        """Within the block ``listener`` hears every write request as it is done, on the sandbox's loop and
        before the client is answered: a test can stop a client at an exact point of its work."""
        assert self.store is not None
        listeners = self.store.write_listeners
        self.call(lambda: listeners.append(listener))
        try:
            yield
        finally:
            self.call(lambda: listeners.remove(listener))

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(30)


@contextlib.contextmanager
def environment(kubeconfig: Path) -> Iterator[None]:
    """KUBECONFIG set to ``kubeconfig`` inside the block."""
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
