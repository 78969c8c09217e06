"""Geometry columns, CRS, spatial filters and joins on SedonaDB."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import shapely
from sedonadb_zarr_meta import ZarrMetaSpec

from .conftest import regions_parquet, sjoin_pairs, write_group

AREA = "POLYGON((-20 -10, 40 -10, 40 35, -20 35, -20 -10))"


def sql_type(df, name: str) -> str:
    return str(df.schema.field(name).type).removeprefix("SedonaType ")


def crs_of(table: pa.Table, name: str):
    meta = table.schema.field(name).metadata or {}
    assert meta[b"ARROW:extension:name"] == b"geoarrow.wkb"
    return json.loads(meta[b"ARROW:extension:metadata"]).get("crs")


def test_bbox_is_native_geometry(sedona, items_store):
    df = sedona.read_format(ZarrMetaSpec(), items_store)
    assert sql_type(df, "bbox") == "geometry<Wkb(ogc:crs84)>"
    assert sql_type(df, "collection") == "utf8<Utf8>"
    assert pa.schema(df).field("date").type == pa.timestamp("ms")


def test_wkt_bbox_is_geometry(tmp_path, sedona):
    wkt = np.array(["POLYGON((0 0,1 0,1 1,0 1,0 0))", "POINT (5 6)", ""], dtype=object)
    uri = write_group(tmp_path / "w.zarr", {"bbox": wkt})
    df = sedona.read_format(ZarrMetaSpec(), uri)
    assert sql_type(df, "bbox") == "geometry<Wkb(ogc:crs84)>"
    out = pa.table(sedona.sql("SELECT 1"))  # context still healthy
    assert out.num_rows == 1
    df.to_view("w")
    texts = pa.table(sedona.sql("SELECT ST_AsText(bbox) AS t FROM w")).column("t").to_pylist()
    assert texts == ["POLYGON((0 0,1 0,1 1,0 1,0 0))", "POINT(5 6)", None]


def test_group_proj_code_sets_crs(tmp_path, sedona):
    boxes = np.array(shapely.to_wkb(shapely.box([0, 10], [0, 10], [5, 15], [5, 15])), dtype=object)
    uri = write_group(tmp_path / "p.zarr", {"bbox": boxes}, group_attrs={"proj:code": "EPSG:32633"})
    df = sedona.read_format(ZarrMetaSpec(), uri)
    assert sql_type(df, "bbox") == "geometry<Wkb(epsg:32633)>"
    assert crs_of(pa.table(df), "bbox") == "EPSG:32633"


def test_crs_rule_precedence_and_unknown(tmp_path, sedona):
    boxes = np.array(shapely.to_wkb(shapely.box([0], [0], [1], [1])), dtype=object)
    uri = write_group(
        tmp_path / "c.zarr",
        {"bbox": boxes, "geometry": boxes, "footprint": boxes},
        group_attrs={"proj:code": "EPSG:32633"},
        array_attrs={
            "geometry": {"proj:epsg": 3857, "proj:code": "EPSG:4326"},
            "footprint": {"proj:epsg": None, "encoding": "WKB"},
        },
    )
    table = pa.table(sedona.read_format(ZarrMetaSpec(), uri))
    assert crs_of(table, "bbox") == "EPSG:32633"
    assert crs_of(table, "geometry") == "EPSG:4326"  # proj:code beats proj:epsg
    assert crs_of(table, "footprint") is None  # all-null proj:* -> unknown
    override = pa.table(sedona.read_format(ZarrMetaSpec({"crs": "EPSG:3857"}), uri))
    assert crs_of(override, "bbox") == "EPSG:3857"


def test_geometry_columns_option(tmp_path, sedona):
    boxes = np.array(shapely.to_wkb(shapely.box([0], [0], [1], [1])), dtype=object)
    uri = write_group(tmp_path / "g.zarr", {"footprint": boxes, "blob": boxes})
    df = sedona.read_format(ZarrMetaSpec({"geometry_columns": ["footprint"]}), uri)
    assert sql_type(df, "footprint") == "geometry<Wkb(ogc:crs84)>"
    assert sql_type(df, "blob") == "binary<Binary>"


def test_st_intersects_literal_matches_shapely(sedona, items_store, items_data):
    expected = sorted(
        items_data["id"][
            shapely.intersects(shapely.from_wkb(items_data["bbox"]), shapely.from_wkt(AREA))
        ].tolist()
    )
    assert 0 < len(expected) < len(items_data["id"])
    query = f"SELECT id FROM m WHERE ST_Intersects(bbox, ST_SetSRID(ST_GeomFromText('{AREA}'), 4326))"
    sedona.read_format(ZarrMetaSpec(), items_store).to_view("m")
    got = sorted(pa.table(sedona.sql(query)).column("id").to_pylist())
    assert got == expected
    # The ExternalFormatSpec path answers the same.
    sedona.read(items_store, format=ZarrMetaSpec()).to_view("m2")
    got2 = sorted(pa.table(sedona.sql(query.replace(" m ", " m2 "))).column("id").to_pylist())
    assert got2 == expected


def test_spatial_join_matches_geopandas(tmp_path, sedona, items_store, items_data):
    parquet = regions_parquet(
        tmp_path / "regions.parquet",
        {"west": (-180, -60, 0, 20), "east": (0, -60, 180, 20), "north": (-180, 20, 180, 90)},
    )
    expected = sjoin_pairs(items_data, parquet)

    sedona.read_format(ZarrMetaSpec(), items_store).to_view("m")
    sedona.read_parquet(str(parquet)).to_view("regions")
    query = "SELECT m.id, r.region FROM m JOIN regions r ON ST_Intersects(m.bbox, r.geometry)"
    rows = pa.table(sedona.sql(query)).to_pylist()
    got = sorted((r["id"], r["region"]) for r in rows)
    assert got == expected
    plan = "\n".join(pa.table(sedona.sql(query).explain()).column("plan").to_pylist())
    assert "SpatialJoinExec" in plan
