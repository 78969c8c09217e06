"""STAC items as a pyarrow Table that ``write_meta`` stores as a ``meta`` group.

One row per item. Columns, in this order:

- ``id``, ``collection`` (text), ``stac_version``;
- ``datetime``, ``start_datetime``, ``end_datetime`` (timestamps, UTC, µs);
- ``bbox``: the item's bbox as a 2-D box polygon (WKB). A bbox whose west
  edge is east of its east edge crosses the antimeridian and becomes a
  MultiPolygon of two boxes, never a world-wide box. The height range of a
  3-D bbox is kept in ``bbox:zmin``/``bbox:zmax``;
- ``geometry``: the footprint (WKB, coordinates exactly as given; empty parts of
  multi-geometries, which cover nothing, are dropped);
- every property under its STAC name, one type per column: booleans, int64,
  float64 (integers and floats mixed), text, timestamps (text that is an
  RFC 3339 date-time in every item), lists and objects as JSON text. Other
  mixes become text, with a warning naming the property;
- ``asset:<key>:href`` and ``asset:<key>:type`` for every asset; the other
  fields of the assets (``title``, ``roles``, ``eo:bands``, …) are kept in
  ``assets``, JSON text of ``{key: {field: value}}``;
- ``stac_extensions`` (JSON text). ``links`` and ``type`` are left out.

A value an item lacks, or gives as ``null``, is missing: it reads back as SQL NULL.
"""

from __future__ import annotations

import json
import re
import warnings
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sedonadb_zarr_meta._geometry import Footprints, bbox_struct_to_wkb, boxes_to_wkb

#: Top-level item members that are not columns.
_SKIPPED = frozenset({"type", "links", "properties", "assets", "bbox", "geometry"})
_TIME_COLUMNS = ("datetime", "start_datetime", "end_datetime")
#: Asset fields kept as columns of their own (``asset:<key>:<field>``).
ASSET_COLUMNS = ("href", "type")
_TIMESTAMP = pa.timestamp("us")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})$")


try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - depends on the environment
    _orjson_dumps = None


class StacError(ValueError):
    """A STAC input that cannot be read as items."""


# --------------------------------------------------------------------- inputs


def is_stac_path(path: Path) -> bool:
    return path.suffix.lower() in (".json", ".geojson", ".ndjson", ".jsonl", ".geojsonl")


def looks_like_items(data: Any) -> bool:
    """Whether ``data`` is a pystac object, an item dict, or a list of those."""
    if isinstance(data, dict):
        return data.get("type") in ("Feature", "FeatureCollection")
    if hasattr(data, "to_dict") and type(data).__name__ in ("Item", "ItemCollection"):
        return True
    if isinstance(data, (list, tuple)):
        return bool(data) and all(_is_item_like(d) for d in data[:1])
    return isinstance(data, Iterator)


def _is_item_like(value: Any) -> bool:
    return isinstance(value, dict) or (hasattr(value, "to_dict") and type(value).__name__ == "Item")


def iter_items(data: Any, source: str = "input") -> Iterator[dict[str, Any]]:
    """Item dicts from pystac objects, dicts, FeatureCollections, iterables or files."""
    if isinstance(data, (str, Path)):
        yield from _read_file(Path(data))
        return
    if isinstance(data, dict):
        if data.get("type") == "FeatureCollection":
            yield from (_check_item(f, source) for f in data.get("features") or [])
        else:
            yield _check_item(data, source)
        return
    if hasattr(data, "to_dict") and type(data).__name__ == "ItemCollection":
        for item in data:
            yield _check_item(item.to_dict(transform_hrefs=False), source)
        return
    if hasattr(data, "to_dict") and type(data).__name__ == "Item":
        yield _check_item(data.to_dict(transform_hrefs=False), source)
        return
    for item in data:
        if hasattr(item, "to_dict"):
            item = item.to_dict(transform_hrefs=False)
        yield _check_item(item, source)


def _read_file(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in (".ndjson", ".jsonl", ".geojsonl"):
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    raise StacError(f"{path}, line {number}: not JSON ({e.msg})") from None
                yield from iter_items(value, f"{path}, line {number}")
        return
    try:
        value = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise StacError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    yield from iter_items(value, str(path))


def _check_item(item: Any, source: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise StacError(f"{source}: a STAC item must be a JSON object, got {type(item).__name__}")
    if item.get("type") != "Feature":
        raise StacError(f"{source}: not a STAC item (type is {item.get('type')!r}, expected 'Feature')")
    if not isinstance(item.get("id"), str):
        raise StacError(f"{source}: a STAC item has no string 'id'")
    if not isinstance(item.get("properties"), dict):
        raise StacError(f"{source}: item {item['id']!r} has no 'properties' object")
    return item


# --------------------------------------------------------------------- geometry


def bbox_edges(
    bbox: Any, where: str = "bbox"
) -> tuple[float, float, float, float, float | None, float | None]:
    """``(west, south, east, north, zmin, zmax)`` of a STAC bbox (4 or 6 numbers); NaN edges
    and ``None`` heights when the item has no bbox."""
    nan = float("nan")
    if bbox is None:
        return nan, nan, nan, nan, None, None
    if not isinstance(bbox, list) or len(bbox) not in (4, 6):
        raise StacError(f"{where}: a bbox has 4 or 6 numbers, got {bbox!r}")
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise StacError(f"{where}: a bbox holds numbers, got {bbox!r}") from None
    if len(values) == 6:
        w, s, zmin, e, n, zmax = values
        return w, s, e, n, zmin, zmax
    w, s, e, n = values
    return w, s, e, n, None, None


# --------------------------------------------------------------------- values


def parse_datetime(value: str) -> np.datetime64 | None:
    """An RFC 3339 date-time as UTC microseconds, or ``None`` when it is not one."""
    m = _RFC3339.match(value)
    if m is None:
        return None
    day, clock, fraction, zone = m.groups()
    try:
        t = np.datetime64(f"{day}T{clock}", "us")
    except ValueError:
        return None
    if fraction:
        t += np.timedelta64(int((fraction + "000000")[:6]), "us")
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        t -= sign * np.timedelta64(int(zone[1:3]) * 60 + int(zone[4:6]), "m")
    return t


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "float"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def _json(value: Any) -> str:
    """JSON text of a list or object (orjson where installed: several times faster)."""
    if _orjson_dumps is not None and isinstance(value, (dict, list)):
        try:
            return _orjson_dumps(value).decode()
        except TypeError:  # integers beyond 64 bits, keys that are not text
            pass
    return json.dumps(value)


def _typed_fast(values: list[Any], time_hint: bool) -> pa.Array | None:
    """The usual columns (one of bool, int64, float64 or text, text as timestamps when every
    value is an RFC 3339 date-time) typed by Arrow in one call; ``None`` for the others, which
    :func:`_typed` types value by value (same result)."""
    try:
        column = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    t = column.type
    if pa.types.is_boolean(t) or pa.types.is_int64(t) or pa.types.is_float64(t):
        return column
    if not pa.types.is_string(t):
        return None
    if not pc.all(pc.match_substring_regex(column, _RFC3339.pattern)).as_py():
        return None if time_hint else column
    try:
        return pc.cast(column, pa.timestamp("us", tz="UTC")).cast(_TIMESTAMP)
    except (pa.ArrowException, ValueError):
        return None


def _typed(name: str, values: list[Any], time_hint: bool) -> pa.Array:
    """One Arrow column from an item field's values (``None`` = missing)."""
    fast = _typed_fast(values, time_hint)
    if fast is not None:
        return fast
    kinds = {_kind(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values), _TIMESTAMP if time_hint else pa.string())
    if kinds == {"bool"}:
        return pa.array(values, pa.bool_())
    if kinds == {"int"}:
        return pa.array(values, pa.int64())
    if kinds <= {"int", "float"}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kinds == {"str"}:
        times = [None if v is None else parse_datetime(v) for v in values]
        if all(t is not None for t, v in zip(times, values) if v is not None):
            return pa.array(times, _TIMESTAMP)
        if time_hint:
            bad = next(v for t, v in zip(times, values) if v is not None and t is None)
            warnings.warn(
                f"STAC field {name!r}: {bad!r} is not an RFC 3339 date-time; the column is kept as text",
                stacklevel=4,
            )
        return pa.array(values, pa.string())
    if kinds == {"json"}:
        return pa.array([None if v is None else _json(v) for v in values], pa.string())
    warnings.warn(
        f"STAC field {name!r} mixes {', '.join(sorted(kinds))} values; the column is stored as text",
        stacklevel=4,
    )
    return pa.array(
        [None if v is None else v if isinstance(v, str) else _json(v) for v in values], pa.string()
    )


class _Columns:
    """Item fields gathered column by column, a row per item (``None`` where an item lacks one)."""

    def __init__(self) -> None:
        self.fields: dict[str, list[Any]] = {}
        self.ids: list[str] = []
        #: The boxes' edges (NaN without a bbox) and height ranges, and the footprints: kept in
        #: forms the garbage collector does not track, and turned into WKB at the end.
        self.edges = tuple(array("d") for _ in range(4))
        self.zmin: list[float | None] = []
        self.zmax: list[float | None] = []
        self.footprints = Footprints()

    def add(self, item: dict[str, Any]) -> None:
        fields = self.fields
        row = len(self.ids)

        def put(name: str, value: Any) -> None:
            column = fields.get(name)
            if column is None:
                column = fields[name] = [None] * row
            elif len(column) < row:
                column.extend([None] * (row - len(column)))
            column.append(value)

        self._add_geometry(item)
        self.ids.append(item["id"])
        for key, value in item.items():
            if key not in _SKIPPED and key != "id":
                put(key, value)
        for key, value in item["properties"].items():
            if key != "id":
                put(key, value)
        rest: dict[str, Any] = {}
        for asset_key, asset in (item.get("assets") or {}).items():
            if not isinstance(asset, dict):
                raise StacError(f"item {item['id']!r}: asset {asset_key!r} is not an object")
            for field in ASSET_COLUMNS:
                if field in asset:
                    put(f"asset:{asset_key}:{field}", asset[field])
            others = {k: v for k, v in asset.items() if k not in ASSET_COLUMNS}
            if others:
                rest[asset_key] = others
        if rest:
            put("assets", rest)

    def _add_geometry(self, item: dict[str, Any]) -> None:
        *edges, zmin, zmax = bbox_edges(item.get("bbox"), f"item {item['id']!r} bbox")
        geometry = item.get("geometry")
        if geometry is not None and not isinstance(geometry, dict):
            raise StacError(f"item {item['id']!r} geometry: a geometry must be a GeoJSON object")
        for column, value in zip(self.edges, edges):
            column.append(value)
        self.zmin.append(zmin)
        self.zmax.append(zmax)
        self.footprints.add(geometry)

    def geometry_columns(self) -> dict[str, pa.Array]:
        """``bbox`` (with ``bbox:zmin``/``bbox:zmax`` for 3-D boxes) and ``geometry`` as WKB."""
        columns = {"bbox": pa.array(boxes_to_wkb(*(np.frombuffer(e) for e in self.edges)), pa.binary())}
        if any(v is not None for v in self.zmin):
            columns["bbox:zmin"] = pa.array(self.zmin, pa.float64())
            columns["bbox:zmax"] = pa.array(self.zmax, pa.float64())
        footprints = self.footprints.wkb(lambda i: f"item {self.ids[i]!r} geometry", StacError)
        columns["geometry"] = pa.array(footprints, pa.binary())
        return columns

    def table(self, keep_text: bool = False) -> pa.Table:
        """The items as Arrow; ``keep_text``: columns parsed from RFC 3339 text keep that text in a
        side column (``stream.TEXT_PREFIX`` + name), for a writer that may need it back."""
        fields = self.fields
        texts: dict[str, pa.Array] = {}

        def typed(name: str, values: list[Any], time_hint: bool) -> pa.Array:
            column = _typed(name, values, time_hint)
            if keep_text and pa.types.is_timestamp(column.type) and any(isinstance(v, str) for v in values):
                texts[name] = pa.array(values, pa.string())
            return column

        for column in fields.values():
            column.extend([None] * (len(self.ids) - len(column)))
        columns: dict[str, pa.Array] = {"id": pa.array(self.ids, pa.string())}
        for name in ["collection", "stac_version", *_TIME_COLUMNS]:
            if name in fields:
                columns[name] = typed(name, fields.pop(name), name in _TIME_COLUMNS)
        columns.update(self.geometry_columns())
        assets = sorted(n for n in fields if n.startswith("asset:"))
        assets += ["assets"] if "assets" in fields else []
        for name in [n for n in fields if not n.startswith("asset:") and n != "assets"] + assets:
            values = fields[name]
            if name in ("stac_extensions", "assets"):
                columns[name] = pa.array([None if v is None else _json(v) for v in values], pa.string())
            else:
                columns[name] = typed(name, values, name in ("created", "updated", "published", "expires"))
        if texts:
            from sedonadb_zarr_meta._write.stream import TEXT_PREFIX

            columns.update({TEXT_PREFIX + name: text for name, text in texts.items()})
        return pa.table(columns)


def items_to_table(
    items: Iterable[dict[str, Any]], progress: Any = None, keep_text: bool = False
) -> pa.Table:
    """A pyarrow Table of STAC items (see the module documentation for the columns; ``keep_text``:
    see ``_Columns.table``)."""
    columns = _Columns()
    for item in items:
        columns.add(item)
        if progress is not None and len(columns.ids) % 10_000 == 0:
            progress.update(10_000)
    if progress is not None:
        progress.update(len(columns.ids) % 10_000)
    if not columns.ids:
        raise StacError("no STAC items in the input")
    return columns.table(keep_text)


# --------------------------------------------------------------------- stac-geoparquet


def normalise_stac_geoparquet(table: pa.Table) -> pa.Table:
    """A stac-geoparquet table in this package's column layout.

    ``bbox`` structs become box polygons (two across the antimeridian),
    ``assets`` structs become ``asset:<key>:<field>`` columns, ``links`` and
    ``type`` are dropped. Other columns are kept as they are.
    """
    names = table.column_names
    if "assets" not in names and "stac_version" not in names:
        return table
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name, column in zip(names, table.columns):
        t = column.type
        if name in ("links", "type"):
            continue
        if name == "bbox" and pa.types.is_struct(t):
            boxes, zmin, zmax = bbox_struct_to_wkb(column)
            columns["bbox"] = pa.array(boxes, pa.binary())
            if zmin is not None:
                columns["bbox:zmin"] = pa.array(zmin, pa.float64())
                columns["bbox:zmax"] = pa.array(zmax, pa.float64())
            continue
        if name == "assets" and pa.types.is_struct(t):
            columns.update(_flatten_assets(column.combine_chunks()))
            continue
        columns[name] = column
    return pa.table(columns)


def _flatten_assets(assets: pa.StructArray) -> dict[str, pa.Array]:
    """``asset:<key>:href``/``:type`` columns and the other fields as ``assets`` JSON text."""
    out: dict[str, pa.Array] = {}
    t = assets.type
    present = assets.is_valid()
    for i in range(t.num_fields):
        key, asset = t.field(i).name, assets.field(i)
        if not pa.types.is_struct(asset.type):
            continue
        valid = pc.and_(present, asset.is_valid())
        for j in range(asset.type.num_fields):
            field = asset.type.field(j).name
            if field in ASSET_COLUMNS:
                out[f"asset:{key}:{field}"] = pc.if_else(valid, asset.field(j), None)
    rest = []
    for row in assets.to_pylist():
        others = {
            key: {f: v for f, v in asset.items() if f not in ASSET_COLUMNS and v is not None}
            for key, asset in (row or {}).items()
            if asset is not None
        }
        others = {k: v for k, v in others.items() if v}
        rest.append(json.dumps(others) if others else None)
    if any(r is not None for r in rest):
        out["assets"] = pa.array(rest, pa.string())
    return out
