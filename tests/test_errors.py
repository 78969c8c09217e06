"""Malformed input raises a clear Python exception naming store and array; nothing crashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import shapely
import zarr
from sedonadb_zarr_meta import MetaTable, ZarrMetaError, ZarrMetaSpec, open_meta

from .conftest import call, cap_memory, collect, write_group


def good_store(tmp_path: Path, **kw) -> tuple[Path, str]:
    path = tmp_path / "bad.zarr"
    boxes = np.array(shapely.to_wkb(shapely.box(np.arange(300), 0, np.arange(300) + 1, 1)), dtype=object)
    uri = write_group(path, {"a": np.arange(300, dtype="int64"), "bbox": boxes}, chunks=100, **kw)
    return path, uri


def patch_metadata(path: Path, array: str, change) -> None:
    """Apply ``change`` to the parsed zarr.json of ``array`` and write it back."""
    meta_file = path / "meta" / array / "zarr.json"
    meta = json.loads(meta_file.read_text())
    change(meta)
    meta_file.write_text(json.dumps(meta))


def scan_all(sedona, uri, **options):
    return pa.table(sedona.read_format(ZarrMetaSpec(options or None), uri))


def test_missing_store(sedona, tmp_path):
    uri = (tmp_path / "nope.zarr").as_uri()
    with pytest.raises(FileNotFoundError, match="nope.zarr.*store not found"):
        scan_all(sedona, uri)


def test_missing_group(sedona, tmp_path):
    _, uri = good_store(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"bad.zarr.*group 'other' not found"):
        scan_all(sedona, uri, group="other")


def test_missing_array_option(sedona, tmp_path):
    _, uri = good_store(tmp_path)
    with pytest.raises(FileNotFoundError, match="array 'zzz'"):
        scan_all(sedona, uri, arrays=["zzz"])


def test_unequal_lengths(sedona, tmp_path):
    uri = write_group(tmp_path / "u.zarr", {"a": np.arange(5), "b": np.arange(6)})
    with pytest.raises(ValueError, match=r"u.zarr.*'a' has 5 rows but 'b' has 6"):
        scan_all(sedona, uri)


def test_two_dimensional_array(sedona, tmp_path):
    path = tmp_path / "d2.zarr"
    uri = write_group(path, {"a": np.arange(4)})
    g = zarr.open_group(str(path / "meta"), mode="a")
    g.create_array("grid", shape=(4, 2), dtype="int32")
    with pytest.raises(ValueError, match=r"d2.zarr: array 'grid': is 2-dimensional"):
        scan_all(sedona, uri)


def test_unsupported_dtype(sedona, tmp_path):
    uri = write_group(tmp_path / "c.zarr", {"z": np.array([1 + 2j, 3j], dtype="complex64")})
    with pytest.raises(ValueError, match=r"c.zarr: array 'z': unsupported data type 'complex64'"):
        scan_all(sedona, uri)


def test_invalid_metadata_json(sedona, tmp_path):
    path, uri = good_store(tmp_path)
    (path / "meta" / "a" / "zarr.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"bad.zarr: array 'a': invalid metadata JSON"):
        scan_all(sedona, uri)


def test_invalid_metadata_fields(sedona, tmp_path):
    path, uri = good_store(tmp_path)
    patch_metadata(path, "a", lambda meta: meta.update(codecs=[{"name": "no-such-codec"}]))
    with pytest.raises(ValueError, match=r"bad.zarr: array 'a'"):
        scan_all(sedona, uri)


def test_absurd_declared_shape(sedona, tmp_path):
    path, uri = good_store(tmp_path)
    for name in ("a", "bbox"):
        patch_metadata(path, name, lambda meta: meta.update(shape=[2**62]))
    with pytest.raises(ValueError, match=r"bad.zarr: array 'a': declared length .* implausibly large"):
        scan_all(sedona, uri)


def test_absurd_chunk_shape(sedona, tmp_path):
    path, uri = good_store(tmp_path)
    patch_metadata(path, "a", lambda meta: meta["chunk_grid"]["configuration"].update(chunk_shape=[2**40]))
    with pytest.raises(ValueError, match=r"bad.zarr: array 'a': chunk shape .* too large"):
        scan_all(sedona, uri)


def _chunk_files(path: Path, name: str) -> list[Path]:
    return sorted(p for p in (path / "meta" / name / "c").rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_corrupt_or_truncated_chunk(sedona, tmp_path, damage):
    path, uri = good_store(tmp_path)
    chunk = _chunk_files(path, "a")[1]
    data = chunk.read_bytes()
    chunk.write_bytes(b"\x00garbage" * 3 if damage == "corrupt" else data[: len(data) // 2])
    with pytest.raises(pa.ArrowInvalid, match=r"bad.zarr: array 'a'") as info:
        scan_all(sedona, uri)
    assert "rows 100..200" in str(info.value)
    # The other column still reads; the session survives.
    assert scan_all(sedona, uri, arrays=["bbox"]).num_rows == 300


def test_invalid_wkb(sedona, tmp_path):
    uri = write_group(tmp_path / "w.zarr", {"bbox": np.array([b"\x01\x03", b"junk"], dtype=object)})
    with pytest.raises(pa.ArrowInvalid, match=r"w.zarr: array 'bbox': rows 0..2: row 0: invalid WKB"):
        scan_all(sedona, uri)


def test_invalid_wkt(sedona, tmp_path):
    uri = write_group(
        tmp_path / "t.zarr", {"bbox": np.array(["POINT (1 2)", "POLYGON ((0 0, 1"], dtype=object)}
    )
    with pytest.raises(pa.ArrowInvalid, match=r"t.zarr: array 'bbox': .*row 1: invalid WKT"):
        scan_all(sedona, uri)


@pytest.mark.parametrize("meta", ["null", "[1, 2]", "{}", "7", '{"node_type": "arry"}'])
def test_array_metadata_that_is_not_an_array_is_an_error(sedona, tmp_path, meta):
    path, uri = good_store(tmp_path)
    (path / "meta" / "a" / "zarr.json").write_text(meta)
    with pytest.raises(ValueError, match=r"bad.zarr: array 'a': .*neither array nor group metadata"):
        scan_all(sedona, uri)
    # Left out by the `arrays` option, it is not read at all.
    assert pa.table(open_meta(uri, arrays=["bbox"]).scan()).num_rows == 300


def test_nested_groups_are_ignored(tmp_path):
    path, uri = good_store(tmp_path)
    zarr.open_group(str(path), mode="a")["meta"].create_group("sub")
    assert open_meta(uri).column_names == ["a", "bbox"]


def test_deep_or_trailing_wkt(sedona, tmp_path):
    deep = "GEOMETRYCOLLECTION(" * 50_000 + "POINT(0 0)" + ")" * 50_000
    uri = write_group(tmp_path / "d.zarr", {"bbox": np.array(["POINT (1 2)", deep], dtype=object)})
    with pytest.raises(pa.ArrowInvalid, match=r"d.zarr: array 'bbox': .*row 1: invalid WKT: nested deeper"):
        scan_all(sedona, uri)
    uri = write_group(tmp_path / "t.zarr", {"bbox": np.array(["POINT (1 2) extra"], dtype=object)})
    with pytest.raises(pa.ArrowInvalid, match=r"t.zarr: array 'bbox': .*row 0: invalid WKT: unexpected text"):
        scan_all(sedona, uri)


def test_fifo_in_place_of_a_chunk_is_refused(tmp_path):
    import os

    path, uri = good_store(tmp_path)
    chunk = path / "meta" / "a" / "c" / "1"
    chunk.unlink()
    os.mkfifo(chunk)  # reading it would block forever
    with pytest.raises(pa.ArrowInvalid, match=r"bad.zarr: array 'a': .*meta/a/c/1: not a regular file"):
        pa.table(open_meta(uri).scan())


def test_unlistable_entries_are_reported(tmp_path):
    import os

    path, uri = good_store(tmp_path)
    os.symlink("loop", path / "meta" / "loop")  # a symlink to itself
    with pytest.raises(ValueError, match=r"bad.zarr: group 'meta': 'meta/loop' cannot be resolved"):
        open_meta(uri)
    (path / "meta" / "loop").unlink()
    os.mkdir(os.path.join(os.fsencode(path / "meta"), b"\xff\xfe"))
    with pytest.raises(ValueError, match=r"bad.zarr: group 'meta': .*not UTF-8"):
        open_meta(uri)
    # The arrays option names what to read: the odd entries are not looked at.
    assert open_meta(uri, arrays=["a"]).num_rows == 300


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(zarr_format=4), "zarr_format 4 is not supported"),
        (lambda m: m.pop("zarr_format"), "no valid 'zarr_format'"),
        (lambda m: m.update(my_extension={"must_understand": True}), "extension 'my_extension'"),
        (lambda m: m.update(my_extension=1), "extension 'my_extension'"),
    ],
)
def test_metadata_a_reader_must_understand(tmp_path, change, message):
    path, uri = good_store(tmp_path)
    patch_metadata(path, "a", change)
    with pytest.raises(ValueError, match=rf"bad.zarr: array 'a': .*{message}"):
        open_meta(uri)


def test_ignorable_extension_is_ignored(tmp_path):
    path, uri = good_store(tmp_path)
    patch_metadata(path, "a", lambda m: m.update(my_extension={"must_understand": False}))
    assert open_meta(uri).num_rows == 300


def test_empty_crs_option_on_every_surface(tmp_path):
    _, uri = good_store(tmp_path)
    with pytest.raises(ValueError, match="'crs'"):
        open_meta(uri, crs=" ")
    with pytest.raises(ValueError, match="'crs' must be a non-empty string"):
        MetaTable(uri, json.dumps({"crs": ""}))


def test_repeated_array_names(tmp_path):
    _, uri = good_store(tmp_path)
    with pytest.raises(ValueError, match="'a' more than once"):
        open_meta(uri, arrays=["a"] * 1_000_000)
    with pytest.raises(ValueError, match="'a' more than once"):
        MetaTable(uri, json.dumps({"arrays": ["a", "bbox", "a"]}))
    for bad in ("../meta", "a/b", ".."):
        with pytest.raises(ValueError, match="not the name of an array"):
            MetaTable(uri, json.dumps({"arrays": [bad]}))


def test_geometry_option_on_numbers(sedona, tmp_path):
    uri = write_group(tmp_path / "n.zarr", {"x": np.arange(3)})
    with pytest.raises(ValueError, match=r"n.zarr: array 'x': cannot be a geometry column"):
        scan_all(sedona, uri, geometry_columns=["x"])


def test_bad_options(sedona, tmp_path):
    _, uri = good_store(tmp_path)
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        sedona.read_format(ZarrMetaSpec(), uri, {"colour": "red"})
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        open_meta(uri, colour="red")


def test_unsupported_scheme(sedona):
    with pytest.raises(NotImplementedError, match="'ftp' is not supported"):
        scan_all(sedona, "ftp://example.org/store.zarr")
    with pytest.raises(NotImplementedError, match="'ftp' is not supported"):
        open_meta("ftp://example.org/store.zarr")
    with pytest.raises(ValueError, match="not a valid object store URL"):
        open_meta("s3://")


def test_stream_is_single_use(tmp_path):
    _, uri = good_store(tmp_path)
    stream = open_meta(uri).scan()
    assert pa.table(stream).num_rows == 300
    with pytest.raises(ZarrMetaError, match="already consumed"):
        pa.table(stream)


def test_huge_options_json_on_both_sql_hosts(sedona, tmp_path):
    import datafusion
    from sedonadb_zarr_meta import register

    _, uri = good_store(tmp_path)
    big = json.dumps({"arrays": ["a"], "crs": "x" * 10_000_000})
    query = f"SELECT * FROM sd_read_zarr_meta('{uri}', '{big}')"
    with pytest.raises(ValueError, match="more than the 1048576 accepted"):
        sedona.sql(query)
    ctx = register(datafusion.SessionContext())
    with pytest.raises(ValueError, match="more than the 1048576 accepted"):
        ctx.sql(query).to_arrow_table()


def _forge_zstd_size(chunk: Path, size: int) -> None:
    """Rewrite a zstd frame's header to declare ``size`` decoded bytes (blocks unchanged)."""
    data = chunk.read_bytes()
    assert data[:4] == b"\x28\xb5\x2f\xfd", "expected a zstd frame"
    desc = data[4]
    single = bool(desc & 0x20)
    dict_bytes = [0, 1, 2, 4][desc & 0x03]
    fcs_bytes = {0: 1 if single else 0, 1: 2, 2: 4, 3: 8}[desc >> 6]
    start = 5 + (0 if single else 1)
    dict_id = data[start : start + dict_bytes]
    blocks = data[start + dict_bytes + fcs_bytes :]
    new_desc = 0xC0 | 0x20 | (desc & 0x04) | (desc & 0x03)
    chunk.write_bytes(data[:4] + bytes([new_desc]) + dict_id + size.to_bytes(8, "little") + blocks)


def test_zstd_header_declaring_absurd_size_is_refused(tmp_path):
    import subprocess
    import sys

    path, uri = good_store(tmp_path)
    _forge_zstd_size(path / "meta" / "a" / "c" / "1", 1 << 50)
    # In a subprocess: without the guard the decoder's allocation aborts the process.
    script = (
        "import sys, pyarrow as pa; from sedonadb_zarr_meta import open_meta; "
        "pa.table(open_meta(sys.argv[1]).scan())"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, uri],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap_memory,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "array 'a'" in run.stderr and "zstd frame declares 1125899906842624 decoded bytes" in run.stderr


def _wkb(*parts: bytes) -> bytes:
    return b"".join(parts)


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


_POINT = _wkb(b"\x01", _u32(1), np.array([1.0, 2.0]).tobytes())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_wkb(b"\x01", _u32(99), bytes(16)), "unknown geometry type code 99"),
        (_wkb(b"\x01", _u32(6), _u32(1), _POINT), "a MultiPolygon holds a Point"),
        (_wkb(b"\x01", _u32(3), _u32(1), _u32(2), np.zeros(4).tobytes()), "has 2 points"),
        (_wkb(b"\x01", _u32(2), _u32(2**31 - 1), bytes(32)), "exceeds the 32 bytes that remain"),
        (_wkb(_POINT, b"\x00\x00"), "2 trailing bytes"),
    ],
)
def test_invalid_wkb_classes_are_errors_on_every_surface(sedona, tmp_path, value, message):
    """WKB that parses loosely but is not one valid geometry is reported by this
    reader (store, array, row), never passed to a host."""
    import datafusion
    from sedonadb_zarr_meta import register

    good = shapely.to_wkb(shapely.box(0, 0, 1, 1))
    uri = write_group(tmp_path / "w.zarr", {"bbox": np.array([good, value, good], dtype=object)})
    pattern = rf"w.zarr: array 'bbox': .*row 1: invalid WKB: .*{message}"
    with pytest.raises(pa.ArrowInvalid, match=pattern):
        pa.table(open_meta(uri).scan())
    with pytest.raises(pa.ArrowInvalid, match=pattern):
        scan_all(sedona, uri)
    ctx = register(datafusion.SessionContext())
    with pytest.raises(Exception, match=pattern) as info:
        ctx.sql(f"SELECT * FROM sd_read_zarr_meta('{uri}')").to_arrow_table()
    assert type(info.value) is Exception  # datafusion-python's class for errors while batches stream


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(attributes=[1, 2]), "attributes in 'zarr.json' are not a JSON object"),
        (lambda m: m.update(attributes="proj:epsg=4326"), "attributes in 'zarr.json' are not a JSON object"),
        (lambda m: m.pop("zarr_format"), "no valid 'zarr_format'"),
        (lambda m: m.update(zarr_format=4), "no valid 'zarr_format'"),
        (lambda m: m.update(locking={"must_understand": True}), "extension 'locking'"),
    ],
)
def test_malformed_group_metadata_is_an_error(tmp_path, change, message):
    path, uri = good_store(tmp_path)
    meta_file = path / "meta" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    change(meta)
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"bad.zarr: group 'meta': .*{message}"):
        open_meta(uri)


def test_array_attributes_that_are_not_an_object(tmp_path):
    path, uri = good_store(tmp_path)
    patch_metadata(path, "bbox", lambda m: m.update(attributes=["proj:epsg", 32633]))
    with pytest.raises(ValueError, match="array 'bbox': the attributes in 'zarr.json' are not a JSON object"):
        open_meta(uri)


@pytest.mark.parametrize("codec", ["blosc", "gzip"])
@pytest.mark.parametrize("damage", ["trailing", "truncated"])
def test_compressed_chunks_must_end_where_the_stream_ends(tmp_path, codec, damage):
    """Trailing bytes after a blosc or gzip stream (or a short blosc chunk) are
    errors, as zarr-python makes them, not silently ignored."""
    compressor = zarr.codecs.BloscCodec() if codec == "blosc" else zarr.codecs.GzipCodec()
    uri = write_group(
        tmp_path / "c.zarr", {"a": np.arange(300, dtype="int64")}, chunks=100, compressors=compressor
    )
    chunk = tmp_path / "c.zarr" / "meta" / "a" / "c" / "1"
    data = chunk.read_bytes()
    chunk.write_bytes(data + b"trailing junk" if damage == "trailing" else data[:-3])
    with pytest.raises(pa.ArrowInvalid, match=r"c.zarr: array 'a': cannot read rows 100..200: meta/a/c/1: "):
        pa.table(open_meta(uri).scan())
    # The other chunks still read.
    assert pa.table(open_meta(uri).scan(start=0, end=100)).num_rows == 100


def test_gzip_bomb_stops_at_the_chunk_size(tmp_path):
    """A gzip chunk inflating far beyond its chunk's size fails after a chunk's
    worth of output, in bounded memory (checked in a subprocess with a cap)."""
    import gzip
    import subprocess
    import sys

    uri = write_group(
        tmp_path / "g.zarr",
        {"a": np.arange(300, dtype="int64")},
        chunks=100,
        compressors=zarr.codecs.GzipCodec(),
    )
    (tmp_path / "g.zarr" / "meta" / "a" / "c" / "1").write_bytes(
        gzip.compress(bytes(3 << 30), compresslevel=1)
    )
    script = (
        "import resource, sys, pyarrow as pa; from sedonadb_zarr_meta import open_meta; "
        "t = open_meta(sys.argv[1]); resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "pa.table(t.scan())"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, uri],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap_memory,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "array 'a'" in run.stderr and "inflates to more than a chunk of this array holds" in run.stderr


def test_how_each_surface_reports_errors(sedona, tmp_path):
    """The documented table: which class each surface raises for a missing store
    (at opening/planning) and a corrupt chunk (while batches stream). Every
    message names the store and, for data, the array and rows."""
    import datafusion
    import sedonadb
    from sedonadb_zarr_meta import register

    path, uri = good_store(tmp_path)
    (path / "meta" / "a" / "c" / "1").write_bytes(b"junk")
    missing = str(tmp_path / "nope.zarr")
    ctx = register(datafusion.SessionContext())
    q = f"SELECT * FROM sd_read_zarr_meta('{uri}')"
    data_error = r"bad.zarr: array 'a': cannot read rows 100..200"
    streaming = [
        (lambda: [b for b in open_meta(uri).scan()], ValueError),
        (lambda: open_meta(uri).scan().read_all(), ValueError),
        (lambda: pa.table(open_meta(uri).scan()), pa.ArrowInvalid),
        (lambda: pa.table(sedona.sql(q)), pa.ArrowInvalid),
        (lambda: pa.table(sedona.read_format(ZarrMetaSpec(), uri)), pa.ArrowInvalid),
        # (an aggregate, so every chunk is read whatever the display limit)
        (
            lambda: sedona.sql(f"SELECT sum(a) AS s FROM sd_read_zarr_meta('{uri}')").show(),
            sedonadb._lib.SedonaError,
        ),
        (lambda: ctx.sql(q).to_arrow_table(), Exception),
    ]
    for run, cls in streaming:
        with pytest.raises(cls, match=data_error):
            run()
    opening = [
        (lambda: open_meta(missing), FileNotFoundError),
        (lambda: sedona.sql(f"SELECT * FROM sd_read_zarr_meta('{missing}')"), FileNotFoundError),
        (lambda: sedona.read_format(ZarrMetaSpec(), missing), FileNotFoundError),
        (lambda: sedona.read(missing, format="zarr_meta"), sedonadb._lib.SedonaError),
        (lambda: ctx.sql(f"SELECT * FROM sd_read_zarr_meta('{missing}')"), ValueError),
    ]
    for run, cls in opening:
        with pytest.raises(cls, match="nope.zarr: store not found"):
            run()


def _sharded(tmp_path: Path) -> Path:
    path = tmp_path / "s.zarr"
    g = zarr.open_group(str(path), mode="w").create_group("meta")
    g.create_array("n", shape=(64,), dtype="int64", chunks=(8,), shards=(32,))[:] = np.arange(64)
    return path


def _sharding_config(path: Path, change) -> None:
    meta_file = path / "meta" / "n" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    change(next(c for c in meta["codecs"] if c["name"] == "sharding_indexed")["configuration"])
    meta_file.write_text(json.dumps(meta))


def test_shard_index_codecs_that_disagree_with_the_index(tmp_path):
    path = _sharded(tmp_path)
    _sharding_config(
        path, lambda c: c.update(index_codecs=[{"name": "bytes", "configuration": {"endian": "little"}}])
    )
    with pytest.raises(ValueError, match=r"s.zarr: array 'n': cannot read rows 0..32: .*out-of-bounds"):
        open_meta(str(path)).scan().read_all()


def test_sharded_inner_chunk_of_the_wrong_length(tmp_path):
    """An inner chunk decoding to fewer values than its shape is an error, not garbage."""
    from numcodecs import Zstd

    path = _sharded(tmp_path)
    _sharding_config(
        path, lambda c: c.update(index_codecs=[{"name": "bytes", "configuration": {"endian": "little"}}])
    )

    def write_shard(shard: int, parts: list) -> None:
        encoded = [Zstd(level=0).encode(np.asarray(p, dtype="<i8").tobytes()) for p in parts]
        index, offset = b"", 0
        for part in encoded:
            index += offset.to_bytes(8, "little") + len(part).to_bytes(8, "little")
            offset += len(part)
        (path / "meta" / "n" / "c" / str(shard)).write_bytes(b"".join(encoded) + index)

    write_shard(0, [[100, 101, 102, 103]] + [np.arange(i * 8, i * 8 + 8) for i in range(1, 4)])
    write_shard(1, [np.arange(i * 8, i * 8 + 8) for i in range(4, 8)])
    with pytest.raises(
        ValueError, match=r"array .n.: cannot read rows 0..32: meta/n/c/0: the size of a decoded chunk is 32"
    ):
        open_meta(str(path)).scan().read_all()
    # The other shard is intact.
    assert open_meta(str(path)).scan(start=32, end=64).read_all().column("n").to_pylist() == list(
        range(32, 64)
    )


def test_limit_on_metadata_claiming_far_more_rows_than_written(tmp_path):
    """Metadata claiming 20M rows over 40 written ones: LIMIT 5 answers in bounded
    memory (a subprocess capped at its footprint + 2 GiB) with rows of the
    claimed array (missing chunks read as fill values, as in zarr-python)."""
    import subprocess
    import sys

    uri = write_group(tmp_path / "claim.zarr", {"n": np.arange(40, dtype="int64")}, chunks=8)
    patch_metadata(tmp_path / "claim.zarr", "n", lambda m: m.update(shape=[20_000_000]))
    script = (
        "import resource, sys, pyarrow as pa, sedonadb, datafusion\n"
        "from sedonadb_zarr_meta import open_meta, register\n"
        "s, c = register(sedonadb.connect()), register(datafusion.SessionContext())\n"
        "vm = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize'))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + (2 << 30), vm + (2 << 30)))\n"
        "q = f\"SELECT n FROM sd_read_zarr_meta('{sys.argv[1]}') LIMIT 5\"\n"
        "print(pa.table(s.sql(q)).num_rows, c.sql(q).to_arrow_table().num_rows,\n"
        "      pa.table(open_meta(sys.argv[1]).scan(end=5)).column('n').to_pylist())\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, uri],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap_memory,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["5", "5", "[0,", "1,", "2,", "3,", "4]"]


def test_oversized_file_in_place_of_a_chunk_is_not_read(tmp_path):
    """A (sparse) 5 GB file where a chunk belongs fails that chunk at once."""
    path, uri = good_store(tmp_path)
    with open(path / "meta" / "a" / "c" / "1", "wb") as f:
        f.truncate(5 << 30)
    with pytest.raises(
        ValueError, match=r"array 'a': cannot read rows 100..200: meta/a/c/1: the file is 5368709120"
    ):
        open_meta(uri).scan().read_all()


def test_crs_option_must_look_like_a_crs(sedona, tmp_path):
    """A crs option SedonaDB cannot parse failed later inside the host without
    naming the option; it is refused when the options are read."""
    import datafusion
    from sedonadb_zarr_meta import register

    _, uri = good_store(tmp_path)
    with pytest.raises(ValueError, match="'crs' must be an authority code"):
        open_meta(uri, crs="meta")
    ctx = register(datafusion.SessionContext())
    for con in (sedona, ctx):
        with pytest.raises(ValueError, match="'crs' must be an authority code"):
            collect(con, f"SELECT count(*) FROM {call(uri, {'crs': 'meta'})}")
    assert open_meta(uri, crs="EPSG:32633").num_rows == 300


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda g: None, r"array 'a'.*validity array '_validity/a'.*is missing from the group"),
        (
            lambda g: g.require_group("_validity").create_array(
                "a", shape=(300,), dtype="int8", chunks=(100,)
            ),
            r"array 'a'.*validity array '_validity/a' must hold booleans, not Int8",
        ),
        (
            lambda g: g.require_group("_validity").create_array("a", shape=(299,), dtype=bool, chunks=(100,)),
            r"array 'a'.*validity array '_validity/a' has 299 rows but the column has 300",
        ),
    ],
)
def test_broken_validity_arrays(sedona, tmp_path, make, message):
    """A column's validity array that is missing, not boolean or of another length is an error
    naming the column: reading the values without it would turn missing values into real ones."""
    path, uri = good_store(tmp_path)
    g = zarr.open_group(str(path / "meta"), mode="a")
    g["a"].attrs["zarr_meta:validity"] = "_validity/a"
    make(g)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        scan_all(sedona, uri)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        open_meta(uri)


@pytest.mark.parametrize("pointer", [7, "", "/abs", "../escape"])
def test_validity_attribute_must_name_an_array_of_the_group(tmp_path, pointer):
    path, uri = good_store(tmp_path)
    zarr.open_group(str(path / "meta"), mode="a")["a"].attrs["zarr_meta:validity"] = pointer
    with pytest.raises(ValueError, match=r"array 'a'.*'zarr_meta:validity' must name an array of the group"):
        open_meta(uri)


def test_validity_applies_to_every_value_type(tmp_path):
    """Any reader's array with a validity array reads its false rows as NULL (written by zarr-python)."""
    path = tmp_path / "v.zarr"
    n = 250
    valid = np.arange(n) % 3 != 0
    data = {
        "i": np.arange(n, dtype="int32"),
        "f": np.linspace(0, 1, n),
        "b": np.arange(n) % 2 == 0,
        "s": np.array([f"s{i}" for i in range(n)], dtype=object),
        "t": np.datetime64("2024-01-01", "ms") + np.arange(n).astype("timedelta64[h]"),
    }
    uri = write_group(path, data, chunks=64)
    g = zarr.open_group(str(path / "meta"), mode="a")
    v = g.require_group("_validity").create_array("all", shape=(n,), dtype=bool, chunks=(100,))
    v[:] = valid
    for name in data:
        g[name].attrs["zarr_meta:validity"] = "_validity/all"
    table = pa.table(open_meta(uri).scan())
    for name, values in data.items():
        column = table.column(name)
        assert table.schema.field(name).nullable
        assert column.is_null().to_numpy(zero_copy_only=False).tolist() == (~valid).tolist(), name
        got = column.drop_null().to_pylist()
        assert len(got) == valid.sum() and got[0] == pa.array(values[valid][:1]).to_pylist()[0], name
