"""The alternatives a catalogue like D2 is otherwise kept in, for the benchmark.

* :func:`write_geoparquet` — the same rows as a store written by ``write_meta``,
  in the same order, as GeoParquet 1.1: the ``bbox`` geometry as a WKB
  ``geometry`` column, a ``bbox`` covering struct (xmin/ymin/xmax/ymax) named
  by the ``geo`` metadata's ``covering.bbox``, row groups the size of the
  store's chunks, zstd like the store.
* :func:`sedonadb_view` — that file in SedonaDB as a view with the store's
  columns (``bbox``, ``cloud_cover``, ``collection``, ``date``), so the very
  same SQL runs on both.
* :func:`duckdb_connect` — DuckDB with its spatial extension (from the
  ``duckdb-ext-spatial`` package, else DuckDB's extension repository), or
  why it is not available; :func:`duckdb_view` registers the file there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _covering(wkb: Any) -> tuple[Any, list[int]]:
    """The bbox covering struct of a WKB array, and the geometry type ids present."""
    import numpy as np
    import pyarrow as pa
    import shapely

    geoms = shapely.from_wkb(np.asarray(wkb.to_numpy(zero_copy_only=False), dtype=object))
    bounds = shapely.bounds(geoms)
    struct = pa.StructArray.from_arrays(
        [pa.array(bounds[:, i]) for i in range(4)], names=["xmin", "ymin", "xmax", "ymax"]
    )
    return struct, np.unique(shapely.get_type_id(geoms)).tolist()


_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def write_geoparquet(store: str, path: Path, row_group_size: int) -> dict:
    """Write the rows of ``store`` (a ``meta`` group whose ``bbox`` is WKB) to ``path``
    as GeoParquet 1.1 with a bbox covering column. Returns a summary of what was written."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from sedonadb_zarr_meta import open_meta

    table = pa.table(open_meta(store).scan())
    covers, types = [], set()
    wkb_chunks = []
    for chunk in table.column("bbox").chunks:
        wkb = chunk.storage if isinstance(chunk.type, pa.ExtensionType) else chunk
        cover, present = _covering(wkb)
        covers.append(cover)
        wkb_chunks.append(wkb.cast(pa.binary()))
        types.update(present)
    covering = pa.chunked_array(covers)
    extent = [
        pc.min(pc.struct_field(covering, "xmin")).as_py(),
        pc.min(pc.struct_field(covering, "ymin")).as_py(),
        pc.max(pc.struct_field(covering, "xmax")).as_py(),
        pc.max(pc.struct_field(covering, "ymax")).as_py(),
    ]
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                # No "crs": GeoParquet's default, OGC:CRS84, is the store's CRS.
                "encoding": "WKB",
                "geometry_types": [_TYPE_NAMES[t] for t in sorted(types)],
                "bbox": extent,
                "covering": {
                    "bbox": {
                        "xmin": ["bbox", "xmin"],
                        "ymin": ["bbox", "ymin"],
                        "xmax": ["bbox", "xmax"],
                        "ymax": ["bbox", "ymax"],
                    }
                },
            }
        },
    }
    out = pa.table(
        {
            "geometry": pa.chunked_array(wkb_chunks, pa.binary()),
            "cloud_cover": table.column("cloud_cover"),
            "collection": table.column("collection"),
            "date": table.column("date"),
            "bbox": covering,
        }
    ).replace_schema_metadata({"geo": json.dumps(geo)})
    partial = path.with_suffix(".partial")
    pq.write_table(out, str(partial), row_group_size=row_group_size, compression="zstd")
    meta = pq.ParquetFile(str(partial)).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    if meta.num_rows != table.num_rows or any(s != row_group_size for s in sizes[:-1]):
        raise AssertionError(f"{partial}: {meta.num_rows} rows in row groups of {sorted(set(sizes))}")
    partial.rename(path)
    return {"rows": meta.num_rows, "row_groups": len(sizes)}


def s3_options_from_env() -> dict[str, str]:
    """SedonaDB's Parquet reader options for an ``s3://`` URL, from the ``AWS_*`` variables
    the benchmark sets for its loopback S3 server (the same ones our reader takes)."""
    keys = {
        "AWS_ENDPOINT_URL": "aws.endpoint",
        "AWS_ALLOW_HTTP": "aws.allow_http",
        "AWS_REGION": "aws.region",
        "AWS_ACCESS_KEY_ID": "aws.access_key_id",
        "AWS_SECRET_ACCESS_KEY": "aws.secret_access_key",
    }
    return {option: os.environ[var] for var, option in keys.items() if var in os.environ}


def sedonadb_view(con: Any, path: str, name: str = "d2_geoparquet") -> str:
    """Register the GeoParquet file (a path or an ``s3://`` URL) as view ``name`` with the
    store's columns; returns ``name``."""
    options = s3_options_from_env() if path.startswith("s3://") else None
    con.read_parquet(path, options=options).to_view(f"{name}_file")
    con.sql(f"SELECT geometry AS bbox, cloud_cover, collection, date FROM {name}_file").to_view(name)
    return name


def duckdb_connect() -> Any:
    """A DuckDB connection with the spatial extension loaded; raises RuntimeError saying why not."""
    import importlib.util

    try:
        import duckdb
    except ImportError as e:
        raise RuntimeError(f"duckdb is not installed ({e}; pip install -r bench/requirements.txt)") from None
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        }
    )
    con.execute("SET enable_progress_bar = false")
    platform = con.execute("PRAGMA platform").fetchone()[0]
    spec = importlib.util.find_spec("duckdb_ext")
    for root in spec.submodule_search_locations if spec else []:
        ext = Path(root) / "extensions" / f"v{duckdb.__version__}" / platform / "spatial.duckdb_extension"
        if ext.exists():
            con.execute(f"LOAD '{ext}'")
            return con
    try:
        con.execute("INSTALL spatial")
        con.execute("LOAD spatial")
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0].split(" at URL ")[0]
        raise RuntimeError(
            f"INSTALL spatial failed ({first}) and no duckdb-ext-spatial wheel for DuckDB "
            f"{duckdb.__version__} is installed (pip install -r bench/requirements.txt)"
        ) from None
    return con


def duckdb_view(con: Any, path: str, name: str = "d2_geoparquet") -> str:
    """Register the GeoParquet file in DuckDB as view ``name``: the store's columns (``bbox``
    the GEOMETRY) plus the covering struct as ``covering``; returns ``name``.

    DuckDB's spatial extension has no ``ST_SetSRID`` (its GEOMETRY carries no SRID), so a
    macro returning the geometry unchanged stands in for it and the store's SQL runs as is.
    """
    con.execute("CREATE OR REPLACE MACRO ST_SetSRID(geom, srid) AS geom")
    con.execute(
        f"CREATE OR REPLACE VIEW {name} AS SELECT geometry AS bbox, cloud_cover, collection, date, "
        f"bbox AS covering FROM read_parquet('{path}')"
    )
    return name


# What DuckDB selects from the view: the store's columns, the geometry as WKB like the other
# readers return it (DuckDB's own GEOMETRY blobs are not WKB).
DUCKDB_COLUMNS = "ST_AsWKB(bbox) AS bbox, cloud_cover, collection, date"
