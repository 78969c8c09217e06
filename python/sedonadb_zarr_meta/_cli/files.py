"""Query results as files: GeoParquet and GeoJSON through SedonaDB's own writers (``to_parquet``,
``to_pyogrio``), CSV through pyarrow's (geometry as WKT)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from sedonadb_zarr_meta._cli import hosts
from sedonadb_zarr_meta._cli.args import PROG, UsageError
from sedonadb_zarr_meta._cli.text import (
    as_texts,
    crs_label,
    geometry_crs,
    is_binary,
    is_nested,
    simplify,
    simplify_schema,
    storage_array,
)

__all__ = ["FORMATS", "output_format", "write"]

#: Output formats of ``query --out`` and the file extensions that imply them.
FORMATS = {"parquet": (".parquet", ".geoparquet", ".pq"), "csv": (".csv",), "geojson": (".geojson", ".json")}
#: The column GeoJSON features take their ``id`` from, a copy of ``id`` (GDAL moves the column
#: it names out of the properties, and ``id`` stays a property too).
_FEATURE_ID = "zarr_meta:feature_id"
#: CRSs known without asking PROJ to be longitude/latitude on WGS 84, as GeoJSON expects.
_LONLAT = ("OGC:CRS84", "EPSG:4326")


def output_format(out: str | None, fmt: str | None) -> str | None:
    """The format ``--format`` names, else the one ``--out``'s extension implies (``None``: print)."""
    if fmt is not None:
        return fmt
    if out is None:
        return None
    suffix = Path(out).suffix.lower()
    for name, suffixes in FORMATS.items():
        if suffix in suffixes:
            return name
    raise UsageError(
        f"cannot tell the format of {out!r} from its extension; use --format parquet, csv or geojson"
    )


def write(reader: Any, fmt: str, out: str | None) -> int:
    """Write every batch of ``reader`` as ``fmt`` to ``out`` (stdout for csv/geojson without a file);
    returns the number of rows written."""
    if fmt == "parquet":
        if out is None:
            raise UsageError("--format parquet needs --out FILE")
        return _write_parquet(reader, out)
    if fmt == "csv":
        if out is None:
            return _write_csv(reader, sys.stdout.buffer)
        with open(out, "wb") as sink:
            return _write_csv(reader, sink)
    return _write_geojson(reader, out)


def _write_parquet(reader: Any, path: str) -> int:
    """GeoParquet (the CRS of each geometry column in its metadata), by SedonaDB."""
    import pyarrow.parquet as pq

    _, frame = hosts.sedonadb_frame(reader)
    # Snappy, as pyarrow writes by default: SedonaDB's zstd(3) makes exports slower.
    frame.to_parquet(path, single_file_output=True, compression="snappy")
    return pq.read_metadata(path).num_rows


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def _csv_batch(batch: Any) -> Any:
    """A batch the CSV writer takes: geometry as WKT, binary as hex, nested values as JSON."""
    import pyarrow as pa

    batch = simplify(batch)
    arrays = []
    for field, column in zip(batch.schema, batch.columns):
        t = storage_array(column).type
        if geometry_crs(field)[0] or is_binary(t) or is_nested(t):
            column = pa.array(as_texts(field, column, precise=True), pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _write_csv(reader: Any, sink: Any) -> int:
    import pyarrow as pa
    import pyarrow.csv

    rows = 0
    writer = None
    try:
        for batch in reader:
            batch = _csv_batch(batch)
            if writer is None:
                writer = pyarrow.csv.CSVWriter(sink, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no batch at all: the header alone
            schema = simplify_schema(reader.schema)
            empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
            pyarrow.csv.write_csv(_csv_batch(empty), sink)
    finally:
        if writer is not None:
            writer.close()
    return rows


# --------------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------------


def _primary_geometry(schema: Any) -> int | None:
    """The column that is the features' geometry: ``geometry``, else the first geometry column."""
    geometry = [i for i, f in enumerate(schema) if geometry_crs(f)[0]]
    named = [i for i in geometry if schema.field(i).name == "geometry"]
    return (named or geometry or [None])[0]


def _note_crs(field: Any) -> None:
    """Say so when the features' geometry is not longitude/latitude, as GeoJSON readers expect."""
    crs = geometry_crs(field)[1]
    if crs is None or crs in _LONLAT:
        return
    import pyproj

    if pyproj.CRS.from_user_input(crs).equals("OGC:CRS84", ignore_axis_order=True):
        return
    print(
        f"{PROG}: note: column {field.name!r} has CRS {crs_label(crs)}; GeoJSON readers expect "
        "longitude/latitude (ST_Transform(geom, 'OGC:CRS84') converts)",
        file=sys.stderr,
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _geojson_select(schema: Any, primary: int | None) -> tuple[str, bool]:
    """The SQL that gives GDAL what GeoJSON holds: geometry columns other than the features'
    as WKT text, and a copy of a text or integer ``id`` as the features' ids; and whether
    there is one."""
    import pyarrow as pa

    columns = []
    for i, field in enumerate(schema):
        if i != primary and geometry_crs(field)[0]:
            columns.append(f"ST_AsText({_quoted(field.name)}) AS {_quoted(field.name)}")
        else:
            columns.append(_quoted(field.name))
    ids = schema.get_field_index("id")
    t = schema.field(ids).type if ids >= 0 else None
    has_id = t is not None and (
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
    )
    if has_id:
        columns.append(f'"id" AS {_quoted(_FEATURE_ID)}')
    return f"SELECT {', '.join(columns)} FROM zarr_meta_result", has_id


def _write_geojson(reader: Any, out: str | None) -> int:
    """A FeatureCollection, by SedonaDB's GDAL writer (``out`` ``None``: to stdout); returns the
    number of features written to a file (0 for stdout, which does not say)."""
    schema = reader.schema
    primary = _primary_geometry(schema)
    if primary is not None:
        _note_crs(schema.field(primary))
    con, frame = hosts.sedonadb_frame(reader)
    frame.to_view("zarr_meta_result", overwrite=True)
    sql, has_id = _geojson_select(schema, primary)
    # Every digit: GDAL's default keeps 15 decimals, which does not give doubles back exactly.
    options: dict[str, Any] = {"WRITE_NAME": "NO", "SIGNIFICANT_FIGURES": 17}
    if has_id:
        options["ID_FIELD"] = _FEATURE_ID
    target: Any = io.BytesIO() if out is None else out
    con.sql(sql).to_pyogrio(
        target,
        driver="GeoJSON",
        geometry_name=None if primary is None else schema.field(primary).name,
        layer_options=options,
    )
    if out is None:
        sys.stdout.buffer.write(target.getvalue())
        return 0
    import pyogrio

    return int(pyogrio.read_info(out, force_feature_count=True)["features"])
