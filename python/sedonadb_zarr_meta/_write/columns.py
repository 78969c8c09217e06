"""Arrow columns as zarr-python writes them: values, element type, attributes (CRS as ``proj:*``)
and validity, one :class:`Column` per array of the group."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from sedonadb_zarr_meta._geometry import bbox_struct_to_wkb

__all__ = ["Column", "concat", "fill", "prepare", "stored_like"]

_GEOARROW_WKB = b"geoarrow.wkb"


class Column:
    """One column ready for zarr-python: values, dtype and attributes.

    ``kind`` is ``"geometry"``, ``"time"``, ``"number"``, ``"text"`` or ``"other"``: what its
    statistics are (bounding boxes, min/max, none). ``valid`` is ``False`` where a value is
    missing, ``None`` when none is.
    """

    def __init__(
        self,
        name: str,
        values: np.ndarray,
        dtype: Any,
        attrs: dict[str, Any],
        kind: str,
        valid: np.ndarray | None = None,
    ):
        self.name, self.values, self.dtype, self.attrs, self.kind = name, values, dtype, attrs, kind
        self.valid = valid


def _crs_attrs(crs: Any) -> dict[str, Any]:
    """``proj:*`` attributes for a CRS given as a string, EPSG int, pyproj CRS or PROJJSON."""
    if crs is None:
        return {}
    if isinstance(crs, int):
        return {"proj:code": f"EPSG:{crs}"}
    if isinstance(crs, dict):
        return {"proj:projjson": crs}
    if hasattr(crs, "to_authority"):  # pyproj.CRS
        auth = crs.to_authority()
        return {"proj:code": f"{auth[0]}:{auth[1]}"} if auth else {"proj:projjson": json.loads(crs.to_json())}
    text = str(crs).strip()
    if text.startswith("{"):
        return {"proj:projjson": json.loads(text)}
    if "[" in text:
        return {"proj:wkt2": text}
    return {"proj:code": text}


def _geoarrow_crs(field: pa.Field) -> Any:
    raw = (field.metadata or {}).get(b"ARROW:extension:metadata")
    return json.loads(raw).get("crs") if raw else None


def _validity(column: pa.ChunkedArray) -> np.ndarray | None:
    if not column.null_count:
        return None
    return column.is_valid().to_numpy(zero_copy_only=False).astype(bool)


def _unwrapped(field: pa.Field, column: pa.ChunkedArray) -> tuple[pa.Field, pa.ChunkedArray]:
    """Registered extension types (geoarrow.pyarrow's, once imported: SedonaDB's
    ``to_arrow_table()`` does) as their storage, their name and metadata as field metadata."""
    t = field.type
    if isinstance(t, pa.ExtensionType):
        meta = {
            b"ARROW:extension:name": t.extension_name.encode(),
            b"ARROW:extension:metadata": t.__arrow_ext_serialize__(),
        }
        field = pa.field(field.name, t.storage_type, field.nullable, meta)
        column = pa.chunked_array([chunk.storage for chunk in column.chunks], t.storage_type)
    if pa.types.is_dictionary(field.type):
        column = column.cast(field.type.value_type)
        field = field.with_type(field.type.value_type)
    return field, column


def _is_geometry(field: pa.Field, geometry_names: set[str], crs_by_column: dict[str, Any]) -> bool:
    t = field.type
    return (
        field.name in geometry_names
        or (field.metadata or {}).get(b"ARROW:extension:name") == _GEOARROW_WKB
        or field.name in crs_by_column
        or (
            field.name in ("bbox", "geometry")
            and (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_struct(t))
        )
    )


def _geometry(field: pa.Field, column: pa.ChunkedArray, crs: Any) -> Column:
    """WKB bytes (a ``bbox`` struct as box polygons); a missing value is empty bytes."""
    import zarr

    if pa.types.is_struct(field.type):
        column = pa.chunked_array([pa.array(bbox_struct_to_wkb(column)[0], pa.binary())])
    values = np.array(column.to_pylist(), dtype=object)
    values[values == None] = b""  # noqa: E711 - empty WKB reads back as null
    attrs = _crs_attrs(crs) if crs is not None else {"proj:code": "OGC:CRS84"}
    if field.name not in ("bbox", "geometry"):
        attrs["encoding"] = "WKB"
    return Column(field.name, values, zarr.dtype.VariableLengthBytes(), attrs, "geometry")


def _temporal(name: str, t: pa.DataType, column: pa.ChunkedArray, valid: np.ndarray | None) -> Column:
    if pa.types.is_timestamp(t):
        values = (
            column.cast(pa.timestamp(t.unit)).to_numpy(zero_copy_only=False).astype(f"datetime64[{t.unit}]")
        )
    elif pa.types.is_duration(t):
        values = column.to_numpy(zero_copy_only=False).astype(f"timedelta64[{t.unit}]")
    else:
        values = column.cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    return Column(name, values, values.dtype, {}, "time", valid)


def _value(name: str, t: pa.DataType, column: pa.ChunkedArray, valid: np.ndarray | None) -> Column:
    """A column that is not geometry; a missing value is stored as 0, ``""``, ``false`` or NaT."""
    import zarr

    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date(t):
        return _temporal(name, t, column, valid)
    if pa.types.is_boolean(t):
        values = column.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        return Column(name, values, values.dtype, {}, "other", valid)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = (column.fill_null(0) if column.null_count else column).to_numpy(zero_copy_only=False)
        return Column(name, values, values.dtype, {}, "number", valid)
    if pa.types.is_null(t):
        values = np.full(len(column), "", dtype=object)
        return Column(name, values, str, {}, "text", np.zeros(len(column), dtype=bool))
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return Column(name, np.array(column.fill_null("").to_pylist(), dtype=object), str, {}, "text", valid)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        values = np.array(column.fill_null(b"").to_pylist(), dtype=object)
        return Column(name, values, zarr.dtype.VariableLengthBytes(), {}, "other", valid)
    # Nested values (STAC assets, links, ...) are kept as JSON text.
    values = np.array(
        [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()], dtype=object
    )
    values[values == None] = ""  # noqa: E711
    return Column(name, values, str, {"encoding": "json"}, "other", valid)


def prepare(
    table: pa.Table, crs_by_column: dict[str, Any], crs: Any, geometry_columns: Sequence[str] | None
) -> list[Column]:
    """The columns of ``table`` as zarr-python writes them. ``crs`` overrides every geometry
    column's CRS; else ``crs_by_column``, else the column's GeoArrow metadata, else OGC:CRS84."""
    geometry_names = set(geometry_columns or ())
    out = []
    for field, column in zip(table.schema, table.columns):
        field, column = _unwrapped(field, column)
        valid = _validity(column)
        if _is_geometry(field, geometry_names, crs_by_column):
            own = crs if crs is not None else crs_by_column.get(field.name, _geoarrow_crs(field))
            out.append(_geometry(field, column, own))
        else:
            out.append(_value(field.name, field.type, column, valid))
    return out


def fill(column: Column, rows: int) -> Column:
    """``rows`` missing values of ``column``'s type (for back-filling appends)."""
    if column.kind == "geometry":
        values = np.full(rows, b"", dtype=object)
        return Column(column.name, values, column.dtype, column.attrs, column.kind)
    if column.values.dtype == object:
        empty: Any = "" if column.dtype is str else b""
        values = np.full(rows, empty, dtype=object)
    elif column.kind == "time":
        values = np.full(rows, np.iinfo(np.int64).min, dtype=np.int64).view(column.values.dtype)
    else:
        values = np.zeros(rows, dtype=column.values.dtype)
    return Column(column.name, values, column.dtype, column.attrs, column.kind, np.zeros(rows, dtype=bool))


def concat(old: Column, new: Column) -> Column:
    """``old``'s rows then ``new``'s, in ``new``'s type."""
    valid = None
    if old.valid is not None or new.valid is not None:
        valid = np.concatenate(
            [
                old.valid if old.valid is not None else np.ones(len(old.values), dtype=bool),
                new.valid if new.valid is not None else np.ones(len(new.values), dtype=bool),
            ]
        )
    values = np.concatenate([old.values, new.values])
    return Column(new.name, values, new.dtype, new.attrs, new.kind, valid)


def stored_like(name: str, array: Any) -> Column:
    """An empty column shaped like the stored ``array`` (its kind and element type)."""
    import zarr

    dtype = array.dtype
    attrs = dict(array.attrs)
    empty = np.asarray(array[0:0])
    vlen_bytes = array.metadata.zarr_format == 3 and isinstance(
        array.metadata.data_type, zarr.dtype.VariableLengthBytes
    )
    if vlen_bytes:
        geometric = name in ("bbox", "geometry") or attrs.get("encoding") == "WKB"
        kind = "geometry" if geometric else "other"
        return Column(name, empty.astype(object), zarr.dtype.VariableLengthBytes(), attrs, kind)
    if dtype.kind in "OTU":
        kind = "text" if attrs.get("encoding") != "json" else "other"
        return Column(name, empty.astype(object), str, attrs, kind)
    if dtype.kind in "Mm":
        return Column(name, empty, dtype, attrs, "time")
    if dtype.kind == "b":
        return Column(name, empty, dtype, attrs, "other")
    return Column(name, empty, dtype, attrs, "number")
