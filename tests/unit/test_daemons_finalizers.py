"""The Incident clocks and the PlaybookRun driver run without Kopf's finalizer (controllers/daemons.py)."""

from __future__ import annotations

import kopf
import pytest

from upkeep import controllers
from upkeep import settings as settings_
from upkeep.controllers import daemons


def _daemons() -> dict[str, bool]:
    registry = kopf.OperatorRegistry()
    controllers.register(registry, settings_.OperatorSettings())
    return {str(handler.id): bool(handler.requires_finalizer) for handler in registry._spawning.get_all_handlers()}


def test_the_hot_daemons_ask_for_no_finalizer_and_the_others_keep_kopfs() -> None:
    found = _daemons()
    assert found["incident-clock"] is False
    assert found["playbookrun-executor"] is False
    # A Release and a GitSource keep Kopf's default: a later cleanup on deletion will need it.
    assert found["release-sync"] is True
    assert found["gitsource-fetch"] is True


def test_an_unknown_daemon_is_an_error() -> None:
    with pytest.raises(LookupError, match="no daemon 'nope'"):
        daemons.without_finalizer(kopf.OperatorRegistry(), "nope")
