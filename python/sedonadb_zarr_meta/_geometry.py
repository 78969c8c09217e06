"""Geometry as the writers store it: ISO WKB made by shapely, from GeoJSON footprints and from
bounding boxes (the one place a box becomes a polygon: split in two across the antimeridian)."""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np

__all__ = ["Footprints", "bbox_struct_to_wkb", "boxes_to_wkb", "geojson_to_wkb"]

#: Multi-geometries (by shapely type id) whose empty parts are dropped, and how to rebuild them
#: (empty parts cover nothing, and SedonaDB 0.5 cannot print them as WKT).
_MULTI = {4: "multipoints", 5: "multilinestrings", 6: "multipolygons"}


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


def _without_empty_parts(geometries: np.ndarray) -> None:
    """Drop the empty parts of multi-geometries, in place."""
    import shapely

    types = shapely.get_type_id(geometries)
    multi = np.isin(types, list(_MULTI))
    if not multi.any():
        return
    parts, owner = shapely.get_parts(geometries[multi], return_index=True)
    empty = shapely.is_empty(parts)
    if not empty.any():
        return
    rows = np.flatnonzero(multi)
    for i in np.unique(owner[empty]):
        row = rows[i]
        geometries[row] = getattr(shapely, _MULTI[int(types[row])])(parts[(owner == i) & ~empty])


def _flat_polygon(rings: Any) -> tuple[array, array, list[int]] | None:
    """The x and y of a GeoJSON polygon's rings and each ring's length; ``None`` unless it has
    rings, every position is two numbers and every ring is closed (GEOS then parses it, or says
    why not)."""
    xs, ys, lengths = array("d"), array("d"), []
    if not rings:  # empty: GEOS builds those (shapely's ragged arrays do not take them)
        return None
    try:
        for ring in rings:
            if len(ring) < 4 or ring[0] != ring[-1] or set(map(len, ring)) != {2}:
                return None
            # Positions flattened in C rather than unpacked one by one: footprints are most
            # of the geometry work of an ingest.
            flat = list(chain.from_iterable(ring))
            xs.extend(flat[0::2])
            ys.extend(flat[1::2])
            lengths.append(len(ring))
    except (TypeError, ValueError):
        return None
    return xs, ys, lengths


class _Polygons:
    """Polygons (``multi`` false) or MultiPolygons as flat coordinates and offsets, the layout
    ``shapely.from_ragged_array`` builds them from in one call."""

    def __init__(self, multi: bool) -> None:
        self.multi = multi
        self.xs, self.ys = array("d"), array("d")
        #: Offsets of rings into the coordinates, of polygons into the rings, of multi-polygons
        #: into the polygons.
        self.rings, self.polygons, self.parts = [0], [0], [0]

    def add(self, coordinates: Any) -> bool:
        """Add one geometry's ``coordinates``; false (nothing added) when they are not plain."""
        if not isinstance(coordinates, list) or not coordinates:
            return False
        flat = [_flat_polygon(p) for p in coordinates] if self.multi else [_flat_polygon(coordinates)]
        if any(f is None for f in flat):
            return False
        for xs, ys, lengths in flat:
            self.xs.extend(xs)
            self.ys.extend(ys)
            for n in lengths:
                self.rings.append(self.rings[-1] + n)
            self.polygons.append(len(self.rings) - 1)
        self.parts.append(len(self.polygons) - 1)
        return True

    def build(self) -> np.ndarray:
        import shapely

        xy = np.stack([np.frombuffer(self.xs), np.frombuffer(self.ys)], axis=1)
        if self.multi:
            offsets = (self.rings, self.polygons, self.parts)
            kind = shapely.GeometryType.MULTIPOLYGON
        else:
            offsets, kind = (self.rings, self.polygons), shapely.GeometryType.POLYGON
        return shapely.from_ragged_array(kind, xy, tuple(np.asarray(o, dtype=np.int64) for o in offsets))


class Footprints:
    """GeoJSON geometries gathered one at a time and turned into ISO WKB at the end,
    coordinates exactly as given; empty parts of multi-geometries are dropped and ``None`` stays
    ``None``.

    Plain Polygons and MultiPolygons (the usual STAC footprints: 2-D positions, closed rings)
    are kept as flat coordinates and built by shapely in one call each; other geometries are
    kept as GeoJSON text for GEOS to parse. Neither keeps the parsed JSON alive.
    """

    _NONE, _POLYGON, _MULTIPOLYGON, _TEXT = range(4)

    def __init__(self) -> None:
        self._kinds = array("b")
        self._polygons = (_Polygons(multi=False), _Polygons(multi=True))
        self._texts: list[str] = []

    def __len__(self) -> int:
        return len(self._kinds)

    def add(self, geometry: dict[str, Any] | None) -> None:
        if geometry is None:
            self._kinds.append(self._NONE)
            return
        kind = geometry.get("type")
        multi = kind == "MultiPolygon"
        if kind in ("Polygon", "MultiPolygon") and self._polygons[multi].add(geometry.get("coordinates")):
            self._kinds.append(self._MULTIPOLYGON if multi else self._POLYGON)
            return
        self._kinds.append(self._TEXT)
        self._texts.append(json.dumps(geometry))

    def wkb(self, where: Callable[[int], str], error: type[Exception] = ValueError) -> list[bytes | None]:
        """The geometries added, as WKB.

        Raises:
            error: naming ``where(i)`` for the first geometry ``i`` that is not valid GeoJSON.
        """
        import shapely

        kinds = np.frombuffer(self._kinds, dtype=np.int8)
        out = np.full(len(kinds), None, dtype=object)
        for kind, polygons in zip((self._POLYGON, self._MULTIPOLYGON), self._polygons):
            if (kinds == kind).any():
                out[kinds == kind] = polygons.build()
        rows = np.flatnonzero(kinds == self._TEXT)
        try:
            out[rows] = shapely.from_geojson(self._texts)
        except shapely.errors.GEOSException:
            out[rows] = [_parse_one(t, where(int(i)), error) for t, i in zip(self._texts, rows)]
        _without_empty_parts(out)
        return _to_wkb(out)


def geojson_to_wkb(
    geometries: Sequence[dict[str, Any] | None],
    where: Callable[[int], str],
    error: type[Exception] = ValueError,
) -> list[bytes | None]:
    """ISO WKB of GeoJSON geometry objects (see :class:`Footprints`).

    Raises:
        error: naming ``where(i)`` for the first geometry ``i`` that is not valid GeoJSON.
    """
    footprints = Footprints()
    for g in geometries:
        footprints.add(g)
    return footprints.wkb(where, error)


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
