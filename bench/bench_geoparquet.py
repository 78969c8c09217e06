"""Section 7: D2 as GeoParquet, queried with the same SQL by SedonaDB and DuckDB."""

from __future__ import annotations

import sys
from pathlib import Path

from bench_common import (
    AREA,
    D2_CHUNK,
    HERE,
    WHERE,
    interleaved,
    median,
    target,
)
from bench_floor import decode_floor, decode_floor_job


def geoparquet_section(py: str, d2: str, path: Path, rep: list[str]) -> None:
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from alternatives import write_geoparquet

    print("\n== 7. D2 as GeoParquet (bbox covering, same order, row groups of D2's chunks), same SQL ==")
    if not path.exists():
        print(f"  writing {path.name} from the D2 store", file=sys.stderr)
        write_geoparquet(d2, path, D2_CHUNK)
    meta = pq.ParquetFile(str(path)).metadata
    store_mb = sum(f.stat().st_size for f in Path(d2.removeprefix("file://")).rglob("*") if f.is_file()) / 1e6
    print(
        f"  {path.name}: {meta.num_rows:,} rows in {meta.num_row_groups} row groups of "
        f"{meta.row_group(0).num_rows:,}, zstd, {path.stat().st_size / 1e6:.0f} MB (the Zarr store: "
        f"{store_mb:.0f} MB); read by SedonaDB as a view with the store's columns"
    )
    script = HERE / "measure.py"
    sel_ours = f"SELECT * FROM sd_read_zarr_meta('{{store}}') {WHERE}"
    sel_gp = f"SELECT * FROM d2_geoparquet {WHERE}"
    jobs = {
        "selective, ours": (py, script, "sedonadb-sql", d2, *rep, "--sql", sel_ours, "--digest"),
        "selective, GeoParquet": (py, script, "geoparquet-sql", str(path), *rep, "--sql", sel_gp, "--digest"),
        "full scan, ours": (py, script, "sedonadb-sql", d2, *rep, "--digest"),
        "full scan, GeoParquet": (py, script, "geoparquet-sql", str(path), *rep, "--digest"),
        # The store's chunk files decompressed on all cores, nothing else: no
        # reader of this store can scan it faster.
        "floor of the store": (py, script, "floor", d2, *rep),
    }
    limits = decode_floor()
    if limits:
        # ... nor can one that keeps its guarantees scan it faster than this.
        jobs["limit of the store"] = decode_floor_job(limits, d2, "kept", rep)
    duck = add_duckdb_jobs(jobs, py, script, path, rep)
    res = interleaved(jobs)
    for name, m in res.items():
        print(f"  {name:40s} median {median(m):7.3f} s  rows {m['rows']:,}")
    sel, full = res["selective, ours"], res["full scan, ours"]
    floor = res.pop("floor of the store")
    limit = res.pop("limit of the store", None)
    check_equal(res, sel, full)
    r_sel = median(res["selective, GeoParquet"]) / median(sel)
    r_full = median(res["full scan, GeoParquet"]) / median(full)
    print(f"  {'ratio GeoParquet / ours, selective query:':60s} {r_sel:5.2f}x  {target(r_sel, '>=', 2)}")
    print(f"  {'ratio GeoParquet / ours, full scan:':60s} {r_full:5.2f}x  {target(r_full, '>=', 1.5)}")
    print(
        f"  the store's decompression floor (its {floor['chunk_files']} chunk files, zstd alone, all cores): "
        f"{median(floor):.3f} s, so no reader of it scans more than "
        f"{median(res['full scan, GeoParquet']) / median(floor):.2f}x faster than GeoParquet here; "
        f"ours takes {median(full) / median(floor):.2f}x the floor"
    )
    if limit is not None:
        gp = median(res["full scan, GeoParquet"])
        print(
            f"  the least a reader of the store pays that keeps its guarantees (decode_floor kept, as in "
            f"section 6): {median(limit):.3f} s, so no such reader scans more than {gp / median(limit):.2f}x "
            f"faster than GeoParquet here; ours takes {median(full) / median(limit):.2f}x that limit"
        )
    if duck is not None:
        print(f"  DuckDB skipped: {duck}")
        return
    for name, m in res.items():
        if "DuckDB" in name:
            label = f"ratio {name.removeprefix('selective, ')} / ours, selective query:"
            print(f"  {label:60s} {median(m) / median(sel):5.2f}x")
    print(
        "  (DuckDB: its spatial extension has no ST_SetSRID, a macro returning the geometry stands in; "
        "'+ covering predicates' adds covering.xmin <= ... etc., as DuckDB users write to use the covering)"
    )


def add_duckdb_jobs(jobs: dict, py: str, script: Path, path: Path, rep: list[str]) -> str | None:
    """Add the selective query in DuckDB's spatial extension to ``jobs``; returns why not, if it can't run."""
    from alternatives import duckdb_connect

    try:
        duckdb_connect()
    except RuntimeError as e:
        return str(e)
    import duckdb
    import shapely
    from alternatives import DUCKDB_COLUMNS

    xmin, ymin, xmax, ymax = shapely.from_wkt(AREA).bounds
    covering = (
        f" AND covering.xmin <= {xmax} AND covering.xmax >= {xmin}"
        f" AND covering.ymin <= {ymax} AND covering.ymax >= {ymin}"
    )
    for name, extra in ((f"DuckDB {duckdb.__version__}", ""), ("DuckDB + covering predicates", covering)):
        sql = f"SELECT {DUCKDB_COLUMNS} FROM d2_geoparquet {WHERE}{extra}"
        jobs[f"selective, {name}"] = (py, script, "duckdb-sql", str(path), *rep, "--sql", sql, "--digest")
    return None


def check_equal(res: dict, sel: dict, full: dict) -> None:
    """Every reader's selective query and full scan found the same rows as ours."""
    for name, m in res.items():
        ref = sel if name.startswith("selective") else full
        if (m["rows"], m["digest"]) != (ref["rows"], ref["digest"]):
            raise SystemExit(
                f"results differ: {name} gave {m['rows']:,} rows (digest {m['digest'][:12]}), ours "
                f"{ref['rows']:,} (digest {ref['digest'][:12]})"
            )
    print(
        f"  results equal: every selective query {sel['rows']:,} rows, every full scan {full['rows']:,} "
        "rows, same values (digests of the sorted rows match)"
    )
