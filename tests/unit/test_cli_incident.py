"""`upkeep incident`: its help, and the exit codes that need no cluster (usage 2, no cluster 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from upkeep import cli


@pytest.mark.parametrize("command", [["incident"], ["incident", "ack"], ["incident", "resolve"], ["incident", "list"]])
def test_every_help_has_examples(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([*command, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "upkeep incident " in text.split("example", 1)[1]


def test_the_help_of_a_move_gives_the_kubectl_equivalent_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["incident", "close", "--help"])
    text = capsys.readouterr().out
    assert '"spec":{"state":"Closed","note":"..."}' in text
    assert "upkeep.dev/requested-by" in text
    assert "exit status: 0 done" in text and "3 the operator did" in text


def test_incident_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["incident"]) == cli.EXIT_USAGE
    assert "ack" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["incident", "ack"], ["incident", "frobnicate", "x"], ["incident", "ack", "x", "-A"]])
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(args)
    assert caught.value.code == cli.EXIT_USAGE


def test_a_timeout_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["incident", "ack", "x", "--timeout", "0"]) == cli.EXIT_USAGE
    assert "--timeout" in capsys.readouterr().err


def test_no_cluster_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-kubeconfig"
    assert cli.main(["incident", "ack", "x", "--kubeconfig", str(missing)]) == cli.EXIT_INVALID
    assert "no cluster to talk to" in capsys.readouterr().err
    assert cli.main(["incident", "list", "--kubeconfig", str(missing)]) == cli.EXIT_INVALID
