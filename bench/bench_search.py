"""Section 9: repeated selective searches on a 2M-item catalogue (Hilbert-sorted, with
statistics), ours through both hosts against the same items as GeoParquet in SedonaDB.

At this size a query's fixed costs dominate: each process runs the query once to warm
up, then times repetitions, as a service answering searches does (metadata read once,
kept while the store is unchanged; decoded chunks kept too, and once more with
``ZARR_META_CHUNK_CACHE_MB=0``, so that every repetition decodes what it reads).

The floor printed next to them is what no reader of these files can skip: the
chunks left after the statistics (every reader here keeps the same ones) read
from disk and decompressed, estimated as that share of the whole store's
chunk files read and decompressed on all cores.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench_common import D2_CHUNK, HERE, WHERE, interleaved, measure, median, target
from bench_data import make_d2

ITEMS = 2_000_000
REPEAT = 20


def search_section(py: str, data: Path, scale: int) -> None:
    sys.path.insert(0, str(HERE))
    from alternatives import write_geoparquet

    n = ITEMS // scale
    print(f"\n== 9. repeated selective searches on {n:,} items (sorted, statistics), both hosts ==")
    store = make_d2(data / f"d2-{n}-c{D2_CHUNK}.zarr", n)
    parquet = data / f"d2-{n}-c{D2_CHUNK}.parquet"
    if not parquet.exists():
        write_geoparquet(store, parquet, D2_CHUNK)
    script, rep = HERE / "measure.py", ["--repeat", str(REPEAT)]
    ours = f"SELECT * FROM sd_read_zarr_meta('{{store}}') {WHERE}"
    # Decoded chunks kept between repetitions (the default, which the other sections turn off).
    kept = ("env", "-u", "ZARR_META_CHUNK_CACHE_MB", py)
    jobs = {
        "ours, SedonaDB": (*kept, script, "sedonadb-sql", store, *rep, "--sql", ours, "--digest"),
        "ours, datafusion-python": (*kept, script, "datafusion-sql", store, *rep, "--sql", ours, "--digest"),
        # Every search decodes what it reads.
        "ours, SedonaDB, nothing kept": (py, script, "sedonadb-sql", store, *rep, "--sql", ours, "--digest"),
        "GeoParquet, SedonaDB": (
            py,
            script,
            "geoparquet-sql",
            str(parquet),
            *rep,
            "--sql",
            f"SELECT * FROM d2_geoparquet {WHERE}",
            "--digest",
        ),
    }
    res = interleaved(jobs)
    digests = {(m["rows"], m["digest"]) for m in res.values()}
    if len(digests) != 1:
        raise SystemExit(f"results differ: {[(k, m['rows']) for k, m in res.items()]}")
    for name, m in res.items():
        print(f"  {name:28s} median {1000 * median(m):7.1f} ms  rows {m['rows']:,}")
    gp = median(res["GeoParquet, SedonaDB"])
    for host in ("SedonaDB", "datafusion-python", "SedonaDB, nothing kept"):
        r = gp / median(res[f"ours, {host}"])
        print(f"  {'ratio GeoParquet / ours (' + host + '):':48s} {r:5.2f}x  {target(r, '>=', 2)}")

    fraction = _share_after_statistics(store)
    whole = median(measure(py, script, "floor", store, "--repeat", "5"))
    floor = whole * fraction
    print(
        f"  floor: {100 * fraction:.1f}% of the rows survive the statistics; reading and "
        f"decompressing that share of the chunk files: {1000 * floor:.1f} ms"
    )
    for name, m in res.items():
        print(f"  {name + ' / floor:':48s} {median(m) / floor:5.2f}x")
    print(f"  {'best ratio any reader could reach (GeoParquet / floor):':48s} {gp / floor:5.2f}x")


def _share_after_statistics(store: str) -> float:
    """Share of the rows the scan plans after chunk statistics, from EXPLAIN."""
    import sedonadb
    from sedonadb_zarr_meta import register

    con = sedonadb.connect()
    register(con)
    plan = con.sql(f"EXPLAIN SELECT * FROM sd_read_zarr_meta('{store}') {WHERE}").to_pandas()
    text = "\n".join(str(v) for v in plan.to_numpy().ravel())
    found = re.search(r"rows_after_statistics=(\d+)/(\d+)", text)
    if not found:
        raise SystemExit(f"no rows_after_statistics in the plan:\n{text}")
    return int(found[1]) / int(found[2])
