"""What the controllers' Kopf daemons share: sleeping until woken, stopped, or a deadline.

Each daemon (a GitSource's fetch loop, a Release's sync loop, an Incident's clocks, a PlaybookRun's
driver) sleeps between looks, and is woken early by an ``asyncio.Event`` that a watch handler or a
webhook sets, or by Kopf stopping it (the object deleted, the operator shutting down).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["wait_any"]


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
