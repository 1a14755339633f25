"""The layers of STYLE.md, enforced by reading every module's imports.

cli > controllers > (detectors, actions, gitops, notify) > engine > model (and settings);
the sandbox depends on nothing of the operator, and only the CLI may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "upkeep"

# Layer rank: a module may import modules of a strictly lower rank, or of its own part.
RANKS = {
    "cli": 5,
    "controllers": 4,
    "detectors": 3,
    "actions": 3,
    "gitops": 3,
    "notify": 3,
    "engine": 2,
    "model": 1,
    "settings": 1,
    "": 0,  # upkeep/__init__.py: the package's constants
}
SIBLINGS_INDEPENDENT = {"detectors", "actions", "gitops", "notify"}


def part_of(module: str) -> str:
    """``upkeep.engine.gates`` → ``engine``; ``upkeep`` → ``""``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def imported_modules(source: str, module: str) -> set[str]:
    """Every ``upkeep`` module that ``source`` (the text of ``module``) imports."""
    found: set[str] = set()
    package = module.rsplit(".", 1)[0] if not module.endswith("__init__") else module
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "upkeep")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "upkeep":
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _is_module(candidate) else target)
    return found


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when it may."""
    source, target = part_of(importer), part_of(imported)
    if source == target:
        return None
    if target == "sandbox":
        return None if source == "cli" else "only the CLI may import the sandbox"
    if source == "sandbox":
        return "the sandbox depends on nothing of the operator"
    if source not in RANKS or target not in RANKS:
        return f"unknown layer {source if source not in RANKS else target!r}: add it to RANKS and STYLE.md"
    if source in SIBLINGS_INDEPENDENT and target in SIBLINGS_INDEPENDENT:
        return f"{source} and {target} are siblings: wire them together in controllers"
    if RANKS[target] >= RANKS[source]:
        return f"{source} (layer {RANKS[source]}) may not import {target} (layer {RANKS[target]})"
    return None


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(relative.parts), path))
    return out


def test_the_package_has_modules_to_check() -> None:
    assert len(modules()) > 10


@pytest.mark.parametrize(("module", "path"), modules(), ids=[name for name, _ in modules()])
def test_module_respects_the_layers(module: str, path: Path) -> None:
    problems = [
        f"{module} imports {target}: {reason}"
        for target in sorted(imported_modules(path.read_text(encoding="utf-8"), module))
        if (reason := violation(module, target))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("upkeep.controllers.release", "upkeep.engine.gates", True),
        ("upkeep.engine.gates", "upkeep.model.conditions", True),
        ("upkeep.engine.gates", "upkeep.controllers.release", False),
        ("upkeep.model.schemas", "upkeep.engine.durations", False),
        ("upkeep.actions.scale", "upkeep.gitops.apply", False),
        ("upkeep.engine.gates", "upkeep.sandbox.server", False),
        ("upkeep.cli", "upkeep.sandbox.server", True),
        ("upkeep.sandbox.server", "upkeep.model.schemas", False),
        ("upkeep.gitops.validation", "upkeep.engine.semantics", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, allowed: bool) -> None:
    assert (violation(importer, imported) is None) is allowed


def test_imports_are_found_in_every_form() -> None:
    source = (
        "import upkeep.engine.durations\n"
        "from upkeep.model import conditions\n"
        "from upkeep import settings\n"
        "from . import semantics\n"
        "import yaml\n"
    )
    found = imported_modules(source, "upkeep.engine.catalog")
    assert found == {
        "upkeep.engine.durations",
        "upkeep.model.conditions",
        "upkeep.settings",
        "upkeep.engine.semantics",
    }
