"""Zarr v3 chunks and metadata documents written directly, as zarr-python would write them.

The streaming writer (:mod:`~sedonadb_zarr_meta._write.stream`) builds each chunk itself, so a
chunk never has to be in memory as Python objects: fixed-size values are little-endian bytes,
text and WKB use the ``vlen-utf8``/``vlen-bytes`` layout (the element count, then each
element's length and bytes), and both go through one zstd stream per chunk as rows arrive. The
documents are the ones zarr-python 3 writes for the same arrays (``bytes`` or ``vlen-*`` then
``zstd`` at its default level), so zarr-python, zarrs and this package read them alike.

A chunk that is not full ends in a zstd frame of its own holding only the padding (the empty
elements or fill values after the last row). Zstandard data is one or more frames, decoded one
after the other (RFC 8878), so an append keeps the stored frames before the padding byte for
byte and adds frames for its rows and a new padding: it compresses only what it adds, however
full the chunk already is (:meth:`ChunkEncoder.resume`).
"""

from __future__ import annotations

import functools
import json
import struct
from typing import Any

import numpy as np
import pyarrow as pa

from sedonadb_zarr_meta import _lib

__all__ = [
    "ChunkEncoder",
    "array_document",
    "chunk_key",
    "decode_chunk",
    "group_document",
    "known_layout",
    "vlen_elements",
    "zstd_frames",
]

#: zstd level of the chunks; zarr-python's ``ZstdCodec()`` default (0) is zstd's own default, 3.
_ZSTD_LEVEL = 3
_ZSTD_CODEC = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}
_INT64_MIN = int(np.iinfo(np.int64).min)


def _data_type(dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
    """``(data_type, fill_value, serializer)`` of zarr.json for a column's element type: a numpy
    dtype, ``str`` (text) or ``bytes`` (WKB and other binary)."""
    if dtype is str:
        return "string", "", {"name": "vlen-utf8", "configuration": {}}
    if dtype is bytes:
        return "variable_length_bytes", "", {"name": "vlen-bytes", "configuration": {}}
    dtype = np.dtype(dtype)
    serializer = {"name": "bytes", "configuration": {"endian": "little"}}
    if dtype.kind in "Mm":
        unit, scale = np.datetime_data(dtype)
        name = "numpy.datetime64" if dtype.kind == "M" else "numpy.timedelta64"
        return {"name": name, "configuration": {"unit": unit, "scale_factor": scale}}, _INT64_MIN, serializer
    if dtype.kind == "b":
        return "bool", False, serializer
    if dtype.kind == "f":
        return dtype.name, 0.0, serializer
    if dtype.kind in "iu":
        return dtype.name, 0, serializer
    raise ValueError(f"no Zarr element type for {dtype}")


def array_document(
    dtype: Any, rows: int, chunk: int, attributes: dict[str, Any], fill_value: Any = None
) -> dict[str, Any]:
    """The zarr.json of a 1-D array of ``rows`` rows in chunks of ``chunk``."""
    data_type, fill, serializer = _data_type(dtype)
    return {
        "shape": [rows],
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [chunk]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill if fill_value is None else fill_value,
        "codecs": [serializer, dict(_ZSTD_CODEC)],
        "attributes": attributes,
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def group_document(attributes: dict[str, Any], consolidated: dict[str, Any] | None) -> dict[str, Any]:
    """The zarr.json of a group, with inline consolidated metadata when given."""
    doc: dict[str, Any] = {"attributes": attributes, "zarr_format": 3}
    if consolidated is not None:
        doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": consolidated}
    doc["node_type"] = "group"
    return doc


_PARAMS: Any = None


def _params() -> Any:
    """zstd at :data:`_ZSTD_LEVEL` with a 128 kB window: every column keeps a stream open, and
    the default window (2 MB, ~3 MB of state) would make a wide group's open chunks cost
    hundreds of MB; items repeat their structure well within 128 kB."""
    global _PARAMS
    if _PARAMS is None:
        import zstandard

        _PARAMS = zstandard.ZstdCompressionParameters.from_level(_ZSTD_LEVEL, window_log=17)
    return _PARAMS


#: A zstd frame's magic number, and the sizes of its header's optional fields by their flags.
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DICT_ID_BYTES = (0, 1, 2, 4)
_CONTENT_SIZE_BYTES = (0, 2, 4, 8)


def zstd_frames(raw: bytes | memoryview) -> list[int] | None:
    """Where each zstd frame of ``raw`` starts, then ``len(raw)``; ``None`` unless ``raw`` is
    whole zstd frames (skippable ones included) and nothing else. Reads the frame and block
    headers only (RFC 8878 §3.1): nothing is decompressed."""
    view = memoryview(raw)
    end, at, starts = len(view), 0, []
    while at < end:
        if at + 8 <= end and view[at + 1 : at + 4] == b"\x2a\x4d\x18" and view[at] & 0xF0 == 0x50:
            starts.append(at)  # a skippable frame: its magic number, its size, its bytes
            at += 8 + int.from_bytes(view[at + 4 : at + 8], "little")
            if at > end:
                return None
            continue
        if view[at : at + 4] != _ZSTD_MAGIC or at + 5 > end:
            return None
        flags = view[at + 4]
        if flags & 0x08:  # the reserved bit
            return None
        single_segment = (flags >> 5) & 1
        content_size = _CONTENT_SIZE_BYTES[flags >> 6] or single_segment
        block = at + 5 + (1 - single_segment) + _DICT_ID_BYTES[flags & 3] + content_size
        while True:
            if block + 3 > end:
                return None
            header = int.from_bytes(view[block : block + 3], "little")
            kind, size = (header >> 1) & 3, header >> 3
            if kind == 3:  # reserved
                return None
            block += 3 + (1 if kind == 1 else size)
            if header & 1:  # the last block
                break
        block += 4 * ((flags >> 2) & 1)  # the content checksum
        if block > end:
            return None
        starts.append(at)
        at = block
    return [*starts, end]


def chunk_key(path: str, index: int) -> str:
    return f"{path}/c/{index}" if path else f"c/{index}"


def known_layout(doc: dict[str, Any]) -> Any:
    """The element type (numpy dtype, ``str`` or ``bytes``) of an array whose chunks this module
    reads and writes (1-D, regular chunks, default keys, ``bytes``/``vlen-*`` then zstd, or no
    compressor); ``None`` for any other layout."""
    try:
        if doc.get("zarr_format") != 3 or len(doc["shape"]) != 1 or doc.get("storage_transformers"):
            return None
        if doc["chunk_grid"]["name"] != "regular":
            return None
        key = doc["chunk_key_encoding"]
        if key["name"] != "default" or key.get("configuration", {}).get("separator", "/") != "/":
            return None
        codecs = doc["codecs"]
        if len(codecs) > 2 or (len(codecs) == 2 and codecs[1]["name"] != "zstd"):
            return None
        serializer = codecs[0]["name"]
        if serializer == "vlen-utf8":
            return str
        if serializer == "vlen-bytes":
            return bytes
        if serializer != "bytes" or codecs[0].get("configuration", {}).get("endian", "little") != "little":
            return None
        data_type = doc["data_type"]
        if isinstance(data_type, dict):
            conf = data_type["configuration"]
            kind = {"numpy.datetime64": "M8", "numpy.timedelta64": "m8"}[data_type["name"]]
            unit = (
                conf["unit"]
                if int(conf.get("scale_factor", 1)) == 1
                else f"{conf['scale_factor']}{conf['unit']}"
            )
            return np.dtype(f"{kind}[{unit}]")
        return np.dtype(data_type).newbyteorder("<") if data_type != "bool" else np.dtype(bool)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def vlen_elements(values: pa.Array) -> bytes:
    """The elements of a string or binary Arrow array in the vlen layout (each element's
    little-endian u32 length, then its bytes), without the leading count; nulls are empty."""
    if values.null_count:
        values = values.fill_null("" if pa.types.is_string(values.type) else b"")
    if pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
        values = values.cast(pa.string() if pa.types.is_large_string(values.type) else pa.binary())
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(values) + 1, offset=values.offset * 4)
    base = int(offsets[0])
    data = (
        np.frombuffer(data_buf, dtype=np.uint8, count=int(offsets[-1]) - base, offset=base)
        if data_buf
        else (np.empty(0, dtype=np.uint8))
    )
    starts = (offsets[:-1] - base).astype(np.int64)
    lengths = np.diff(offsets).astype("<u4")
    # Each element's 4 length bytes go in front of its first byte.
    return np.insert(data, np.repeat(starts, 4), lengths.view(np.uint8)).tobytes()


def _padding(dtype: Any, rows: int, fill: Any) -> bytes:
    """The decoded bytes of ``rows`` padding rows: empty elements, or ``fill``."""
    if dtype is str or dtype is bytes:
        return b"\0\0\0\0" * rows
    return np.full(rows, fill, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def _frame(data: bytes | memoryview) -> bytes:
    """``data`` as one zstd frame that declares its decoded size."""
    import zstandard

    return zstandard.ZstdCompressor(compression_params=_params()).compress(data)


@functools.lru_cache(maxsize=64)
def _padding_frame(dtype: Any, rows: int, fill: Any) -> bytes:
    """The frame of ``rows`` padding rows (the same for every column of a type)."""
    return _frame(_padding(dtype, rows, fill))


class ChunkEncoder:
    """One chunk being built: rows arrive in pieces; text and WKB go through one zstd stream.

    A chunk left partial ends in a frame of only its padding, so that an append can keep the
    frames before it (``kept``) and compress only its own rows (:meth:`resume`).
    """

    def __init__(self, dtype: Any, chunk: int, kept: bytes = b"", rows: int = 0):
        self.dtype, self.chunk, self.rows = dtype, chunk, rows
        #: Stored frames of the first rows, kept as they are, and how many rows they hold.
        self._kept, self._kept_rows = kept, rows
        #: The zstd stream, opened at its first bytes (after kept frames there is none).
        self._z: Any = None
        self._out: list[bytes] = []
        #: Fixed-size rows are kept as they are until the chunk is finished (a chunk of them is
        #: small), so a column whose type widens can still be cast.
        self.pieces: list[np.ndarray] = []
        if self.vlen and not kept:
            self._feed(struct.pack("<I", chunk))

    @classmethod
    def resume(cls, raw: bytes, doc: dict[str, Any], rows: int) -> ChunkEncoder | None:
        """The stored partial chunk ``raw`` holding ``rows`` rows, to add rows to without
        decoding or compressing the stored ones: its frames but the last are kept as they are.

        ``None`` unless the chunk is laid out as :meth:`finish` leaves a partial chunk: a last
        frame that declares exactly the padding's size and decodes to it, and frames before it
        that begin with the element count (text, WKB) or declare exactly ``rows`` values' bytes
        (fixed-size types)."""
        import zstandard

        dtype = known_layout(doc)
        chunk = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
        if dtype is None or len(doc["codecs"]) != 2 or not 0 < rows < chunk:
            return None
        frames = zstd_frames(raw)
        if frames is None or len(frames) < 3:
            return None
        view, last = memoryview(raw), memoryview(raw)[frames[-2] :]
        try:
            d = zstandard.ZstdDecompressor()
            if last != _padding_frame(dtype, chunk - rows, doc.get("fill_value")):
                padding = _padding(dtype, chunk - rows, doc.get("fill_value"))
                if zstandard.frame_content_size(last) != len(padding):
                    return None
                if d.decompress(last, max_output_size=len(padding)) != padding:
                    return None
            if dtype is str or dtype is bytes:
                head = d.stream_reader(view[: frames[1]]).read(4)
                if len(head) != 4 or struct.unpack("<I", head)[0] != chunk:
                    return None
            else:
                sizes = [zstandard.frame_content_size(view[a:b]) for a, b in zip(frames, frames[1:-1])]
                if any(n < 0 for n in sizes) or sum(sizes) != rows * dtype.itemsize:
                    return None
        except (zstandard.ZstdError, ValueError, TypeError, OverflowError):
            return None
        return cls(dtype, chunk, kept=bytes(view[: frames[-2]]), rows=rows)

    @property
    def vlen(self) -> bool:
        return self.dtype is str or self.dtype is bytes

    def _feed(self, data: bytes | memoryview) -> None:
        if self._kept:
            # After kept frames: a frame per piece, which declares its size (a reader bounds its
            # buffer by the frames' sizes, or by 128 kB a block where a frame declares none).
            self._out.append(_frame(data))
            return
        if self._z is None:
            import zstandard

            self._z = zstandard.ZstdCompressor(compression_params=_params()).compressobj()
        self._out.append(self._z.compress(data))

    def add(self, values: Any) -> None:
        """Append rows: an Arrow string/binary array for vlen types, a numpy array otherwise."""
        n = len(values)
        if self.rows + n > self.chunk:
            raise ValueError(f"{self.rows + n} rows do not fit a chunk of {self.chunk}")
        if self.vlen:
            self._feed(vlen_elements(values))
        else:
            self.pieces.append(np.asarray(values, dtype=self.dtype))
        self.rows += n

    def add_raw(self, encoded: bytes | memoryview, rows: int) -> None:
        """Append ``rows`` vlen elements already in the layout (see :func:`vlen_prefix`)."""
        if self.rows + rows > self.chunk:
            raise ValueError(f"{self.rows + rows} rows do not fit a chunk of {self.chunk}")
        self._feed(encoded)
        self.rows += rows

    def values(self) -> np.ndarray:
        """Every fixed-size row given so far, those of kept frames decoded."""
        given = [np.asarray(p, dtype=self.dtype) for p in self.pieces]
        if self._kept:
            size = self._kept_rows * np.dtype(self.dtype).itemsize
            stored = np.frombuffer(_decompress(self._kept, size), np.dtype(self.dtype).newbyteorder("<"))
            given.insert(0, stored.astype(self.dtype))
        return np.concatenate(given) if given else np.empty(0, dtype=self.dtype)

    def finish(self, fill: Any) -> bytes:
        """The encoded chunk, its rows after the last given one set to ``fill``; a partial
        chunk's padding in a frame of its own."""
        pad = self.chunk - self.rows
        if not self.vlen and self.pieces:
            given = np.concatenate(self.pieces)
            self._out.append(_frame(given.astype(given.dtype.newbyteorder("<")).tobytes()))
        if self._z is not None:
            self._out.append(self._z.flush())
        tail = _padding_frame(self.dtype, pad, fill) if pad else b""
        return b"".join([self._kept, *self._out, tail])


def _limit(doc: dict[str, Any], dtype: Any) -> int:
    """The most a chunk of ``doc`` may decode to, as the reader bounds it: its elements' bytes
    for fixed-size types; for text and WKB, the reader's bounds of an element and a chunk."""
    chunk = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
    if dtype is str or dtype is bytes:
        return min(4 + chunk * (4 + _lib.VARIABLE_ELEMENT_MAX_BYTES), _lib.MAX_CHUNK_BYTES)
    return chunk * dtype.itemsize


def _decompress(raw: bytes, limit: int) -> bytes:
    """Every frame of zstd ``raw``, decompressed; an error unless ``raw`` is whole frames, and
    past ``limit`` bytes (a compression bomb stops there)."""
    import zstandard

    if zstd_frames(raw) is None:
        raise ValueError("the chunk is not whole zstd frames (truncated, or trailing bytes)")
    parts, size = [], 0
    with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as reader:
        while part := reader.read(1 << 22):
            size += len(part)
            if size > limit:
                raise ValueError(f"the chunk decodes to more than a chunk of its array holds ({limit} bytes)")
            parts.append(part)
    return b"".join(parts)


def decode_chunk(raw: bytes, doc: dict[str, Any], dtype: Any) -> Any:
    """A chunk of :func:`known_layout` ``dtype`` decoded: a numpy array, or for vlen types an
    Arrow string/binary array."""
    if len(doc["codecs"]) == 2:
        raw = _decompress(raw, _limit(doc, dtype))
    chunk = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
    if dtype not in (str, bytes):
        return np.frombuffer(raw, dtype=dtype, count=chunk).copy()
    from numcodecs.vlen import VLenBytes

    values = VLenBytes().decode(raw)  # the vlen-utf8 and vlen-bytes layouts are the same
    arrow = pa.array(values.tolist(), pa.binary())
    return arrow.cast(pa.string()) if dtype is str else arrow


def vlen_prefix(raw: bytes, doc: dict[str, Any], rows: int) -> memoryview | None:
    """The first ``rows`` elements of a stored vlen chunk in the layout, without decoding them
    to Arrow: the chunk's bytes after its count, up to the end of element ``rows - 1``; ``None``
    unless exactly the chunk's empty elements follow (as every writer pads them)."""
    if len(doc["codecs"]) == 2:
        raw = _decompress(raw, _limit(doc, bytes))
    chunk = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
    pad = 4 * (chunk - rows)
    if len(raw) < 4 + pad or struct.unpack_from("<I", raw, 0)[0] != chunk:
        return None
    from numcodecs.vlen import VLenBytes

    try:
        elements = VLenBytes().decode(raw)  # checks each element lies within the chunk
    except (ValueError, RuntimeError):
        return None
    end = 4 + 4 * rows + sum(map(len, elements[:rows]))
    view = memoryview(raw)
    if len(raw) - end != pad or (pad and view[end:].tobytes().count(0) != pad):
        return None
    return view[4:end]


def dumps(doc: dict[str, Any]) -> bytes:
    """A metadata document as zarr-python writes it (indented JSON); with orjson where installed
    (the standard library's encoder is pure Python once it indents: a third of a small append)."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - depends on the environment
        return json.dumps(doc, indent=2, allow_nan=True).encode()
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
