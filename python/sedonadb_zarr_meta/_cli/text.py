"""Values as text: counted nouns, CRS labels, geometry as WKT, result tables printed in columns."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = [
    "as_texts",
    "count",
    "crs_label",
    "format_table",
    "geometry_crs",
    "is_binary",
    "is_nested",
    "jsonable",
    "names_text",
    "simplify",
    "simplify_schema",
    "storage_array",
    "wkb_as_text",
]

_GEOARROW_WKB = "geoarrow.wkb"
#: Longest cell printed by ``query`` before it is cut.
_CELL_WIDTH = 60
#: A CRS given as an authority code, e.g. ``EPSG:32633`` or ``OGC:CRS84``.
_AUTHORITY_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]*:[A-Za-z0-9_.]+")
#: Decimal places of coordinates in printed tables (files get every digit).
_PRINTED_DECIMALS = 6


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}{'es' if noun.endswith(('s', 'ch')) else 's'}"


def names_text(names: Sequence[str], most: int = 12) -> str:
    """At most ``most`` names, comma-separated, then how many more there are."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])} and {len(names) - most} more"


# --------------------------------------------------------------------------------------------
# Geometry and CRS
# --------------------------------------------------------------------------------------------


def geometry_crs(field: Any) -> tuple[bool, Any]:
    """``(is_geometry, crs)`` of an Arrow field: GeoArrow WKB by field metadata or extension type."""
    import pyarrow as pa

    t = field.type
    if isinstance(t, pa.ExtensionType):
        if t.extension_name != _GEOARROW_WKB:
            return False, None
        raw = t.__arrow_ext_serialize__()
    else:
        meta = field.metadata or {}
        if meta.get(b"ARROW:extension:name") != _GEOARROW_WKB.encode():
            return False, None
        raw = meta.get(b"ARROW:extension:metadata") or b""
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {}
    return True, parsed.get("crs") if isinstance(parsed, dict) else None


def crs_label(crs: Any) -> str:
    """A short name of a CRS (a code, WKT2 or PROJJSON): its authority code, else its name."""
    if crs is None:
        return "unknown"
    if isinstance(crs, str) and _AUTHORITY_CODE.fullmatch(crs.strip()):
        return crs.strip()  # a code is its own label (and PROJ need not be loaded for it)
    import pyproj

    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        return str(crs)[:40]
    authority = parsed.to_authority(min_confidence=100)
    return ":".join(authority) if authority else parsed.name


def storage_array(column: Any) -> Any:
    """The storage array of an extension-typed column (chunks combined), else the column."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.storage if isinstance(column, pa.ExtensionArray) else column


def wkb_as_text(column: Any, *, precise: bool = False) -> list[str | None]:
    """A WKB column as WKT by shapely (GEOS's 16 significant digits if ``precise``, else six
    decimals); values that are not WKB as hex; nulls stay ``None``."""
    import shapely

    values = storage_array(column).to_numpy(zero_copy_only=False)
    present = values != None  # noqa: E711 - elementwise
    geometries = shapely.from_wkb(np.where(present, values, None), on_invalid="ignore")
    texts = shapely.to_wkt(geometries, rounding_precision=-1 if precise else _PRINTED_DECIMALS)
    return [
        None if v is None else bytes(v).hex() if t is None else str(t)
        for v, t in zip(values.tolist(), texts.tolist())
    ]


# --------------------------------------------------------------------------------------------
# Arrow values as text and JSON
# --------------------------------------------------------------------------------------------


def _plain_type(t: Any) -> Any:
    """The plain Arrow type of a view type (``binary_view`` -> ``binary``), else ``None``."""
    import pyarrow as pa

    # (view types and their tests came with pyarrow 16)
    if getattr(pa.types, "is_binary_view", lambda _: False)(t):
        return pa.binary()
    if getattr(pa.types, "is_string_view", lambda _: False)(t):
        return pa.string()
    return None


def simplify_schema(schema: Any) -> Any:
    """``schema`` with view types as their plain equivalents (for writers and printing)."""
    import pyarrow as pa

    fields = [field.with_type(_plain_type(field.type) or field.type) for field in schema]
    return pa.schema(fields, metadata=schema.metadata)


def simplify(batch: Any) -> Any:
    """``batch`` with view types as their plain equivalents."""
    import pyarrow as pa

    if not any(_plain_type(t) is not None for t in batch.schema.types):
        return batch
    schema = simplify_schema(batch.schema)
    arrays = [array.cast(field.type) for array, field in zip(batch.columns, schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def jsonable(value: Any) -> Any:
    """``value`` (from ``to_pylist``) as JSON data: dates as ISO 8601, bytes as hex, NaN as null."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def is_nested(t: Any) -> bool:
    """Whether ``t`` holds nested values (lists, structs, maps), written as JSON text."""
    import pyarrow as pa

    return pa.types.is_nested(t)


def is_binary(t: Any) -> bool:
    """Whether ``t`` holds bytes, written as hex."""
    import pyarrow as pa

    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def as_texts(field: Any, column: Any, *, precise: bool) -> list[str | None]:
    """One column as display text: geometry as WKT, binary as hex, nested values as JSON."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = storage_array(column)
    t = column.type
    if geometry_crs(field)[0]:
        return wkb_as_text(column, precise=precise)
    values = column.to_pylist()
    if is_binary(t):
        return [None if v is None else v.hex() for v in values]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values
    if is_nested(t):
        return [None if v is None else json.dumps(jsonable(v)) for v in values]
    if pa.types.is_boolean(t):
        return [None if v is None else ("true" if v else "false") for v in values]
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return [None if v is None else f"{v:.7g}" for v in values]
    if pa.types.is_floating(t):
        return [None if v is None else repr(v) for v in values]
    try:
        return pc.cast(column, pa.string()).to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return [None if v is None else str(v) for v in values]


def _cell(text: str | None) -> str:
    if text is None:
        return "null"
    text = text.replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 3] + "..."


def format_table(table: Any) -> str:
    """A pyarrow Table as aligned text (geometry as WKT)."""
    headers = list(table.schema.names)
    columns = [
        [_cell(t) for t in as_texts(field, table.column(i), precise=False)]
        for i, field in enumerate(table.schema)
    ]
    widths = [max([len(h), *(len(v) for v in col)]) for h, col in zip(headers, columns)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in range(table.num_rows):
        lines.append("  ".join(col[row].ljust(w) for col, w in zip(columns, widths)).rstrip())
    return "\n".join(lines)
