"""Geometry as the writers store it: ISO WKB made by shapely, from GeoJSON footprints and from
bounding boxes (the one place a box becomes a polygon: split in two across the antimeridian)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["boxes_to_wkb", "geojson_to_wkb"]

#: GeoJSON geometry types whose empty parts are dropped (they cover nothing, and SedonaDB 0.5
#: cannot print them as WKT).
_MULTI = {"MultiPoint": "multipoints", "MultiLineString": "multilinestrings", "MultiPolygon": "multipolygons"}


def _to_wkb(geometries: np.ndarray) -> list[bytes | None]:
    """ISO WKB, little-endian, with Z where a geometry has it; ``None`` stays ``None``."""
    import shapely

    return shapely.to_wkb(geometries, output_dimension=3, byte_order=1, flavor="iso").tolist()


def _ring_boxes(west: np.ndarray, south: np.ndarray, east: np.ndarray, north: np.ndarray) -> np.ndarray:
    """Box polygons whose ring starts at the south-west corner and runs counter-clockwise."""
    import shapely

    x = np.stack([west, east, east, west, west], axis=1)
    y = np.stack([south, south, north, north, south], axis=1)
    return shapely.polygons(np.stack([x, y], axis=2))


def boxes_to_wkb(west: Any, south: Any, east: Any, north: Any) -> list[bytes | None]:
    """WKB box polygons of bounding boxes given as four arrays of longitude/latitude edges.

    A box whose west edge is east of its east edge crosses the antimeridian and becomes a
    MultiPolygon of two boxes (west edge to 180, then -180 to the east edge), never a
    world-wide box. A box with a missing (NaN) edge is ``None``.

    Examples:
        >>> import shapely
        >>> [shapely.from_wkb(b).bounds for b in boxes_to_wkb([170.0], [-10.0], [-170.0], [10.0])]
        [(-180.0, -10.0, 180.0, 10.0)]
    """
    import shapely

    w, s, e, n = (np.asarray(v, dtype=float).reshape(-1) for v in (west, south, east, north))
    out = np.full(len(w), None, dtype=object)
    valid = ~(np.isnan(w) | np.isnan(s) | np.isnan(e) | np.isnan(n))
    plain = valid & (w <= e)
    crossing = valid & (w > e)
    out[plain] = _ring_boxes(w[plain], s[plain], e[plain], n[plain])
    if crossing.any():
        k = int(crossing.sum())
        eastern = _ring_boxes(w[crossing], s[crossing], np.full(k, 180.0), n[crossing])
        western = _ring_boxes(np.full(k, -180.0), s[crossing], e[crossing], n[crossing])
        out[crossing] = shapely.multipolygons(np.stack([eastern, western], axis=1))
    return _to_wkb(out)


def _parse_one(text: str, where: str, error: type[Exception]) -> Any:
    import shapely

    try:
        return shapely.from_geojson(text)
    except shapely.errors.GEOSException as e:
        raise error(f"{where}: not a valid GeoJSON geometry ({e})") from None


def _check(geometry: Any, where: str, error: type[Exception]) -> None:
    if not isinstance(geometry, dict):
        raise error(f"{where}: a geometry must be a GeoJSON object")


def _without_empty_parts(geometries: np.ndarray, kinds: Sequence[str | None]) -> None:
    """Drop the empty parts of multi-geometries, in place."""
    import shapely

    multi = np.array([k in _MULTI for k in kinds], dtype=bool)
    if not multi.any():
        return
    parts, owner = shapely.get_parts(geometries[multi], return_index=True)
    empty = shapely.is_empty(parts)
    if not empty.any():
        return
    rows = np.flatnonzero(multi)
    for i in np.unique(owner[empty]):
        row = rows[i]
        geometries[row] = getattr(shapely, _MULTI[kinds[row]])(parts[(owner == i) & ~empty])


def geojson_to_wkb(
    geometries: Sequence[dict[str, Any] | None], where: Sequence[str], error: type[Exception] = ValueError
) -> list[bytes | None]:
    """ISO WKB of GeoJSON geometries, coordinates exactly as given; empty parts of
    multi-geometries are dropped and ``None`` stays ``None``.

    Raises:
        error: naming ``where[i]`` for the first geometry that is not valid GeoJSON.
    """
    import shapely

    present = [i for i, g in enumerate(geometries) if g is not None]
    for i in present:
        _check(geometries[i], where[i], error)
    texts = [json.dumps(geometries[i]) for i in present]
    try:
        parsed = shapely.from_geojson(texts)
    except shapely.errors.GEOSException:
        parsed = np.array([_parse_one(t, where[i], error) for t, i in zip(texts, present)], dtype=object)
    out = np.full(len(geometries), None, dtype=object)
    out[present] = parsed
    _without_empty_parts(out, [g.get("type") if g is not None else None for g in geometries])
    return _to_wkb(out)


def bbox_struct_to_wkb(
    column: Any,
) -> tuple[list[bytes | None], list[float | None] | None, list[float | None] | None]:
    """Box polygons of a ``bbox`` struct column (``xmin``, ``ymin``, ``xmax``, ``ymax`` and
    optionally ``zmin``, ``zmax``, as stac-geoparquet writes it), as :func:`boxes_to_wkb` makes
    them, with the height range of 3-D boxes (``None`` without ``zmin``). A missing box, or one
    with a missing edge, is ``None``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    struct = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    keys = {struct.type.field(i).name for i in range(struct.type.num_fields)}

    def edge(name: str) -> np.ndarray:
        values = pc.if_else(struct.is_valid(), struct.field(name), None).cast(pa.float64())
        return values.to_numpy(zero_copy_only=False)

    w, s, e, n = (edge(k) for k in ("xmin", "ymin", "xmax", "ymax"))
    boxes = boxes_to_wkb(w, s, e, n)
    if "zmin" not in keys:
        return boxes, None, None
    heights = [
        [None if b is None or np.isnan(v) else float(v) for b, v in zip(boxes, edge(k))]
        for k in ("zmin", "zmax")
    ]
    return boxes, heights[0], heights[1]
