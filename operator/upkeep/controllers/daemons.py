"""What the controllers' Kopf daemons share: sleeping until woken, stopped, or a deadline.

Each daemon (a GitSource's fetch loop, a Release's sync loop, an Incident's clocks, a PlaybookRun's
driver) sleeps between looks, and is woken early by an ``asyncio.Event`` that a watch handler or a
webhook sets, or by Kopf stopping it (the object deleted, the operator shutting down). The Incident
clocks and the PlaybookRun drivers carry no finalizer (``without_finalizer``): their controllers see the
deletion in the watch and end them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import kopf

__all__ = ["wait_any", "without_finalizer"]


def without_finalizer(registry: kopf.OperatorRegistry, handler_id: str) -> None:
    """Let the daemon ``handler_id`` run without Kopf's finalizer on its objects.

    Kopf puts a finalizer on every object a daemon runs for, so that it can stop the daemon before the
    object goes. For an Incident's clocks and a PlaybookRun's driver that costs two more writes per object
    (and two more watch events for every client) on the path from a failure to its remediation, and a
    deletion that hangs while the operator is away. Those daemons end by themselves once their object is
    deleted (the watch tells the controller, which wakes them), so they do without. Kopf has no option for
    it: the registered handler is replaced by a copy that does not ask for the finalizer
    (``tests/unit/test_daemons_finalizers.py`` keeps this true across Kopf versions).
    """
    handlers = registry._spawning._handlers
    for index, handler in enumerate(handlers):
        if handler.id == handler_id:
            handlers[index] = dataclasses.replace(handler, requires_finalizer=False)
            return
    raise LookupError(f"no daemon {handler_id!r} is registered")


async def wait_any(event: asyncio.Event, stopped: Any, timeout: float | None) -> None:
    """Wait until ``event`` is set, the daemon is ``stopped`` (Kopf's ``DaemonStopped``), or ``timeout``
    seconds pass (None: no deadline). Clearing the event is the caller's."""

    async def until_stopped() -> None:
        await stopped.wait()

    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(until_stopped())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
