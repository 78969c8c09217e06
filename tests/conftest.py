"""Shared fixtures: stores written by zarr-python into tmp_path, real hosts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import shapely
import zarr

# Tests talk to servers on 127.0.0.1 only. An S3 client without credentials
# asks the instance-metadata endpoint for them: point it at a closed loopback port.
os.environ["AWS_METADATA_ENDPOINT"] = "http://127.0.0.1:9"

COLLECTIONS = np.array(["sentinel-2-l2a", "landsat-c2-l2", "naip"])


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
    """The result of ``query`` on a SedonaDB or datafusion-python context, as a pyarrow Table."""
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


@pytest.fixture
def sedona():
    import sedonadb
    from sedonadb_zarr_meta import register

    con = sedonadb.connect()
    register(con)
    return con
