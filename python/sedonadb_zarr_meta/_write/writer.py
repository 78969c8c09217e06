"""``write_meta`` and ``ingest_stac_search``: a table (or STAC items) written as a group, with
its validity arrays, statistics and consolidated metadata, into a store or an Icechunk commit."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sedonadb_zarr_meta import _icechunk, _lib, _stac
from sedonadb_zarr_meta._options import validate_options
from sedonadb_zarr_meta._write import sources, spill, targets
from sedonadb_zarr_meta._write.append import append
from sedonadb_zarr_meta._write.columns import Column, prepare
from sedonadb_zarr_meta._write.inputs import as_table, progress_bar, streamable
from sedonadb_zarr_meta._write.stats import DEFAULT_CHUNK_SIZE, block_stats, sort_order, stats_document
from sedonadb_zarr_meta._write.stream import StreamWriter, Unsupported

__all__ = ["ingest_stac_search", "write_meta"]


class _Writer:
    """Writes prepared columns into a group, showing progress over rows x columns."""

    def __init__(self, group: Any, chunk_size: int, progress: Any):
        self.group, self.chunk_size, self.progress = group, chunk_size, progress
        self._validity_group: Any = None

    def put(self, array: Any, start: int, values: np.ndarray, counted: bool = True) -> None:
        """Write ``values`` from row ``start``; ``counted``: they are among the values the
        progress bar counts (the columns' own, not validity arrays or rewrites)."""
        # Whole chunks at a time, so progress moves and zarr-python still
        # encodes several chunks concurrently.
        step = self.chunk_size * 8
        for s in range(0, len(values), step):
            array[start + s : start + s + step] = values[s : s + step]
            if counted:
                self.progress.update(min(step, len(values) - s))

    def create(self, column: Column, total: int) -> Any:
        """A new array for ``column`` (in a group that has none of that name), attributes included."""
        return self.group.create_array(
            column.name,
            shape=(total,),
            dtype=column.dtype,
            chunks=(self.chunk_size,),
            attributes=column.attrs or None,
        )

    def write_column(self, c: Column, new_group: bool) -> Any:
        """A new array holding all of ``c``, with a validity array when a value is
        missing (``new_group``: the group was just created, so none can exist yet)."""
        missing = c.valid is not None and not c.valid.all()
        if missing:
            c.attrs[_lib.VALIDITY_ATTRIBUTE] = f"{_lib.VALIDITY_GROUP}/{c.name}"
        a = self.create(c, len(c.values))
        self.put(a, 0, c.values)
        if missing:
            self.put(self.validity_array(c.name, len(c.values), new=new_group), 0, c.valid, counted=False)
        return a

    def validity_array(self, name: str, total: int, new: bool) -> Any:
        """The validity array of column ``name``; ``new``: it cannot exist yet."""
        if self._validity_group is None:
            self._validity_group = self.group.require_group(_lib.VALIDITY_GROUP)
        vgroup = self._validity_group
        if not new and name in vgroup:
            return vgroup[name]
        return vgroup.create_array(
            name, shape=(total,), dtype=bool, chunks=(self.chunk_size,), fill_value=True, overwrite=not new
        )


def _write_new(w: _Writer, columns: list[Column], rows: int) -> None:
    for c in columns:
        w.write_column(c, new_group=True)
    stats = {c.name: s for c in columns if (s := block_stats(c, w.chunk_size)) is not None}
    attrs = {_lib.STATS_ATTRIBUTE: stats_document(rows, w.chunk_size, stats)}
    geo_attrs = [c.attrs for c in columns if c.kind == "geometry"]
    if geo_attrs and all(a == geo_attrs[0] for a in geo_attrs):
        attrs.update({k: v for k, v in geo_attrs[0].items() if k.startswith("proj:")})
    w.group.attrs.update(attrs)


def _sorted(columns: list[Column]) -> None:
    """``columns`` in Hilbert order, in place."""
    order = sort_order(columns)
    if order is None:
        return
    for c in columns:
        c.values = c.values[order]
        if c.valid is not None:
            c.valid = c.valid[order]


def _known_rows(data: Any) -> int | None:
    """The rows ``data`` holds where that is known without reading it (for the progress bar)."""
    if isinstance(data, (list, tuple)):
        return len(data)
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data.num_rows
    if isinstance(data, dict) and isinstance(data.get("features"), list):
        return len(data["features"])
    return None


def _streamed(
    data: Any,
    store: Any,
    path: str,
    group: str,
    chunk_size: int,
    crs: Any,
    mode: str,
    geometry_columns: Sequence[str] | None,
    progress: bool | None,
    icechunk: bool,
    sort: bool = False,
) -> int | None:
    """Stream ``data`` into ``store`` batch by batch (``sort``: in Hilbert order, through
    spill files); the rows written, or ``None`` when the group to append to has a layout only
    zarr-python writes (then nothing was written)."""
    w = StreamWriter(store, group, chunk_size, crs, geometry_columns, path, icechunk, not icechunk)
    try:
        exists = mode == "a" and w.start_append()
    except Unsupported:
        return None
    stac = isinstance(data, (str, Path)) and _stac.is_stac_path(Path(data)) or _stac.looks_like_items(data)
    # A new group is made once the first batch has been read, and removed if the write fails:
    # bad input leaves no group behind (an append's rows show only once its metadata is written).
    started = exists
    try:
        label = "reading STAC items and writing" if stac else "writing"
        with (
            spill.HilbertSpill(crs, geometry_columns) as sorter,
            progress_bar(label, _known_rows(data), "rows", progress) as bar,
        ):
            source = sources.batches(data)
            for batch in spill.sorted_batches(sorter, source) if sort else source:
                if not started:
                    w.start_new()
                    started = True
                w.write(batch)
                bar.update(batch.num_rows)
    except BaseException:
        if started and not exists and not icechunk and group:
            w.discard()
        raise
    if not started:
        w.start_new()
    if w.rows == w.old_rows:
        if stac:
            raise _stac.StacError("no STAC items in the input")
        if not w.sinks:
            raise ValueError(f"{path}: nothing to write (no columns)")
    return w.close() - w.old_rows


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
    icechunk: bool = False,
) -> tuple[int, bool]:
    """Write ``data`` into ``store``; the number of rows written, and whether the write went
    through the streaming writer (which writes its consolidated metadata itself)."""
    import zarr

    if zarr_format == 3 and streamable(data):
        rows = _streamed(
            data, store, path, group, chunk_size, crs, mode, geometry_columns, progress, icechunk, sort
        )
        if rows is not None:
            return rows, True

    table, crs_by_column = as_table(data, progress)
    columns = prepare(table, crs_by_column, crs, geometry_columns)
    if sort:
        _sorted(columns)
    # Not through consolidated metadata: it is rewritten after the write, and
    # arrays created meanwhile must be found.
    root = zarr.open_group(
        store, mode="a", zarr_format=zarr_format if mode == "w" else None, use_consolidated=False
    )
    exists = group in root if group else True
    rows = len(table)
    with progress_bar("writing", rows * max(len(columns), 1), "values", progress) as bar:
        if mode == "w" or not exists:
            if group and exists:
                del root[group]
            g = root.require_group(group) if group else root
            _write_new(_Writer(g, chunk_size, bar), columns, rows)
        else:
            g = zarr.open_group(store, path=group, mode="a", use_consolidated=False) if group else root
            append(g, path, columns, rows, lambda chunk: _Writer(g, chunk, bar))
    return rows, False


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

    Zarr v3 writes stream: the input is read in batches (STAC files line by
    line or with a streaming parser, GeoParquet by row group, iterables of
    items as they come) and written chunk by chunk, so memory does not grow
    with the input (``sort=True`` spills the batches to temporary files and keeps
    16 bytes a row for the Hilbert order); GeoDataFrames are written in memory.

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
            _write(data, session.store, str(uri), *write, icechunk=True)
            return str(uri)
        if icechunk is None:
            icechunk = targets.holds_repository(uri, storage_options)
        if icechunk:
            return _write_icechunk(data, uri, storage_options, branch, message, write)
        if branch is not None or message is not None:
            raise ValueError(
                f"{uri}: 'branch' and 'message' apply to Icechunk repositories, and this store is not one"
            )
        store, uri_out = targets.open_store(uri, storage_options)
        _, streamed = _write(data, store, uri_out, *write)
        if not streamed:
            targets.consolidate(store, group)
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
    rows, _ = _write(data, session.store, text, *write, icechunk=True)
    mode = write[4]
    session.commit(message or f"write_meta: {'appended' if mode == 'a' else 'wrote'} {rows} rows")
    return text


def ingest_stac_search(
    api_url: str,
    uri: str | Path,
    *,
    mode: str = "w",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    sort: bool = False,
    progress: bool | None = None,
    storage_options: dict[str, Any] | None = None,
    group: str = "meta",
    icechunk: bool | None = None,
    branch: str | None = None,
    message: str | None = None,
    **search_parameters: Any,
) -> str:
    """Page through a STAC API item search and write the items as ``uri``'s ``meta`` group.

    ``search_parameters`` are those of ``pystac_client.Client.search``
    (``collections``, ``bbox``, ``intersects``, ``datetime``, ``query``,
    ``filter``, ``max_items``, ``limit``, …). Needs ``pystac-client``. The
    other arguments are :func:`write_meta`'s (STAC geometries are
    longitude/latitude, so there is no ``crs``).

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
    # The pages are written as they arrive (sorting spills them to disk until the last page).
    return write_meta(
        search.items_as_dicts(),
        uri,
        mode=mode,
        chunk_size=chunk_size,
        sort=sort,
        progress=progress,
        storage_options=storage_options,
        group=group,
        icechunk=icechunk,
        branch=branch,
        message=message,
    )
