"""Section 10: STAC ingest and small appends.

* Ingest of Sentinel-2 L2A items: four items recorded from Microsoft's Planetary Computer STAC
  API (stac-geoparquet's test data, ``tests/data/sentinel-2-l2a-pc.json`` of its sdist, kept in
  ``~/.cache/sedonadb-zarr-meta/stac-corpus``), cycled with fresh ids, times and shifted
  footprints, as ndjson. ``zarr-meta ingest`` against ``rustac translate`` (ndjson to
  stac-geoparquet) on the same file, interleaved, each in its own process; items/s and the
  peak resident memory of the whole process tree (sampled from /proc every 20 ms).
* Small appends: 50 of those items appended to a catalogue of 227 columns (the four templates
  give 88; the others are extra properties), on a plain store and as one Icechunk commit.

``python bench/bench_ingest.py [--items N] [--rounds R]`` runs this section alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("SZM_CACHE", Path.home() / ".cache" / "sedonadb-zarr-meta"))
CORPUS = CACHE / "stac-corpus" / "stac_geoparquet-0.8.3.tar.gz"
TEMPLATE = "stac_geoparquet-0.8.3/tests/data/sentinel-2-l2a-pc.json"


def templates() -> list[dict[str, Any]]:
    """The four recorded Sentinel-2 L2A items."""
    with tarfile.open(CORPUS) as tar:
        member = tar.extractfile(TEMPLATE)
        assert member is not None
        return json.load(member)


def _shift(coords: Any, dx: float, dy: float) -> Any:
    if coords and isinstance(coords[0], (int, float)):
        return [coords[0] + dx, coords[1] + dy, *coords[2:]]
    return [_shift(c, dx, dy) for c in coords]


def s2_items(n: int, extra_properties: int = 0):
    """``n`` Sentinel-2-like items: the templates cycled, ids, times and footprints fresh.
    ``extra_properties``: that many more numeric properties per item (wider catalogues)."""
    import datetime as dt

    base = templates()
    t0 = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(n):
        item = copy.deepcopy(base[i % len(base)])
        w, s, e, nn = item["bbox"]
        # Footprints moved over the globe, staying inside [-180, 180] x [-80, 80].
        dx = ((i * 37) % 300) - 150 - (w + e) / 2
        dy = ((i * 11) % 140) - 70 - (s + nn) / 2
        item["id"] = f"{item['id']}-{i:08d}"
        item["bbox"] = [w + dx, s + dy, e + dx, nn + dy]
        item["geometry"]["coordinates"] = _shift(item["geometry"]["coordinates"], dx, dy)
        when = t0 + dt.timedelta(minutes=7 * i)
        item["properties"]["datetime"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        item["properties"]["eo:cloud_cover"] = float((i * 13) % 100)
        for k in range(extra_properties):
            item["properties"][f"extra:p{k:03d}"] = (i * (k + 1)) % 1000 / 10
        yield item


def write_ndjson(path: Path, n: int) -> Path:
    if path.exists():
        return path
    import orjson

    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for item in s2_items(n):
            f.write(orjson.dumps(item) + b"\n")
    tmp.rename(path)
    return path


def _tree_rss(pid: int) -> int:
    """Resident kB of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def run_tree(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of ``cmd`` with its child processes."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.read().decode()[-2000:]}")
    return elapsed, peak / 1024


def ingest_section(py: str, data: Path, n: int, rounds: int) -> dict[str, Any]:
    print(f"\n== 10. STAC ingest: {n:,} Sentinel-2 L2A items (ndjson) ==")
    if not CORPUS.exists():
        print(f"  skipped: {CORPUS} is missing (stac-geoparquet 0.8.3's sdist)")
        return {}
    src = write_ndjson(data / f"s2-{n}.ndjson", n)
    print(f"  input {src.name}: {src.stat().st_size / 1e9:.2f} GB")
    out = Path(tempfile.mkdtemp(dir=data))
    jobs = {
        "zarr-meta ingest": [
            py,
            "-m",
            "sedonadb_zarr_meta",
            "ingest",
            str(src),
            str(out / "s2.zarr"),
            "--no-progress",
        ]
    }
    from bench_common import rustac_cli

    rustac = rustac_cli()
    if rustac is not None:
        jobs["rustac translate"] = [str(rustac), "translate", str(src), str(out / "s2.parquet")]
    else:
        print("  rustac could not be installed: ours alone")
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in jobs}
    for _ in range(rounds):  # interleaved, so drift in load hits both alike
        for name, cmd in jobs.items():
            runs[name].append(run_tree(cmd))
    _check_ingested(out / "s2.zarr", n)
    result = {}
    for name, r in runs.items():
        secs = statistics.median(s for s, _ in r)
        rss = max(m for _, m in r)
        result[name] = (n / secs, rss)
        print(
            f"  {name:18s} median {secs:7.1f} s ({min(s for s, _ in r):.1f}-{max(s for s, _ in r):.1f})  "
            f"{n / secs:8,.0f} items/s  peak RSS {rss:7,.0f} MB (process tree)"
        )
    if len(result) == 2:
        ours, theirs = result["zarr-meta ingest"], result["rustac translate"]
        ratio = ours[0] / theirs[0]
        mark = "met" if ratio >= 1.5 and ours[1] < 1024 else "NOT met"
        print(
            f"  items/s ours / rustac: {ratio:.2f}x; peak RSS {ours[1]:,.0f} MB vs {theirs[1]:,.0f} MB "
            f"(target >= 1.5x and < 1 GB: {mark})"
        )
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return result


def _check_ingested(store: Path, n: int) -> None:
    from sedonadb_zarr_meta import open_meta

    t = open_meta(str(store), arrays=["id"])
    if t.num_rows != n:
        raise RuntimeError(f"{store}: {t.num_rows} rows, expected {n}")


# --------------------------------------------------------------------------- small appends

# Prints the seconds of importing what a write loads (once per process), then of the append.
_APPEND = r"""
import json, sys, time
from sedonadb_zarr_meta import write_meta
items = json.load(open(sys.argv[1]))
t = time.perf_counter()
import numcodecs, shapely, zarr, zstandard
try:
    import pandas  # pyarrow loads it at its first array from Python objects, where installed
except ImportError:
    pass
loaded = time.perf_counter() - t
t = time.perf_counter()
write_meta(items, sys.argv[2], mode="a", progress=False)
print(loaded, time.perf_counter() - t)
"""


def append_section(py: str, data: Path, rounds: int) -> dict[str, float]:
    """50 items appended to a 227-column catalogue of 10,000 rows, plain and Icechunk."""
    print("\n== 10b. Small appends: 50 items into a catalogue of 227 columns ==")
    sys.path.insert(0, str(HERE.parent / "python"))
    from sedonadb_zarr_meta import open_meta, write_meta

    extra = 227 - 88
    base = list(s2_items(10_050, extra_properties=extra))
    work = Path(tempfile.mkdtemp(dir=data))
    new = work / "new.json"
    new.write_text(json.dumps(base[10_000:]))
    # The last chunk holds the 10,000 rows (chunks of 100,000: it is rewritten with the new
    # rows), or is full (chunks of 10,000: the new rows start a chunk).
    targets = {
        "plain store": (work / "plain.zarr", False, 100_000),
        "plain, last chunk full": (work / "plain-full.zarr", False, 10_000),
    }
    try:
        import icechunk  # noqa: F401

        targets["Icechunk (one commit)"] = (work / "repo.icechunk", True, 100_000)
        targets["Icechunk, last chunk full"] = (work / "repo-full.icechunk", True, 10_000)
    except ImportError:
        print("  Icechunk skipped: the icechunk package (Python >= 3.12) is not installed")
    times: dict[str, list[float]] = {k: [] for k in targets}
    imports: list[float] = []
    for _ in range(rounds):
        for name, (path, ice, chunk) in targets.items():
            subprocess.run(["rm", "-rf", str(path)], check=True)
            write_meta(base[:10_000], path, icechunk=ice, chunk_size=chunk, progress=False)
            columns = len(open_meta(str(path)).column_names)
            out = subprocess.run(
                [py, "-c", _APPEND, str(new), str(path)], capture_output=True, text=True, check=True
            )
            loaded, seconds = (float(v) for v in out.stdout.split()[-2:])
            imports.append(loaded)
            times[name].append(seconds)
            rows = open_meta(str(path), arrays=["id"]).num_rows
            if rows != 10_050 or columns != 227:
                raise RuntimeError(f"{path}: {rows} rows and {columns} columns after the append")
    print(
        f"  (each in a fresh process; importing zarr, shapely, zstandard, numcodecs and pandas first "
        f"took {statistics.median(imports):.3f} s, not counted)"
    )
    result = {}
    for name, t in times.items():
        result[name] = statistics.median(t)
        mark = "met" if result[name] <= 0.5 else "NOT met"
        print(
            f"  {name:22s} median {result[name]:.3f} s ({min(t):.3f}-{max(t):.3f})  (target <= 0.5 s: {mark})"
        )
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", type=Path, default=HERE / "data")
    p.add_argument("--only", choices=["ingest", "append"])
    a = p.parse_args()
    a.data.mkdir(parents=True, exist_ok=True)
    if a.only != "append":
        ingest_section(sys.executable, a.data, a.items, a.rounds)
    if a.only != "ingest":
        append_section(sys.executable, a.data, a.rounds)


if __name__ == "__main__":
    main()
