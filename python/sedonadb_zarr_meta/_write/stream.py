"""The streaming writer: batches of rows appended to a group chunk by chunk, in bounded memory.

Every column holds one chunk in the making (fixed-size values as they are, text and WKB already
through zstd), which is written when it is full; statistics are gathered per chunk as rows
arrive. Metadata documents (every array's zarr.json, the group's statistics and consolidated
metadata) are written directly, all at once, at the end — so a plain store shows the new rows
only when the write completes, and an append of a few rows into a wide group costs a handful
of concurrent reads and writes instead of a zarr-python round per array. Icechunk sessions need
an array's metadata before its chunks, so there the documents are written as the arrays grow
(the commit makes it one change).

Types follow the in-memory writer across batches: a column created by this write widens from
integers to float64 and becomes text when text and other values mix (earlier chunks are
rewritten; timestamps parsed from text keep their text), a column that held only missing values
takes the type of the first values; a column stored before the write only widens to float64 or
leaves an all-missing type, anything else is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from sedonadb_zarr_meta import _lib
from sedonadb_zarr_meta._write import chunks as ch
from sedonadb_zarr_meta._write import resume
from sedonadb_zarr_meta._write.columns_arrow import (
    Piece,
    convert,
    merge_stats,
    missing,
    piece_stats,
    render_text,
    stats_entry,
    stored_kind,
)
from sedonadb_zarr_meta._write.stats import stats_document

__all__ = ["TEXT_PREFIX", "StreamWriter", "Unsupported"]

_NAT = np.iinfo(np.int64).min
#: Side columns of a batch holding the original strings of a column parsed as timestamps.
TEXT_PREFIX = "\0text:"


class Unsupported(Exception):
    """A group this writer cannot append to (Zarr v2, other codecs or chunkings): the caller
    falls back to zarr-python."""


def _sync(coro: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coro)


def _fill(dtype: Any) -> Any:
    """The value padding a chunk's rows past the last one (the arrays' fill value)."""
    if dtype is str or dtype is bytes:
        return None
    dtype = np.dtype(dtype)
    return np.array([_NAT], dtype=np.int64).view(dtype)[0] if dtype.kind in "Mm" else 0


class _Sink:
    """One column of the group: its type, the chunk in the making, validity and statistics."""

    def __init__(self, name: str, kind: str, dtype: Any, attrs: dict[str, Any], path: str, created: bool):
        self.name, self.kind, self.dtype, self.attrs, self.path = name, kind, dtype, attrs, path
        self.created = created
        self.encoder: ch.ChunkEncoder | None = None
        self.valid: list[np.ndarray] = []
        self.validity = isinstance(attrs.get(_lib.VALIDITY_ATTRIBUTE), str)
        self.current: Any = None
        self.blocks: list[Any] = []
        #: Whether a present value was seen (``None``: a stored column, not known without reading).
        self.any_value: bool | None = False if created else None
        #: Whether this write gave it a present value.
        self.seen = False
        self.declared = -1
        self.warned = False
        #: The statistics of every block are in ``blocks`` (the column changed type).
        self.full_stats = False

    def add(self, piece: Piece, chunk: int) -> None:
        if self.encoder is None:
            self.encoder = ch.ChunkEncoder(self.dtype, chunk)
        self.encoder.add(piece.values)
        self.valid.append(np.ones(len(piece), dtype=bool) if piece.valid is None else piece.valid)
        self.current = merge_stats(self.kind, self.current, piece_stats(piece))
        if not self.seen and not piece.all_missing():
            self.seen = True


class StreamWriter:
    """Appends Arrow batches to ``group`` of a zarr-python ``store``; :meth:`close` writes the
    metadata. ``metadata_first``: the store needs an array's metadata before its chunks
    (Icechunk); ``consolidated``: write consolidated metadata (plain stores)."""

    def __init__(
        self,
        store: Any,
        group: str,
        chunk: int,
        crs: Any,
        geometry_columns: Sequence[str] | None,
        where: str,
        metadata_first: bool,
        consolidated: bool,
    ):
        import zarr.storage
        from zarr.core.buffer import default_buffer_prototype

        if isinstance(store, str):  # a local directory
            store = zarr.storage.LocalStore(store)
        self.store, self.group, self.chunk, self.crs, self.where = store, group, chunk, crs, where
        self.geometry_names = set(geometry_columns or ())
        self.metadata_first, self.consolidated = metadata_first, consolidated
        self.proto = default_buffer_prototype()
        self.sinks: dict[str, _Sink] = {}
        self.rows = 0
        self.first_block = 0
        self.kept_stats: dict[str, Any] | None = {}
        self.group_attrs: dict[str, Any] = {}
        self.appending = False
        self.old_rows = 0

    # ------------------------------------------------------------------ store access

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.group, *parts) if p)

    async def _get(self, key: str) -> bytes | None:
        buf = await self.store.get(key, prototype=self.proto)
        return None if buf is None else buf.to_bytes()

    async def _get_all(self, keys: Sequence[str | None]) -> list[bytes | None]:
        """The values of ``keys`` (``None`` for a missing key, or where the key is ``None``) in one
        call of the store (Icechunk answers 227 keys in a tenth of the time it takes key by key)."""
        wanted = [k for k in keys if k is not None]
        found = iter(
            await self.store.get_partial_values(self.proto, [(k, None) for k in wanted]) if wanted else []
        )
        return [None if k is None or (buf := next(found)) is None else buf.to_bytes() for k in keys]

    async def _set_all(self, items: Iterable[tuple[str, bytes]]) -> None:
        await asyncio.gather(*(self.store.set(k, self.proto.buffer.from_bytes(v)) for k, v in items))

    # ------------------------------------------------------------------ opening

    def discard(self) -> None:
        """Remove a group this writer started (after a failure)."""
        _sync(self.store.delete_dir(self.group))

    def start_new(self) -> None:
        """Replace the group by an empty one."""
        import zarr

        root = zarr.open_group(self.store, mode="a", zarr_format=3, use_consolidated=False)
        if self.group:
            if self.group in root:
                del root[self.group]
            root.require_group(self.group)

    def start_append(self) -> bool:
        """Load the group to append to; false when it does not exist (then :meth:`start_new`).

        Raises:
            Unsupported: a group of a layout this writer does not append to.
        """
        loaded = _sync(self._load())
        if loaded is None:
            return False
        gdoc, docs, vdocs = loaded
        self.appending = True
        self.group_attrs = dict(gdoc.get("attributes") or {})
        dtypes = {name: ch.known_layout(doc) for name, doc in {**docs, **vdocs}.items()}
        if any(d is None for d in dtypes.values()):
            raise Unsupported("an array of another layout")
        shapes = {doc["shape"][0] for doc in docs.values()} | {doc["shape"][0] for doc in vdocs.values()}
        chunks = {doc["chunk_grid"]["configuration"]["chunk_shape"][0] for doc in {**docs, **vdocs}.values()}
        if len(shapes) > 1 or len(chunks) > 1:
            raise Unsupported("arrays of different lengths or chunks")
        if chunks:
            self.chunk = int(next(iter(chunks)))
        self.old_rows = self.rows = int(next(iter(shapes))) if shapes else 0
        self.first_block = self.rows // self.chunk
        old = self.group_attrs.get(_lib.STATS_ATTRIBUTE)
        sound = (
            isinstance(old, dict) and old.get("num_rows") == self.rows and old.get("block_rows") == self.chunk
        )
        self.kept_stats = (
            {k: {f: list(v)[: self.first_block] for f, v in e.items()} for k, e in old["columns"].items()}
            if sound
            else None
        )
        #: The recorded statistics of the partial last block, per column (they hold for its rows).
        self.partial_stats: dict[str, Any] = (
            resume.partial_stats(old["columns"], self.first_block) if sound and self.rows % self.chunk else {}
        )
        for name, doc in docs.items():
            attrs = dict(doc.get("attributes") or {})
            dtype = dtypes[name]
            sink = _Sink(name, stored_kind(name, dtype, attrs), dtype, attrs, self._key(name), created=False)
            sink.declared = self.rows
            self.sinks[name] = sink
        _sync(self._prime(docs, vdocs))
        return True

    async def _load(self) -> tuple[dict, dict, dict] | None:
        raw = await self._get(self._key("zarr.json"))
        if raw is None:
            return None
        gdoc = json.loads(raw)
        if gdoc.get("zarr_format") != 3 or gdoc.get("node_type") != "group":
            raise Unsupported("not a Zarr v3 group")
        names = [n async for n in self.store.list_dir(self.group)]
        names = [n for n in names if n != "zarr.json"]
        vnames = [n async for n in self.store.list_dir(self._key(_lib.VALIDITY_GROUP))]
        vnames = [n for n in vnames if n != "zarr.json"]
        children = await self._get_all([self._key(n, "zarr.json") for n in names])
        vchildren = await self._get_all([self._key(_lib.VALIDITY_GROUP, n, "zarr.json") for n in vnames])
        docs: dict[str, Any] = {}
        for name, raw_doc in zip(names, children):
            if raw_doc is None:
                continue
            doc = json.loads(raw_doc)
            if doc.get("node_type") == "array":
                docs[name] = doc
            elif name != _lib.VALIDITY_GROUP:
                raise Unsupported("a group with nested groups")
        vdocs = {
            f"{_lib.VALIDITY_GROUP}/{n}": json.loads(r) for n, r in zip(vnames, vchildren) if r is not None
        }
        return gdoc, docs, vdocs

    async def _prime(self, docs: dict[str, Any], vdocs: dict[str, Any]) -> None:
        """The stored rows of the last, partial chunk, back into each column's chunk in the making."""
        part = self.rows % self.chunk
        if not part:
            return
        index = self.rows // self.chunk
        sinks = list(self.sinks.values())
        raws = await self._get_all([ch.chunk_key(s.path, index) for s in sinks])
        pointers = [s.attrs.get(_lib.VALIDITY_ATTRIBUTE) if s.validity else None for s in sinks]
        vraws = await self._get_all([ch.chunk_key(self._key(p), index) if p else None for p in pointers])

        def reencode(s: _Sink, raw: bytes | None) -> ch.ChunkEncoder | None:
            if raw is None or (s.name not in self.partial_stats and s.kind != "other"):
                return None
            with resume.reading(self.where, s.path, index):
                return resume.reencode(raw, docs[s.name], part)

        # zstd works outside the GIL: the columns' streams are rebuilt on every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            encoders = list(pool.map(reencode, sinks, raws))
        for s, raw, pointer, vraw, encoder in zip(sinks, raws, pointers, vraws, encoders):
            stored = (raw, encoder, vdocs.get(pointer) if pointer else None, vraw)
            with resume.reading(self.where, s.path, index):
                resume.restore(s, docs[s.name], part, self.chunk, stored, self.partial_stats.get(s.name))

    # ------------------------------------------------------------------ rows

    def write(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Append a batch's rows."""
        n = batch.num_rows
        if not n:
            return
        texts = {
            f.name[len(TEXT_PREFIX) :]: col
            for f, col in zip(batch.schema, batch.columns)
            if f.name.startswith(TEXT_PREFIX)
        }
        pieces: dict[str, Piece] = {}
        for field, column in zip(batch.schema, batch.columns):
            if field.name.startswith(TEXT_PREFIX):
                continue
            if field.name in pieces:
                raise ValueError(f"{self.where}: column {field.name!r} appears twice")
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            text = texts.get(field.name)
            if isinstance(text, pa.ChunkedArray):
                text = text.combine_chunks()
            pieces[field.name] = convert(field, column, self.crs, self.geometry_names, text)
        for name, piece in pieces.items():
            sink = self.sinks.get(name)
            pieces[name] = self._create(name, piece) if sink is None else self._accept(sink, piece)
        for name, sink in self.sinks.items():
            if name not in pieces:
                pieces[name] = missing(sink.kind, sink.dtype, sink.attrs, n)
        pos = 0
        while pos < n:
            take = min(self.chunk - self.rows % self.chunk, n - pos)
            for name, sink in self.sinks.items():
                sink.add(pieces[name].slice(pos, pos + take), self.chunk)
            self.rows += take
            pos += take
            if self.rows % self.chunk == 0:
                self._flush()

    def _create(self, name: str, piece: Piece) -> Piece:
        """A new column; the rows before it are missing."""
        sink = _Sink(name, piece.kind, piece.dtype, dict(piece.attrs), self._key(name), created=True)
        if self.rows:
            before = self.rows % self.chunk
            if before:
                sink.add(missing(sink.kind, sink.dtype, sink.attrs, before), self.chunk)
            if sink.kind != "geometry":
                self._add_validity(sink)
                full = self.rows // self.chunk
                if full:
                    falses = ch.ChunkEncoder(np.dtype(bool), self.chunk).finish(False)
                    key = self._key(sink.attrs[_lib.VALIDITY_ATTRIBUTE])
                    self._declare([(key, np.dtype(bool), {}, full * self.chunk, True)])
                    _sync(self._set_all((ch.chunk_key(key, i), falses) for i in range(full)))
            sink.blocks = [None] * (self.rows // self.chunk - self.first_block)
        self.sinks[name] = sink
        return piece

    def _add_validity(self, sink: _Sink) -> None:
        sink.validity = True
        sink.attrs[_lib.VALIDITY_ATTRIBUTE] = f"{_lib.VALIDITY_GROUP}/{sink.name}"

    def _refuse(self, sink: _Sink, piece: Piece) -> ValueError:
        have = "text" if piece.dtype is str else "binary" if piece.dtype is bytes else str(piece.dtype)
        stored = "text" if sink.dtype is str else "binary" if sink.dtype is bytes else str(sink.dtype)
        return ValueError(
            f"{self.where}: cannot append {have} values to column {sink.name!r}, which holds {stored} "
            "(write the catalogue again with mode='w' to change a column's type)"
        )

    def _accept(self, sink: _Sink, piece: Piece) -> Piece:
        """``piece`` in ``sink``'s type, changing the sink's type where the rules allow."""
        if piece.all_missing():
            return missing(sink.kind, sink.dtype, sink.attrs, len(piece))
        if piece.dtype == sink.dtype and (piece.kind == "geometry") == (sink.kind == "geometry"):
            if sink.created and piece.kind != sink.kind and sink.dtype is str:
                sink.kind, sink.attrs = "text", {k: v for k, v in sink.attrs.items() if k != "encoding"}
            return piece
        if (piece.kind == "geometry") != (sink.kind == "geometry"):
            raise self._refuse(sink, piece)
        if self._only_missing(sink):
            kind, dtype, attrs = piece.kind, piece.dtype, piece.attrs
            self._retype(sink, kind, dtype, attrs, lambda p: missing(kind, dtype, attrs, len(p)), blank=True)
            return piece
        fixed = sink.dtype not in (str, bytes) and piece.dtype not in (str, bytes)
        if fixed and sink.kind == "number" and piece.kind == "number":
            if sink.dtype.kind in "iu" and piece.dtype.kind == "f":
                f64 = np.dtype("float64")
                self._retype(
                    sink,
                    "number",
                    f64,
                    sink.attrs,
                    lambda p: Piece("number", f64, p.values.astype(f64), p.valid, {}),
                )
                return Piece("number", f64, piece.values.astype(f64), piece.valid, piece.attrs)
            if np.can_cast(piece.dtype, sink.dtype, "same_kind"):
                return Piece("number", sink.dtype, piece.values.astype(sink.dtype), piece.valid, piece.attrs)
        if fixed and sink.kind == "time" and piece.kind == "time" and sink.dtype.kind == piece.dtype.kind:
            return Piece("time", sink.dtype, piece.values.astype(sink.dtype), piece.valid, piece.attrs)
        if not sink.created or sink.dtype is bytes or piece.dtype is bytes:
            raise self._refuse(sink, piece)
        if not sink.warned:
            sink.warned = True
            warnings.warn(
                f"STAC field {sink.name!r} mixes {sink.kind} and {piece.kind} values; "
                "the column is stored as text",
                stacklevel=3,
            )
        if sink.dtype is not str:
            self._retype(sink, "text", str, {}, render_text)
        return render_text(piece)

    def _only_missing(self, sink: _Sink) -> bool:
        """Whether ``sink`` never held a value (for a stored column: its validity says so)."""
        if sink.seen:
            return False
        if sink.any_value is None:
            sink.any_value = _sync(self._stored_any_value(sink))
        return not sink.any_value

    async def _stored_any_value(self, sink: _Sink) -> bool:
        if not self.old_rows:
            return False
        if not sink.validity or sink.kind == "geometry":
            return True
        key = self._key(sink.attrs[_lib.VALIDITY_ATTRIBUTE])
        doc = json.loads(await self._get(f"{key}/zarr.json") or b"{}")
        count = -(-self.old_rows // self.chunk)
        raws = await self._get_all([ch.chunk_key(key, i) for i in range(count)])
        for i, raw in enumerate(raws):
            if raw is None:
                valid = np.full(self.chunk, bool(doc.get("fill_value", True)))
            else:
                valid = ch.decode_chunk(raw, doc, np.dtype(bool))
            if valid[: min(self.chunk, self.old_rows - i * self.chunk)].any():
                return True
        return False

    def _retype(
        self, sink: _Sink, kind: str, dtype: Any, attrs: dict[str, Any], change: Any, blank: bool = False
    ) -> None:
        """Give ``sink`` a new type: its written chunks and its chunk in the making go through
        ``change`` (a :class:`Piece` to a piece of the new type), statistics recomputed.
        ``blank``: the column held only missing values, which become missing values of the new
        type."""
        old_dtype, old_kind = sink.dtype, sink.kind
        pointer = sink.attrs.get(_lib.VALIDITY_ATTRIBUTE)
        sink.kind, sink.dtype = kind, dtype
        sink.attrs = {**attrs, **({_lib.VALIDITY_ATTRIBUTE: pointer} if pointer else {})}
        old_doc = ch.array_document(old_dtype, 0, self.chunk, {})
        written = self.rows // self.chunk

        async def rewrite() -> list[Any]:
            raws = await self._get_all([ch.chunk_key(sink.path, i) for i in range(written)])
            vdoc = ch.array_document(np.dtype(bool), 0, self.chunk, {}, fill_value=True)
            vraws = await self._get_all(
                [ch.chunk_key(self._key(pointer), i) if pointer else None for i in range(written)]
            )
            out, stats = [], []
            for i, (raw, vraw) in enumerate(zip(raws, vraws)):
                values = (
                    ch.decode_chunk(raw, old_doc, old_dtype)
                    if raw is not None
                    else missing(old_kind, old_dtype, {}, self.chunk).values
                )
                valid = ch.decode_chunk(vraw, vdoc, np.dtype(bool)) if vraw is not None else None
                new = change(Piece(old_kind, old_dtype, values, valid, {}))
                enc = ch.ChunkEncoder(dtype, self.chunk)
                enc.add(new.values)
                out.append((ch.chunk_key(sink.path, i), enc.finish(_fill(dtype))))
                stats.append(piece_stats(new) if i >= self.first_block else None)
            if self.metadata_first:
                doc = ch.array_document(dtype, written * self.chunk, self.chunk, sink.attrs)
                await self._set_all([(f"{sink.path}/zarr.json", ch.dumps(doc))])
            await self._set_all(out)
            return stats

        stats = _sync(rewrite()) if written else []
        sink.blocks = stats[self.first_block :]
        if self.kept_stats is not None and sink.name in self.kept_stats:
            self.kept_stats.pop(sink.name)
            sink.blocks = stats  # every block, the kept ones included
            sink.full_stats = True
        encoder, valid = sink.encoder, sink.valid
        sink.encoder, sink.valid, sink.current = None, [], None
        if encoder is not None and encoder.rows:
            if blank:
                sink.add(missing(kind, dtype, sink.attrs, encoder.rows), self.chunk)
                return
            if encoder.vlen:  # text and WKB never change type but from all missing
                raise ValueError(f"{self.where}: column {sink.name!r}: text cannot change type")
            values = encoder.values()
            sink.add(change(Piece(old_kind, old_dtype, values, np.concatenate(valid), {})), self.chunk)

    # ------------------------------------------------------------------ chunks

    def _declare(self, arrays: list[tuple[str, Any, dict[str, Any], int, Any]]) -> None:
        """Icechunk: array metadata ``(path, dtype, attributes, rows, fill value)`` covering the
        chunks about to be written."""
        if self.metadata_first:
            docs = [
                (f"{path}/zarr.json", ch.dumps(ch.array_document(dtype, rows, self.chunk, attrs, fill)))
                for path, dtype, attrs, rows, fill in arrays
            ]
            _sync(self._set_all(docs))

    def _flush(self, last: bool = False) -> list[tuple[str, bytes]]:
        """Write every column's chunk in the making (the last one padded). ``last`` on a store
        that needs metadata first: the chunks are returned unwritten, for :meth:`close` to write
        after the final documents (which cover them), one round of writes fewer."""
        index = (self.rows - 1) // self.chunk
        cover = (index + 1) * self.chunk
        writes, declare = [], []
        for sink in self.sinks.values():
            if sink.encoder is None:
                continue
            valid = np.concatenate(sink.valid)
            if sink.kind != "geometry" and not sink.validity and not valid.all():
                self._add_validity(sink)
            if sink.declared < cover:
                declare.append((sink.path, sink.dtype, sink.attrs, cover, None))
                sink.declared = cover
            writes.append((ch.chunk_key(sink.path, index), sink.encoder.finish(_fill(sink.dtype))))
            if sink.validity:
                key = self._key(sink.attrs[_lib.VALIDITY_ATTRIBUTE])
                declare.append((key, np.dtype(bool), {}, cover, True))
                enc = ch.ChunkEncoder(np.dtype(bool), self.chunk)
                enc.add(valid)
                writes.append((ch.chunk_key(key, index), enc.finish(True)))
            sink.blocks.append(sink.current)
            sink.encoder, sink.valid, sink.current = None, [], None
        if last and self.metadata_first:
            return writes
        self._declare(declare)
        _sync(self._set_all(writes))
        return []

    # ------------------------------------------------------------------ metadata

    def close(self) -> int:
        """Write the last chunk and every metadata document; the rows the group now holds."""
        chunks = self._flush(last=True) if self.rows % self.chunk else []
        if not self.sinks:
            raise ValueError(f"{self.where}: nothing to write (no columns)")
        docs: dict[str, dict[str, Any]] = {}
        for name, sink in self.sinks.items():
            docs[name] = ch.array_document(sink.dtype, self.rows, self.chunk, sink.attrs)
        validity = {
            sink.attrs[_lib.VALIDITY_ATTRIBUTE]: ch.array_document(
                np.dtype(bool), self.rows, self.chunk, {}, True
            )
            for sink in self.sinks.values()
            if sink.validity
        }
        attrs = dict(self.group_attrs)
        stats = self._stats()
        if stats is None:
            attrs.pop(_lib.STATS_ATTRIBUTE, None)
        else:
            attrs[_lib.STATS_ATTRIBUTE] = stats_document(self.rows, self.chunk, stats)
        if not self.appending:
            geo = [s.attrs for s in self.sinks.values() if s.kind == "geometry"]
            if geo and all(a == geo[0] for a in geo):
                attrs.update({k: v for k, v in geo[0].items() if k.startswith("proj:")})
        out = [(self._key(n, "zarr.json"), ch.dumps(d)) for n, d in {**docs, **validity}.items()]
        plain_group = ch.group_document({}, None)
        if validity:
            out.append((self._key(_lib.VALIDITY_GROUP, "zarr.json"), ch.dumps(plain_group)))
        consolidated = None
        if self.consolidated:
            consolidated = {**docs, **validity}
            if validity:
                consolidated[_lib.VALIDITY_GROUP] = ch.group_document({}, {})
            consolidated = dict(sorted(consolidated.items()))
        out.append((self._key("zarr.json"), ch.dumps(ch.group_document(attrs, consolidated))))
        _sync(self._set_all(out))
        _sync(self._set_all(chunks))
        return self.rows

    def _stats(self) -> dict[str, Any] | None:
        if self.kept_stats is None:
            return None
        out = {}
        for name, sink in self.sinks.items():
            if sink.full_stats:
                entry = stats_entry(sink.kind, sink.blocks)
            else:
                fresh = stats_entry(sink.kind, sink.blocks)
                if fresh is None:
                    continue
                kept = self.kept_stats.get(name)
                if kept is None and self.first_block:
                    if sink.created:
                        kept = stats_entry(sink.kind, [None] * self.first_block)
                    else:
                        continue
                entry = {k: list((kept or {}).get(k, []))[: self.first_block] + v for k, v in fresh.items()}
            if entry is not None:
                out[name] = entry
        return out
