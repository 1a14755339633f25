"""Benchmark of `upkeep validate`: documents per second over a generated repository.

Copies the example set N times under distinct namespaces (so references still resolve),
validates the whole tree as one set, and prints: documents, seconds (cold: first run in the
process, schemas compiled; warm: second run), documents per second and peak RSS. The figures
go to stdout and, as one JSON line, to bench/results/validation.jsonl.

    .venv/bin/python bench/validation.py [--copies 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

from upkeep.gitops import validation

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
RESULTS = REPO / "bench" / "results" / "validation.jsonl"


def make_tree(root: Path, copies: int) -> None:
    sources = sorted(EXAMPLES.rglob("*.yaml"))
    for number in range(copies):
        folder = root / f"copy-{number:04d}"
        folder.mkdir()
        for source in sources:
            if number and source.name in ("changepolicy.yaml", "supportpolicy.yaml"):
                continue  # cluster-scoped: one of each serves every copy
            text = source.read_text(encoding="utf-8").replace("namespace: shop", f"namespace: shop-{number}")
            (folder / f"{source.parent.name}-{source.name}").write_text(text, encoding="utf-8")


def timed(tree: Path) -> tuple[float, validation.Report]:
    started = time.perf_counter()
    report = validation.validate_paths([tree])
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=100, help="copies of examples/ (default: 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder)
        make_tree(tree, args.copies)
        cold, report = timed(tree)
        warm, again = timed(tree)
    if report.errors or again.errors:
        raise SystemExit(f"the generated tree should be valid: {report.errors[:3]}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "benchmark": "validation",
        "documents": report.documents,
        "cold_seconds": round(cold, 3),
        "warm_seconds": round(warm, 3),
        "warm_documents_per_second": round(report.documents / warm, 1),
        "peak_rss_mib": round(peak_mib, 1),
        "python": platform.python_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(
        f"validate {figures['documents']} documents: cold {cold:.2f} s, warm {warm:.2f} s "
        f"({figures['warm_documents_per_second']} documents/s), peak RSS {peak_mib:.0f} MiB"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
