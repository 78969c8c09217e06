"""``write_meta``: write item metadata as a Zarr ``meta`` group with zarr-python.

The group stays readable by zarr-python and other Zarr readers: one 1-D
array per column, geometry as WKB bytes, datetimes as ``datetime64``, the CRS
as ``proj:*`` attributes. Per-chunk statistics (bounding boxes of geometry
columns, min/max of numeric, time and text columns) are recorded in the
group attribute ``"zarr_meta:stats"`` so readers can skip chunks::

    {"version": 1, "num_rows": N, "block_rows": chunk_size,
     "columns": {"bbox": {"bbox": [[xmin, ymin, xmax, ymax] | null, ...]},
                 "date": {"min": [...], "max": [...]}}}

Time statistics are the stored ``datetime64`` integers; ``null`` marks a
block without valid values.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sedonadb_zarr_meta import _icechunk, _lib, _stac
from sedonadb_zarr_meta._options import validate_options
from sedonadb_zarr_meta._progress import Progress

STATS_ATTRIBUTE = "zarr_meta:stats"
DEFAULT_CHUNK_SIZE = 100_000
_GEOARROW_WKB = b"geoarrow.wkb"


#: Keys of ``storage_options`` that configure the HTTP client rather than the store.
_CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "timeout",
        "proxy_url",
        "user_agent",
        "http1_only",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
    }
)


def _obstore_kwargs(storage_options: dict[str, Any]) -> dict[str, Any]:
    """Split ``storage_options`` into obstore's ``config``, ``client_options`` and ``retry_config``."""
    from datetime import timedelta

    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    for key, value in storage_options.items():
        bare = key.lower()
        for prefix in ("aws_", "google_", "azure_"):
            if bare.startswith(prefix) and bare[len(prefix) :] in _CLIENT_KEYS:
                bare = bare[len(prefix) :]
        if key == "max_retries":
            retry["max_retries"] = int(value)
        elif key == "retry_timeout":
            retry["retry_timeout"] = timedelta(seconds=float(str(value).rstrip("s")))
        elif bare in _CLIENT_KEYS:
            client[bare] = value
        else:
            config[key] = value if isinstance(value, str) else str(value).lower()
    out: dict[str, Any] = {"config": config, "client_options": client}
    if retry:
        retry.setdefault("max_retries", 3)
        retry.setdefault("retry_timeout", timedelta(seconds=30))
        retry["backoff"] = {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=15),
            "base": 2,
        }
        out["retry_config"] = retry
    return out


def _open_store(uri: str | Path, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """The zarr-python store for ``uri`` and the URI to report back.

    Local paths and ``file://`` URLs are directories; object-store URLs are
    written through zarr-python's obstore-backed ``ObjectStore``.
    """
    text = str(uri)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("", "file"):
        if scheme == "file":
            from urllib.parse import unquote, urlparse

            path = Path(unquote(urlparse(text).path))
        else:
            path = Path(text)
        return str(path), path.resolve().as_uri()
    if scheme not in _lib.OBJECT_STORE_SCHEMES:
        raise NotImplementedError(f"{text}: URI scheme {scheme!r} cannot be written")
    if scheme in ("http", "https"):
        raise NotImplementedError(f"{text}: http(s):// stores are read-only")
    import obstore.store
    import zarr.storage

    store = obstore.store.from_url(text, **_obstore_kwargs(dict(storage_options or {})))
    return zarr.storage.ObjectStore(store), text


def _holds_repository(uri: str | Path, storage_options: dict[str, Any] | None) -> bool:
    """Whether ``uri`` holds an Icechunk repository (checked by its marker objects)."""
    text = str(uri)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("", "file"):
        path, _ = _open_store(uri, None)
        return any((Path(path) / marker).is_file() for marker in _icechunk.MARKERS)
    if scheme not in _lib.OBJECT_STORE_SCHEMES or scheme in ("http", "https"):
        return False
    import obstore.store

    store = obstore.store.from_url(text, **_obstore_kwargs(dict(storage_options or {})))
    for marker in _icechunk.MARKERS:
        try:
            store.head(marker)
            return True
        except FileNotFoundError:
            continue
    return False


def _consolidate(store: Any, group: str) -> None:
    """Write the group's consolidated metadata, so readers open it in one round trip."""
    import zarr

    zarr.consolidate_metadata(store, path=group or None)


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
    meta = field.metadata or {}
    raw = meta.get(b"ARROW:extension:metadata")
    if not raw:
        return None
    return json.loads(raw).get("crs")


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
    with Progress("reading STAC items", None, "items", enabled=progress) as bar:
        return _stac.items_to_table(_stac.iter_items(data), bar), {}


def _as_table(data: Any, progress: bool | None = None) -> tuple[pa.Table, dict[str, Any]]:
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
    raise TypeError(
        "write_meta() takes a pyarrow Table, a GeoDataFrame, STAC items (pystac Items or an "
        "ItemCollection, item dicts, a FeatureCollection) or the path of a STAC .json/.ndjson or "
        f"(stac-)GeoParquet file, not {type(data).__name__}"
    )


def _bbox_struct_to_wkb(column: pa.ChunkedArray) -> pa.Array:
    import shapely

    parts = {
        k: np.asarray(column.combine_chunks().field(k).to_numpy(zero_copy_only=False), dtype=float)
        for k in ("xmin", "ymin", "xmax", "ymax")
    }
    boxes = shapely.box(parts["xmin"], parts["ymin"], parts["xmax"], parts["ymax"])
    return pa.array(list(shapely.to_wkb(boxes, flavor="iso")), pa.binary())


class _Column:
    """One column ready for zarr-python: values, dtype and attributes."""

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
        #: ``False`` where the value is missing; ``None`` when none is.
        self.valid = valid


def _validity(column: pa.ChunkedArray) -> np.ndarray | None:
    if not column.null_count:
        return None
    return column.is_valid().to_numpy(zero_copy_only=False).astype(bool)


def _prepare(
    table: pa.Table, crs_by_column: dict[str, Any], crs: Any, geometry_columns: Sequence[str] | None
) -> list[_Column]:
    import zarr

    geometry_names = set(geometry_columns or ())
    out = []
    for field, column in zip(table.schema, table.columns):
        name, t = field.name, field.type
        attrs: dict[str, Any] = {}
        meta = field.metadata or {}
        if isinstance(t, pa.ExtensionType):
            # Registered extension types (geoarrow.pyarrow's, once imported: SedonaDB's
            # to_arrow_table() does) carry their name and metadata in the type.
            meta = {
                b"ARROW:extension:name": t.extension_name.encode(),
                b"ARROW:extension:metadata": t.__arrow_ext_serialize__(),
            }
            field = pa.field(name, t.storage_type, field.nullable, meta)
            column = pa.chunked_array([chunk.storage for chunk in column.chunks], t.storage_type)
            t = t.storage_type
        is_geo = (
            name in geometry_names
            or meta.get(b"ARROW:extension:name") == _GEOARROW_WKB
            or name in crs_by_column
            or (
                name in ("bbox", "geometry")
                and (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_struct(t))
            )
        )
        if pa.types.is_dictionary(t):
            column = column.cast(t.value_type)
            t = t.value_type
        valid = _validity(column)
        if is_geo:
            if pa.types.is_struct(t):
                column = pa.chunked_array([_bbox_struct_to_wkb(column)])
            values = np.array(column.to_pylist(), dtype=object)
            values[values == None] = b""  # noqa: E711 - empty WKB reads back as null
            geo_crs = crs if crs is not None else crs_by_column.get(name, _geoarrow_crs(field))
            attrs.update(_crs_attrs(geo_crs) if geo_crs is not None else {"proj:code": "OGC:CRS84"})
            if name not in ("bbox", "geometry"):
                attrs["encoding"] = "WKB"
            out.append(_Column(name, values, zarr.dtype.VariableLengthBytes(), attrs, "geometry"))
        elif pa.types.is_timestamp(t):
            unit = t.unit
            values = (
                column.cast(pa.timestamp(unit)).to_numpy(zero_copy_only=False).astype(f"datetime64[{unit}]")
            )
            out.append(_Column(name, values, values.dtype, attrs, "time", valid))
        elif pa.types.is_duration(t):
            values = column.to_numpy(zero_copy_only=False).astype(f"timedelta64[{t.unit}]")
            out.append(_Column(name, values, values.dtype, attrs, "time", valid))
        elif pa.types.is_date(t):
            values = column.cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
            out.append(_Column(name, values, values.dtype, attrs, "time", valid))
        elif pa.types.is_boolean(t):
            values = column.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
            out.append(_Column(name, values, values.dtype, attrs, "other", valid))
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            if column.null_count:
                column = column.fill_null(0)  # the validity array marks these rows
            values = column.to_numpy(zero_copy_only=False)
            out.append(_Column(name, values, values.dtype, attrs, "number", valid))
        elif pa.types.is_null(t):
            values = np.full(len(column), "", dtype=object)
            out.append(_Column(name, values, str, attrs, "text", np.zeros(len(column), dtype=bool)))
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            values = np.array(column.fill_null("").to_pylist(), dtype=object)
            out.append(_Column(name, values, str, attrs, "text", valid))
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            values = np.array(column.fill_null(b"").to_pylist(), dtype=object)
            out.append(_Column(name, values, zarr.dtype.VariableLengthBytes(), attrs, "other", valid))
        else:
            # Nested values (STAC assets, links, ...) are kept as JSON text.
            values = np.array(
                [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()],
                dtype=object,
            )
            values[values == None] = ""  # noqa: E711
            attrs["encoding"] = "json"
            out.append(_Column(name, values, str, attrs, "other", valid))
    return out


def hilbert_index(
    x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float], order: int = 16
) -> np.ndarray:
    """Hilbert curve index of points (x, y) on a 2^order grid over ``bounds``."""
    n = 1 << order
    xmin, ymin, xmax, ymax = bounds
    sx = (xmax - xmin) or 1.0
    sy = (ymax - ymin) or 1.0
    xi = np.clip(((x - xmin) / sx * (n - 1)).astype(np.int64), 0, n - 1)
    yi = np.clip(((y - ymin) / sy * (n - 1)).astype(np.int64), 0, n - 1)
    d = np.zeros(len(xi), dtype=np.int64)
    s = n >> 1
    while s > 0:
        rx = ((xi & s) > 0).astype(np.int64)
        ry = ((yi & s) > 0).astype(np.int64)
        d += s * s * ((3 * rx) ^ ry)
        # rotate
        flip = ry == 0
        swap_x = np.where(flip & (rx == 1), n - 1 - xi, xi)
        swap_y = np.where(flip & (rx == 1), n - 1 - yi, yi)
        xi, yi = np.where(flip, swap_y, xi), np.where(flip, swap_x, yi)
        s >>= 1
    return d


def _geometry_bounds(values: np.ndarray) -> np.ndarray:
    import shapely

    geoms = np.empty(len(values), dtype=object)
    present = np.array([len(v) > 0 for v in values], dtype=bool)
    geoms[present] = shapely.from_wkb(values[present])
    geoms[~present] = None
    return shapely.bounds(geoms)  # NaN rows for missing/empty


def _min_max(values: np.ndarray, starts: range, block_rows: int, valid: Any, cast: Any) -> dict[str, list]:
    """Per-block min and max of the ``valid`` values (``None`` for a block without any)."""
    mins, maxs = [], []
    for s in starts:
        part = valid(values[s : s + block_rows], s)
        mins.append(cast(part.min()) if len(part) else None)
        maxs.append(cast(part.max()) if len(part) else None)
    return {"min": mins, "max": maxs}


def _block_stats(col: _Column, block_rows: int) -> dict[str, Any] | None:
    n = len(col.values)
    starts = range(0, n, block_rows)
    mask = col.valid

    def present(part: np.ndarray, start: int) -> np.ndarray:
        return part if mask is None else part[mask[start : start + len(part)]]

    if col.kind == "geometry":
        b = _geometry_bounds(col.values)
        out = []
        for s in starts:
            part = b[s : s + block_rows]
            ok = ~np.isnan(part).any(axis=1)
            if not ok.any():
                out.append(None)
            else:
                p = part[ok]
                out.append(
                    [
                        float(p[:, 0].min()),
                        float(p[:, 1].min()),
                        float(p[:, 2].max()),
                        float(p[:, 3].max()),
                    ]
                )
        return {"bbox": out}
    if col.kind == "time":
        nat = np.iinfo(np.int64).min
        return _min_max(
            col.values.view("int64"), starts, block_rows, lambda p, s: (q := present(p, s))[q != nat], int
        )
    if col.kind == "number":
        if col.values.dtype.kind == "f":
            return _min_max(
                col.values, starts, block_rows, lambda p, s: (q := present(p, s))[~np.isnan(q)], float
            )
        return _min_max(col.values, starts, block_rows, present, int)
    if col.kind == "text":
        return _min_max(col.values, starts, block_rows, present, str)
    return None


def _sort_order(columns: list[_Column]) -> np.ndarray | None:
    geo = next((c for c in columns if c.kind == "geometry"), None)
    if geo is None:
        return None
    b = _geometry_bounds(geo.values)
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    valid = ~np.isnan(cx)
    if not valid.any():
        return None
    bounds = (np.nanmin(cx), np.nanmin(cy), np.nanmax(cx), np.nanmax(cy))
    key = np.full(len(cx), np.iinfo(np.int64).max)
    key[valid] = hilbert_index(cx[valid], cy[valid], bounds)
    return np.argsort(key, kind="stable")


def _read_tail(array: Any, start: int) -> np.ndarray:
    return np.asarray(array[start:]) if start < array.shape[0] else np.asarray(array[0:0])


#: Subgroup holding the validity arrays of columns with missing values.
VALIDITY_GROUP = "_validity"
#: Column attribute naming its validity array (relative to the ``meta`` group).
VALIDITY_ATTRIBUTE = "zarr_meta:validity"


def _fill(column: _Column, rows: int) -> _Column:
    """``rows`` missing values of ``column``'s type (for back-filling appends)."""
    if column.kind == "geometry":
        values = np.full(rows, b"", dtype=object)
        return _Column(column.name, values, column.dtype, column.attrs, column.kind)
    if column.values.dtype == object:
        empty: Any = "" if column.dtype is str else b""
        values = np.full(rows, empty, dtype=object)
    elif column.kind == "time":
        values = np.full(rows, np.iinfo(np.int64).min, dtype=np.int64).view(column.values.dtype)
    else:
        values = np.zeros(rows, dtype=column.values.dtype)
    return _Column(column.name, values, column.dtype, column.attrs, column.kind, np.zeros(rows, dtype=bool))


def _concat(old: _Column, new: _Column) -> _Column:
    valid = None
    if old.valid is not None or new.valid is not None:
        valid = np.concatenate(
            [
                old.valid if old.valid is not None else np.ones(len(old.values), dtype=bool),
                new.valid if new.valid is not None else np.ones(len(new.values), dtype=bool),
            ]
        )
    values = np.concatenate([old.values, new.values])
    return _Column(new.name, values, new.dtype, new.attrs, new.kind, valid)


class _Writer:
    """Writes prepared columns into a group, showing progress over rows x columns."""

    def __init__(self, group: Any, chunk_size: int, progress: Progress):
        self.group, self.chunk_size, self.progress = group, chunk_size, progress
        self._validity_group: Any = None

    def put(self, array: Any, start: int, values: np.ndarray) -> None:
        # Whole chunks at a time, so progress moves and zarr-python still
        # encodes several chunks concurrently.
        step = self.chunk_size * 8
        for s in range(0, len(values), step):
            array[start + s : start + s + step] = values[s : s + step]
            self.progress.update(min(step, len(values) - s))

    def create(self, column: _Column, total: int) -> Any:
        """A new array for ``column`` (in a group that has none of that name), attributes included."""
        return self.group.create_array(
            column.name,
            shape=(total,),
            dtype=column.dtype,
            chunks=(self.chunk_size,),
            attributes=column.attrs or None,
        )

    def write_column(self, c: _Column, new_group: bool) -> Any:
        """A new array holding all of ``c``, with a validity array when a value is
        missing (``new_group``: the group was just created, so none can exist yet)."""
        missing = c.valid is not None and not c.valid.all()
        if missing:
            c.attrs[VALIDITY_ATTRIBUTE] = f"{VALIDITY_GROUP}/{c.name}"
        a = self.create(c, len(c.values))
        self.put(a, 0, c.values)
        if missing:
            self.put(self.validity_array(c.name, len(c.values), new=new_group), 0, c.valid)
        return a

    def validity_array(self, name: str, total: int, new: bool) -> Any:
        """The validity array of column ``name``; ``new``: it cannot exist yet."""
        if self._validity_group is None:
            self._validity_group = self.group.require_group(VALIDITY_GROUP)
        vgroup = self._validity_group
        if not new and name in vgroup:
            return vgroup[name]
        return vgroup.create_array(
            name, shape=(total,), dtype=bool, chunks=(self.chunk_size,), fill_value=True, overwrite=not new
        )


def write_meta(
    data: Any,
    uri: str | Path,
    *,
    group: str = "meta",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    sort: bool = False,
    crs: Any = None,
    mode: str = "w",
    geometry_columns: Sequence[str] | None = None,
    zarr_format: int = 3,
    storage_options: dict[str, Any] | None = None,
    icechunk: bool | None = None,
    branch: str | None = None,
    message: str | None = None,
    session: Any = None,
    progress: bool | None = None,
) -> str:
    """Write item metadata as the ``meta`` group of a Zarr store or Icechunk repository.

    Args:
        data: a pyarrow Table (``geoarrow.wkb`` fields are geometry), a
            GeoDataFrame, STAC items (pystac ``Item``s or an ``ItemCollection``,
            item dicts, a FeatureCollection dict), or the path of a STAC
            ``.json`` (Item, ItemCollection/FeatureCollection) or ``.ndjson``
            file or of a (stac-)GeoParquet file. STAC items become the columns
            described in :mod:`sedonadb_zarr_meta._stac`.
        uri: local path, ``file://`` URL, or object-store URL (``s3://``,
            ``gs://``, ``az://``) of the store.
        group: group path inside the store.
        chunk_size: rows per chunk; statistics are kept per chunk.
        sort: order rows along a Hilbert curve of the first geometry column's
            bbox centres, so chunk extents are tight and spatial queries skip more.
        crs: CRS of the geometry columns (overrides the data's own).
        mode: ``"w"`` replaces the group, ``"a"`` appends rows to it.
        geometry_columns: extra columns to treat as geometry (WKB bytes).
        zarr_format: 2 or 3.
        storage_options: object-store configuration, the same keys the
            readers take (e.g. ``{"aws_endpoint": ..., "aws_region": ...}``);
            they override the environment.
        icechunk: write into an Icechunk repository at ``uri``, creating it
            if missing (``True``); never (``False``); default: when ``uri``
            already holds one. Needs the ``icechunk`` package (Python ≥ 3.12).
        branch: Icechunk: the branch written (default ``main``).
        message: Icechunk: the commit message (default: a summary of the write).
        session: a writable ``icechunk.Session`` to write into instead of
            ``uri``'s; the caller commits it (``uri`` is then only reported).
        progress: show progress on stderr (default: when stderr is a terminal).

    Missing values (nulls) read back as NULL: a column holding any gets a
    boolean *validity array* ``_validity/<name>`` (``false`` = missing) named
    by its ``zarr_meta:validity`` attribute; geometry columns store a missing
    value as empty bytes and time columns as NaT as well. Appends may bring
    new columns (earlier rows read as missing) or lack some (their rows read
    as missing).

    Icechunk writes are one commit: a write that fails leaves the branch as it
    was. Plain stores get their consolidated metadata (re)written after every
    write, so readers on object stores open them in one round trip.

    Returns:
        The store's URI (``file://`` for local stores).

    Examples:
        >>> write_meta(items_gdf, "/data/store.zarr", sort=True)  # doctest: +SKIP
        >>> write_meta("items.ndjson", "s3://bucket/catalogue.zarr")  # doctest: +SKIP
    """
    if mode not in ("w", "a"):
        raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    storage_options = validate_options({"storage_options": storage_options or {}}).get("storage_options")
    write = (group, chunk_size, sort, crs, mode, geometry_columns, zarr_format, progress)
    with warnings.catch_warnings():
        # zarr-python flags vlen-bytes as lacking a final v3 spec; it is the
        # reference writer's own encoding and reads back everywhere we need.
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        # Consolidated metadata is what zarr-python itself writes and reads for v3.
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        if session is not None:
            _write(data, session.store, str(uri), *write)
            return str(uri)
        if icechunk is None:
            icechunk = _holds_repository(uri, storage_options)
        if icechunk:
            return _write_icechunk(data, uri, storage_options, branch, message, write)
        if branch is not None or message is not None:
            raise ValueError(
                f"{uri}: 'branch' and 'message' apply to Icechunk repositories, and this store is not one"
            )
        store, uri_out = _open_store(uri, storage_options)
        _write(data, store, uri_out, *write)
        _consolidate(store, group)
        return uri_out


def _write_icechunk(
    data: Any,
    uri: str | Path,
    storage_options: dict[str, Any] | None,
    branch: str | None,
    message: str | None,
    write: tuple[Any, ...],
) -> str:
    """Write into a new session of ``uri``'s repository and commit it."""
    location = str(uri) if "://" in str(uri) else str(Path(str(uri)).resolve())
    text = location if "://" in location else Path(location).as_uri()
    session = _icechunk.writable_session(location, storage_options, branch or _icechunk.DEFAULT_BRANCH, True)
    rows = _write(data, session.store, text, *write)
    mode = write[4]
    session.commit(message or f"write_meta: {'appended' if mode == 'a' else 'wrote'} {rows} rows")
    return text


def _write(
    data: Any,
    store: Any,
    path: str,
    group: str,
    chunk_size: int,
    sort: bool,
    crs: Any,
    mode: str,
    geometry_columns: Sequence[str] | None,
    zarr_format: int,
    progress: bool | None = None,
) -> int:
    """Write ``data`` into ``store``; returns the number of rows written."""
    import zarr

    table, crs_by_column = _as_table(data, progress)
    columns = _prepare(table, crs_by_column, crs, geometry_columns)
    if sort:
        order = _sort_order(columns)
        if order is not None:
            for c in columns:
                c.values = c.values[order]
                if c.valid is not None:
                    c.valid = c.valid[order]

    # Not through consolidated metadata: it is rewritten after the write, and
    # arrays created meanwhile must be found.
    root = zarr.open_group(
        store, mode="a", zarr_format=zarr_format if mode == "w" else None, use_consolidated=False
    )
    exists = group in root if group else True
    rows = len(table)
    with Progress("writing", rows * max(len(columns), 1), "values", enabled=progress) as bar:
        if mode == "w" or not exists:
            if group and exists:
                del root[group]
            g = root.require_group(group) if group else root
            _write_new(_Writer(g, chunk_size, bar), columns, rows)
        else:
            g = zarr.open_group(store, path=group, mode="a", use_consolidated=False) if group else root
            _append(g, path, columns, rows, bar)
    return rows


def _stats_document(rows: int, block_rows: int, columns: dict[str, Any]) -> dict[str, Any]:
    """The ``zarr_meta:stats`` group attribute (see the module documentation)."""
    return {"version": 1, "num_rows": rows, "block_rows": block_rows, "columns": columns}


def _write_new(w: _Writer, columns: list[_Column], rows: int) -> None:
    g = w.group
    for c in columns:
        w.write_column(c, new_group=True)
    stats = {c.name: s for c in columns if (s := _block_stats(c, w.chunk_size)) is not None}
    attrs = {STATS_ATTRIBUTE: _stats_document(rows, w.chunk_size, stats)}
    geo_attrs = [c.attrs for c in columns if c.kind == "geometry"]
    if geo_attrs and all(a == geo_attrs[0] for a in geo_attrs):
        attrs.update({k: v for k, v in geo_attrs[0].items() if k.startswith("proj:")})
    g.attrs.update(attrs)


def _stored_column(array: Any, like: _Column, start: int, group: Any) -> _Column:
    """Rows ``start..`` of a stored column, with its validity."""
    values = _read_tail(array, start)
    if like.kind in ("text", "geometry") or like.values.dtype == object:
        values = np.asarray(values, dtype=object)
    valid = None
    pointer = dict(array.attrs).get(VALIDITY_ATTRIBUTE)
    if isinstance(pointer, str):
        valid = _read_tail(group[pointer], start).astype(bool)
    return _Column(like.name, values, like.dtype, like.attrs, like.kind, valid)


def _stored_like(name: str, array: Any) -> _Column:
    """An empty column shaped like the stored ``array`` (its kind and element type)."""
    import zarr

    dtype = array.dtype
    attrs = dict(array.attrs)
    empty = np.asarray(array[0:0])
    if (
        isinstance(array.metadata.data_type, zarr.dtype.VariableLengthBytes)
        if array.metadata.zarr_format == 3
        else False
    ):
        geometric = name in ("bbox", "geometry") or attrs.get("encoding") == "WKB"
        return _Column(
            name,
            empty.astype(object),
            zarr.dtype.VariableLengthBytes(),
            attrs,
            "geometry" if geometric else "other",
        )
    if dtype.kind in "OTU":
        return _Column(
            name, empty.astype(object), str, attrs, "text" if attrs.get("encoding") != "json" else "other"
        )
    if dtype.kind in "Mm":
        return _Column(name, empty, dtype, attrs, "time")
    if dtype.kind == "b":
        return _Column(name, empty, dtype, attrs, "other")
    return _Column(name, empty, dtype, attrs, "number")


def _cast_for_append(path: str, c: _Column, array: Any, group: Any) -> tuple[_Column, str | None]:
    """``c`` in the stored array's element type, and how the stored column
    must be rewritten first: ``"missing"`` (it has only ever held missing
    values: it takes ``c``'s type), ``"widen"`` (integers to ``c``'s float64),
    or ``None``; or a clear error. Changes nothing."""
    stored = array.dtype
    have = c.values.dtype
    if c.valid is not None and len(c.valid) and not c.valid.any():
        # Only missing values: they take the stored column's type.
        return _fill(_stored_like(c.name, array), len(c.valid)), None
    stored_text, have_text = stored.kind in "OTU", have.kind in "OTU"
    if stored != have and c.kind != "geometry" and _all_missing(array, group):
        return c, "missing"
    stored_bytes = stored.kind == "O"
    if stored_text and have_text and stored_bytes == (c.dtype is not str):
        return c, None
    if not stored_text and not have_text:
        if stored == have:
            return c, None
        if c.kind == "number" and stored.kind in "iuf" and np.can_cast(have, stored, "same_kind"):
            return _Column(c.name, c.values.astype(stored), c.dtype, c.attrs, c.kind, c.valid), None
        if c.kind == "number" and stored.kind in "iu" and have.kind == "f":
            return _Column(c.name, c.values.astype("float64"), c.dtype, c.attrs, c.kind, c.valid), "widen"
        if c.kind == "time" and stored.kind == have.kind:
            return _Column(c.name, c.values.astype(stored), c.dtype, c.attrs, c.kind, c.valid), None
    raise ValueError(
        f"{path}: cannot append {'text' if have_text else have} values to column {c.name!r}, which holds "
        f"{'text' if stored_text else stored} (write the catalogue again with mode='w' to change a "
        "column's type)"
    )


def _all_missing(array: Any, group: Any) -> bool:
    """Whether the stored column's validity array (in ``group``) marks every row missing."""
    pointer = dict(array.attrs).get(VALIDITY_ATTRIBUTE)
    if not isinstance(pointer, str) or array.shape[0] == 0:
        return False
    return not np.asarray(group[pointer][:]).any()


def _rewrite(array: Any, w: _Writer, c: _Column, how: str) -> Any:
    """Rewrite ``array`` (same chunks and attributes) in the type of ``c``:
    ``"missing"``: as missing values of ``c``'s type; ``"widen"``: its values
    cast to ``c``'s element type."""
    if how == "missing":
        values, dtype = _fill(c, array.shape[0]).values, c.dtype
    else:
        values = np.asarray(array[:]).astype(c.values.dtype)
        dtype = values.dtype
    rewritten = w.group.create_array(
        array.basename,
        shape=array.shape,
        dtype=dtype,
        chunks=array.chunks,
        overwrite=True,
        attributes=dict(array.attrs),
    )
    w.put(rewritten, 0, values)
    return rewritten


def _append(g: Any, path: str, columns: list[_Column], rows: int, bar: Progress) -> None:
    """Append rows; new columns are back-filled with missing values, and
    columns the new rows lack get missing values. Statistics are recomputed
    for the blocks that change."""
    existing = {name: arr for name, arr in g.arrays()}
    old_n = next(iter(existing.values())).shape[0] if existing else 0
    old = dict(g.attrs).get(STATS_ATTRIBUTE)
    block_rows = int(old["block_rows"]) if old and old.get("num_rows") == old_n else None
    chunk = block_rows or (next(iter(existing.values())).chunks[0] if existing else DEFAULT_CHUNK_SIZE)
    w = _Writer(g, chunk, bar)
    by_name = {c.name: c for c in columns}
    new_n = old_n + rows

    # Columns the group has but the new rows lack: missing values.
    for name, a in existing.items():
        if name not in by_name:
            by_name[name] = _fill(_stored_like(name, a), rows)
    # Every column is checked before anything is written.
    plan = {
        name: _cast_for_append(path, c, existing[name], g) if name in existing else (c, None)
        for name, c in by_name.items()
    }
    changed: list[tuple[_Column, Any, bool]] = []
    for c, rewrite in plan.values():
        if c.name in existing:
            a = existing[c.name]
            if rewrite is not None:
                a = _rewrite(a, w, c, rewrite)
            a.resize((new_n,))
            w.put(a, old_n, c.values)
            changed.append((c, a, False))
        else:
            c = _concat(_fill(c, old_n), c)
            changed.append((c, w.write_column(c, new_group=False), True))
            continue
        pointer = dict(a.attrs).get(VALIDITY_ATTRIBUTE)
        new_valid = c.valid[-rows:] if c.valid is not None and rows else None
        if isinstance(pointer, str):
            v = g[pointer]
            v.resize((new_n,))
            w.put(v, old_n, new_valid if new_valid is not None else np.ones(rows, dtype=bool))
        elif new_valid is not None and not new_valid.all():
            v = w.validity_array(c.name, new_n, new=False)  # fill value True covers the old rows
            w.put(v, old_n, new_valid)
            a.attrs[VALIDITY_ATTRIBUTE] = f"{VALIDITY_GROUP}/{c.name}"

    if block_rows is None:
        # The group had no (or stale) statistics: leave it without.
        if STATS_ATTRIBUTE in g.attrs:
            del g.attrs[STATS_ATTRIBUTE]
        return
    first = (old_n // block_rows) * block_rows  # first block that changes
    kept = first // block_rows
    stats = dict(old["columns"])
    for c, a, created in changed:
        if created:
            fresh = _block_stats(c, block_rows)
            if fresh is not None:
                stats[c.name] = fresh
            continue
        if c.name not in stats:
            continue
        tail = _stored_column(a, c, first, g)
        fresh = _block_stats(tail, block_rows)
        if fresh is None:
            stats.pop(c.name)
            continue
        stats[c.name] = {k: list(v[:kept]) + fresh[k] for k, v in stats[c.name].items()}
    g.attrs[STATS_ATTRIBUTE] = _stats_document(new_n, block_rows, stats)


def ingest_stac_search(
    api_url: str,
    uri: str | Path,
    *,
    mode: str = "w",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    sort: bool = False,
    progress: bool | None = None,
    storage_options: dict[str, Any] | None = None,
    **search_parameters: Any,
) -> str:
    """Page through a STAC API item search and write the items as ``uri``'s ``meta`` group.

    ``search_parameters`` are those of ``pystac_client.Client.search``
    (``collections``, ``bbox``, ``intersects``, ``datetime``, ``query``,
    ``filter``, ``max_items``, ``limit``, …). Needs ``pystac-client``.

    Returns:
        The store's URI.

    Examples:
        >>> ingest_stac_search(  # doctest: +SKIP
        ...     "https://earth-search.aws.element84.com/v1", "s2.zarr",
        ...     collections=["sentinel-2-l2a"], bbox=[5, 45, 6, 46], datetime="2024-06")
    """
    try:
        import pystac_client
    except ImportError:
        raise ImportError(
            "ingest_stac_search() needs pystac-client: pip install 'sedonadb-zarr-meta[stac]'"
        ) from None
    client = pystac_client.Client.open(api_url)
    search = client.search(**search_parameters)
    with Progress("fetching STAC items", None, "items", enabled=progress) as bar:
        table = _stac.items_to_table(search.items_as_dicts(), bar)
    return write_meta(
        table,
        uri,
        mode=mode,
        chunk_size=chunk_size,
        sort=sort,
        progress=progress,
        storage_options=storage_options,
    )
