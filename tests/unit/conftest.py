"""Fixtures for unit tests: no cluster, no network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from upkeep.gitops import validation

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@pytest.fixture
def validate_yaml(tmp_path: Path) -> Callable[[str], list[validation.Finding]]:
    """Validate YAML text (one or more documents) as one set; returns every finding."""

    def run(text: str) -> list[validation.Finding]:
        file = tmp_path / "manifest.yaml"
        file.write_text(text, encoding="utf-8")
        return validation.validate_paths([file]).findings

    return run
