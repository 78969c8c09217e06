"""Arrow columns of a batch as the streaming writer stores them: the element type, the values
(Arrow for text and WKB, numpy otherwise), validity and each piece's statistics."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sedonadb_zarr_meta._geometry import bbox_struct_to_wkb
from sedonadb_zarr_meta._write.columns import _crs_attrs, _geoarrow_crs, _is_geometry, _unwrapped

__all__ = ["Piece", "convert", "merge_stats", "piece_stats", "render_text", "stored_kind"]

_NAT = np.iinfo(np.int64).min


class Piece:
    """Rows of one column in one batch: ``values`` (an Arrow string/binary array when ``dtype``
    is ``str``/``bytes``, else numpy), ``valid`` (``None``: all present), the column's ``kind``
    (``geometry``, ``time``, ``number``, ``text``, ``other``) and ``attrs``. ``text`` keeps the
    original strings of a column parsed as timestamps, for when it has to become text."""

    def __init__(self, kind: str, dtype: Any, values: Any, valid: np.ndarray | None, attrs: dict[str, Any]):
        self.kind, self.dtype, self.values, self.valid, self.attrs = kind, dtype, values, valid, attrs
        self.text: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.values)

    def slice(self, start: int, stop: int) -> Piece:
        p = Piece(self.kind, self.dtype, self.values[start:stop], None, self.attrs)
        p.valid = None if self.valid is None else self.valid[start:stop]
        p.text = None if self.text is None else self.text[start:stop]
        return p

    def all_missing(self) -> bool:
        if self.kind == "geometry":
            return bool(len(self)) and not pc.any(pc.greater(pc.binary_length(self.values), 0)).as_py()
        return self.valid is not None and bool(len(self.valid)) and not self.valid.any()


def _validity(column: pa.Array) -> np.ndarray | None:
    if not column.null_count:
        return None
    return column.is_valid().to_numpy(zero_copy_only=False)


def missing(kind: str, dtype: Any, attrs: dict[str, Any], rows: int) -> Piece:
    """``rows`` missing values of a column's type."""
    if dtype is str:
        values: Any = pa.array([""] * rows, pa.string()) if rows else pa.array([], pa.string())
    elif dtype is bytes:
        values = pa.array([b""] * rows, pa.binary())
    elif np.dtype(dtype).kind in "Mm":
        values = np.full(rows, _NAT, dtype=np.int64).view(dtype)
    else:
        values = np.zeros(rows, dtype=dtype)
    valid = None if kind == "geometry" else np.zeros(rows, dtype=bool)
    return Piece(kind, dtype, values, valid, attrs)


def convert(
    field: pa.Field, column: pa.Array, crs: Any, geometry_names: set[str], text: pa.Array | None = None
) -> Piece:
    """One batch's column as the writer stores it (the rules of ``columns.prepare``)."""
    field, chunked = _unwrapped(field, pa.chunked_array([column], column.type))
    column = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    t = field.type
    if _is_geometry(field, geometry_names, {}):
        if pa.types.is_struct(t):
            column = pa.array(bbox_struct_to_wkb(column)[0], pa.binary())
        elif pa.types.is_large_binary(t):
            column = column.cast(pa.binary())
        own = crs if crs is not None else _geoarrow_crs(field)
        attrs = _crs_attrs(own) if own is not None else {"proj:code": "OGC:CRS84"}
        if field.name not in ("bbox", "geometry"):
            attrs["encoding"] = "WKB"
        return Piece("geometry", bytes, column.fill_null(b""), None, attrs)
    valid = _validity(column)
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date(t):
        if pa.types.is_timestamp(t):
            values = column.cast(pa.timestamp(t.unit)).to_numpy(zero_copy_only=False).astype(f"M8[{t.unit}]")
        elif pa.types.is_duration(t):
            values = column.to_numpy(zero_copy_only=False).astype(f"m8[{t.unit}]")
        else:
            values = column.cast(pa.date32()).to_numpy(zero_copy_only=False).astype("M8[D]")
        piece = Piece("time", values.dtype, values, valid, {})
        piece.text = text
        return piece
    if pa.types.is_boolean(t):
        values = column.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        return Piece("other", np.dtype(bool), values, valid, {})
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = (column.fill_null(0) if column.null_count else column).to_numpy(zero_copy_only=False)
        return Piece("number", values.dtype, values, valid, {})
    if pa.types.is_null(t):
        return missing("text", str, {}, len(column))
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return Piece("text", str, column.cast(pa.string()), valid, {})
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return Piece("other", bytes, column.cast(pa.binary()), valid, {})
    # Nested values (stac-geoparquet's assets, links, ...) are kept as JSON text.
    values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
    return Piece("other", str, pa.array(values, pa.string()), valid, {"encoding": "json"})


def stored_kind(name: str, dtype: Any, attrs: dict[str, Any]) -> str:
    """The kind of a stored array (as ``columns.stored_like`` decides it)."""
    if dtype is bytes:
        return "geometry" if name in ("bbox", "geometry") or attrs.get("encoding") == "WKB" else "other"
    if dtype is str:
        return "other" if attrs.get("encoding") == "json" else "text"
    kind = np.dtype(dtype).kind
    return "time" if kind in "Mm" else "other" if kind == "b" else "number"


def _iso(values: np.ndarray) -> list[str]:
    text = np.datetime_as_string(values.astype("M8[us]"), unit="us")
    return [f"{t}Z" for t in text]


def render_text(piece: Piece) -> Piece:
    """``piece`` as text: the original strings of parsed timestamps, numbers and booleans as
    JSON writes them, other timestamps as RFC 3339 in UTC; missing values stay missing."""
    if piece.dtype is str:
        return Piece("text", str, piece.values, piece.valid, {})
    if piece.text is not None:
        values = piece.text
    elif piece.kind == "time":
        values = pa.array(_iso(piece.values), pa.string())
    elif piece.dtype is bytes:
        raise ValueError("binary values cannot become text")
    else:
        values = pa.array([json.dumps(v) for v in piece.values.tolist()], pa.string())
    if piece.valid is not None:
        values = pc.if_else(pa.array(piece.valid), values, "")
    return Piece("text", str, values, piece.valid, {})


# --------------------------------------------------------------------- statistics


def piece_stats(piece: Piece) -> Any:
    """The statistics of a piece: ``(xmin, ymin, xmax, ymax)`` for geometry, ``(min, max)`` for
    numbers, times and text, ``None`` without a present value or for kinds without any."""
    kind = piece.kind
    if kind == "geometry":
        import shapely

        present = pc.greater(pc.binary_length(piece.values), 0)
        wkb = piece.values.filter(present).to_numpy(zero_copy_only=False)
        if not len(wkb):
            return None
        b = shapely.bounds(shapely.from_wkb(wkb))
        b = b[~np.isnan(b).any(axis=1)]
        if not len(b):
            return None
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))
    if kind == "text":
        values = piece.values if piece.valid is None else piece.values.filter(pa.array(piece.valid))
        if not len(values):
            return None
        mm = pc.min_max(values)
        return (mm["min"].as_py(), mm["max"].as_py())
    if kind not in ("time", "number"):
        return None
    values = piece.values
    if piece.valid is not None:
        values = values[piece.valid]
    if kind == "time":
        values = values.view("int64")
        values = values[values != _NAT]
        cast: Any = int
    elif values.dtype.kind == "f":
        values = values[~np.isnan(values)]
        cast = float
    else:
        cast = int
    if not len(values):
        return None
    return (cast(values.min()), cast(values.max()))


def merge_stats(kind: str, a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if kind == "geometry":
        return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    return (min(a[0], b[0]), max(a[1], b[1]))


def stats_entry(kind: str, blocks: Sequence[Any]) -> dict[str, list] | None:
    """A column's entry of the statistics document from its blocks' statistics."""
    if kind == "geometry":
        return {"bbox": [None if b is None else list(b) for b in blocks]}
    if kind in ("time", "number", "text"):
        clean = [
            None if b is None or any(isinstance(v, float) and math.isnan(v) for v in b) else b for b in blocks
        ]
        return {
            "min": [None if b is None else b[0] for b in clean],
            "max": [None if b is None else b[1] for b in clean],
        }
    return None
