"""``sort=True`` in bounded memory: an external Hilbert sort of the streamed batches.

Every batch the streaming writer would receive is written as it arrives to an Arrow IPC file of
its own in a temporary directory; only the bbox centre of each row's first geometry column is
kept in memory (16 bytes a row). Once the input is read, the centres give the Hilbert keys —
computed exactly as the in-memory path's ``stats.sort_order`` computes them, ties kept in input
order — and the rows are handed to the writer in that order, batch by batch, each gathered
from the memory-mapped files it draws on (one mapped at a time). The directory is removed
afterwards, also when the write fails.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from sedonadb_zarr_meta._write.columns import _is_geometry, _unwrapped
from sedonadb_zarr_meta._write.columns_arrow import convert
from sedonadb_zarr_meta._write.stats import geometry_bounds
from sedonadb_zarr_meta._write.stream import TEXT_PREFIX

__all__ = ["HilbertSpill", "hilbert_order"]

#: Rows handed to the writer at a time: about this many bytes of spilled Arrow ...
_TARGET_BYTES = 8 << 20
#: ... within these bounds.
_MIN_ROWS, _MAX_ROWS = 500, 65_536
#: Centres turned into Hilbert keys at a time.
_KEY_ROWS = 65_536
_INT64_MAX = np.iinfo(np.int64).max


def hilbert_order(cx: np.ndarray, cy: np.ndarray) -> np.ndarray | None:
    """Row order along a Hilbert curve (level 16) of the bbox centres ``cx``, ``cy`` over their
    extent, rows without a centre (NaN) last, ties in input order: ``stats.sort_order``'s
    result for geometries with these centres. ``None`` when no row has a centre."""
    import geopandas
    import shapely

    valid = ~np.isnan(cx)
    if not valid.any():
        return None
    extent = (np.nanmin(cx), np.nanmin(cy), np.nanmax(cx), np.nanmax(cy))
    key = np.full(len(cx), _INT64_MAX)
    rows = np.flatnonzero(valid)
    for s in range(0, len(rows), _KEY_ROWS):
        part = rows[s : s + _KEY_ROWS]
        # A point's bbox centre is the point itself: the key is that of the geometry.
        points = geopandas.GeoSeries(shapely.points(cx[part], cy[part]))
        key[part] = points.hilbert_distance(total_bounds=extent, level=16).to_numpy()
    return np.argsort(key, kind="stable")


class HilbertSpill:
    """A context manager: :meth:`add` spills batches, :meth:`batches` gives the rows back in
    Hilbert order; the spill files are removed on exit."""

    def __init__(self, crs: Any, geometry_columns: Sequence[str] | None):
        self.crs = crs
        self.geometry_names = set(geometry_columns or ())
        self.geometry: str | None = None
        self.paths: list[Path] = []
        #: Each spill file's schema, as an index into ``schemas`` (distinct schemas only).
        self.schema_of: list[int] = []
        self.schemas: dict[pa.Schema, int] = {}
        self.starts: list[int] = []
        self.cx: list[np.ndarray] = []
        self.cy: list[np.ndarray] = []
        self.rows = 0
        self.bytes = 0
        #: Columns parsed as timestamps in some batches that become text (see :func:`_text_kept`).
        self.as_text: set[str] = set()
        #: The distinct schemas as the spill files are read back.
        self.read_schemas: list[pa.Schema] = []
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> HilbertSpill:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _centres(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """The bbox centres of ``table``'s rows in the sort's geometry column (the first
        geometry column of the first batch that has one); NaN where there is none."""
        fields = {f.name: f for f in table.schema}
        if self.geometry is None:
            for f in table.schema:
                if _is_geometry(_unwrapped(f, pa.chunked_array([], f.type))[0], self.geometry_names, {}):
                    self.geometry = f.name
                    break
        if self.geometry is None or self.geometry not in fields:
            nan = np.full(table.num_rows, np.nan)
            return nan, nan.copy()
        field = fields[self.geometry]
        column = table.column(self.geometry).combine_chunks()
        piece = convert(field, column, self.crs, self.geometry_names)
        if piece.kind != "geometry":
            raise ValueError(
                f"column {self.geometry!r} is the geometry the rows are sorted by, "
                f"but a batch holds {field.type} values in it"
            )
        b = geometry_bounds(piece.values.to_numpy(zero_copy_only=False))
        return (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2

    def add(self, table: pa.Table) -> None:
        """Spill ``table`` and keep its rows' centres."""
        if not table.num_rows:
            return
        if self._dir is None:  # made with the first batch, removed on exit
            self._dir = tempfile.TemporaryDirectory(prefix="zarr-meta-sort-")
        cx, cy = self._centres(table)
        path = Path(self._dir.name) / f"{len(self.paths):08d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self.bytes += path.stat().st_size
        self.paths.append(path)
        self.schema_of.append(self.schemas.setdefault(table.schema, len(self.schemas)))
        self.starts.append(self.rows)
        self.cx.append(cx)
        self.cy.append(cy)
        self.rows += table.num_rows

    def batches(self) -> Iterator[pa.Table]:
        """The spilled rows in Hilbert order (input order when no row has a geometry)."""
        if not self.rows:
            return
        pa.default_memory_pool().release_unused()  # what reading the input left
        cx, cy = np.concatenate(self.cx), np.concatenate(self.cy)
        self.cx, self.cy = [], []
        order = hilbert_order(cx, cy)
        del cx, cy
        if order is None:
            order = np.arange(self.rows)
        self.as_text = _becoming_text(list(self.schemas))
        self.read_schemas = [_text_schema(s, self.as_text) for s in self.schemas]
        starts = np.asarray(self.starts, dtype=np.int64)
        size = int(min(_MAX_ROWS, max(_MIN_ROWS, _TARGET_BYTES * self.rows // max(self.bytes, 1))))
        for s in range(0, self.rows, size):
            rows = order[s : s + size]
            files = np.searchsorted(starts, rows, side="right") - 1
            yield from self._gather(files, rows - starts[files])
            # The gathered pieces' memory back to the system between batches.
            pa.default_memory_pool().release_unused()

    def _gather(self, files: np.ndarray, local: np.ndarray) -> Iterator[pa.Table]:
        """The rows ``local[i]`` of spill file ``files[i]``, in that order: one table where
        the files' schemas unify, else consecutive tables each of unifiable schemas."""
        schemas = self.read_schemas
        kinds = np.asarray(self.schema_of)[files]
        distinct = np.unique(kinds)
        try:
            if len(distinct) > 1:
                pa.unify_schemas([schemas[k] for k in distinct], promote_options="permissive")
            runs = [(0, len(files))]
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            runs = _runs([schemas[k] for k in kinds])
        for a, b in runs:
            yield self._take(files[a:b], local[a:b])

    def _take(self, files: np.ndarray, local: np.ndarray) -> pa.Table:
        """The rows ``local[i]`` of spill file ``files[i]``, in that order, as one table."""
        by_file = np.argsort(files, kind="stable")
        grouped, rows = files[by_file], local[by_file]
        firsts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        parts = []
        for a, b in zip(firsts, np.r_[firsts[1:], len(grouped)]):
            with pa.memory_map(str(self.paths[int(grouped[a])])) as source:
                parts.append(_text_kept(ipc.open_file(source).read_all().take(rows[a:b]), self.as_text))
        table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
        back = np.empty_like(by_file)
        back[by_file] = np.arange(len(by_file))
        return table.take(back)


def _becoming_text(schemas: list[pa.Schema]) -> set[str]:
    """The columns that hold timestamps parsed from text in some batches and other values
    (text, numbers, booleans) in others: the writer stores them as text."""
    times: set[str] = set()
    others: set[str] = set()
    for schema in schemas:
        names = set(schema.names)
        for f in schema:
            if pa.types.is_timestamp(f.type) and TEXT_PREFIX + f.name in names:
                times.add(f.name)
            elif not pa.types.is_null(f.type) and not f.name.startswith(TEXT_PREFIX):
                if not pa.types.is_timestamp(f.type):
                    others.add(f.name)
    return times & others


def _text_schema(schema: pa.Schema, as_text: set[str]) -> pa.Schema:
    """``schema`` after :func:`_text_kept`."""
    names = set(schema.names)
    for name in as_text:
        if name in names and TEXT_PREFIX + name in names:
            i = schema.get_field_index(name)
            schema = schema.set(i, pa.field(name, pa.string()))
            schema = schema.remove(schema.get_field_index(TEXT_PREFIX + name))
    return schema


def _text_kept(table: pa.Table, as_text: set[str]) -> pa.Table:
    """``table`` with the columns of ``as_text`` that it holds as parsed timestamps back as their
    original text. The writer turns a column into text when text reaches it, but timestamps it
    has already written in full chunks are rendered anew; rows in Hilbert order bring the types
    in another order than the input did, so the text is restored before the writer sees them,
    as the in-memory writer keeps it."""
    names = set(table.schema.names)
    for name in as_text:
        side = TEXT_PREFIX + name
        if name in names and side in names:
            text = table.column(side).cast(pa.string())
            table = table.set_column(table.schema.get_field_index(name), pa.field(name, pa.string()), text)
            table = table.drop_columns([side])
    return table


def _runs(schemas: list[pa.Schema]) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of consecutive rows whose schemas unify (``schemas``: each row's)."""
    runs, start, current = [], 0, schemas[0]
    seen: dict[tuple[int, int], pa.Schema | None] = {}
    for i in range(1, len(schemas)):
        s = schemas[i]
        if s is current or s.equals(current):
            continue
        key = (id(current), id(s))
        if key not in seen:
            try:
                seen[key] = pa.unify_schemas([current, s], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                seen[key] = None
        merged = seen[key]
        if merged is None:
            runs.append((start, i))
            start, current = i, s
        else:
            current = merged
    runs.append((start, len(schemas)))
    return runs


def sorted_batches(spill: HilbertSpill, source: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """``source`` spilled into ``spill``, then its rows in Hilbert order."""
    for table in source:
        spill.add(table)
    yield from spill.batches()
