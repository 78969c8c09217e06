"""One measurement, run in its own process: ``measure.py WHAT STORE [--repeat N] [--sql Q] [--digest]``.

Prints one JSON line with the rows produced, the wall-clock seconds of each
repetition (after one warm-up) and the process's peak resident memory; with
``--digest`` also a digest of the last result's values, independent of row
order and of how each reader types its columns (so results of different
readers can be compared).

``floor`` is not a reader: it reads every chunk file of the store's ``meta``
arrays from disk and decompresses it (zstd) on all cores, nothing else.
``geoparquet-sql`` and ``duckdb-sql`` take a GeoParquet file written by
``alternatives.write_geoparquet`` instead of a store; their SQL names the view
``d2_geoparquet`` (the store's columns; see ``alternatives.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not
    inherited from the parent across fork/exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _table_sql(host: str, sql: str):
    import pyarrow as pa
    from sedonadb_zarr_meta import register

    if host == "sedonadb":
        import sedonadb

        con = register(sedonadb.connect())
        return lambda: pa.table(con.sql(sql))
    import datafusion

    ctx = register(datafusion.SessionContext())
    return lambda: ctx.sql(sql).to_arrow_table()


def _count_rows_streaming(host: str, sql: str):
    """Stream the result batch by batch (nothing kept) and count rows."""
    import pyarrow as pa
    from sedonadb_zarr_meta import register

    if host == "sedonadb":
        import sedonadb

        con = register(sedonadb.connect())

        def run():
            reader = pa.RecordBatchReader.from_stream(con.sql(sql))
            return sum(b.num_rows for b in reader)

        return run
    raise ValueError(host)


def _zarr_python(store: str):
    import numpy as np
    import pyarrow as pa
    import zarr

    def run():
        g = zarr.open_group(store.removeprefix("file://") + "/meta", mode="r")
        cols = {}
        for name, arr in g.arrays():
            values = arr[:]
            if values.dtype.kind == "O" or values.dtype.kind == "T":
                values = np.asarray(values, dtype=object)
            cols[name] = pa.array(values)
        return pa.table(cols)

    return run


def _sedonadb_dataframe(store: str):
    """Open the store once as a SedonaDB DataFrame; each run re-scans it (no metadata reads)."""
    import pyarrow as pa
    import sedonadb
    from sedonadb_zarr_meta import ZarrMetaSpec, register

    con = register(sedonadb.connect())
    df = con.read_format(ZarrMetaSpec(), store)
    return lambda: pa.table(df)


def _core(store: str):
    import pyarrow as pa
    from sedonadb_zarr_meta import open_meta

    return lambda: pa.table(open_meta(store).scan())


def _zstd_decoder():
    """(name, decode(bytes) -> bytes-like) for zstd frames, safe to call from many threads.

    Always numcodecs' Zstd, which zarr-python itself decodes with, so the floor
    is measured the same way whatever other zstd bindings are installed."""
    import numcodecs

    codec = numcodecs.Zstd()
    return f"numcodecs {numcodecs.__version__}", codec.decode


def _floor(store: str):
    """Read and decompress every chunk file of the store's arrays on all cores: no Arrow work."""
    from concurrent.futures import ThreadPoolExecutor

    root = Path(store.removeprefix("file://")) / "meta"
    files: list[Path] = []
    rows = 0
    for meta in sorted(root.glob("*/zarr.json")):
        array = json.loads(meta.read_text())
        if array.get("node_type") != "array":
            continue
        codecs = [c["name"] for c in array["codecs"]]
        if len(codecs) != 2 or codecs[1] != "zstd":
            raise SystemExit(f"{meta}: codecs {codecs}; the floor decodes [serializer, zstd] only")
        files += sorted(f for f in (meta.parent / "c").rglob("*") if f.is_file())
        rows = max(rows, array["shape"][0])
    if not files:
        raise SystemExit(f"{root}: no chunk files")
    name, decode = _zstd_decoder()
    workers = os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers)

    def one(path: Path) -> tuple[int, int]:
        with open(path, "rb") as f:
            data = f.read()
        return len(data), len(decode(data))

    def run():
        sizes = list(pool.map(one, files))
        return {
            "rows": rows,
            "chunk_files": len(files),
            "compressed_bytes": sum(s[0] for s in sizes),
            "decompressed_bytes": sum(s[1] for s in sizes),
            "decoder": name,
            "threads": workers,
        }

    return run


def _geoparquet_sql(path: str, sql: str):
    import pyarrow as pa
    import sedonadb
    from alternatives import sedonadb_view

    con = sedonadb.connect()
    sedonadb_view(con, path)
    return lambda: pa.table(con.sql(sql))


def _duckdb_sql(path: str, sql: str):
    from alternatives import duckdb_connect, duckdb_view

    con = duckdb_connect()
    duckdb_view(con, path)
    return lambda: con.execute(sql).fetch_arrow_table()


def digest(table) -> str:
    """SHA-256 of the table's rows (bbox as WKB bytes, cloud_cover, collection, date in ms),
    sorted, so equal rows in any order and under any reader's typing give the same digest."""
    import hashlib

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = {
        "bbox": pa.binary(),
        "cloud_cover": pa.float32(),
        "collection": pa.string(),
        "date": pa.timestamp("ms"),
    }
    cols = {}
    for name, type_ in wanted.items():
        col = table.column(name).combine_chunks()
        if isinstance(col.type, pa.ExtensionType):
            col = col.storage
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        cols[name] = col.cast(type_)
    t = pa.table(cols)
    order = pc.sort_indices(t, [("date", "ascending"), ("cloud_cover", "ascending"), ("bbox", "ascending")])
    t = t.take(order)
    h = hashlib.sha256(str(t.num_rows).encode())
    for name in wanted:
        col = t.column(name).combine_chunks()
        h.update(f"{name} {col.null_count}".encode())
        if name in ("bbox", "collection"):
            bufs = col.buffers()
            offsets = np.frombuffer(bufs[1], np.int32)[col.offset : col.offset + len(col) + 1]
            h.update((offsets - offsets[0]).tobytes())
            h.update(memoryview(bufs[2])[offsets[0] : offsets[-1]] if len(col) else b"")
        else:
            h.update(col.cast(pa.int64() if name == "date" else col.type).to_numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "what",
        choices=[
            "core",
            "zarr-python",
            "sedonadb-sql",
            "sedonadb-df",
            "datafusion-sql",
            "stream-sql",
            "floor",
            "geoparquet-sql",
            "duckdb-sql",
        ],
    )
    p.add_argument("store", help="store URI, or for geoparquet-sql/duckdb-sql a GeoParquet file")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sql", default=None)
    p.add_argument("--digest", action="store_true", help="also print a digest of the result's values")
    a = p.parse_args()
    default_sql = "SELECT * FROM sd_read_zarr_meta('{store}')"
    if a.what in ("geoparquet-sql", "duckdb-sql"):
        default_sql = "SELECT * FROM d2_geoparquet"
    sql = (a.sql or default_sql).format(store=a.store)
    run = {
        "core": lambda: _core(a.store),
        "zarr-python": lambda: _zarr_python(a.store),
        "sedonadb-sql": lambda: _table_sql("sedonadb", sql),
        "sedonadb-df": lambda: _sedonadb_dataframe(a.store),
        "datafusion-sql": lambda: _table_sql("datafusion", sql),
        "stream-sql": lambda: _count_rows_streaming("sedonadb", sql),
        "floor": lambda: _floor(a.store),
        "geoparquet-sql": lambda: _geoparquet_sql(a.store, sql),
        "duckdb-sql": lambda: _duckdb_sql(a.store, sql),
    }[a.what]()
    rss_before = peak_rss_mb()
    result = run()  # warm-up
    seconds = []
    for _ in range(a.repeat):
        # The previous result is freed first, so each run starts from the same
        # memory state (a full scan of D2 holds more than a gigabyte).
        result = None
        t0 = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - t0)
    extra = {}
    if isinstance(result, dict):
        extra, rows = result, result["rows"]
    else:
        rows = result if isinstance(result, int) else result.num_rows
    if a.digest:
        extra["digest"] = digest(result)
    print(
        json.dumps(
            {
                **extra,
                "reader": a.what,
                "rows": rows,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "rss_after_imports_mb": rss_before,
            }
        )
    )


if __name__ == "__main__":
    main()
