"""Appends into a partial last chunk: the stored zstd frames are kept byte for byte and only the
new rows are compressed; zarr-python and this package read the result alike; chunks of any
other layout are still appended to by decoding them; corrupt ones are refused by name, with
nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
import zarr
import zstandard
from sedonadb_zarr_meta import open_meta, verify_statistics, write_meta
from sedonadb_zarr_meta._write.chunks import zstd_frames

from .conftest import cap_memory
from .test_ingest_stream import _item

ROOT = Path(__file__).resolve().parent.parent
#: A column of each stored layout: text, WKB, integers, times.
COLUMNS = ["id", "geometry", "eo:cloud_cover", "datetime"]


def _chunk(store: Path, name: str, index: int = 0) -> Path:
    return store / "meta" / name / "c" / str(index)


def _table(store: Path) -> pa.Table:
    return pa.table(open_meta(str(store)).scan())


def _zarr_python(store: Path, name: str) -> list:
    return zarr.open_group(str(store), mode="r", path="meta")[name][:].tolist()


def _write(items: list[dict], store: Path, **kwargs) -> Path:
    write_meta(items, store, chunk_size=1_000, progress=False, **kwargs)
    return store


def test_zstd_frames_reads_the_frame_and_block_headers():
    one = zstandard.ZstdCompressor(level=3).compress(b"a" * 300_000)  # declares its size, 3 blocks
    streamed = zstandard.ZstdCompressor(level=1, write_checksum=True).compressobj()
    two = streamed.compress(bytes(range(256)) * 700) + streamed.flush()  # no size, a checksum
    three = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(b"")
    raw = one + two + three
    assert zstd_frames(raw) == [0, len(one), len(one) + len(two), len(raw)]
    assert zstd_frames(b"") == [0]
    assert zstd_frames(raw[:-1]) is None  # truncated
    assert zstd_frames(raw + b"\0") is None  # trailing bytes
    assert zstd_frames(b"not zstd") is None
    reserved = bytearray(one)
    reserved[4] |= 0x08  # the header's reserved bit
    assert zstd_frames(bytes(reserved)) is None


def test_appends_keep_the_stored_frames_of_a_partial_chunk(tmp_path):
    items = [_item(i) for i in range(460)]
    store = _write(items[:300], tmp_path / "a.zarr")
    for new in (items[300:400], items[400:450]):
        before = {name: _chunk(store, name).read_bytes() for name in COLUMNS}
        _write(new, store, mode="a")
        for name, raw in before.items():
            frames = zstd_frames(raw)
            after = _chunk(store, name).read_bytes()
            # Everything but the padding frame is kept as it was; the new rows and a new
            # padding follow, in frames of their own.
            assert frames is not None and len(frames) >= 3, name
            assert after[: frames[-2]] == raw[: frames[-2]], name
            assert len(zstd_frames(after)) == len(frames) + 1, name
    # A number that widens the integer column to float64: the kept frames are decoded then.
    widened = dict(items[450], properties={**items[450]["properties"], "eo:cloud_cover": 12.5})
    _write([widened, *items[451:460]], store, mode="a")
    expected = [*items[:450], widened, *items[451:460]]
    ref = _write(expected, tmp_path / "ref.zarr")
    got = _table(store)
    assert got.num_rows == 460 and got.equals(_table(ref))
    assert got.schema.field("eo:cloud_cover").type == pa.float64()
    # zarr-python (the reference reader) reads the frames alike.
    assert _zarr_python(store, "id") == [i["id"] for i in expected]
    cover = [float(i["properties"]["eo:cloud_cover"]) for i in expected]
    assert _zarr_python(store, "eo:cloud_cover") == cover
    assert _zarr_python(store, "geometry") == _zarr_python(ref, "geometry")
    assert verify_statistics(store) == []


def _single_frame(path: Path) -> None:
    """Rewrite a chunk as one zstd frame, as zarr-python writes chunks."""
    decoded = (
        zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(path.read_bytes())
    )
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(decoded))


def _replace_last_frame(path: Path, frame: bytes) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: zstd_frames(raw)[-2]] + frame)


def test_chunks_of_other_layouts_are_decoded_to_append_to(tmp_path):
    """One frame (zarr-python's chunks), and a last frame that is not only padding (the rows
    past the array's end hold values): the stored rows are decoded, never kept blindly."""
    items = [_item(i) for i in range(350)]
    store = _write(items[:300], tmp_path / "a.zarr")
    for name in ("id", "eo:cloud_cover"):
        _single_frame(_chunk(store, name))
    # A stale value past the end (an array shrunk without rewriting its chunk), then 699 empty.
    pad = b"\3\0\0\0old" + b"\0" * (4 * 699)
    _replace_last_frame(_chunk(store, "geometry"), zstandard.ZstdCompressor().compress(pad))
    _replace_last_frame(_chunk(store, "datetime"), zstandard.ZstdCompressor().compress(b"\1" * 8 * 700))
    _write(items[300:350], store, mode="a")
    ref = _write(items, tmp_path / "ref.zarr")
    assert _table(store).equals(_table(ref))
    assert _zarr_python(store, "id") == [i["id"] for i in items]
    for name in COLUMNS:  # written again in the layout whose frames later appends keep
        assert len(zstd_frames(_chunk(store, name).read_bytes())) >= 3, name


_APPEND = textwrap.dedent(
    """
    import json, sys
    from sedonadb_zarr_meta import write_meta
    try:
        write_meta(json.loads(sys.argv[2]), sys.argv[1], mode="a", progress=False)
    except Exception as e:
        print("ERROR", type(e).__name__, e)
    else:
        print("OK")
    """
)


def _bomb(decoded: int) -> bytes:
    """A zstd frame of ``decoded`` zero bytes that declares no size."""
    z = zstandard.ZstdCompressor(level=1).compressobj()
    piece = bytes(16 << 20)
    out = [z.compress(piece) for _ in range(decoded // len(piece))]
    return b"".join([*out, z.flush()])


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "column,corrupt",
    [
        ("eo:cloud_cover", "bomb"),
        ("eo:cloud_cover", "truncated"),
        ("id", "truncated"),
        ("id", "garbage"),
        ("geometry", "padding-bomb"),
    ],
)
def test_corrupt_last_chunks_are_refused_by_name(tmp_path, column, corrupt):
    """Each append in a subprocess with its address space capped and a timeout: an error that
    names the store and the array, and not a byte of the store changed; or, where only the
    rows past the array's end are corrupt (they are not part of it), a correct append."""
    items = [_item(i) for i in range(310)]
    store = _write(items[:300], tmp_path / "a.zarr")
    path = _chunk(store, column)
    raw = path.read_bytes()
    frames = zstd_frames(raw)
    if corrupt == "bomb":  # 1 GiB of zeros where 8 kB of integers belong
        path.write_bytes(_bomb(1 << 30))
    elif corrupt == "truncated":
        path.write_bytes(raw[: frames[1] // 2])
    elif corrupt == "garbage":
        path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(200)))
    else:  # the padding frame decodes to 1 GiB of zeros, declaring no size
        path.write_bytes(raw[: frames[-2]] + _bomb(1 << 30))
    before = _files(store)
    out = subprocess.run(
        [sys.executable, "-c", _APPEND, str(store), json.dumps(items[300:])],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap_memory,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    if corrupt == "padding-bomb" and line == "OK":
        assert _table(store).equals(_table(_write(items, tmp_path / "ref.zarr")))
        return
    assert line.startswith("ERROR ValueError"), line
    assert str(store) in line and repr(f"meta/{column}") in line and "nothing was written" in line, line
    assert _files(store) == before
