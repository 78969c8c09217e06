"""Section 5: D1 in an Icechunk repository against the plain store."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench_common import (
    HERE,
    measure,
)
from bench_data import make_d1_icechunk


def icechunk_scan(py: str, d1: str, path: Path, rep: list[str]) -> None:
    print("\n== 5. D1 in an Icechunk repository on local disk vs the plain store ==")
    repo = make_d1_icechunk(d1, path)
    if repo is None:
        print("  skipped: the icechunk package (Python >= 3.12) is not installed")
        return
    script = HERE / "measure.py"
    runs: dict[str, list[float]] = {}
    rows: dict[str, int] = {}
    # Interleave the two stores so drift in machine load hits both alike.
    for _ in range(3):
        for surface in ("sedonadb-sql", "core"):
            for name, store in (("plain", d1), ("icechunk", repo)):
                m = measure(py, script, surface, store, *rep)
                runs.setdefault(f"{surface} {name}", []).extend(m["seconds"])
                rows[f"{surface} {name}"] = m["rows"]
    for key, seconds in runs.items():
        print(f"  {key:26s} median {statistics.median(seconds):7.3f} s  rows {rows[key]:,}")
    for surface in ("sedonadb-sql", "core"):
        ratio = statistics.median(runs[f"{surface} icechunk"]) / statistics.median(runs[f"{surface} plain"])
        print(f"  ratio Icechunk / plain store ({surface}): {ratio:5.2f}x")
