"""Zarr v3 chunks and metadata documents written directly, as zarr-python would write them.

The streaming writer (:mod:`~sedonadb_zarr_meta._write.stream`) builds each chunk itself, so a
chunk never has to be in memory as Python objects: fixed-size values are little-endian bytes,
text and WKB use the ``vlen-utf8``/``vlen-bytes`` layout (the element count, then each
element's length and bytes), and both go through one zstd stream per chunk as rows arrive. The
documents are the ones zarr-python 3 writes for the same arrays (``bytes`` or ``vlen-*`` then
``zstd`` at its default level), so zarr-python, zarrs and this package read them alike.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "ChunkEncoder",
    "array_document",
    "chunk_key",
    "decode_chunk",
    "group_document",
    "known_layout",
    "vlen_elements",
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


class ChunkEncoder:
    """One chunk being built: rows arrive in pieces and go through one zstd stream."""

    def __init__(self, dtype: Any, chunk: int):
        import zstandard

        self.dtype, self.chunk, self.rows = dtype, chunk, 0
        self._z = zstandard.ZstdCompressor(compression_params=_params()).compressobj()
        self._out: list[bytes] = []
        #: Fixed-size rows are kept as they are until the chunk is finished (a chunk of them is
        #: small), so a column whose type widens can still be cast.
        self.pieces: list[np.ndarray] = []
        if self.vlen:
            self._out.append(self._z.compress(struct.pack("<I", chunk)))

    @property
    def vlen(self) -> bool:
        return self.dtype is str or self.dtype is bytes

    def add(self, values: Any) -> None:
        """Append rows: an Arrow string/binary array for vlen types, a numpy array otherwise."""
        n = len(values)
        if self.rows + n > self.chunk:
            raise ValueError(f"{self.rows + n} rows do not fit a chunk of {self.chunk}")
        if self.vlen:
            self._out.append(self._z.compress(vlen_elements(values)))
        else:
            self.pieces.append(np.asarray(values, dtype=self.dtype))
        self.rows += n

    def add_raw(self, encoded: bytes | memoryview, rows: int) -> None:
        """Append ``rows`` vlen elements already in the layout (see :func:`vlen_prefix`)."""
        if self.rows + rows > self.chunk:
            raise ValueError(f"{self.rows + rows} rows do not fit a chunk of {self.chunk}")
        self._out.append(self._z.compress(encoded))
        self.rows += rows

    def finish(self, fill: Any) -> bytes:
        """The encoded chunk, its rows after the last given one set to ``fill``."""
        pad = self.chunk - self.rows
        if self.vlen:
            if pad:
                self._out.append(self._z.compress(b"\0\0\0\0" * pad))
        else:
            values = np.full(self.chunk, fill, dtype=self.dtype)
            if self.pieces:
                values[: self.rows] = np.concatenate(self.pieces)
            self._out.append(self._z.compress(values.astype(values.dtype.newbyteorder("<")).tobytes()))
        self._out.append(self._z.flush())
        return b"".join(self._out)


def decode_chunk(raw: bytes, doc: dict[str, Any], dtype: Any) -> Any:
    """A chunk of :func:`known_layout` ``dtype`` decoded: a numpy array, or for vlen types an
    Arrow string/binary array."""
    import zstandard

    if len(doc["codecs"]) == 2:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    chunk = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
    if dtype not in (str, bytes):
        return np.frombuffer(raw, dtype=dtype, count=chunk).copy()
    from numcodecs.vlen import VLenBytes

    values = VLenBytes().decode(raw)  # the vlen-utf8 and vlen-bytes layouts are the same
    arrow = pa.array(values.tolist(), pa.binary())
    return arrow.cast(pa.string()) if dtype is str else arrow


def vlen_prefix(raw: bytes, doc: dict[str, Any], rows: int) -> memoryview | None:
    """The first ``rows`` elements of a stored vlen chunk in the layout, without decoding them:
    the chunk's bytes after its count, less its padding; ``None`` unless the rows after
    ``rows`` are empty (as every writer pads them)."""
    import zstandard

    if len(doc["codecs"]) == 2:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    chunk = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
    pad = 4 * (chunk - rows)
    if len(raw) < 4 + pad or struct.unpack_from("<I", raw, 0)[0] != chunk:
        return None
    view = memoryview(raw)
    if pad and view[len(raw) - pad :].tobytes().count(0) != pad:
        return None
    return view[4 : len(raw) - pad]


def dumps(doc: dict[str, Any]) -> bytes:
    """A metadata document as zarr-python writes it (indented JSON); with orjson where installed
    (the standard library's encoder is pure Python once it indents: a third of a small append)."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - depends on the environment
        return json.dumps(doc, indent=2, allow_nan=True).encode()
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
