"""What ``write_meta`` takes, as one pyarrow Table: tables and Arrow streams, GeoDataFrames, STAC
items (pystac objects, dicts, files) and (stac-)GeoParquet files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sedonadb_zarr_meta import _stac

__all__ = ["as_table", "progress_bar", "streamable", "unsupported"]


def progress_bar(label: str, total: int | None, unit: str, enabled: bool | None) -> Any:
    """A tqdm progress bar on stderr (``enabled=None``: only when stderr is a terminal)."""
    from tqdm import tqdm

    disable = None if enabled is None else not enabled
    return tqdm(total=total, desc=label, unit=unit, disable=disable, file=sys.stderr)


def _from_geodataframe(gdf: Any) -> tuple[pa.Table, dict[str, Any]]:
    import shapely

    columns: dict[str, Any] = {}
    crs: dict[str, Any] = {}
    for name in gdf.columns:
        series = gdf[name]
        if hasattr(series, "crs") and getattr(series, "geom_type", None) is not None:
            wkb = shapely.to_wkb(np.asarray(series.values), flavor="iso")
            columns[name] = pa.array(list(wkb), pa.binary())
            crs[name] = series.crs
        else:
            columns[name] = pa.array(series.to_numpy() if series.dtype != object else series.tolist())
    return pa.table(columns), crs


def _from_stac_geoparquet(path: Path) -> tuple[pa.Table, dict[str, Any]]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return _stac.normalise_stac_geoparquet(pq.read_table(path)), {}


def _from_items(data: Any, progress: bool | None) -> tuple[pa.Table, dict[str, Any]]:
    with progress_bar("reading STAC items", None, "items", progress) as bar:
        return _stac.items_to_table(_stac.iter_items(data), bar), {}


def as_table(data: Any, progress: bool | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """``data`` as a table, and the CRS of the geometry columns that carry one outside Arrow
    metadata (a GeoDataFrame's)."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if _stac.is_stac_path(path):
            return _from_items(path, progress)
        return _from_stac_geoparquet(path)
    if type(data).__name__ == "GeoDataFrame":
        return _from_geodataframe(data)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]), {}
    if isinstance(data, pa.Table):
        return data, {}
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data), {}
    if _stac.looks_like_items(data):
        return _from_items(data, progress)
    raise unsupported(data)


def unsupported(data: Any) -> TypeError:
    """The error for ``data`` that ``write_meta`` does not take."""
    return TypeError(
        "write_meta() takes a pyarrow Table, a GeoDataFrame, STAC items (pystac Items or an "
        "ItemCollection, item dicts, a FeatureCollection) or the path of a STAC .json/.ndjson or "
        f"(stac-)GeoParquet file, not {type(data).__name__}"
    )


def streamable(data: Any) -> bool:
    """Whether ``data`` is an input the streaming writer reads batch by batch (else: a
    GeoDataFrame, read whole); a ``TypeError`` for data ``write_meta`` does not take."""
    if type(data).__name__ == "GeoDataFrame":
        return False
    if isinstance(data, (str, Path, pa.RecordBatch, pa.Table)) or hasattr(data, "__arrow_c_stream__"):
        return True
    if _stac.looks_like_items(data):
        return True
    raise unsupported(data)
