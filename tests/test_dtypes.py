"""Every Zarr data type of the meta-group convention round-trips exactly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sedonadb_zarr_meta import ZarrMetaSpec

from .conftest import write_group

# name -> (numpy data, expected Arrow type, expected Python values)
CASES = {
    "b": (np.array([True, False, True, True]), pa.bool_(), [True, False, True, True]),
    "i1": (np.array([-128, 0, 5, 127], dtype="int8"), pa.int8(), [-128, 0, 5, 127]),
    "i2": (np.array([-2, 0, 5, 300], dtype="int16"), pa.int16(), [-2, 0, 5, 300]),
    "i4": (np.array([-2, 0, 5, 70000], dtype="int32"), pa.int32(), [-2, 0, 5, 70000]),
    "i8": (np.array([-(2**62), 0, 5, 2**62], dtype="int64"), pa.int64(), [-(2**62), 0, 5, 2**62]),
    "u1": (np.array([0, 1, 200, 255], dtype="uint8"), pa.uint8(), [0, 1, 200, 255]),
    "u2": (np.array([0, 1, 200, 65535], dtype="uint16"), pa.uint16(), [0, 1, 200, 65535]),
    "u4": (np.array([0, 1, 2, 2**32 - 1], dtype="uint32"), pa.uint32(), [0, 1, 2, 2**32 - 1]),
    "u8": (np.array([0, 1, 2, 2**64 - 1], dtype="uint64"), pa.uint64(), [0, 1, 2, 2**64 - 1]),
    "f2": (
        np.array([1.5, -2.0, 0.25, 65504], dtype="float16"),
        pa.float32(),
        [1.5, -2.0, 0.25, 65504.0],
    ),
    "f4": (
        np.array([1.5, -2.0, 0.1, 3e38], dtype="float32"),
        pa.float32(),
        [float(v) for v in np.array([1.5, -2.0, 0.1, 3e38], dtype="float32")],
    ),
    "f8": (np.array([1.5, -2.0, 0.1, 1e300]), pa.float64(), [1.5, -2.0, 0.1, 1e300]),
    "s": (
        np.array(["a", "ünï", "", "longer text"], dtype=object),
        pa.string(),
        ["a", "ünï", "", "longer text"],
    ),
    "vb": (
        np.array([b"\x00\x01", b"", b"abc", b"\xff" * 10], dtype=object),
        pa.binary(),
        [b"\x00\x01", b"", b"abc", b"\xff" * 10],
    ),
    "u": (np.array(["ab", "c", "", "xyé"], dtype="<U3"), pa.string(), ["ab", "c", "", "xyé"]),
    "sb": (
        np.array([b"ab", b"c", b"", b"xyz"], dtype="|S3"),
        pa.binary(),
        [b"ab", b"c", b"", b"xyz"],
    ),
}


def _dt(values, unit):
    return np.array(values, dtype=f"datetime64[{unit}]")


TIME_CASES = {
    # NumPy unit -> (data, Arrow type); Arrow values are computed from NumPy below.
    "dt_ms": (
        _dt(["2024-01-01", "NaT", "2024-02-03T04:05:06.007", "1969-12-31T23:59:59.999"], "ms"),
        pa.timestamp("ms"),
    ),
    "dt_s": (
        _dt(["2024-01-01T00:00:01", "NaT", "1900-01-01", "2262-01-01"], "s"),
        pa.timestamp("s"),
    ),
    "dt_us": (
        _dt(["2024-01-01T00:00:00.000001", "NaT", "1970-01-01", "2000-01-01"], "us"),
        pa.timestamp("us"),
    ),
    "dt_ns": (
        _dt(["2024-01-01T00:00:00.000000001", "NaT", "1970-01-01", "2000-01-01"], "ns"),
        pa.timestamp("ns"),
    ),
    "dt_D": (_dt(["2024-01-01", "NaT", "1970-01-02", "1800-03-01"], "D"), pa.timestamp("s")),
    "dt_h": (
        _dt(["2024-01-01T05", "NaT", "1970-01-02T00", "1800-03-01T23"], "h"),
        pa.timestamp("s"),
    ),
    "dt_M": (_dt(["2024-03", "NaT", "1970-01", "1969-12"], "M"), pa.timestamp("s")),
    "dt_Y": (_dt(["2024", "NaT", "1970", "1600"], "Y"), pa.timestamp("s")),
    "dt_10s": (np.array([1, 2, -3, "NaT"], dtype="datetime64[10s]"), pa.timestamp("s")),
    "td_s": (np.array([1, -2, 3, "NaT"], dtype="timedelta64[s]"), pa.duration("s")),
    "td_ms": (np.array([1, -2, 3000, "NaT"], dtype="timedelta64[ms]"), pa.duration("ms")),
    "td_D": (np.array([1, -2, 3, "NaT"], dtype="timedelta64[D]"), pa.duration("s")),
}


def _expected_time(data: np.ndarray, arrow_type: pa.DataType) -> list:
    unit = arrow_type.unit
    kind = "datetime64" if pa.types.is_timestamp(arrow_type) else "timedelta64"
    converted = data.astype(f"{kind}[{unit}]")
    return [None if np.isnat(v) else int(v.astype("int64")) for v in converted]


def _read(con, uri, **options):
    """Read all rows in stored order (scans run in parallel partitions)."""
    table = pa.table(con.read_format(ZarrMetaSpec(options or None), uri))
    return table.sort_by("row") if "row" in table.column_names else table


def _with_row(arrays: dict, n: int) -> dict:
    return {**arrays, "row": np.arange(n, dtype="int64")}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_fixed_and_variable_types_round_trip(tmp_path, sedona, zarr_format):
    arrays = _with_row({name: data for name, (data, _, _) in CASES.items()}, 4)
    uri = write_group(tmp_path / "s.zarr", arrays, zarr_format=zarr_format, chunks=3)
    table = _read(sedona, uri)
    assert table.num_rows == 4
    for name, (_, arrow_type, values) in CASES.items():
        column = table.column(name)
        assert column.type == arrow_type, name
        assert column.to_pylist() == values, name


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_datetime_and_timedelta_units(tmp_path, sedona, zarr_format):
    arrays = _with_row({name: data for name, (data, _) in TIME_CASES.items()}, 4)
    uri = write_group(tmp_path / "t.zarr", arrays, zarr_format=zarr_format, chunks=3)
    table = _read(sedona, uri)
    for name, (data, arrow_type) in TIME_CASES.items():
        column = table.column(name)
        assert column.type == arrow_type, name
        assert column.null_count == 1, name  # NaT is null
        assert column.cast(pa.int64()).to_pylist() == _expected_time(data, arrow_type), name


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("compressor", ["zstd", "gzip", "blosc", "none"])
def test_codecs(tmp_path, sedona, zarr_format, compressor):
    import zarr.codecs

    if zarr_format == 3:
        compressors = {
            "zstd": zarr.codecs.ZstdCodec(level=3),
            "gzip": zarr.codecs.GzipCodec(level=5),
            "blosc": zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
            "none": None,
        }[compressor]
    else:
        import numcodecs

        compressors = {
            "zstd": numcodecs.Zstd(level=3),
            "gzip": numcodecs.GZip(level=5),
            "blosc": numcodecs.Blosc(cname="lz4", clevel=5),
            "none": None,
        }[compressor]
    values = np.arange(1000, dtype="int64") * 7
    text = np.array([f"t{i}" for i in range(1000)], dtype=object)
    uri = write_group(
        tmp_path / "c.zarr",
        _with_row({"v": values, "s": text}, 1000),
        zarr_format=zarr_format,
        chunks=128,
        compressors=compressors,
    )
    table = _read(sedona, uri)
    assert table.column("v").to_pylist() == values.tolist()
    assert table.column("s").to_pylist() == text.tolist()


def test_crc32c_and_sharding(tmp_path, sedona):
    import zarr.codecs

    values = np.arange(1000, dtype="float64") / 3
    text = np.array([f"s{i % 17}" for i in range(1000)], dtype=object)
    path = tmp_path / "sh.zarr"
    write_group(
        path,
        _with_row({"v": values}, 1000),
        chunks=50,
        shards=(200,),
        compressors=[zarr.codecs.ZstdCodec(), zarr.codecs.Crc32cCodec()],
    )
    uri = write_group(path, {"s": text}, chunks=50, shards=(400,))
    table = _read(sedona, uri)
    assert table.column("v").to_pylist() == values.tolist()
    assert table.column("s").to_pylist() == text.tolist()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_differing_chunk_shapes_and_unwritten_chunks(tmp_path, sedona, zarr_format):
    import zarr

    n = 1000
    a = np.arange(n, dtype="int32")
    s = np.array([f"x{i}" for i in range(n)], dtype=object)
    path = tmp_path / "d.zarr"
    uri = write_group(
        path, _with_row({"a": a, "s": s}, n), zarr_format=zarr_format, chunks={"a": 7, "s": 130, "row": 50}
    )
    # An array whose chunks were never written reads as its fill value.
    g = zarr.open_group(str(path / "meta"), mode="a", zarr_format=zarr_format)
    g.create_array("f", shape=(n,), dtype="float32", chunks=(100,), fill_value=-1.0)
    g["f"][200:300] = 5.0
    table = _read(sedona, uri, batch_size=33)
    assert table.column("a").to_pylist() == a.tolist()
    assert table.column("s").to_pylist() == s.tolist()
    expected = np.full(n, -1.0, dtype="float32")
    expected[200:300] = 5.0
    assert table.column("f").to_pylist() == expected.tolist()


def test_big_endian_v2(tmp_path, sedona):
    values = np.array([1, -2, 3, 2**40], dtype=">i8")
    uri = write_group(tmp_path / "be.zarr", _with_row({"v": values}, 4), zarr_format=2)
    assert _read(sedona, uri).column("v").to_pylist() == values.tolist()


def test_empty_group_and_zero_rows(tmp_path, sedona):
    uri = write_group(tmp_path / "z.zarr", {"a": np.array([], dtype="int32")})
    table = _read(sedona, uri)
    assert table.num_rows == 0
    assert table.schema.names == ["a"]
