"""The same SQL on a Ballista cluster against SedonaDB on one machine.

D2 (``--items``, default 10M, Hilbert-sorted, with statistics) and a GeoParquet of regions;
four queries (a full scan, a selective query, a GROUP BY, a spatial join), each run by
SedonaDB in this process and by the cluster's client (``sedonadb_zarr_meta.distributed``),
on a cluster of 1 executor with 2 task slots and of 2 executors with 1 slot each, all on
127.0.0.1. Interleaved rounds, medians, results checked equal.

This machine has 2 cores: the cluster runs on the same cores as the single-node engine,
so the figures measure what distribution costs, not what it gains. The projection to N
machines at the end uses the measured per-executor throughput and the cluster's fixed
cost per query; its assumptions are printed with it.

    python bench/bench_cluster.py [--items 10000000] [--rounds 3]

Needs the ``zarr-meta-cluster`` binary (``$SZM_CLUSTER_BIN`` or on ``PATH``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from bench_common import D2_CHUNK, HERE, WHERE
from bench_data import make_d2

sys.path.insert(0, str(HERE.parent))
from tests.cluster import LocalCluster  # noqa: E402  (test servers' ports, below the ephemeral range)

#: Regions of the join: 8 boxes of 20 x 20 degrees over land and sea.
REGIONS = {f"r{i}": (-170 + 45 * i, -40 + 10 * (i % 4), -150 + 45 * i, -20 + 10 * (i % 4)) for i in range(8)}
M = "sd_read_zarr_meta('{store}')"
QUERIES = {
    "full scan": (
        f"SELECT count(*) AS n, sum(cloud_cover) AS cc, min(date) AS d0, max(date) AS d1, "
        f"sum(ST_Area(bbox)) AS area FROM {M}"
    ),
    "selective": f"SELECT count(*) AS n, sum(cloud_cover) AS cc FROM {M} {WHERE}",
    "group by": f"SELECT collection, count(*) AS n, avg(cloud_cover) AS cc FROM {M} GROUP BY collection",
    "spatial join (one month)": (
        f"SELECT r.region, count(*) AS n FROM {M} m JOIN regions r ON ST_Intersects(m.bbox, r.geometry) "
        "WHERE m.date >= TIMESTAMP '2024-06-01' AND m.date < TIMESTAMP '2024-07-01' GROUP BY r.region"
    ),
}
#: A query whose every chunk the statistics rule out: the cluster's fixed cost per query.
EMPTY = f"SELECT count(*) AS n FROM {M} WHERE date < TIMESTAMP '1900-01-01'"


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    def value(v: Any) -> Any:
        return round(v, 3) if isinstance(v, float) else v

    return sorted((tuple(value(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def _timed(run) -> tuple[float, pa.Table]:
    start = time.perf_counter()
    table = run()
    return time.perf_counter() - start, table


def regions_parquet(path: Path) -> Path:
    import geopandas
    import shapely

    if not path.exists():
        frame = geopandas.GeoDataFrame(
            {"region": list(REGIONS)}, geometry=[shapely.box(*b) for b in REGIONS.values()], crs="OGC:CRS84"
        )
        frame.to_parquet(path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=10_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", type=Path, default=HERE / "data")
    args = p.parse_args()

    import sedonadb
    from sedonadb_zarr_meta import distributed, register

    binary = distributed.binary()
    args.data.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    store = make_d2(args.data / f"d2-{args.items}-c{D2_CHUNK}.zarr", args.items)
    print(f"D2: {args.items:,} items ({time.perf_counter() - start:.0f} s to make or find)")
    regions = regions_parquet(args.data / "regions-8.parquet")
    con = register(sedonadb.connect())
    con.read_parquet(str(regions)).to_view("regions", overwrite=True)

    def single(sql: str) -> pa.Table:
        return con.sql(sql).to_arrow_table()

    results: dict[str, dict[str, float]] = {}
    fixed: dict[str, float] = {}
    for label, executors, slots in (("1 executor x 2 slots", 1, 2), ("2 executors x 1 slot", 2, 1)):
        with tempfile.TemporaryDirectory() as logs:
            cluster = LocalCluster(binary, Path(logs), executors=executors, slots=slots)
            try:
                client = distributed.connect(cluster.url, timeout=3600)
                client.register_geoparquet("regions", str(regions))
                fixed[label] = statistics.median(
                    _timed(lambda c=client: pa.table(c.sql(EMPTY.format(store=store))))[0] for _ in range(5)
                )
                for name, sql in QUERIES.items():
                    sql = sql.format(store=store)
                    want = _rows(single(sql))  # warm: metadata cached, pages in the OS cache
                    got = _rows(pa.table(client.sql(sql)))
                    if got != want:
                        raise SystemExit(f"{name}: the cluster's rows differ from SedonaDB's")
                    times: dict[str, list[float]] = {"SedonaDB": [], label: []}
                    for _ in range(args.rounds):
                        times["SedonaDB"].append(_timed(lambda q=sql: single(q))[0])
                        times[label].append(_timed(lambda q=sql, c=client: pa.table(c.sql(q)))[0])
                    row = results.setdefault(name, {})
                    row["SedonaDB"] = min(
                        row.get("SedonaDB", float("inf")), statistics.median(times["SedonaDB"])
                    )
                    row[label] = statistics.median(times[label])
            finally:
                cluster.stop()

    labels = ["SedonaDB", "1 executor x 2 slots", "2 executors x 1 slot"]
    print(f"\n== the same SQL, {args.items:,} items, medians of {args.rounds} interleaved rounds ==")
    print(f"  {'query':26s}" + "".join(f"{x:>24s}" for x in labels))
    for name, row in results.items():
        cells = [f"{row['SedonaDB']:9.2f} s"]
        cells += [f"{row[x]:7.2f} s ({row[x] / row['SedonaDB']:4.2f}x)" for x in labels[1:]]
        print(f"  {name:26s}" + "".join(f"{c:>24s}" for c in cells))
    for label, t in fixed.items():
        print(f"  cluster fixed cost per query ({label}): {t:.2f} s (client process, planning, scheduling)")

    one = results["full scan"]["1 executor x 2 slots"] - fixed["1 executor x 2 slots"]
    per_core = args.items / one / 2
    print("\n== projection to N machines (full scan of the same store) ==")
    print(
        f"  measured: {per_core:,.0f} rows/s per core on one executor; fixed cost "
        f"{fixed['1 executor x 2 slots']:.2f} s per query"
    )
    print(
        "  assumes: executors of C cores each read at that rate per core (reading is decode-bound and "
        "splits by chunk ranges with no shuffle: partial aggregates only), the store's object store "
        "serves N x the bandwidth, the scheduler's planning stays within the fixed cost"
    )
    for rows in (100_000_000, 1_000_000_000):
        cells = []
        for n, cores in ((1, 8), (4, 8), (16, 8), (64, 8)):
            t = fixed["1 executor x 2 slots"] + rows / (per_core * cores * n)
            cells.append(f"{n} x {cores} cores: {t:6.1f} s")
        print(f"  {rows:>13,} items: " + "; ".join(cells))


if __name__ == "__main__":
    main()
