"""`upkeep playbookrun`: its help, the exit codes that need no cluster, and when a run may be approved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from upkeep import cli


def run(phase: str | None, approval: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"spec": {"playbookRef": {"name": "crashloop-rollback"}, "attempt": 1}}
    if approval:
        body["spec"]["approval"] = approval
    if phase:
        body["status"] = {"phase": phase}
    return body


def playbook(mode: str | None) -> dict[str, Any]:
    return {"spec": {"mode": mode} if mode else {}}


@pytest.mark.parametrize("command", [["playbookrun"], ["playbookrun", "approve"], ["playbookrun", "list"]])
def test_every_help_has_examples(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([*command, "--help"])
    assert caught.value.code == 0
    assert "upkeep playbookrun " in capsys.readouterr().out.split("example", 1)[1]


def test_the_help_of_approve_gives_the_kubectl_equivalent_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["playbookrun", "approve", "--help"])
    text = capsys.readouterr().out
    assert '"spec":{"approval":{"approvedBy":"alice"' in text
    assert "field manager\nupkeep-cli" in text
    assert "exit status: 0 approved" in text and "1 refused" in text and "3 with --wait" in text


def test_playbookrun_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["playbookrun"]) == cli.EXIT_USAGE
    assert "approve" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["playbookrun", "approve"], ["playbookrun", "reject", "x"], ["playbookrun", "approve", "x", "-A"]],
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(args)
    assert caught.value.code == cli.EXIT_USAGE


def test_a_timeout_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["playbookrun", "approve", "x", "--timeout", "0"]) == cli.EXIT_USAGE
    assert "--timeout" in capsys.readouterr().err


def test_no_cluster_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-kubeconfig"
    assert cli.main(["playbookrun", "approve", "x", "--kubeconfig", str(missing)]) == cli.EXIT_INVALID
    assert "no cluster to talk to" in capsys.readouterr().err
    assert cli.main(["playbookrun", "list", "--kubeconfig", str(missing)]) == cli.EXIT_INVALID


def test_a_pending_run_of_a_require_approval_playbook_may_be_approved() -> None:
    assert cli._approval_refusal(run("Pending"), playbook("RequireApproval")) is None


@pytest.mark.parametrize(
    ("body", "mode", "says"),
    [
        pytest.param(run("Running"), "RequireApproval", "status.phase is Running, not Pending", id="running"),
        pytest.param(run("Succeeded"), "RequireApproval", "status.phase is Succeeded, not Pending", id="succeeded"),
        pytest.param(run("Skipped"), "RequireApproval", "status.phase is Skipped, not Pending", id="skipped"),
        pytest.param(run(None), "RequireApproval", "status.phase is not set yet", id="not-taken-in"),
        pytest.param(
            run("Running", {"approvedBy": "alice", "at": "2026-01-31T12:00:00Z"}),
            "RequireApproval",
            "(approved by alice at 2026-01-31T12:00:00Z)",
            id="approved-and-started",
        ),
        pytest.param(
            run("Pending"),
            "Automatic",
            "spec.mode of playbook/crashloop-rollback is Automatic, not RequireApproval",
            id="automatic",
        ),
        pytest.param(run("Pending"), "DryRun", "is DryRun, not RequireApproval", id="dry-run"),
        pytest.param(run("Pending"), None, "is Automatic, not RequireApproval", id="mode-defaulted"),
    ],
)
def test_a_run_that_does_not_wait_for_approval_is_refused_naming_the_field(
    body: dict[str, Any], mode: str | None, says: str
) -> None:
    refused = cli._approval_refusal(body, playbook(mode))
    assert refused is not None and says in refused


def test_a_run_whose_playbook_is_missing_is_refused_naming_the_reference() -> None:
    refused = cli._approval_refusal(run("Pending"), None)
    assert refused is not None
    assert refused.startswith("spec.playbookRef: Playbook 'crashloop-rollback' not found")
