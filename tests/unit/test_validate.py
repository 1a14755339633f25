"""`upkeep validate`: exit codes, output, built-in kinds and sets of objects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from upkeep import cli
from upkeep.gitops import validation

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD_CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop\ndata:\n  a: b\n"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upkeep.cli", *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_examples_are_valid() -> None:
    done = run_cli("validate", str(EXAMPLES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid:" in done.stdout
    assert " 0 errors" in done.stdout


def test_a_broken_copy_of_an_example_fails_with_file_line_and_field(tmp_path: Path) -> None:
    copy = tmp_path / "release.yaml"
    text = (EXAMPLES / "shop" / "release.yaml").read_text()
    assert "type: Canary" in text
    copy.write_text(text.replace("type: Canary", "type: BlueGreen"))
    line = next(n for n, row in enumerate(copy.read_text().splitlines(), 1) if "BlueGreen" in row)
    done = run_cli("validate", str(copy))
    assert done.returncode == 1
    assert f"{copy}:{line}: error: Release/shop (document 0) spec.strategy.type: must be one of Direct, Canary" in (
        done.stdout
    )


def test_json_output_for_ci(tmp_path: Path) -> None:
    file = tmp_path / "cm.yaml"
    file.write_text(GOOD_CONFIGMAP + "---\n" + GOOD_CONFIGMAP.replace("a: b", "a: 5"))
    done = run_cli("validate", "--output", "json", str(file))
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert report["documents"] == 2
    [finding] = report["findings"]
    assert finding["document"] == 1
    assert finding["field"] == "data.a"
    assert finding["line"] == 13
    assert "must be a string" in finding["message"]


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    assert cli.main(["validate", str(tmp_path / "nope")]) == 2


def test_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["validate", "--colour", "x"])
    assert caught.value.code == 2
    assert "--help" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "validate" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["validate"], ["run"], ["crds"]])
def test_every_help_says_what_it_does_with_an_example(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([*command, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text
    assert "upkeep " in text.split("example", 1)[1]


def test_builtin_kinds_are_checked_strictly(validate_yaml) -> None:  # type: ignore[no-untyped-def]
    findings = validate_yaml(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: two\n  selectr: {}\n"
    )
    fields = {f.field: f for f in findings}
    assert "must be an integer" in fields["spec.replicas"].message
    assert fields["spec.replicas"].line == 6
    assert fields["spec.selectr"].code == "schema.unknown-field"
    assert fields["spec.selector"].code == "schema.required"
    assert fields["spec.template"].code == "schema.required"


def test_unknown_kinds_are_a_warning_not_an_error(validate_yaml) -> None:  # type: ignore[no-untyped-def]
    [finding] = validate_yaml("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")
    assert finding.severity == "warning"
    assert finding.code == "schema.unknown-kind"


def test_custom_resources_of_a_crd_in_the_set_use_its_schema(validate_yaml) -> None:  # type: ignore[no-untyped-def]
    crd = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, minimum: 1}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
spec:
  size: 0
"""
    [finding] = validate_yaml(crd)
    assert finding.field == "spec.size"
    assert finding.document == 1
    assert "at least 1" in finding.message


def test_upkeep_wrong_version_and_unknown_kind(validate_yaml) -> None:  # type: ignore[no-untyped-def]
    findings = validate_yaml(
        "apiVersion: upkeep.dev/v1\nkind: Incident\nmetadata: {name: a}\n---\n"
        "apiVersion: upkeep.dev/v1alpha1\nkind: Outage\nmetadata: {name: b}\n"
    )
    messages = {f.field: f.message for f in findings}
    assert "must be upkeep.dev/v1alpha1" in messages["apiVersion"]
    assert "Upkeep has no kind 'Outage'" in messages["kind"]


def test_a_manifest_without_kind(validate_yaml) -> None:  # type: ignore[no-untyped-def]
    [finding] = validate_yaml("apiVersion: v1\nmetadata: {name: x}\n")
    assert finding.field == "kind"
    assert finding.code == "schema.required"


def test_bad_metadata_name(validate_yaml) -> None:  # type: ignore[no-untyped-def]
    [finding] = validate_yaml(GOOD_CONFIGMAP.replace("name: shop", "name: Shop_1"))
    assert finding.field == "metadata.name"
    assert "DNS subdomain" in finding.message


def test_yaml_errors_are_findings(validate_yaml) -> None:  # type: ignore[no-untyped-def]
    [finding] = validate_yaml("apiVersion: v1\nkind: [\n")
    assert finding.code == "yaml"
    assert finding.line == 3


def test_a_reference_is_checked_only_when_the_set_has_that_kind(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shutil.copytree(EXAMPLES / "shop", shop)
    alone = validation.validate_paths([shop / "release.yaml"])
    assert alone.ok, [f.render() for f in alone.findings]
    (shop / "gitsource.yaml").write_text((shop / "gitsource.yaml").read_text().replace("name: shop", "name: shop-git"))
    together = validation.validate_paths([shop])
    assert [f.code for f in together.errors] == ["semantic.dangling-reference"]
    assert together.errors[0].field == "spec.sourceRef.name"
    assert "no GitSource named 'shop'" in together.errors[0].message
    assert "shop-git" in together.errors[0].message


def test_kustomization_files_are_not_manifests(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (tmp_path / "cm.yaml").write_text(GOOD_CONFIGMAP)
    assert validation.validate_paths([tmp_path]).ok


def test_a_field_the_schema_rejects_is_not_reported_again_by_semantics(tmp_path: Path) -> None:
    text = (EXAMPLES / "shop" / "playbooks" / "crashloop.yaml").read_text()
    file = tmp_path / "pb.yaml"
    file.write_text(text.replace("action: rolloutRestart", "action: 42", 1))
    errors = validation.validate_paths([file]).errors
    # Not a string, so not one of the catalog's names either; the semantic "unknown action" stays silent.
    assert {(f.field, f.code) for f in errors} == {
        ("spec.steps[1].action", "schema.type"),
        ("spec.steps[1].action", "schema.enum"),
    }


def test_a_cluster_wide_playbook_serves_runs_in_any_namespace(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shutil.copytree(EXAMPLES / "shop", shop)
    playbook = shop / "playbooks" / "crashloop.yaml"
    text = playbook.read_text()
    assert "namespace: shop" in text
    moved = text.replace("namespace: shop", "namespace: upkeep-system\n  labels:\n    upkeep.dev/scope: cluster", 1)
    playbook.write_text(moved)
    assert validation.validate_paths([shop]).ok
    playbook.write_text(text.replace("namespace: shop", "namespace: upkeep-system", 1))
    [error] = validation.validate_paths([shop]).errors
    assert error.field == "spec.playbookRef.name"
