"""Kopf handlers, one module per kind: read, call the engine, write status.

Handlers are registered on a registry that is passed in (``register``), never at import
time, so a test or a second operator in one process gets a registry of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from typing import Any

import kopf

from upkeep import settings as settings_
from upkeep.controllers import (
    acceptance,
    alerts,
    asyncapi,
    essence,
    gitsources,
    http,
    incidents,
    metrics,
    notifications,
    playbooks,
    problems,
    releases,
    writeback,
)

__all__ = ["register"]


def register(registry: kopf.OperatorRegistry, settings: settings_.OperatorSettings) -> None:
    """Register every controller of this version, and how to log in, on ``registry``."""
    kopf.on.login(registry=registry, id="login")(_login)

    async def client_threads(**_: Any) -> None:
        """Give the official client's blocking calls ``settings.client.threads`` threads (see ClientSettings)."""
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=settings.client.threads, thread_name_prefix="upkeep-api")
        )

    kopf.on.startup(registry=registry, id="client-threads")(client_threads)

    async def close_connections(**_: Any) -> None:
        """The controllers' own API connections (``asyncapi``) close with the operator."""
        await asyncapi.close_all()

    kopf.on.cleanup(registry=registry, id="api-connections")(close_connections)

    def quieter(settings: kopf.OperatorSettings, **_: Any) -> None:
        """Kopf posts a Kubernetes Event for every handler that succeeds; the controllers post their own.

        Kopf's warnings and errors are still posted. Without this, every accepted object and every
        handler run adds an Event of reason ``Logging`` to the API server's load and to people's
        ``kubectl get events``.
        """
        settings.posting.level = logging.WARNING
        settings.persistence.diffbase_storage = essence.LeanDiffBase()  # see controllers/essence.py

    kopf.on.startup(registry=registry, id="kopf-posting")(quieter)
    acceptance.register(
        registry,
        settings,
        skip=frozenset({incidents.KIND, problems.KIND, releases.KIND, gitsources.KIND, *playbooks.KINDS}),
    )
    controller = incidents.register(registry, settings)
    measured = metrics.register(registry, controller)
    notifier = notifications.register(registry, settings, incidents=controller, on_failure=measured.notification_failed)
    receiver = alerts.register(
        registry, settings, controller, measured, token_file=os.environ.get(alerts.TOKEN_FILE_ENV) or None
    )
    sources = gitsources.register(registry, settings)
    # The GitSource webhook route comes last: it takes every path the routes before it do not.
    http.register(registry, settings, [*metrics.routes(measured), *alerts.routes(receiver), *sources.routes()])
    # Before problems: Kopf calls the Incident handlers of an event in this order, and the path from an
    # incident to its playbook's first action should not wait for the suspects' reads (bench/remediation.py).
    playbooks.register(
        registry, settings, policy_for=controller.policy_spec, notifier=notifier.send, incidents=controller
    )
    problems.register(registry, settings)
    releases.register(registry, settings)
    writeback.register(registry, settings)


def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials as the official client finds them: in-cluster service account, else the kubeconfig."""
    return kopf.login_via_client(**kwargs)
