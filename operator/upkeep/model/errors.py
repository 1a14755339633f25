"""The errors of the resource model and the engine.

The hierarchy::

    UpkeepError
    ├── SpecError            the user's object is wrong; retrying cannot help (terminal)
    │   └── InvalidTransition   a lifecycle change that the kind's table does not allow
    └── TransientError       the world is not ready yet; retry later

Controllers map ``SpecError`` onto ``kopf.PermanentError`` and ``TransientError`` onto
``kopf.TemporaryError`` at their edge, and nowhere else.
"""

from __future__ import annotations

__all__ = ["InvalidTransition", "SpecError", "TransientError", "UpkeepError"]


class UpkeepError(Exception):
    """The root of every error Upkeep raises on purpose."""


class SpecError(UpkeepError):
    """An object's spec cannot be acted on as written; ``field`` names where."""

    def __init__(self, message: str, *, field: str = "", reason: str = "InvalidSpec") -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class InvalidTransition(SpecError):
    """A lifecycle transition that is not in the kind's table."""

    def __init__(self, message: str, *, field: str = "status.phase", allowed: tuple[str, ...] = ()) -> None:
        super().__init__(message, field=field, reason="InvalidTransition")
        self.allowed = allowed


class TransientError(UpkeepError):
    """Something outside Upkeep is not ready; the same call may succeed later."""

    def __init__(self, message: str, *, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay
