"""The operator's own HTTP server on ``--http HOST:PORT``: ``/metrics``, ``/healthz`` and the webhook receivers.

One aiohttp server per operator, started by a ``kopf.on.startup`` handler and stopped by a
``kopf.on.cleanup`` handler on the registry given to ``register``, so it lives exactly as
long as the operator and a test's second operator gets a server of its own. The routes
come from the modules that own them (``metrics.routes``, ``alerts.routes``); this module
only serves them.

A port that cannot be bound (taken, or not allowed) ends the operator at once with one
line naming ``--http``: an operator without its receivers would silently lose alerts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kopf
from aiohttp import web

from upkeep import settings as settings_

__all__ = ["HEALTH_PATH", "MAX_BODY", "HttpServer", "Route", "parse_listen", "register"]

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
MAX_BODY = 8 * 1024 * 1024
"""Bytes a request body may have. Alertmanager sends every alert of a group in one request
(no ``max_alerts`` by default); 8 MiB holds thousands of alerts and still bounds memory."""
EXIT_USAGE = 2
"""The CLI's exit code for a usage error (a malformed ``--http``)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One route of the server."""

    method: str
    """``GET`` or ``POST``."""
    path: str
    handler: Handler


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8081`` for IPv6) as (host, port); ValueError saying what is wrong."""
    host, separator, port_text = listen.rpartition(":")
    if not separator or not host:
        raise ValueError(f"{listen!r} is not HOST:PORT (e.g. 127.0.0.1:8081)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{listen!r}: the port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{listen!r}: the port must be between 0 and 65535")
    return host, port


class HttpServer:
    """An aiohttp server for a fixed set of routes; ``start`` binds, ``stop`` closes."""

    def __init__(self, host: str, port: int, routes: Sequence[Route]) -> None:
        self.host = host
        self.port = port
        self.routes = tuple(routes)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL it serves (the port bound, when 0 was asked)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; OSError when the address cannot be bound."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get(HEALTH_PATH, _healthz)
        for route in self.routes:
            app.router.add_route(route.method, route.path, route.handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses  # the port bound, when 0 was asked
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        """Stop serving (requests under way get aiohttp's shutdown grace)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def register(
    registry: kopf.OperatorRegistry, settings: settings_.OperatorSettings, routes: Sequence[Route]
) -> HttpServer | None:
    """Serve ``routes`` on ``settings.http.listen`` while the operator runs; None when it is None (``--http none``).

    A malformed ``--http`` exits here (code 2), before the operator starts.
    """
    listen = settings.http.listen
    if listen is None:
        return None
    try:
        host, port = parse_listen(listen)
    except ValueError as error:
        raise SystemExit(_usage(f"upkeep run: --http {error}")) from None
    server = HttpServer(host, port, routes)

    async def start(**_: Any) -> None:
        try:
            await server.start()
        except OSError as error:
            # SystemExit passes through Kopf's handler machinery and ends the process with one line.
            raise SystemExit(
                f"upkeep run: cannot serve HTTP on {listen} (--http): {error.strerror or error}; "
                "pick another HOST:PORT with --http, or --http none"
            ) from None
        paths = ", ".join([HEALTH_PATH, *(route.path for route in routes)])
        logger.info("serving %s on %s", paths, server.url)

    async def stop(**_: Any) -> None:
        await server.stop()

    kopf.on.startup(id="http-server", registry=registry)(start)
    kopf.on.cleanup(id="http-server", registry=registry)(stop)
    return server


def _usage(message: str) -> int:
    """Write a usage error and give the exit code for it."""
    sys.stderr.write(message + "\n")
    return EXIT_USAGE
