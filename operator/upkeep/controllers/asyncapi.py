"""The Kubernetes API on the operator's event loop: aiohttp requests with the official client's credentials.

The official client blocks, so each call used to run on a thread of its own. Under a hundred incidents at once
that meant a hundred calls on 32 threads, each waiting for the interpreter's lock between every read and write
of its socket while the event loop, busy with the watches, held it: about half a second per call that the API
server answered in ten milliseconds (bench/remediation.py). Here the calls are coroutines on the loop that Kopf
already runs, over one pooled connection set, and nothing waits for a thread.

Credentials are found as the official client finds them (the in-cluster service account, else the kubeconfig)
and read from its ``Configuration`` at most every ``CREDENTIALS_FOR`` seconds and after any 401 (the request is
then sent once more), so a token the client refreshes (a projected service-account token, an exec plugin) is the
current one. Reading them costs more than it seems: the client's refresh hook reloads the kubeconfig and looks
up proxies in the environment, a twentieth of the operator's time when it was done per request.

Errors are ``ApiError`` with the HTTP ``status`` (and the API's ``Status`` as ``body``), which the callers read
as they read the official client's ``ApiException``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import weakref
from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["CREDENTIALS_FOR", "ApiError", "AsyncApi", "close_all", "object_path"]

CREDENTIALS_FOR = 10.0
"""Seconds the auth headers read from the client's ``Configuration`` are used before being read again."""


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"({status}) {reason}: {body[:500]}")
        self.status = status
        self.reason = reason
        self.body = body


class AsyncApi:
    """Requests to the API server of ``kubeconfig`` (None: in-cluster, else the default kubeconfig)."""

    def __init__(self, kubeconfig: str | None = None, *, connections: int = 64, timeout: float = 30.0) -> None:
        self._kubeconfig = kubeconfig
        self._connections = connections
        self._timeout = timeout
        self._configuration: Any = None
        self._auth: tuple[float, dict[str, str]] | None = None
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        _OPEN.add(self)

    def configuration(self) -> Any:
        """The official client's ``Configuration`` these requests authenticate with (loaded once)."""
        if self._configuration is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            if self._kubeconfig is not None:
                config.load_kube_config(config_file=self._kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                try:
                    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                except config.ConfigException:
                    config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            self._configuration = configuration
        return self._configuration

    def _ssl(self, configuration: Any) -> ssl.SSLContext | bool:
        if not str(configuration.host).startswith("https"):
            return False
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        for gone in [other for other in self._sessions if other.is_closed()]:
            del self._sessions[gone]  # a loop that ended (a test's asyncio.run): its connections went with it
        session = self._sessions.get(loop)
        if session is None or session.closed:
            configuration = self.configuration()
            connector = aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl(configuration))
            session = aiohttp.ClientSession(
                base_url=str(configuration.host).rstrip("/") + "/",
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                json_serialize=json.dumps,
            )
            self._sessions[loop] = session
        return session

    def _credentials(self) -> dict[str, str]:
        """The client's own auth headers (a bearer token, refreshed by its hook when it has one), kept a while."""
        now = time.monotonic()
        if self._auth is not None and now - self._auth[0] < CREDENTIALS_FOR:
            return self._auth[1]
        found: dict[str, str] = {}
        for setting in self.configuration().auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                found[str(setting["key"]).title()] = str(setting["value"])
        self._auth = (now, found)
        return found

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", **self._credentials()}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer of ``method path``; ``ApiError`` for a status of 400 or more."""
        data = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            headers = self._headers(content_type if data is not None else None)
            async with self._session().request(
                method, path.lstrip("/"), data=data, headers=headers, params=dict(params or {})
            ) as response:
                text = await response.text()
                if response.status == 401 and attempt == 1:
                    self._auth = None  # a token that expired since it was read: read it again, once
                    continue
                if response.status >= 400:
                    raise ApiError(response.status, response.reason or "", text)
                return json.loads(text) if text else {}
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close this loop's connections (the operator's cleanup)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()


_OPEN: weakref.WeakSet[AsyncApi] = weakref.WeakSet()


async def close_all() -> None:
    """Close the connections of every ``AsyncApi`` on the running loop (``kopf.on.cleanup``)."""
    for api in list(_OPEN):
        await api.close()


def object_path(api_version: str, plural: str, namespace: str = "", name: str = "", subresource: str = "") -> str:
    """The URL path of a collection or an object: ``/api/v1/namespaces/ns/pods/web``, ``/apis/apps/v1/...``."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path
