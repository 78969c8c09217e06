"""Per-chunk statistics (the ``zarr_meta:stats`` document readers use to skip chunks) and the
Hilbert order that makes chunks cover compact areas."""

from __future__ import annotations

from typing import Any

import numpy as np

from sedonadb_zarr_meta._write.columns import Column

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "block_stats",
    "geometries",
    "geometry_bounds",
    "sort_order",
    "stats_document",
]

#: Rows per chunk, and per statistics block, when none is given.
DEFAULT_CHUNK_SIZE = 100_000


def stats_document(rows: int, block_rows: int, columns: dict[str, Any]) -> dict[str, Any]:
    """The ``zarr_meta:stats`` group attribute (see :mod:`sedonadb_zarr_meta._write`)."""
    return {"version": 1, "num_rows": rows, "block_rows": block_rows, "columns": columns}


def geometries(values: np.ndarray) -> np.ndarray:
    """Shapely geometries of WKB values; ``None`` for missing (empty) ones."""
    import shapely

    geoms = np.empty(len(values), dtype=object)
    present = np.array([len(v) > 0 for v in values], dtype=bool)
    geoms[present] = shapely.from_wkb(values[present])
    geoms[~present] = None
    return geoms


def geometry_bounds(values: np.ndarray) -> np.ndarray:
    """``(xmin, ymin, xmax, ymax)`` of each WKB value; NaN rows for missing (empty) or empty ones."""
    import shapely

    return shapely.bounds(geometries(values))


def _min_max(values: np.ndarray, starts: range, block_rows: int, valid: Any, cast: Any) -> dict[str, list]:
    """Per-block min and max of the ``valid`` values (``None`` for a block without any)."""
    mins, maxs = [], []
    for s in starts:
        part = valid(values[s : s + block_rows], s)
        mins.append(cast(part.min()) if len(part) else None)
        maxs.append(cast(part.max()) if len(part) else None)
    return {"min": mins, "max": maxs}


def _bbox_blocks(values: np.ndarray, starts: range, block_rows: int) -> dict[str, list]:
    """Per-block bounding box of the geometries (``None`` for a block without any)."""
    bounds = geometry_bounds(values)
    out: list[list[float] | None] = []
    for s in starts:
        part = bounds[s : s + block_rows]
        part = part[~np.isnan(part).any(axis=1)]
        if not len(part):
            out.append(None)
            continue
        out.append(
            [
                float(part[:, 0].min()),
                float(part[:, 1].min()),
                float(part[:, 2].max()),
                float(part[:, 3].max()),
            ]
        )
    return {"bbox": out}


def block_stats(col: Column, block_rows: int) -> dict[str, Any] | None:
    """The statistics of ``col`` per block of ``block_rows`` rows (``None``: a kind without any)."""
    starts = range(0, len(col.values), block_rows)
    mask = col.valid

    def present(part: np.ndarray, start: int) -> np.ndarray:
        return part if mask is None else part[mask[start : start + len(part)]]

    if col.kind == "geometry":
        return _bbox_blocks(col.values, starts, block_rows)
    if col.kind == "time":
        nat = np.iinfo(np.int64).min
        return _min_max(
            col.values.view("int64"), starts, block_rows, lambda p, s: (q := present(p, s))[q != nat], int
        )
    if col.kind == "number":
        if col.values.dtype.kind == "f":
            return _min_max(
                col.values, starts, block_rows, lambda p, s: (q := present(p, s))[~np.isnan(q)], float
            )
        return _min_max(col.values, starts, block_rows, present, int)
    if col.kind == "text":
        return _min_max(col.values, starts, block_rows, present, str)
    return None


def sort_order(columns: list[Column]) -> np.ndarray | None:
    """Row order along a Hilbert curve (geopandas' ``hilbert_distance``, level 16) of the first
    geometry column's bbox centres over the extent of those centres; rows without a geometry
    last. ``None`` when there is nothing to sort by."""
    import geopandas
    import shapely

    geo = next((c for c in columns if c.kind == "geometry"), None)
    if geo is None:
        return None
    geoms = geometries(geo.values)
    b = shapely.bounds(geoms)
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    valid = ~np.isnan(cx)
    if not valid.any():
        return None
    extent = (np.nanmin(cx), np.nanmin(cy), np.nanmax(cx), np.nanmax(cy))
    key = np.full(len(cx), np.iinfo(np.int64).max)
    key[valid] = geopandas.GeoSeries(geoms[valid]).hilbert_distance(total_bounds=extent, level=16).to_numpy()
    return np.argsort(key, kind="stable")
