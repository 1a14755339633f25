"""Field paths: how errors and status name a field of an object (``spec.steps[0].action``)."""

from __future__ import annotations

import re

__all__ = ["FieldPath", "format_path"]

FieldPath = tuple[str | int, ...]
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def format_path(path: FieldPath) -> str:
    """``("spec", "steps", 0, "action")`` → ``spec.steps[0].action``; odd keys are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text
