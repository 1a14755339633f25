"""wait: let time pass between two steps (a grace before a drain, time for a restart to settle).

It changes nothing, so it is safe during a freeze and has nothing to find after a restart: it is
Running until ``params.duration`` has passed since the step started (``ctx.started``, which the
controller keeps in the PlaybookRun), then Succeeded. A restart therefore does not wait again from
the start. ``run`` and ``verify`` give the same answer; a dry run records the wait and does not wait.
"""

from __future__ import annotations

from upkeep.actions import base, deadlines
from upkeep.engine import durations

__all__ = ["Wait"]


class Wait:
    """The ``wait`` action (see the module docstring)."""

    name = "wait"

    def _duration(self, ctx: base.ActionContext) -> str:
        given = ctx.params.get("duration")
        if not given:
            raise base.ActionFailed("wait needs params.duration")
        return str(given)

    async def describe(self, ctx: base.ActionContext) -> str:
        return f"Wait {self._duration(ctx)} before the next step."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        return None

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        if ctx.dry_run:
            return base.Outcome("Succeeded", f"Would wait {self._duration(ctx)}.", {"duration": self._duration(ctx)})
        return await self.verify(ctx)

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        text = self._duration(ctx)
        wanted = durations.parse_duration(text)
        passed = deadlines.elapsed(ctx)
        if passed >= wanted:
            return base.Outcome("Succeeded", f"Waited {text}.", {"duration": text})
        left = durations.format_duration(wanted - passed)
        return base.Outcome("Running", f"Waiting {text} ({left} left).", {"duration": text})
