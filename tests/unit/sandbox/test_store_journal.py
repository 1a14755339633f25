"""The store's journal of write requests: bounded, in order, and heard by listeners before the client's answer."""

from __future__ import annotations

import logging

import pytest

from upkeep.sandbox.store import Store, Write


def write(name: str, verb: str = "patch") -> Write:
    return Write(rv=1, verb=verb, resource="deployments.apps", namespace="ns", name=name, manager="upkeep")


def test_the_journal_keeps_the_last_writes_in_order() -> None:
    store = Store(journal=2)
    for name in ("a", "b", "c"):
        store.record(write(name))
    assert [item.name for item in store.journal] == ["b", "c"]


def test_listeners_hear_each_write_and_one_that_fails_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    heard: list[str] = []

    def broken(item: Write) -> None:
        raise RuntimeError("listener bug")

    store.write_listeners.extend([broken, lambda item: heard.append(item.name)])
    with caplog.at_level(logging.ERROR, logger="upkeep.sandbox.store"):
        store.record(write("a"))
    assert heard == ["a"]
    assert [item.name for item in store.journal] == ["a"]
    assert "a write listener failed" in caplog.text
