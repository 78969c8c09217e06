"""Sections 1-3 on local disk: D1's full scan against zarr-datafusion-search and
zarr-python, the selective query on D2, and a streaming aggregate's peak memory.
"""

from __future__ import annotations

from pathlib import Path

from bench_common import HERE, WHERE, measure, median, zds_python


def local_sections(py: str, script: Path, d1: str, d2: str, n1: int, n2: int, rep: list[str]) -> float:
    """Print sections 1-3; returns the median of D1's full scan in SedonaDB SQL."""
    ours_sql = full_scan_section(py, script, d1, n1, rep)
    selective_section(py, script, d2, n2, rep)
    aggregate_section(py, script, d2)
    return median(ours_sql)


def full_scan_section(py: str, script: Path, d1: str, n1: int, rep: list[str]) -> dict:
    print(f"\n== 1. full scan of D1 ({n1:,} rows) into an Arrow table ==")
    ours_core = measure(py, script, "core", d1, *rep)
    ours_sql = measure(py, script, "sedonadb-sql", d1, *rep)
    zp = measure(py, script, "zarr-python", d1, *rep)
    results = {
        "ours (open_meta().scan())": ours_core,
        "ours (SedonaDB SQL)": ours_sql,
        "zarr-python + pyarrow": zp,
    }
    zpy = zds_python()
    if zpy:
        results["zarr-datafusion-search 0.1.2"] = measure(
            zpy, HERE / "zds_scan.py", d1.removeprefix("file://"), *rep
        )
    for name, m in results.items():
        print(f"  {name:32s} median {median(m):7.3f} s  rows {m['rows']:,}")
    base = median(ours_sql)
    for name, m in results.items():
        if not name.startswith("ours"):
            print(
                f"  ratio {name} / ours (SedonaDB SQL): {median(m) / base:5.1f}x"
                f"   / ours (open_meta): {median(m) / median(ours_core):5.1f}x"
            )
    return ours_sql


def selective_section(py: str, script: Path, d2: str, n2: int, rep: list[str]) -> None:
    print(f"\n== 2. selective query on D2 ({n2:,} rows, sorted, with statistics) ==")
    where = WHERE
    sel = measure(
        py,
        script,
        "sedonadb-sql",
        d2,
        *rep,
        "--sql",
        f"SELECT * FROM sd_read_zarr_meta('{{store}}') {where}",
    )
    nopd = measure(
        py,
        script,
        "sedonadb-sql",
        d2,
        *rep,
        "--sql",
        f"SELECT * FROM sd_read_zarr_meta('{{store}}', '{{{{\"pushdown\": false}}}}') {where}",
    )
    full = measure(py, script, "sedonadb-sql", d2, "--repeat", "1")
    print(f"  selective query           median {median(sel):7.3f} s  rows {sel['rows']:,}")
    print(f"  same, pushdown disabled   median {median(nopd):7.3f} s  rows {nopd['rows']:,}")
    print(f"  full scan (SELECT *)      median {median(full):7.3f} s  rows {full['rows']:,}")
    print(f"  ratio full scan / selective:         {median(full) / median(sel):6.1f}x")
    print(f"  ratio no pushdown / selective:       {median(nopd) / median(sel):6.1f}x")


def aggregate_section(py: str, script: Path, d2: str) -> None:
    print("\n== 3. peak memory of a streaming aggregate over D2 ==")
    agg = measure(
        py,
        script,
        "stream-sql",
        d2,
        "--repeat",
        "1",
        "--sql",
        "SELECT collection, count(*) AS n FROM sd_read_zarr_meta('{store}') GROUP BY 1",
    )
    print(
        f"  SELECT collection, count(*) ... GROUP BY 1: peak RSS {agg['peak_rss_mb']:.0f} MB "
        f"(process after imports: {agg['rss_after_imports_mb']:.0f} MB), {median(agg):.2f} s"
    )
