"""When a step's time is up: ``verify`` answers Running while undecided, and Failed past the step's timeout.

Time comes from the context (``ctx.now``, ``ctx.started``, ``ctx.timeout``), never from the clock,
so a restarted operator judges a step by when it really started, and tests pass the time in.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from upkeep.actions import base

__all__ = ["elapsed", "expired", "undecided"]


def elapsed(ctx: base.ActionContext) -> datetime.timedelta:
    """How long the step has been going (zero when its start is unknown)."""
    return ctx.now - ctx.started if ctx.started is not None else datetime.timedelta(0)


def expired(ctx: base.ActionContext) -> bool:
    """Whether the step is past its timeout."""
    return elapsed(ctx) > ctx.timeout


def undecided(ctx: base.ActionContext, message: str, output: Mapping[str, Any] | None = None) -> base.Outcome:
    """Running with ``message``, or Failed with it once the step is past its timeout."""
    if expired(ctx):
        return base.Outcome("Failed", f"gave up after {ctx.timeout}: {message}", dict(output or {}))
    return base.Outcome("Running", message, dict(output or {}))
