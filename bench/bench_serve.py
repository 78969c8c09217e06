"""STAC API searches: ``zarr-meta serve`` against stac-fastapi-geoparquet on the same items.

The items (Sentinel-2, Landsat and Sentinel-1 shaped: footprints, 2 years, properties and
assets as real catalogues carry them) are written once as NDJSON into ``bench/data``, ingested
into a store (Hilbert-sorted, chunks with statistics) and translated to stac-geoparquet by
rustac's command-line tool (``rustac translate``). Both servers run on 127.0.0.1 in their own
processes: ours in this virtualenv, stac-fastapi-geoparquet 0.0.7 in its own (it imports only
with stac-fastapi 6.2), created on first use with pinned versions, as is rustac's (``$SZM_SFGP_VENV``
and ``$SZM_RUSTAC_VENV`` to use others; default ``~/.cache/sedonadb-zarr-meta/{sfgp,rustac}-venv``).

Measured, per server and search, at 1 and at 16 concurrent clients (keep-alive connections,
every search answered in full before it counts), in interleaved rounds (server A, server B,
…, then the other way round) so drift in the machine's load hits both alike; p50/p95 over all rounds:

* a small bbox + month search;
* a collection search;
* a CQL2 property filter (POST, cql2-json);
* page 1 and page 50 of a broad search (``limit=10``; page 50 reached by following ``next``);

and the items per second of a paging walk (``limit=1000``) over the first ``--walk`` items.
The result sets of the selective searches are checked equal between the servers first.

Ours runs twice: as it is (decoded chunks kept between searches, so a search repeated, or the
next page of one, decodes nothing again) and with ``ZARR_META_CHUNK_CACHE_MB=0`` (every search
decodes the chunks it needs, as a first search does).

Usage: ``python bench/bench_serve.py [--items 1000000] [--rounds 3] [--repeat 10] [--walk 20000]``
(``--items 100000`` for a quick try).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_common import rustac_cli, side_venv  # noqa: E402
from s3proxy import free_port  # noqa: E402  (the test servers' ports, below the ephemeral range)

#: stac-fastapi-geoparquet with the only stac-fastapi it imports with, and the DuckDB extensions
#: its rustac client loads, as wheels (by default it downloads them at start-up): rustac 0.9.6 is
#: the newest whose DuckDB (1.4.4) has extension wheels; later ones embed DuckDB 1.5.
SFGP_PACKAGES = [
    "stac-fastapi-geoparquet==0.0.7",
    "stac-fastapi.api==6.2.1",
    "stac-fastapi.types==6.2.1",
    "stac-fastapi.extensions==6.2.1",
    "fastapi==0.115.14",  # later ones refuse the settings argument stac-fastapi-geoparquet passes
    "rustac==0.9.6",
    "duckdb-ext-spatial==1.4.4.20260205",
    "duckdb-ext-icu==1.4.4.20260205",
    "duckdb-ext-parquet==1.4.4.20260205",
    "uvicorn",
]

#: stac-fastapi-geoparquet's app with rustac's DuckDB client loading the spatial extension from
#: the duckdb-ext-spatial wheel of its virtualenv (by default it downloads it at start-up).
SFGP_LAUNCH = """
import sys, uvicorn, duckdb_ext, rustac
from pathlib import Path
from stac_fastapi.geoparquet.api import create
extensions = Path(list(duckdb_ext.__path__)[0]) / "extensions"
client = rustac.DuckdbClient(extension_directory=extensions, install_extensions=False, extensions=["spatial"])
uvicorn.run(create(duckdb_client=client).app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
COLLECTIONS = (("sentinel-2-l2a", 0.6), ("landsat-c2-l2", 0.3), ("sentinel-1-grd", 0.1))
START = 1672531200  # 2023-01-01
SPAN = 2 * 365 * 86400
#: Rows per chunk of the store: small enough that the chunks a page of results touches decode
#: fast (a page's rows are read whole, chunk by chunk: 2,500 rows took a third less time per
#: search than 10,000 on 1M items), large enough that scans stay cheap.
CHUNK = 2_500
SMALL_BBOX = [5.0, 44.0, 8.0, 47.0]
MONTH = "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"


# ------------------------------------------------------------------ items


def _sentinel2(i: int, day: str, rng: random.Random, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    zone = rng.randrange(1, 61)
    band, square = rng.choice("CDEFGHJKLMNPQRSTUVWX"), rng.choice("ABCDEFGH") + rng.choice("ABCDEFGH")
    tile = f"{zone:02d}{band}{square}"
    platform = rng.choice(("sentinel-2a", "sentinel-2b"))
    item_id = f"S2{platform[-1].upper()}_MSIL2A_{day}_T{tile}_{i:07d}"
    props.update(
        platform=platform,
        constellation="sentinel-2",
        instruments=["msi"],
        gsd=10,
        **{"eo:cloud_cover": round(rng.uniform(0, 100), 2), "s2:mgrs_tile": tile},
    )
    assets = {
        b: {
            "href": f"https://data.example.org/s2/{tile}/{day}/{item_id}/{b}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "title": b,
        }
        for b in ("B02", "B03", "B04", "B08")
    }
    return item_id, assets


def _landsat(i: int, day: str, rng: random.Random, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    platform = rng.choice(("landsat-8", "landsat-9"))
    path, row = rng.randrange(1, 234), rng.randrange(1, 249)
    item_id = f"LC0{platform[-1]}_L2SP_{path:03d}{row:03d}_{day}_{i:07d}"
    props.update(
        platform=platform,
        constellation="landsat",
        instruments=["oli", "tirs"],
        gsd=30,
        **{"eo:cloud_cover": round(rng.uniform(0, 100), 2), "landsat:wrs_path": f"{path:03d}"},
    )
    assets = {
        b: {
            "href": f"https://data.example.org/landsat/{path:03d}/{row:03d}/{item_id}/{b}.TIF",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
        for b in ("red", "nir08", "swir16")
    }
    return item_id, assets


def _sentinel1(i: int, day: str, rng: random.Random, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    platform = rng.choice(("sentinel-1a", "sentinel-1b"))
    item_id = f"S1{platform[-1].upper()}_IW_GRDH_{day}_{i:07d}"
    props.update(
        platform=platform,
        constellation="sentinel-1",
        instruments=["c-sar"],
        **{"sar:instrument_mode": "IW", "sar:polarizations": ["VV", "VH"]},
    )
    assets = {
        p: {
            "href": f"https://data.example.org/s1/{day}/{item_id}/{p}.tif",
            "type": "image/tiff; application=geotiff",
            "roles": ["data"],
        }
        for p in ("vv", "vh")
    }
    return item_id, assets


def _item(i: int, rng: random.Random) -> dict[str, Any]:
    r = rng.random()
    collection = "sentinel-2-l2a" if r < 0.6 else "landsat-c2-l2" if r < 0.9 else "sentinel-1-grd"
    # Footprints over the land masses' latitudes, one scene across (S2 ~1°, Landsat ~2.5°).
    size = {"sentinel-2-l2a": 1.0, "landsat-c2-l2": 2.5, "sentinel-1-grd": 2.2}[collection]
    lon, lat = rng.uniform(-180 + size, 180 - size), rng.uniform(-56, 72)
    skew = rng.uniform(-0.15, 0.15)
    ring = [
        [round(lon + skew, 5), round(lat, 5)],
        [round(lon + size, 5), round(lat + skew, 5)],
        [round(lon + size - skew, 5), round(lat + size, 5)],
        [round(lon, 5), round(lat + size - skew, 5)],
        [round(lon + skew, 5), round(lat, 5)],
    ]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    t = START + rng.randrange(SPAN)
    ms = rng.randrange(1000)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"
    day = time.strftime("%Y%m%d", time.gmtime(t))
    props: dict[str, Any] = {"datetime": when, "created": when}
    make = {"sentinel-2-l2a": _sentinel2, "landsat-c2-l2": _landsat, "sentinel-1-grd": _sentinel1}
    item_id, assets = make[collection](i, day, rng, props)
    assets["thumbnail"] = {"href": f"https://data.example.org/thumbs/{item_id}.png", "type": "image/png"}
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": collection,
        "bbox": [min(xs), min(ys), max(xs), max(ys)],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": props,
        "assets": assets,
        "links": [],
    }


def make_data(data: Path, n: int, rustac: Path) -> tuple[str, Path]:
    """The store and the stac-geoparquet file of ``n`` items (made once, reused)."""
    data.mkdir(parents=True, exist_ok=True)
    ndjson = data / f"serve-{n}.ndjson"
    store = data / f"serve-{n}-c{CHUNK}.zarr"
    parquet = data / f"serve-{n}.parquet"
    if not ndjson.exists():
        t = time.perf_counter()
        rng = random.Random(22)
        tmp = ndjson.with_suffix(".tmp")
        with tmp.open("w") as f:
            for i in range(n):
                f.write(json.dumps(_item(i, rng), separators=(",", ":")) + "\n")
        tmp.rename(ndjson)
        print(f"  wrote {n:,} items to {ndjson.name} in {time.perf_counter() - t:.0f} s", flush=True)
    if not store.exists():
        from sedonadb_zarr_meta import write_meta

        t = time.perf_counter()
        write_meta(ndjson, store.with_suffix(".tmp"), chunk_size=CHUNK, sort=True, progress=False)
        store.with_suffix(".tmp").rename(store)
        print(f"  ingested into {store.name} in {time.perf_counter() - t:.0f} s", flush=True)
    if not parquet.exists():
        t = time.perf_counter()
        subprocess.run(
            [str(rustac), "translate", str(ndjson), str(parquet.with_suffix(".tmp.parquet"))], check=True
        )
        parquet.with_suffix(".tmp.parquet").rename(parquet)
        print(f"  translated to {parquet.name} by rustac in {time.perf_counter() - t:.0f} s", flush=True)
    return str(store), parquet


# ------------------------------------------------------------------ servers


@contextmanager
def server(name: str, argv: list[str], port: int, env: dict[str, str] | None = None):
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                status, _ = Client(port).get("/collections")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start")
            time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)


def _path(href: str) -> str:
    u = urllib.parse.urlsplit(href)
    return u.path + ("?" + u.query if u.query else "")


def _next(page: dict[str, Any]) -> tuple[str, str, Any] | None:
    for link in page.get("links", []):
        if link.get("rel") == "next":
            return link.get("method", "GET"), _path(link["href"]), link.get("body")
    return None


def searches(port: int) -> dict[str, tuple[str, str, Any]]:
    """The timed requests on one server; page 50 found by following ``next`` links."""
    bbox = ",".join(str(v) for v in SMALL_BBOX)
    out = {
        "bbox + month": ("GET", f"/search?bbox={bbox}&datetime={urllib.parse.quote(MONTH)}&limit=10", None),
        "collection": ("GET", "/search?collections=sentinel-1-grd&limit=10", None),
        "CQL2 filter": (
            "POST",
            "/search",
            {
                "limit": 10,
                "filter-lang": "cql2-json",
                "filter": {
                    "op": "and",
                    "args": [
                        {"op": "<", "args": [{"property": "eo:cloud_cover"}, 2]},
                        {"op": "=", "args": [{"property": "platform"}, "landsat-9"]},
                    ],
                },
            },
        ),
        "broad, page 1": ("GET", "/search?limit=10", None),
    }
    c = Client(port)
    request = out["broad, page 1"]
    for _ in range(49):
        status, page = c.request(request[0], request[1], request[2])
        if status != 200 or _next(page) is None:
            raise SystemExit(f"paging stopped early on port {port}: {status}")
        request = _next(page)
    out["broad, page 50"] = request
    return out


def all_ids(port: int, method: str, path: str, body: Any) -> set[str]:
    """Every id a search returns, following ``next`` with pages of 1,000."""
    c = Client(port)
    if method == "GET":
        path = path.replace("limit=10", "limit=1000")
    else:
        body = {**body, "limit": 1000}
    request: tuple[str, str, Any] | None = (method, path, body)
    ids: set[str] = set()
    while request is not None:
        status, page = c.request(*request)
        if status != 200:
            raise SystemExit(f"{request}: HTTP {status}: {page}")
        ids.update(f["id"] for f in page["features"])
        request = _next(page) if page["features"] else None
    return ids


def timed(port: int, request: tuple[str, str, Any], clients: int, repeat: int) -> list[float]:
    """Latencies of ``repeat`` requests per client, ``clients`` at once."""
    out: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []

    def run() -> None:
        c = Client(port)
        mine = []
        for _ in range(repeat):
            t = time.perf_counter()
            status, page = c.request(*request)
            mine.append(time.perf_counter() - t)
            if status != 200 or not isinstance(page, dict) or "features" not in page:
                errors.append(f"HTTP {status}")
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{request[1]}: {errors[0]}")
    return out


def walk(port: int, items: int) -> float:
    """Items per second of a paging walk with ``limit=1000`` over the first ``items`` items."""
    c = Client(port)
    request: tuple[str, str, Any] | None = ("GET", "/search?limit=1000", None)
    seen = 0
    t = time.perf_counter()
    while request is not None and seen < items:
        status, page = c.request(*request)
        seen += len(page["features"])
        request = _next(page)
    return seen / (time.perf_counter() - t)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


#: The environment under which our server keeps no decoded chunk between searches.
NO_CHUNKS_KEPT = {"ZARR_META_CHUNK_CACHE_MB": "0"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10, help="requests per client per round")
    parser.add_argument("--walk", type=int, default=20_000, help="items of the paging walk")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    args = parser.parse_args()
    sfgp = side_venv("sfgp", SFGP_PACKAGES, "stac-fastapi-geoparquet 0.0.7 (stac-fastapi 6.2)")
    rustac = rustac_cli()
    if sfgp is None or rustac is None:
        raise SystemExit(
            "stac-fastapi-geoparquet or rustac could not be installed (see pip's messages above)"
        )
    print(
        f"== STAC API searches on {args.items:,} items: zarr-meta serve vs stac-fastapi-geoparquet 0.0.7 =="
    )
    store, parquet = make_data(args.data, args.items, rustac)
    ours_port, cold_port, theirs_port = free_port(), free_port(), free_port()
    ours_argv = [sys.executable, "-m", "sedonadb_zarr_meta", "serve", store, "--port"]
    ours_env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    theirs_argv = [str(sfgp / "bin" / "python"), "-c", SFGP_LAUNCH, str(theirs_port)]
    theirs_env = {"STAC_FASTAPI_GEOPARQUET_HREF": str(parquet)}
    with (
        server("ours", [*ours_argv, str(ours_port)], ours_port, ours_env),
        # The same server keeping no decoded chunk between searches: what a first search costs.
        server(
            "ours, no chunks kept", [*ours_argv, str(cold_port)], cold_port, {**ours_env, **NO_CHUNKS_KEPT}
        ),
        server("stac-fastapi-geoparquet", theirs_argv, theirs_port, theirs_env),
    ):
        ports = {"ours": ours_port, "ours, no chunks kept": cold_port, "sfgp": theirs_port}
        requests = {name: searches(port) for name, port in ports.items()}
        for search in ("bbox + month", "CQL2 filter"):
            got = {name: all_ids(ports[name], *requests[name][search]) for name in ports}
            if any(ids != got["sfgp"] for ids in got.values()):
                raise SystemExit(f"{search}: { ({k: len(v) for k, v in got.items()}) } items")
            print(f"  {search}: every server returns the same {len(got['ours']):,} items")
        lat: dict[tuple[str, str, int], list[float]] = {}
        for r in range(args.rounds):
            for clients in (1, 16):
                repeat = args.repeat if clients == 1 else max(2, args.repeat // 4)
                for search in requests["ours"]:
                    for name in ports if r % 2 == 0 else reversed(ports):
                        values = timed(ports[name], requests[name][search], clients, repeat)
                        lat.setdefault((name, search, clients), []).extend(values)
            print(f"  round {r + 1} of {args.rounds} done", flush=True)
        for clients in (1, 16):
            print(f"\n  {clients} concurrent client{'s' if clients > 1 else ''}:")
            print(
                f"  {'search':18s} {'ours p50':>10s} {'p95':>9s} {'sfgp p50':>10s} {'p95':>9s}"
                f" {'p50 ratio':>10s} {'':15s} {'no chunks kept: p50':>20s} {'ratio':>6s}"
            )
            for search in requests["ours"]:
                o, t = lat[("ours", search, clients)], lat[("sfgp", search, clients)]
                c = lat[("ours, no chunks kept", search, clients)]
                ratio = statistics.median(t) / statistics.median(o)
                cold_ratio = statistics.median(t) / statistics.median(c)
                print(
                    f"  {search:18s} {1000 * statistics.median(o):8.1f}ms {1000 * pct(o, 95):7.1f}ms"
                    f" {1000 * statistics.median(t):8.1f}ms {1000 * pct(t, 95):7.1f}ms {ratio:9.2f}x"
                    f"  [target >= 5x: {'met' if ratio >= 5 else 'NOT met'}]"
                    f" {1000 * statistics.median(c):18.1f}ms {cold_ratio:5.2f}x"
                )
            for name in ports:
                p1 = statistics.median(lat[(name, "broad, page 1", clients)])
                p50 = statistics.median(lat[(name, "broad, page 50", clients)])
                print(
                    f"  {name}: page 50 / page 1 = {p50 / p1:.2f}x"
                    + ("  [target <= 1.5x]" if name == "ours" else "")
                )
        for name, port in ports.items():
            print(
                f"  paging walk (limit=1000, first {args.walk:,} items), {name}:"
                f" {walk(port, args.walk):,.0f} items/s"
            )


if __name__ == "__main__":
    main()
