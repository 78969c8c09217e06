"""Shared fixtures: stores written by zarr-python into tmp_path, real hosts, the
loopback S3 server, and the memory cap of the tests' subprocesses."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import resource
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyarrow as pa
import pytest
import shapely
import zarr

from .engines import Engine, engines
from .s3proxy import bind_low

# Tests talk to servers on 127.0.0.1 only. An S3 client without credentials
# asks the instance-metadata endpoint for them: point it at a closed loopback port.
os.environ["AWS_METADATA_ENDPOINT"] = "http://127.0.0.1:9"

COLLECTIONS = np.array(["sentinel-2-l2a", "landsat-c2-l2", "naip"])

#: Address space a test's subprocess may map. A Python process with SedonaDB and
#: datafusion loaded maps about 1.5 GiB before it reads anything (measured:
#: VmPeak of a query over a test store); the stores of the tests are a few MB.
#: 6 GiB leaves room for both, yet a regression that grows without bound fails
#: its own test (an allocation failure in that process) instead of the machine.
SUBPROCESS_ADDRESS_SPACE = 6 << 30


def cap_memory(limit: int = SUBPROCESS_ADDRESS_SPACE) -> None:
    """``preexec_fn`` for a test's subprocess: cap its address space at ``limit`` bytes
    (the soft limit: a test's script may set a cap of its own)."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))


#: The loopback S3 server's bucket shared by the tests that read stores over S3.
BUCKET = "catalog"
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server on 127.0.0.1 behind the counting, fault-injecting proxy, with ``BUCKET``."""
    from .s3proxy import S3Server

    server = S3Server()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def s3_options(server: Any, **extra: Any) -> dict[str, Any]:
    """``storage_options`` reading ``BUCKET`` through ``server``'s proxy."""
    return {
        "aws_endpoint": server.url,
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": SECRET,
        **extra,
    }


def zarr_s3_store(server: Any, path: str) -> Any:
    """zarr-python's obstore-backed store writing straight to the S3 server (not counted)."""
    return zarr.storage.ObjectStore(server.obstore_store(BUCKET, path, secret=SECRET))


def write_group(
    path: Path | Any,
    arrays: dict[str, Any],
    *,
    zarr_format: int = 3,
    group: str = "meta",
    chunks: int | dict[str, int] = 64,
    group_attrs: dict[str, Any] | None = None,
    array_attrs: dict[str, dict[str, Any]] | None = None,
    dtypes: dict[str, Any] | None = None,
    **create_kwargs: Any,
) -> str:
    """Write ``arrays`` as 1-D arrays of group ``group`` with zarr-python.

    ``path`` is a local directory (the file:// URI is returned) or a zarr-python
    store object (``None`` is returned).
    """
    root = zarr.open_group(str(path) if isinstance(path, Path) else path, mode="a", zarr_format=zarr_format)
    g = root.require_group(group) if group else root
    if group_attrs:
        g.attrs.update(group_attrs)
    for name, data in arrays.items():
        data = np.asarray(data) if not isinstance(data, np.ndarray) else data
        n_chunk = chunks[name] if isinstance(chunks, dict) else chunks
        dtype = (dtypes or {}).get(name, data.dtype)
        if isinstance(dtype, np.dtype) and dtype == np.dtype(object):
            is_bytes = len(data) > 0 and isinstance(data[0], bytes)
            dtype = zarr.dtype.VariableLengthBytes() if is_bytes else str
        a = g.create_array(name, shape=data.shape, dtype=dtype, chunks=(max(1, n_chunk),), **create_kwargs)
        if len(data):
            a[:] = data
        if array_attrs and name in array_attrs:
            a.attrs.update(array_attrs[name])
    return path.resolve().as_uri() if isinstance(path, Path) else None


def items(n: int = 500, seed: int = 7) -> dict[str, np.ndarray]:
    """STAC-like item metadata: id, collection, date, cloud cover, WKB bbox."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-170, 160, n)
    y = rng.uniform(-80, 70, n)
    w = rng.uniform(0.5, 10, n)
    h = rng.uniform(0.5, 10, n)
    boxes = shapely.box(x, y, x + w, y + h)
    base = np.datetime64("2024-01-01T00:00:00", "ms")
    return {
        "id": np.array([f"item-{i:05d}" for i in range(n)], dtype=object),
        "collection": COLLECTIONS[rng.integers(0, 3, n)].astype(object),
        "date": base + rng.integers(0, 366 * 86_400_000, n).astype("timedelta64[ms]"),
        "cloud_cover": rng.uniform(0, 100, n).astype("float32"),
        "bbox": np.array(shapely.to_wkb(boxes), dtype=object),
    }


def items_table(n: int = 500, seed: int = 7) -> pa.Table:
    """:func:`items` as a pyarrow Table, the input ``write_meta`` takes (bbox as WKB binary)."""
    data = items(n, seed)
    return pa.table(
        {
            "id": data["id"].tolist(),
            "collection": data["collection"].tolist(),
            "date": pa.array(data["date"]),
            "cloud_cover": pa.array(data["cloud_cover"]),
            "bbox": pa.array(data["bbox"].tolist(), pa.binary()),
        }
    )


def collect(con, query: str) -> pa.Table:
    """The result of ``query`` on an :class:`Engine`, or on a SedonaDB or datafusion-python
    context, as a pyarrow Table."""
    if isinstance(con, Engine):
        return con.collect(query)
    df = con.sql(query)
    return pa.table(df) if hasattr(df, "__arrow_c_stream__") else df.to_arrow_table()


def call(uri: str, options: dict | None = None) -> str:
    """The SQL call ``sd_read_zarr_meta(uri [, options_json])``."""
    if options:
        return f"sd_read_zarr_meta('{uri}', '{json.dumps(options)}')"
    return f"sd_read_zarr_meta('{uri}')"


def regions_parquet(path: Path, boxes: dict[str, tuple[float, float, float, float]]) -> Path:
    """Write named rectangular regions as GeoParquet with geopandas."""
    import geopandas

    regions = geopandas.GeoDataFrame(
        {"region": list(boxes)}, geometry=[shapely.box(*b) for b in boxes.values()], crs="OGC:CRS84"
    )
    regions.to_parquet(path)
    return path


def sjoin_pairs(data: dict[str, np.ndarray], regions: Path) -> list[tuple[str, str]]:
    """(id, region) pairs of items intersecting regions, computed by geopandas."""
    import geopandas

    items_gdf = geopandas.GeoDataFrame(
        {"id": data["id"]}, geometry=shapely.from_wkb(data["bbox"]), crs="OGC:CRS84"
    )
    joined = geopandas.sjoin(items_gdf, geopandas.read_parquet(regions), predicate="intersects")
    return sorted(map(tuple, joined[["id", "region"]].values.tolist()))


@pytest.fixture
def items_data() -> dict[str, np.ndarray]:
    return items()


@pytest.fixture
def items_store(tmp_path: Path, items_data: dict[str, np.ndarray]) -> str:
    return write_group(tmp_path / "items.zarr", items_data, chunks=64)


@pytest.fixture(scope="module")
def hosts() -> dict[str, Engine]:
    """An engine of each host (SedonaDB, datafusion-python), shared by a module's tests."""
    return engines()


@pytest.fixture
def sedona():
    import sedonadb
    from sedonadb_zarr_meta import register

    con = sedonadb.connect()
    register(con)
    return con


class _StacApi(http.server.BaseHTTPRequestHandler):
    """A STAC API: landing page, and item search by GET or POST, ``limit`` items a page,
    following ``next`` links with a ``token``. ``server.items`` are served;
    ``server.searches`` records the parameters of every page requested."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _search(self, params: dict[str, Any], next_link: Any) -> None:
        self.server.searches.append(params)  # type: ignore[attr-defined]
        wanted = params.get("collections") or []
        if isinstance(wanted, str):
            wanted = wanted.split(",")
        items = self.server.items  # type: ignore[attr-defined]
        matching = [i for i in items if not wanted or i["collection"] in wanted]
        limit = int(params.get("limit") or 5)
        start = int(params.get("token") or 0)
        links = [next_link(start + limit)] if start + limit < len(matching) else []
        self._send({"type": "FeatureCollection", "features": matching[start : start + limit], "links": links})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        base = f"http://127.0.0.1:{self.server.server_port}"
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self._search(
            body,
            lambda start: {
                "rel": "next",
                "href": base + "/search",
                "method": "POST",
                "body": {**body, "token": start},
            },
        )

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        base = f"http://127.0.0.1:{self.server.server_port}"
        url = urlparse(self.path)
        if url.path.rstrip("/") == "/search":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}

            def next_link(start: int) -> dict[str, Any]:
                rest = "&".join(f"{k}={v}" for k, v in query.items() if k != "token")
                return {"rel": "next", "href": f"{base}/search?{rest}&token={start}", "method": "GET"}

            self._search(query, next_link)
            return
        conformance = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]
        if url.path.rstrip("/") == "/conformance":
            self._send({"conformsTo": conformance})
            return
        search = {"rel": "search", "href": base + "/search", "type": "application/geo+json"}
        self._send(
            {
                "type": "Catalog",
                "id": "test-api",
                "description": "loopback STAC API of the tests",
                "stac_version": "1.0.0",
                "conformsTo": conformance,
                "links": [
                    {"rel": "self", "href": base + "/"},
                    {"rel": "root", "href": base + "/"},
                    {**search, "method": "GET"},
                    {**search, "method": "POST"},
                ],
            }
        )


@contextlib.contextmanager
def stac_api(items: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve ``items`` as a STAC API on 127.0.0.1: yields its URL and the list of the
    parameters of every search page requested."""
    server = bind_low(lambda address: http.server.ThreadingHTTPServer(address, _StacApi))
    server.items = items  # type: ignore[attr-defined]
    server.searches = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", server.searches  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
