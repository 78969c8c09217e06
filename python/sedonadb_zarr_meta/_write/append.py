"""Appending rows to a written group: every column checked (and widened where allowed) before
anything is written, new and missing columns back-filled, statistics recomputed for the blocks
that change."""

from __future__ import annotations

from typing import Any

import numpy as np

from sedonadb_zarr_meta import _lib
from sedonadb_zarr_meta._write.columns import Column, concat, fill, stored_like
from sedonadb_zarr_meta._write.stats import DEFAULT_CHUNK_SIZE, block_stats, stats_document

__all__ = ["append"]


def _read_tail(array: Any, start: int) -> np.ndarray:
    return np.asarray(array[start:]) if start < array.shape[0] else np.asarray(array[0:0])


def _stored_column(array: Any, like: Column, start: int, group: Any) -> Column:
    """Rows ``start..`` of a stored column, with its validity."""
    values = _read_tail(array, start)
    if like.kind in ("text", "geometry") or like.values.dtype == object:
        values = np.asarray(values, dtype=object)
    valid = None
    pointer = dict(array.attrs).get(_lib.VALIDITY_ATTRIBUTE)
    if isinstance(pointer, str):
        valid = _read_tail(group[pointer], start).astype(bool)
    return Column(like.name, values, like.dtype, like.attrs, like.kind, valid)


def _all_missing(array: Any, group: Any) -> bool:
    """Whether the stored column's validity array (in ``group``) marks every row missing."""
    pointer = dict(array.attrs).get(_lib.VALIDITY_ATTRIBUTE)
    if not isinstance(pointer, str) or array.shape[0] == 0:
        return False
    return not np.asarray(group[pointer][:]).any()


def _cast_for_append(path: str, c: Column, array: Any, group: Any) -> tuple[Column, str | None]:
    """``c`` in the stored array's element type, and how the stored column
    must be rewritten first: ``"missing"`` (it has only ever held missing
    values: it takes ``c``'s type), ``"widen"`` (integers to ``c``'s float64),
    or ``None``; or a clear error. Changes nothing."""
    stored = array.dtype
    have = c.values.dtype
    if c.valid is not None and len(c.valid) and not c.valid.any():
        # Only missing values: they take the stored column's type.
        return fill(stored_like(c.name, array), len(c.valid)), None
    stored_text, have_text = stored.kind in "OTU", have.kind in "OTU"
    if stored != have and c.kind != "geometry" and _all_missing(array, group):
        return c, "missing"
    if stored_text and have_text and (stored.kind == "O") == (c.dtype is not str):
        return c, None
    if not stored_text and not have_text:
        if stored == have:
            return c, None
        if c.kind == "number" and stored.kind in "iuf" and np.can_cast(have, stored, "same_kind"):
            return Column(c.name, c.values.astype(stored), c.dtype, c.attrs, c.kind, c.valid), None
        if c.kind == "number" and stored.kind in "iu" and have.kind == "f":
            return Column(c.name, c.values.astype("float64"), c.dtype, c.attrs, c.kind, c.valid), "widen"
        if c.kind == "time" and stored.kind == have.kind:
            return Column(c.name, c.values.astype(stored), c.dtype, c.attrs, c.kind, c.valid), None
    raise ValueError(
        f"{path}: cannot append {'text' if have_text else have} values to column {c.name!r}, which holds "
        f"{'text' if stored_text else stored} (write the catalogue again with mode='w' to change a "
        "column's type)"
    )


def _rewrite(array: Any, w: Any, c: Column, how: str) -> Any:
    """Rewrite ``array`` (same chunks and attributes) in the type of ``c``:
    ``"missing"``: as missing values of ``c``'s type; ``"widen"``: its values
    cast to ``c``'s element type."""
    if how == "missing":
        values, dtype = fill(c, array.shape[0]).values, c.dtype
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
    w.put(rewritten, 0, values, counted=False)
    return rewritten


def _append_validity(g: Any, w: Any, c: Column, a: Any, old_n: int, rows: int) -> None:
    """The validity of the appended rows: into the column's validity array, or a new one when
    the first missing value arrives (its fill value, true, covers the earlier rows)."""
    pointer = dict(a.attrs).get(_lib.VALIDITY_ATTRIBUTE)
    new_valid = c.valid[-rows:] if c.valid is not None and rows else None
    if isinstance(pointer, str):
        v = g[pointer]
        v.resize((old_n + rows,))
        w.put(v, old_n, new_valid if new_valid is not None else np.ones(rows, dtype=bool), counted=False)
    elif new_valid is not None and not new_valid.all():
        v = w.validity_array(c.name, old_n + rows, new=False)
        w.put(v, old_n, new_valid, counted=False)
        a.attrs[_lib.VALIDITY_ATTRIBUTE] = f"{_lib.VALIDITY_GROUP}/{c.name}"


def _write_rows(
    g: Any, w: Any, path: str, columns: list[Column], existing: dict[str, Any], old_n: int, rows: int
) -> list[tuple[Column, Any, bool]]:
    """``rows`` new rows of every column checked, then written: ``(column, array, created)`` of each."""
    by_name = {c.name: c for c in columns}
    # Columns the group has but the new rows lack: missing values.
    for name, a in existing.items():
        if name not in by_name:
            by_name[name] = fill(stored_like(name, a), rows)
    # Every column is checked before anything is written.
    plan = [
        _cast_for_append(path, c, existing[name], g) if name in existing else (c, None)
        for name, c in by_name.items()
    ]
    changed: list[tuple[Column, Any, bool]] = []
    for c, rewrite in plan:
        if c.name not in existing:
            c = concat(fill(c, old_n), c)
            changed.append((c, w.write_column(c, new_group=False), True))
            continue
        a = existing[c.name]
        if rewrite is not None:
            a = _rewrite(a, w, c, rewrite)
        a.resize((old_n + rows,))
        w.put(a, old_n, c.values)
        changed.append((c, a, False))
        _append_validity(g, w, c, a, old_n, rows)
    return changed


def _update_stats(
    g: Any, old: dict[str, Any], changed: list, old_n: int, new_n: int, block_rows: int
) -> None:
    """The statistics of the blocks the append changed (and of new columns), the others kept."""
    first = (old_n // block_rows) * block_rows  # first block that changes
    kept = first // block_rows
    stats = dict(old["columns"])
    for c, a, created in changed:
        if created:
            fresh = block_stats(c, block_rows)
            if fresh is not None:
                stats[c.name] = fresh
            continue
        if c.name not in stats:
            continue
        fresh = block_stats(_stored_column(a, c, first, g), block_rows)
        if fresh is None:
            stats.pop(c.name)
            continue
        stats[c.name] = {k: list(v[:kept]) + fresh[k] for k, v in stats[c.name].items()}
    g.attrs[_lib.STATS_ATTRIBUTE] = stats_document(new_n, block_rows, stats)


def append(g: Any, path: str, columns: list[Column], rows: int, make_writer: Any) -> None:
    """Append rows; new columns are back-filled with missing values, and
    columns the new rows lack get missing values. Statistics are recomputed
    for the blocks that change. ``make_writer(chunk_size)`` writes into ``g``."""
    existing = {name: arr for name, arr in g.arrays()}
    old_n = next(iter(existing.values())).shape[0] if existing else 0
    old = dict(g.attrs).get(_lib.STATS_ATTRIBUTE)
    block_rows = int(old["block_rows"]) if old and old.get("num_rows") == old_n else None
    chunk = block_rows or (next(iter(existing.values())).chunks[0] if existing else DEFAULT_CHUNK_SIZE)
    changed = _write_rows(g, make_writer(chunk), path, columns, existing, old_n, rows)
    if block_rows is None:
        # The group had no (or stale) statistics: leave it without.
        if _lib.STATS_ATTRIBUTE in g.attrs:
            del g.attrs[_lib.STATS_ATTRIBUTE]
        return
    _update_stats(g, old, changed, old_n, old_n + rows, block_rows)
