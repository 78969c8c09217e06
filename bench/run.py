"""Benchmark: sedonadb-zarr-meta against the alternatives, side by side in one run.

Workloads (generated once into ``bench/data``, reused afterwards):

* D1 — 1,000,000 items, chunks of 100,000, written by zarr-python with its
  defaults (zstd): ``bbox`` (WKB boxes), ``collection`` (3 values), ``date``
  (datetime64[ms]), ``cloud_cover`` (float32).
* D2 — 10,000,000 items of the same shape, spatially sorted (Hilbert curve)
  in chunks of 25,000 with per-chunk statistics, written by ``write_meta``.

Printed, each as a ratio of medians measured in this run:

1. full scan of D1 (``SELECT *`` into an Arrow table) vs zarr-datafusion-search
   0.1.2 (its own virtualenv, ``datafusion==53.0.0``) and vs zarr-python + pyarrow;
2. a selective query on D2 (≈1% of the area, one month) vs the full scan of D2
   and vs the same query with pushdown disabled;
3. peak memory of ``SELECT collection, count(*) ... GROUP BY 1`` streaming over D2;
4. the same stores on a loopback S3 server (moto) behind a proxy adding 20 ms
   to every request: D1 full scan vs zarr-datafusion-search reading the same
   server and vs our local-disk time; the D2 selective query vs the D2 full
   scan; requests and bytes fetched per query (counted by the proxy);
5. D1 copied into an Icechunk repository on local disk (same chunks and
   codecs, written by Python icechunk): full scan vs the plain store, measured
   interleaved in this run;
6. the floor: every chunk file of D1 read and zstd-decompressed on all cores
   with no Arrow work, and each surface's D1 full scan (SedonaDB SQL,
   datafusion-python SQL, ``open_meta().scan()``) as a multiple of it; and,
   from ``examples/decode_floor.rs`` on the same files, the least any reader
   producing Arrow pays: zstd plus the copy of variable-length elements into
   Arrow's layout; and the least a reader pays that keeps its guarantees and
   hands its arrays to a host (memory of their own, kept until the scan ends;
   WKB validated; text checked as UTF-8), with each surface's ratio to it;
7. D2 as GeoParquet 1.1 (bbox covering column, row groups of D2's chunk size,
   same row order, zstd) queried by SedonaDB with the same SQL: the selective
   query and the full scan, ours vs GeoParquet, results checked equal; and the
   selective query in DuckDB's spatial extension on the same file; the
   store's floor and guarantee-keeping limit bound the full-scan ratio;
8. growth: the selective query on catalogues of 1M and 10M rows (100k and
   1M with ``--quick``; ``--growth-10x`` adds 100M) grown over time (1 and 10
   years of monthly batches, the query selecting the same items), and on D2
   at 1M and 10M rows over one year (grown in density: 10x the items match).

Sections 5-8 run their readers interleaved, each in its own process, three
rounds, and compare medians. Targets (issue 11) are printed next to the ratios.

9. repeated selective searches on a 2M-item catalogue: ours through SedonaDB and
   datafusion-python against the same items as GeoParquet in SedonaDB.
10. STAC ingest of 100,000 Sentinel-2 L2A items (10,000 with ``--quick``) against rustac
   ``translate``: items/s and the peak memory of the process tree; and 50 items appended to a
   catalogue of 227 columns, on a plain store and as one Icechunk commit
   (``bench/bench_ingest.py``).

Usage: ``python bench/run.py [--quick] [--only icechunk|floor|geoparquet|growth|search|remote|ingest]``
(``--quick`` shrinks D1/D2 tenfold; ``--only`` runs one section).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench_common import D2_CHUNK, HERE, WHERE, measure, median
from bench_data import make_d1, make_d2
from bench_floor import floor_section
from bench_geoparquet import geoparquet_section
from bench_growth import growth_section
from bench_icechunk import icechunk_scan
from bench_ingest import append_section, ingest_section
from bench_local import local_sections
from bench_remote import remote
from bench_search import search_section


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data", type=Path, default=HERE / "data")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--only",
        choices=["icechunk", "floor", "geoparquet", "growth", "search", "remote", "ingest"],
        help="run only this section",
    )
    p.add_argument(
        "--growth-10x",
        action="store_true",
        help="growth section: also 10x D2's rows (100M at full scale: generating it takes long)",
    )
    a = p.parse_args()
    scale = 10 if a.quick else 1
    n1, n2 = 1_000_000 // scale, 10_000_000 // scale
    a.data.mkdir(parents=True, exist_ok=True)
    py, script, rep = sys.executable, HERE / "measure.py", ["--repeat", str(a.repeat)]
    if a.only == "search":
        search_section(py, a.data, scale)
        return
    if a.only == "ingest":
        ingest_section(py, a.data, 100_000 // scale, a.repeat)
        append_section(py, a.data, a.repeat)
        return
    if a.only in ("geoparquet", "growth"):
        d2 = make_d2(a.data / f"d2-{n2}-c{D2_CHUNK}.zarr", n2)
        if a.only == "geoparquet":
            geoparquet_section(py, d2, a.data / f"d2-{n2}-c{D2_CHUNK}.parquet", rep)
        else:
            growth_section(py, a.data, n2, rep, a.growth_10x)
        return
    d1 = make_d1(a.data / f"d1-{n1}.zarr", n1)
    if a.only == "icechunk":
        icechunk_scan(py, d1, a.data / f"d1-{n1}.icechunk", rep)
        return
    if a.only == "floor":
        floor_section(py, d1, rep)
        return
    d2 = make_d2(a.data / f"d2-{n2}-c{D2_CHUNK}.zarr", n2)
    if a.only == "remote":
        local_d1 = median(measure(py, script, "sedonadb-sql", d1, *rep))
        remote(py, d1, d2, a.data / f"d2-{n2}-c{D2_CHUNK}.parquet", rep, local_d1, WHERE)
        return

    local_d1 = local_sections(py, script, d1, d2, n1, n2, rep)
    remote(py, d1, d2, a.data / f"d2-{n2}-c{D2_CHUNK}.parquet", rep, local_d1, WHERE)
    icechunk_scan(py, d1, a.data / f"d1-{n1}.icechunk", rep)
    floor_section(py, d1, rep)
    geoparquet_section(py, d2, a.data / f"d2-{n2}-c{D2_CHUNK}.parquet", rep)
    growth_section(py, a.data, n2, rep, a.growth_10x)
    search_section(py, a.data, scale)
    ingest_section(py, a.data, 100_000 // scale, a.repeat)
    append_section(py, a.data, a.repeat)


if __name__ == "__main__":
    main()
