"""Shared by the benchmark's sections: the workloads' query, running a measurement
in its own process (``measure.py``), interleaved rounds, medians and targets.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
COLLECTIONS = np.array(["sentinel-2-l2a", "landsat-c2-l2", "naip"])
AREA = "POLYGON((10 20, 32 20, 32 42, 10 42, 10 20))"  # 22 x 22 degrees: ~1% of the extent
MONTH = ("2024-06-01", "2024-07-01")
# The selective query's predicate (the same SQL on every reader).
WHERE = (
    f"WHERE ST_Intersects(bbox, ST_SetSRID(ST_GeomFromText('{AREA}'), 4326)) "
    f"AND date >= TIMESTAMP '{MONTH[0]}' AND date < TIMESTAMP '{MONTH[1]}'"
)
ROUNDS = 3  # interleaved rounds of the sections that compare readers side by side
# D2 is laid out for search: small chunks keep per-chunk extents tight.
D2_CHUNK = 25_000


#: Every job decodes what it reads, as the readers it is compared with do: decoded chunks are
#: kept by none of its repetitions (section 9 also measures them kept, unsetting this).
NOTHING_KEPT = {"ZARR_META_CHUNK_CACHE_MB": "0"}


def measure(python: str, script: Path, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run(
        [python, str(script), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **NOTHING_KEPT, **(env or {})},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def side_venv(name: str, packages: list[str], what: str) -> Path | None:
    """A virtualenv of its own under the cache (``$SZM_<NAME>_VENV`` to choose another), created
    with ``packages`` pinned the first time: alternatives whose pins clash with this package's.
    ``None`` when it cannot be installed."""
    default = Path.home() / ".cache/sedonadb-zarr-meta" / f"{name}-venv"
    venv = Path(os.environ.get(f"SZM_{name.upper()}_VENV", default))
    if not (venv / "bin" / "python").exists():
        print(f"creating {venv} for {what}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *packages])
        if r.returncode != 0:
            return None
    return venv


def zds_python() -> str | None:
    venv = side_venv(
        "zds",
        ["zarr-datafusion-search==0.1.2", "datafusion==53.0.0", "pyarrow", "obstore"],
        "zarr-datafusion-search 0.1.2 (datafusion 53)",
    )
    return None if venv is None else str(venv / "bin" / "python")


def rustac_cli() -> Path | None:
    """rustac's command-line tool (the ``rustac`` 0.9.18 wheel)."""
    venv = side_venv("rustac", ["rustac[arrow]==0.9.18"], "rustac 0.9.18")
    return None if venv is None else venv / "bin" / "rustac"


def median(m: dict) -> float:
    return statistics.median(m["seconds"])


def interleaved(jobs: dict, rounds: int = ROUNDS) -> dict:
    """Measure every job (python, script, *args) once per round, round-robin, so drift in the
    machine's load hits all alike; each job's seconds are pooled across the rounds. A job's
    ``--digest`` (the result's values) is taken in the first round only, rows in every round."""
    out: dict = {}
    for r in range(rounds):
        for name, (python, script, *args) in jobs.items():
            m = measure(python, script, *(args if r == 0 else [x for x in args if x != "--digest"]))
            if name not in out:
                out[name] = m
                continue
            if m["rows"] != out[name]["rows"]:
                raise SystemExit(f"{name}: {m['rows']:,} rows in round {r + 1}, {out[name]['rows']:,} before")
            out[name]["seconds"].extend(m["seconds"])
    return out


def target(ratio: float, op: str, bound: float) -> str:
    met = ratio <= bound if op == "<=" else ratio >= bound if op == ">=" else ratio < bound
    return f"[target {op} {bound:g}x: {'met' if met else 'NOT met'}]"
