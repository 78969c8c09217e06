"""One measurement, run in its own process: ``measure.py WHAT STORE [--repeat N] [--sql Q]``.

Prints one JSON line with the rows produced, the wall-clock seconds of each
repetition (after one warm-up) and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import time


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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "what", choices=["core", "zarr-python", "sedonadb-sql", "sedonadb-df", "datafusion-sql", "stream-sql"]
    )
    p.add_argument("store")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sql", default=None)
    a = p.parse_args()
    sql = (a.sql or "SELECT * FROM sd_read_zarr_meta('{store}')").format(store=a.store)
    run = {
        "core": lambda: _core(a.store),
        "zarr-python": lambda: _zarr_python(a.store),
        "sedonadb-sql": lambda: _table_sql("sedonadb", sql),
        "sedonadb-df": lambda: _sedonadb_dataframe(a.store),
        "datafusion-sql": lambda: _table_sql("datafusion", sql),
        "stream-sql": lambda: _count_rows_streaming("sedonadb", sql),
    }[a.what]()
    rss_before = peak_rss_mb()
    result = run()  # warm-up
    seconds = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - t0)
    rows = result if isinstance(result, int) else result.num_rows
    print(
        json.dumps(
            {
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
