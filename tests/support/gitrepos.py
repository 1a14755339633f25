"""Real git repositories for tests: made and committed to with the git binary, served over smart HTTP on 127.0.0.1.

The server is dulwich's WSGI application under wsgiref in a thread (dulwich's own ``web-daemon``
command answers 404 to everything here), optionally behind a basic-auth check, stopped at the end.
It takes pushes too (``git-receive-pack``), behind the same check, unless served ``read_only``: a
push to a branch of a ``WorkRepo`` moves the branch there, and ``WorkRepo.git`` then sees it.
git runs with ``HOME`` and ``GIT_CONFIG_NOSYSTEM`` pointed away from the machine's configuration.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref import simple_server

import dulwich.repo
import dulwich.server
import dulwich.web

__all__ = ["GitServer", "WorkRepo", "git_env", "serve"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def git_env(home: Path) -> dict[str, str]:
    """The environment for test git commands: no system or user configuration, fixed dates."""
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
        GIT_AUTHOR_DATE="2026-01-01T00:00:00Z",
        GIT_COMMITTER_DATE="2026-01-01T00:00:00Z",
    )
    return env


@dataclass
class WorkRepo:
    """A repository with a work tree, committed to by the git binary; ``path`` is what a server serves."""

    path: Path
    home: Path

    @classmethod
    def create(cls, path: Path, *, branch: str = "main") -> WorkRepo:
        home = path.parent / f".{path.name}-home"
        home.mkdir(parents=True, exist_ok=True)
        repo = cls(path, home)
        path.mkdir(parents=True, exist_ok=True)
        repo.git("init", "--quiet", f"--initial-branch={branch}")
        return repo

    def git(self, *args: str) -> str:
        """Run git in the repository (with a test identity) and return its standard output."""
        return subprocess.run(
            ["git", "-c", "user.name=Upkeep Test", "-c", "user.email=test@upkeep.invalid", *args],
            cwd=self.path,
            env=git_env(self.home),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def commit(self, files: Mapping[str, str | None], message: str = "change") -> str:
        """Write (or, for None, delete) ``files`` and commit them all; returns the new commit's SHA."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, *, annotated: bool = False) -> None:
        self.git("tag", *(["-a", "-m", name] if annotated else []), name)


@dataclass
class GitServer:
    """Repositories served over git's smart HTTP protocol; ``url(name)`` is a repository's address."""

    port: int
    token: str | None = None
    requests: list[str] = field(default_factory=list)
    """Every request as ``METHOD /path``, in order."""

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _recorded(app: WsgiApp, requests: list[str], expected_authorization: str | None, read_only: bool) -> WsgiApp:
    """``app`` behind a log of requests and, with ``expected_authorization``, a check of that header."""

    def checked(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        requests.append(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}")
        if expected_authorization is not None and environ.get("HTTP_AUTHORIZATION") != expected_authorization:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Length", "0")])
            return [b""]
        pushing = environ.get("PATH_INFO", "").endswith("/git-receive-pack") or "service=git-receive-pack" in str(
            environ.get("QUERY_STRING", "")
        )
        if read_only and pushing:
            start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"read only\n"]
        return app(environ, start_response)

    return checked


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silent: pytest output is for failures."""


@contextlib.contextmanager
def serve(
    repos: Mapping[str, Path], *, token: str | None = None, username: str = "x-access-token", read_only: bool = False
) -> Iterator[GitServer]:
    """Serve ``repos`` (name → repository path) at ``http://127.0.0.1:<port>/<name>`` until the block ends.

    With ``token``, every request must carry HTTP basic auth ``username:token`` or is answered 401.
    Pushes are taken (dulwich's receive-pack) unless ``read_only``, which answers them 403.
    """
    opened = {f"/{name}": dulwich.repo.Repo(str(path)) for name, path in repos.items()}
    backend = dulwich.server.DictBackend(dict[str, dulwich.server.BackendRepo](opened))
    requests: list[str] = []
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode() if token else None
    app = _recorded(dulwich.web.make_wsgi_chain(backend), requests, expected, read_only)
    httpd = simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    server = GitServer(port=httpd.server_port, token=token, requests=requests)
    thread = threading.Thread(target=httpd.serve_forever, name="git-http", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        for repository in opened.values():
            repository.close()
