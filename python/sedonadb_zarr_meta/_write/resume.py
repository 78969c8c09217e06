"""The last chunk of a group appended to, when it is partial: its stored rows back into each
column's chunk in the making.

Where the chunk ends in a zstd frame of its padding (the layout :mod:`chunks` writes), its other
frames are kept as they are and nothing is decompressed; otherwise text and WKB bytes go back
into a new zstd stream undecoded, and other types are decoded. Their recorded statistics stand
for rows that are not decoded. A stored chunk that cannot be read is refused with the store and
the array named, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from sedonadb_zarr_meta._write import chunks as ch
from sedonadb_zarr_meta._write.columns_arrow import Piece, missing

__all__ = ["partial_stats", "reading", "reencode", "restore"]


def partial_stats(columns: dict[str, Any], block: int) -> dict[str, Any]:
    """Each column's recorded statistics of ``block`` (a bbox, or ``(min, max)``; ``None`` where
    it held no value), where recorded."""
    out: dict[str, Any] = {}
    for name, e in columns.items():
        try:
            if "bbox" in e:
                b = e["bbox"][block]
                out[name] = None if b is None else tuple(b)
            else:
                lo, hi = e["min"][block], e["max"][block]
                out[name] = None if lo is None else (lo, hi)
        except (IndexError, KeyError, TypeError):
            continue
    return out


@contextmanager
def reading(where: str, path: str, index: int) -> Iterator[None]:
    """Errors reading chunk ``index`` of array ``path`` of store ``where``, as one clear error."""
    import zstandard

    try:
        yield
    except (ValueError, RuntimeError, MemoryError, zstandard.ZstdError) as e:
        raise ValueError(
            f"{where}: array {path!r}: its last chunk ({index}) cannot be read to append rows to "
            f"it: {e or type(e).__name__}; nothing was written"
        ) from e


def reencode(raw: bytes, doc: dict[str, Any], rows: int) -> ch.ChunkEncoder | None:
    """The ``rows`` stored rows of chunk ``raw`` (of array ``doc``) in a chunk in the making,
    nothing decoded: its frames kept, or (text, WKB) its bytes in a new zstd stream; ``None``
    where they must be decoded."""
    resumed = ch.ChunkEncoder.resume(raw, doc, rows)
    dtype = ch.known_layout(doc)
    if resumed is not None or dtype not in (str, bytes):
        return resumed
    prefix = ch.vlen_prefix(raw, doc, rows)
    if prefix is None:
        return None
    chunk = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
    encoder = ch.ChunkEncoder(dtype, chunk)
    encoder.add_raw(prefix, rows)
    return encoder


def restore(
    sink: Any, doc: dict[str, Any], rows: int, chunk: int, stored: tuple[Any, Any, Any, Any], stats: Any
) -> None:
    """The ``rows`` stored rows of ``sink``'s last chunk and their validity into its chunk in the
    making. ``stored``: the chunk (``None`` where it was never written), the encoder holding its
    rows (``None`` where they must be decoded), the validity array's document (``None`` where
    there is none) and its chunk; ``stats``: the rows' recorded statistics."""
    raw, encoder, vdoc, vraw = stored
    valid = None
    if vraw is not None:
        if vdoc is None:
            raise ValueError("its validity array has chunks but no metadata")
        valid = ch.decode_chunk(vraw, vdoc, np.dtype(bool))[:rows]
    elif vdoc is not None:
        valid = np.full(rows, bool(vdoc.get("fill_value", True)))
    if encoder is not None:
        sink.encoder = encoder
        sink.valid.append(np.ones(rows, dtype=bool) if valid is None else valid)
        sink.current = stats
        return
    if raw is None:
        values: Any = missing(sink.kind, sink.dtype, sink.attrs, rows).values
        if sink.dtype not in (str, bytes):
            time = sink.kind == "time"
            values = np.full(rows, doc["fill_value"], dtype=np.int64 if time else sink.dtype)
            values = values.view(sink.dtype) if time else values
    else:
        values = ch.decode_chunk(raw, doc, sink.dtype)[:rows]
    sink.add(Piece(sink.kind, sink.dtype, values, valid, sink.attrs), chunk)
