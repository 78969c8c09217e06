"""STAC items rebuilt from rows of the group, under the names ``zarr-meta ingest`` gave them.

``id``, ``collection``, ``stac_version``, ``stac_extensions`` are item members; ``bbox`` (a box
polygon, two across the antimeridian, with ``bbox:zmin``/``bbox:zmax`` for 3-D boxes) becomes
the 4 or 6 numbers; ``geometry`` becomes GeoJSON; ``asset:<key>:href``/``:type`` and the
``assets`` JSON become the assets; every other column is a property. Timestamps are written as
RFC 3339 in UTC, JSON text columns are decoded, missing values are left out.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import shapely

from sedonadb_zarr_meta._serve.catalogue import Catalogue

__all__ = ["apply_fields", "format_time", "rows_to_items"]


def format_time(value: dt.datetime | dt.date) -> str:
    """RFC 3339 in UTC with the fewest fraction digits that keep the value (0, 3 or 6)."""
    if not isinstance(value, dt.datetime):
        return value.isoformat()
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    us = value.microsecond
    if us:
        text += f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
    return text + "Z"


def _bbox(wkb: bytes | None, zmin: Any, zmax: Any) -> list[float] | None:
    if not wkb:
        return None
    geom = shapely.from_wkb(wkb)
    if geom.is_empty:
        return None
    if geom.geom_type == "MultiPolygon" and len(geom.geoms) == 2:
        # Two boxes: a bbox that crosses the antimeridian (west edge east of the east edge).
        a, b = (g.bounds for g in geom.geoms)
        east_part, west_part = (a, b) if a[0] > b[0] else (b, a)
        w, s, e, n = east_part[0], min(a[1], b[1]), west_part[2], max(a[3], b[3])
    else:
        w, s, e, n = geom.bounds
    if zmin is not None and zmax is not None:
        return [w, s, zmin, e, n, zmax]
    return [w, s, e, n]


def _geometry(wkb: bytes | None) -> dict[str, Any] | None:
    if not wkb:
        return None
    return json.loads(shapely.to_geojson(shapely.from_wkb(wkb)))


def _value(value: Any, is_json: bool) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return format_time(value)
    if is_json and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def rows_to_items(catalogue: Catalogue, table: pa.Table) -> list[dict[str, Any]]:
    """The STAC items of ``table``'s rows (columns of the group, geometry as WKB bytes, as
    :meth:`Catalogue.rows` reads them; links are added by the caller)."""
    columns = catalogue.columns
    items = []
    for row in table.to_pylist():
        item: dict[str, Any] = {"type": "Feature"}
        properties: dict[str, Any] = {}
        assets: dict[str, dict[str, Any]] = {}
        for name, value in row.items():
            if value is None or name.startswith("__"):
                continue
            column = columns.get(name)
            if column is None:
                continue
            role = column.role
            if role == "property":
                properties[name] = _value(value, column.is_json)
            elif role == "asset":
                key, field = name[len("asset:") :].rsplit(":", 1)
                assets.setdefault(key, {})[field] = value
            elif name == "assets":
                for key, fields in json.loads(value).items():
                    assets.setdefault(key, {}).update(fields)
            elif name == "bbox":
                box = _bbox(value, row.get("bbox:zmin"), row.get("bbox:zmax"))
                if box is not None:
                    item["bbox"] = box
            elif name == "geometry":
                item["geometry"] = _geometry(value)
            elif role == "top":
                item[name] = _value(value, column.is_json)
        item.setdefault("geometry", None)
        item["properties"] = properties
        if assets:
            item["assets"] = assets
        items.append(item)
    return items


def _split(path: str) -> list[str]:
    return path.split(".")


def apply_fields(item: dict[str, Any], include: Iterable[str], exclude: Iterable[str]) -> dict[str, Any]:
    """The fields extension: keep the ``include`` paths (dotted), then drop the ``exclude`` ones.

    Without an ``include``, everything is kept; ``id``, ``type``, ``links`` and ``collection``
    stay unless excluded by name.
    """
    include, exclude = list(include), list(exclude)
    out = item
    if include:
        out = {k: item[k] for k in ("type", "id", "collection", "links") if k in item}
        for path in include:
            parts = _split(path)
            source: Any = item
            for part in parts:
                if not isinstance(source, dict) or part not in source:
                    source = _MISSING
                    break
                source = source[part]
            if source is _MISSING:
                continue
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = source
    else:
        out = json.loads(json.dumps(item))
    for path in exclude:
        parts = _split(path)
        target = out
        for part in parts[:-1]:
            target = target.get(part) if isinstance(target, dict) else None
            if target is None:
                break
        if isinstance(target, dict):
            target.pop(parts[-1], None)
    return out


_MISSING = object()
