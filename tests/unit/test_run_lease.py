"""The run lease is a setting: `upkeep run --run-lease SECONDS` sets how long another process's lease keeps the
playbook controller off a run."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from upkeep import cli, settings
from upkeep.controllers import playbooks
from upkeep.engine import sla

NOW = datetime.datetime(2025, 3, 5, 12, 0, tzinfo=datetime.UTC)


def test_the_flag_becomes_the_setting_and_the_default_is_fifteen_seconds() -> None:
    parser = cli._build_parser()
    assert cli._settings_from(parser.parse_args(["run", "-n", "shop"])).remediation.run_lease == 15.0
    given = cli._settings_from(parser.parse_args(["run", "-n", "shop", "--run-lease", "2.5"]))
    assert given.remediation == settings.RemediationSettings(run_lease=2.5)


@pytest.mark.parametrize("value", ["0", "-3", "soon", "inf"])
def test_a_lease_that_is_not_a_positive_number_of_seconds_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli._build_parser().parse_args(["run", "-n", "shop", "--run-lease", value])
    assert caught.value.code == 2
    assert "--run-lease" in capsys.readouterr().err


class OneRun:
    """A cluster holding one Running PlaybookRun whose lease another process renewed at NOW."""

    def __init__(self) -> None:
        self.run = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "PlaybookRun",
            "metadata": {"name": "r", "namespace": "shop", "uid": "u", "resourceVersion": "7", "generation": 1},
            "spec": {"incidentRef": {"name": "i"}, "playbookRef": {"name": "p"}},
            "status": {"phase": "Running", "lease": {"holder": "other", "renewedAt": sla.format_time(NOW)}},
        }

    async def get_custom(self, plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.run


@pytest.mark.parametrize(("lease", "after", "wait"), [(2.0, 0.5, 1.5), (2.0, 1.75, 0.25), (15.0, 5.0, 10.0)])
def test_another_process_s_lease_holds_for_the_configured_seconds(lease: float, after: float, wait: float) -> None:
    controller = playbooks.PlaybookController(
        settings.OperatorSettings(remediation=settings.RemediationSettings(run_lease=lease)),
        OneRun(),  # type: ignore[arg-type]
        clock=lambda: NOW + datetime.timedelta(seconds=after),
        holder="me",
    )
    assert controller.lease_duration == datetime.timedelta(seconds=lease)
    assert asyncio.run(controller.advance("shop", "r")) == pytest.approx(wait)


def test_an_explicit_lease_duration_still_wins() -> None:
    controller = playbooks.PlaybookController(
        settings.OperatorSettings(),
        OneRun(),
        lease_duration=datetime.timedelta(seconds=3),  # type: ignore[arg-type]
    )
    assert controller.lease_duration == datetime.timedelta(seconds=3)
    assert datetime.timedelta(seconds=settings.RemediationSettings().run_lease) == playbooks.LEASE_DURATION
