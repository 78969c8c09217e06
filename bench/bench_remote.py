"""Section 4: the stores on a loopback S3 server behind a proxy adding latency."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from bench_common import (
    D2_CHUNK,
    HERE,
    measure,
    median,
    zds_python,
)


def upload(server, bucket: str, store: Path, name: str) -> None:
    """Copy a local store's files into the S3 server (straight to it, not through the proxy)."""
    from concurrent.futures import ThreadPoolExecutor

    import obstore

    target = server.obstore_store(bucket, name)
    files = [f for f in store.rglob("*") if f.is_file()]

    def put(f: Path) -> None:
        obstore.put(target, f.relative_to(store).as_posix(), f.read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))


def put_file(server, bucket: str, path: Path, key: str) -> None:
    """Copy one local file into the S3 server as ``key`` (in parts, as large files are)."""
    import obstore

    with open(path, "rb") as f:
        obstore.put(server.obstore_store(bucket, ""), key, f, chunk_size=16 << 20)


def network_floor(server, bucket: str, name: str) -> float:
    """Seconds to fetch every chunk object of a store through the proxy, concurrently, nothing else."""
    import asyncio
    import time

    import obstore

    store = server.obstore_store(bucket, name, proxied=True)
    keys = [m["path"] for batch in obstore.list(store) for m in batch if "/c/" in m["path"]]

    async def fetch_all() -> int:
        sem = asyncio.Semaphore(32)

        async def one(key: str) -> int:
            async with sem:
                return len(await (await obstore.get_async(store, key)).bytes_async())

        return sum(await asyncio.gather(*(one(k) for k in keys)))

    times = []
    for _ in range(3):
        start = time.perf_counter()
        asyncio.run(fetch_all())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def remote(py: str, d1: str, d2: str, parquet: Path, rep: list[str], local_d1: float, where: str) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    sys.path.insert(0, str(HERE))
    from alternatives import write_geoparquet
    from s3proxy import S3Server

    print("\n== 4. object store: loopback S3 server, 20 ms added to every request ==")
    server = S3Server()
    try:
        server.create_bucket("bench")
        upload(server, "bench", Path(d1.removeprefix("file://")), "d1.zarr")
        upload(server, "bench", Path(d2.removeprefix("file://")), "d2.zarr")
        if not parquet.exists():
            write_geoparquet(d2, parquet, D2_CHUNK)
        put_file(server, "bench", parquet, "d2.parquet")
        env = {
            "AWS_ENDPOINT_URL": server.url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
        }
        server.control.configure(latency_ms=20)
        script = HERE / "measure.py"

        def counted(*args: str, runs: int) -> tuple[dict, dict]:
            server.control.reset()
            m = measure(py, script, *args, env=env)
            stats = server.control.stats()
            per_query = {k: stats[k] / runs for k in ("requests", "bytes")}
            return m, per_query

        runs = int(rep[1]) + 1  # measure.py runs a warm-up, then --repeat timed runs
        s1, s1_io = counted("sedonadb-sql", "s3://bench/d1.zarr", *rep, runs=runs)
        c1, _ = counted("core", "s3://bench/d1.zarr", *rep, runs=runs)
        print(f"  D1 full scan, ours (SedonaDB SQL)      median {median(s1):7.3f} s  rows {s1['rows']:,}")
        f1, _ = counted("sedonadb-df", "s3://bench/d1.zarr", *rep, runs=runs)
        print(f"  D1 full scan, ours (open_meta)         median {median(c1):7.3f} s  rows {c1['rows']:,}")
        print(f"  D1 re-scan of an opened DataFrame      median {median(f1):7.3f} s  rows {f1['rows']:,}")
        floor = network_floor(server, "bench", "d1.zarr")
        print(f"  D1 network floor (every chunk object fetched concurrently, nothing else): {floor:.3f} s")
        zpy = zds_python()
        if zpy:
            server.control.reset()
            z1 = measure(zpy, HERE / "zds_scan.py", "s3://bench/d1.zarr", *rep, env=env)
            stats = server.control.stats()
            z1_io = {k: stats[k] / runs for k in ("requests", "bytes")}
            print(f"  D1 full scan, zarr-datafusion-search   median {median(z1):7.3f} s  rows {z1['rows']:,}")
            print(f"  ratio zarr-datafusion-search / ours (SedonaDB SQL): {median(z1) / median(s1):5.1f}x")
            print(
                f"  ratio zarr-datafusion-search / ours (re-scan; both open the store once, outside the "
                f"timing): {median(z1) / median(f1):5.1f}x"
            )
            print(f"  ratio zarr-datafusion-search / network floor: {median(z1) / floor:5.1f}x")
            print(
                f"  requests per scan: ours {s1_io['requests']:.0f}, zarr-datafusion-search "
                f"{z1_io['requests']:.0f}"
            )
        print(f"  ratio ours over S3 / ours on local disk (SedonaDB SQL): {median(s1) / local_d1:5.2f}x")
        d2_remote(counted, rep, runs, where)
    finally:
        server.stop()


def d2_remote(counted, rep: list[str], runs: int, where: str) -> None:
    """D2 over S3: a selective query and a full scan, ours and GeoParquet read by SedonaDB,
    then a streaming GROUP BY's memory."""
    sql_sel = f"SELECT * FROM sd_read_zarr_meta('{{store}}') {where}"
    sel, sel_io = counted("sedonadb-sql", "s3://bench/d2.zarr", *rep, "--sql", sql_sel, runs=runs)
    full, full_io = counted("sedonadb-sql", "s3://bench/d2.zarr", "--repeat", "1", runs=2)
    print(f"  D2 selective query                     median {median(sel):7.3f} s  rows {sel['rows']:,}")
    print(f"  D2 full scan                           median {median(full):7.3f} s  rows {full['rows']:,}")
    print(f"  ratio D2 full scan / selective: {median(full) / median(sel):6.1f}x")
    sql_gp = f"SELECT * FROM d2_geoparquet {where}"
    gsel, gsel_io = counted("geoparquet-sql", "s3://bench/d2.parquet", *rep, "--sql", sql_gp, runs=runs)
    gfull, gfull_io = counted("geoparquet-sql", "s3://bench/d2.parquet", "--repeat", "1", runs=2)
    if (gsel["rows"], gfull["rows"]) != (sel["rows"], full["rows"]):
        raise SystemExit(
            f"GeoParquet over S3 returned {gsel['rows']}/{gfull['rows']} rows, ours "
            f"{sel['rows']}/{full['rows']}"
        )
    print(f"  D2 selective, GeoParquet (SedonaDB)    median {median(gsel):7.3f} s  rows {gsel['rows']:,}")
    print(f"  D2 full scan, GeoParquet (SedonaDB)    median {median(gfull):7.3f} s  rows {gfull['rows']:,}")
    print(
        f"  ratio GeoParquet / ours over S3: selective {median(gsel) / median(sel):5.1f}x "
        f"({gsel_io['requests']:.0f} vs {sel_io['requests']:.0f} requests), full scan "
        f"{median(gfull) / median(full):5.1f}x ({gfull_io['bytes'] / 1e6:.0f} vs "
        f"{full_io['bytes'] / 1e6:.0f} MB)"
    )
    print(
        f"  per query: selective {sel_io['requests']:.0f} requests, {sel_io['bytes'] / 1e6:.2f} MB; "
        f"full scan {full_io['requests']:.0f} requests, {full_io['bytes'] / 1e6:.1f} MB; "
        f"selective fetches {100 * sel_io['bytes'] / full_io['bytes']:.2f}% of the full scan's bytes"
    )
    agg, agg_io = counted(
        "stream-sql",
        "s3://bench/d2.zarr",
        "--repeat",
        "1",
        "--sql",
        "SELECT collection, count(*) AS n FROM sd_read_zarr_meta('{store}') GROUP BY 1",
        runs=2,
    )
    print(
        f"  D2 streaming GROUP BY over S3: peak RSS {agg['peak_rss_mb']:.0f} MB "
        f"(process after imports: {agg['rss_after_imports_mb']:.0f} MB), {median(agg):.2f} s, "
        f"{agg_io['bytes'] / 1e6:.0f} MB fetched"
    )
