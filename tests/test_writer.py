"""`write_meta` output reads back identically via zarr-python and this package."""

from __future__ import annotations

import json

import geopandas
import numpy as np
import pyarrow as pa
import pytest
import shapely
import zarr
from sedonadb_zarr_meta import ZarrMetaSpec, open_meta, verify_statistics, write_meta

from .conftest import items


def items_table(n: int = 1000, seed: int = 3) -> pa.Table:
    data = items(n, seed)
    return pa.table(
        {
            "id": pa.array(data["id"].tolist()),
            "collection": pa.array(data["collection"].tolist()),
            "date": pa.array(data["date"]),
            "cloud_cover": pa.array(data["cloud_cover"]),
            "bbox": pa.array(data["bbox"].tolist(), pa.binary()),
        }
    )


def test_round_trip_through_zarr_python_and_reader(tmp_path):
    table = items_table()
    uri = write_meta(table, tmp_path / "w.zarr", chunk_size=128)
    g = zarr.open_group(str(tmp_path / "w.zarr" / "meta"), mode="r")
    assert g["id"][:].tolist() == table.column("id").to_pylist()
    assert g["date"][:].astype("int64").tolist() == table.column("date").cast(pa.int64()).to_pylist()
    assert [bytes(b) for b in g["bbox"][:]] == table.column("bbox").to_pylist()
    assert g["bbox"].attrs["proj:code"] == "OGC:CRS84"
    back = pa.table(open_meta(uri).scan())
    for name in table.column_names:
        assert back.column(name).to_pylist() == table.column(name).to_pylist(), name
    assert open_meta(uri).has_stats


def test_geodataframe_with_crs(tmp_path, sedona):
    gdf = geopandas.GeoDataFrame(
        {"name": ["a", "b"], "n": [1, 2]},
        geometry=[shapely.box(500_000, 0, 501_000, 1000), shapely.Point(1, 2)],
        crs="EPSG:32633",
    )
    uri = write_meta(gdf, tmp_path / "g.zarr")
    df = sedona.read_format(ZarrMetaSpec(), uri)
    assert str(df.schema.field("geometry").type).removeprefix("SedonaType ") == "geometry<Wkb(epsg:32633)>"
    t = pa.table(df)
    assert shapely.from_wkb(t.column("geometry").to_pylist()).tolist() == list(gdf.geometry)


def test_spatial_sort_tightens_chunks(tmp_path):
    table = items_table(4000)
    plain = write_meta(table, tmp_path / "p.zarr", chunk_size=250)
    sorted_ = write_meta(table, tmp_path / "s.zarr", chunk_size=250, sort=True)

    def mean_area(uri):
        g = zarr.open_group(uri.removeprefix("file://") + "/meta", mode="r")
        boxes = np.array(g.attrs["zarr_meta:stats"]["columns"]["bbox"]["bbox"])
        return float(np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))

    assert mean_area(sorted_) < mean_area(plain) / 4
    a = pa.table(open_meta(plain).scan()).sort_by("id")
    b = pa.table(open_meta(sorted_).scan()).sort_by("id")
    assert a.equals(b)


def test_append_keeps_statistics_correct(tmp_path):
    table = items_table(1000)
    path = tmp_path / "a.zarr"
    write_meta(table.slice(0, 650), path, chunk_size=300)
    write_meta(table.slice(650), path, chunk_size=300, mode="a")
    back = pa.table(open_meta(str(path)).scan())
    assert back.column("id").to_pylist() == table.column("id").to_pylist()
    stats = zarr.open_group(str(path / "meta"), mode="r").attrs["zarr_meta:stats"]
    assert stats["num_rows"] == 1000
    write_meta(table, tmp_path / "f.zarr", chunk_size=300)
    expected = zarr.open_group(str(tmp_path / "f.zarr" / "meta"), mode="r").attrs["zarr_meta:stats"]
    assert json.loads(json.dumps(stats)) == json.loads(json.dumps(expected))


def test_stac_geoparquet_input(tmp_path):
    import pyarrow.parquet as pq

    boxes = [shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 7)]
    t = pa.table(
        {
            "id": ["x", "y"],
            "datetime": pa.array([1, 2], pa.timestamp("us", tz="UTC")),
            "bbox": pa.array(
                [
                    {"xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0},
                    {"xmin": 5.0, "ymin": 5.0, "xmax": 6.0, "ymax": 7.0},
                ]
            ),
            "geometry": pa.array([b.wkb for b in boxes], pa.binary()),
            "assets": pa.array([{"data": {"href": "a"}}, {"data": {"href": "b"}}]),
        }
    )
    pq.write_table(t, tmp_path / "items.parquet")
    uri = write_meta(tmp_path / "items.parquet", tmp_path / "s.zarr")
    back = pa.table(open_meta(uri).scan())
    assert back.column("id").to_pylist() == ["x", "y"]
    assert shapely.from_wkb(back.column("bbox").to_pylist())[1].bounds == (5.0, 5.0, 6.0, 7.0)
    # stac-geoparquet assets become one column per asset field, as STAC JSON input does.
    assert back.column("asset:data:href").to_pylist() == ["a", "b"]
    assert "assets" not in back.column_names
    assert back.column("datetime").type == pa.timestamp("us")


#: Boxes as (west, south, east, north); the second crosses the antimeridian (west > east).
BOXES = [(10.0, 40.0, 11.5, 41.0), (179.5, 60.0, -179.25, 61.5), None, (-180.0, -10.0, 180.0, 10.0)]
#: What each box reads back as: exactly these polygons, rings from the south-west corner.
SPLIT = [
    "POLYGON ((10 40, 11.5 40, 11.5 41, 10 41, 10 40))",
    "MULTIPOLYGON (((179.5 60, 180 60, 180 61.5, 179.5 61.5, 179.5 60)), "
    "((-180 60, -179.25 60, -179.25 61.5, -180 61.5, -180 60)))",
    None,
    "POLYGON ((-180 -10, 180 -10, 180 10, -180 10, -180 -10))",
]


@pytest.mark.parametrize("source", ["bbox struct column", "stac-geoparquet", "STAC items"])
def test_boxes_across_the_antimeridian_are_split_on_every_path(tmp_path, source):
    """Every way a bounding box reaches write_meta gives the same WKB: two boxes across the
    antimeridian, never one box around the world (which would match every query)."""
    import pyarrow.parquet as pq

    structs = [None if b is None else dict(zip(("xmin", "ymin", "xmax", "ymax"), b)) for b in BOXES]
    ids = [f"b{i}" for i in range(len(BOXES))]
    if source == "bbox struct column":
        data = pa.table({"id": ids, "bbox": pa.array(structs)})
    elif source == "stac-geoparquet":
        data = tmp_path / "items.parquet"
        pq.write_table(
            pa.table({"id": ids, "stac_version": ["1.0.0"] * len(ids), "bbox": pa.array(structs)}), data
        )
    else:
        data = [
            {
                "type": "Feature",
                "id": i,
                "bbox": None if b is None else list(b),
                "geometry": None,
                "properties": {},
            }
            for i, b in zip(ids, BOXES)
        ]
    uri = write_meta(data, tmp_path / "s.zarr", chunk_size=2)
    back = pa.table(open_meta(uri).scan())
    wkb = back.column("bbox").to_pylist()
    assert [None if b is None else shapely.from_wkb(b).wkt for b in wkb] == SPLIT
    parts = shapely.from_wkb(wkb[1]).geoms
    assert [p.bounds for p in parts] == [(179.5, 60.0, 180.0, 61.5), (-180.0, 60.0, -179.25, 61.5)]
    # The statistics of the block holding the split box span both sides of the antimeridian.
    stats = zarr.open_group(str(tmp_path / "s.zarr" / "meta"), mode="r").attrs["zarr_meta:stats"]
    assert stats["columns"]["bbox"]["bbox"][0] == [-180.0, 40.0, 180.0, 61.5]
    assert stats["columns"]["bbox"]["bbox"][1] == [-180.0, -10.0, 180.0, 10.0]
    assert verify_statistics(uri) == []


def test_bad_writer_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        write_meta(items_table(3), tmp_path / "x.zarr", mode="r")
    with pytest.raises(ValueError, match="chunk_size"):
        write_meta(items_table(3), tmp_path / "x.zarr", chunk_size=0)
    with pytest.raises(TypeError, match="pyarrow Table"):
        write_meta(42, tmp_path / "x.zarr")


def test_write_what_sedonadb_returns(tmp_path, sedona, items_store):
    """SedonaDB's to_arrow_table() registers geoarrow's extension types: geometry then arrives
    as a geoarrow.wkb extension type (no field metadata), and is still written as geometry."""
    import geoarrow.pyarrow as ga  # what SedonaDB imports for to_arrow_table()

    try:
        _write_what_sedonadb_returns(tmp_path, sedona, items_store)
    finally:
        # The registration is process-wide: other tests read geometry fields' metadata.
        ga.unregister_extension_types()


def _write_what_sedonadb_returns(tmp_path, sedona, items_store):
    table = sedona.sql(
        f"SELECT id, ST_SetSRID(bbox, 32633) AS bbox FROM sd_read_zarr_meta('{items_store}') ORDER BY id"
    ).to_arrow_table()
    assert isinstance(table.schema.field("bbox").type, pa.ExtensionType)
    uri = write_meta(table, tmp_path / "again.zarr")
    back = pa.table(open_meta(uri).scan()).sort_by("id")

    def wkb_and_crs(t: pa.Table) -> tuple[list, str]:
        column, field = t.column("bbox").combine_chunks(), t.schema.field("bbox")
        if isinstance(field.type, pa.ExtensionType):
            return column.storage.to_pylist(), json.loads(field.type.__arrow_ext_serialize__())["crs"]
        return column.to_pylist(), json.loads(field.metadata[b"ARROW:extension:metadata"])["crs"]

    assert back.column("id").to_pylist() == table.column("id").to_pylist()
    assert wkb_and_crs(back) == wkb_and_crs(table)
    assert wkb_and_crs(back)[1] == "EPSG:32633"
