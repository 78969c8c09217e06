"""The fuzz corpus: ``python -m tests.fuzz.run [--cases N] [--seed S] [--jobs J] [--swaps] [--bombs]``.

Generates ``N`` seeded cases (see ``generate.py``) — with ``--swaps``, also
every chunk and shard swap between arrays of different dtypes, and with
``--bombs`` every compression bomb — runs each in its own subprocess under an
address-space cap of the process's own footprint + 2 GiB and a timeout, and
prints the count of every outcome per surface. Exits non-zero on any crash,
hang, out-of-memory or wrong answer.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fuzz.generate import BOMBS, make_bomb_case, make_case, make_swap_case, swap_cases

BAD = {"crash", "hang", "oom", "wrong", "unclear-error"}


def run_case(case: Path, timeout: float) -> dict:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.child", str(case)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=Path(__file__).resolve().parents[2],
        )
    except subprocess.TimeoutExpired:
        spec = json.loads((case / "case.json").read_text())
        return {**spec, "outcome": "hang"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        spec = json.loads((case / "case.json").read_text())
        tail = proc.stderr.strip().splitlines()[-3:]
        outcome = "oom" if "memory allocation" in proc.stderr else "crash"
        return {**spec, "outcome": outcome, "stderr": tail, "returncode": proc.returncode}
    return json.loads(lines[-1])


def run(
    cases: int, seed: int, jobs: int, timeout: float, keep: Path | None = None
) -> tuple[dict, list[dict]]:
    base = keep or Path(tempfile.mkdtemp(prefix="szm-fuzz-"))
    return run_paths([make_case(seed + i, base) for i in range(cases)], jobs, timeout)


def run_swaps(
    indices: list[int] | None, jobs: int, timeout: float, keep: Path | None = None
) -> tuple[dict, list[dict]]:
    """The swap cases ``indices`` of :func:`swap_cases` (all by default)."""
    base = keep or Path(tempfile.mkdtemp(prefix="szm-fuzz-swaps-"))
    chosen = range(len(swap_cases())) if indices is None else indices
    return run_paths([make_swap_case(i, base) for i in chosen], jobs, timeout)


def run_bombs(jobs: int, timeout: float, keep: Path | None = None) -> tuple[dict, list[dict]]:
    """Every compression bomb of :data:`BOMBS`."""
    base = keep or Path(tempfile.mkdtemp(prefix="szm-fuzz-bombs-"))
    return run_paths([make_bomb_case(i, base) for i in range(len(BOMBS))], jobs, timeout)


def run_paths(paths: list[Path], jobs: int, timeout: float) -> tuple[dict, list[dict]]:
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda p: run_case(p, timeout), paths))
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad = []
    for r in results:
        if "outcome" in r:
            counts["process"][r["outcome"]] += 1
            bad.append(r)
            continue
        counts["process"]["completed"] += 1
        for surface, v in r["surfaces"].items():
            counts[surface][v["verdict"]] += 1
            if v["verdict"] in BAD:
                bad.append({**r, "surface": surface})
    return {k: dict(v) for k, v in counts.items()}, bad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--keep", type=Path, help="write the cases here (kept after the run)")
    p.add_argument("--swaps", action="store_true", help="also every chunk/shard swap between dtypes")
    p.add_argument("--bombs", action="store_true", help="also every compression bomb")
    a = p.parse_args()
    counts, bad = run(a.cases, a.seed, a.jobs, a.timeout, a.keep)
    print(f"{a.cases} cases (seeds {a.seed}..{a.seed + a.cases - 1})")
    for flag, label, extra in (
        (a.swaps, f"{len(swap_cases())} swap cases", lambda: run_swaps(None, a.jobs, a.timeout)),
        (a.bombs, f"{len(BOMBS)} compression bombs", lambda: run_bombs(a.jobs, a.timeout)),
    ):
        if flag:
            more, more_bad = extra()
            print(label)
            for surface, c in more.items():
                counts.setdefault(surface, {})
                for k, v in c.items():
                    counts[surface][k] = counts[surface].get(k, 0) + v
            bad += more_bad
    for surface, c in counts.items():
        print(f"  {surface:16s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for b in bad[:40]:
        print("  BAD", json.dumps(b, default=str)[:600])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
