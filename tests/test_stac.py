"""STAC ingest: real-world items and every quirk, read back value for value.

The corpus is the Planetary Computer items that stac-geoparquet ships in its
source distribution on PyPI (13 collections, 50 items), plus items written
here with the quirks real catalogues have.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import shapely
import shapely.geometry
import zarr
from sedonadb_zarr_meta import (
    ingest_stac_search,
    open_meta,
    register,
    verify_statistics,
    write_meta,
)
from sedonadb_zarr_meta._stac import parse_datetime

from .conftest import collect, stac_api

CORPUS_PACKAGE = "stac-geoparquet==0.8.3"


@pytest.fixture(scope="session")
def pc_items(tmp_path_factory) -> list[dict[str, Any]]:
    """Planetary Computer items from stac-geoparquet's source distribution."""
    cache = Path.home() / ".cache" / "sedonadb-zarr-meta" / "stac-corpus"
    cache.mkdir(parents=True, exist_ok=True)
    sdists = list(cache.glob("stac_geoparquet-*.tar.gz"))
    if not sdists:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
            + ["--dest", str(cache), CORPUS_PACKAGE],
            check=True,
        )
        sdists = list(cache.glob("stac_geoparquet-*.tar.gz"))
    out: list[dict[str, Any]] = []
    with tarfile.open(sdists[0]) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if "/tests/data/" in member.name and member.name.endswith("-pc.json"):
                value = json.load(tar.extractfile(member))
                out.extend(value if isinstance(value, list) else [value])
    assert len(out) >= 40 and len({i["collection"] for i in out}) >= 10
    return out


def square(x: float, y: float, d: float = 1.0) -> list[list[float]]:
    return [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]


def quirky_items() -> list[dict[str, Any]]:
    """Items with the quirks of real public catalogues."""

    def item(i: int, **kw: Any) -> dict[str, Any]:
        base = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": f"quirk-{i}",
            "collection": "quirks",
            "bbox": [10.0 + i, 40.0, 11.0 + i, 41.0],
            "geometry": {"type": "Polygon", "coordinates": [square(10.0 + i, 40.0)]},
            "properties": {"datetime": f"2023-0{1 + i % 9}-15T10:20:30.250Z"},
            "assets": {},
            "links": [{"rel": "self", "href": f"https://example.com/{i}.json"}],
        }
        for key, value in kw.items():
            if key in ("properties", "assets"):
                base[key].update(value)
            else:
                base[key] = value
        return base

    return [
        # datetime null, a range instead; explicit null projection code
        item(
            0,
            properties={
                "datetime": None,
                "start_datetime": "2022-12-31T23:00:00-01:00",
                "end_datetime": "2023-01-31T00:00:00Z",
                "proj:epsg": None,
                "eo:cloud_cover": 12,
                "quality": "good",
            },
        ),
        # int and float mixed in one property; per-item proj:code; many assets
        item(
            1,
            properties={"eo:cloud_cover": 7.25, "proj:code": "EPSG:32632", "proj:epsg": 32632, "flag": True},
            assets={
                f"B{b:02d}": {
                    "href": f"s3://bucket/q1/B{b:02d}.tif",
                    "type": "image/tiff; application=geotiff",
                }
                for b in range(1, 13)
            },
        ),
        # 3-D bbox; a MultiPolygon footprint with an empty part
        item(
            2,
            bbox=[12.0, 40.0, -5.0, 13.0, 41.0, 120.5],
            geometry={"type": "MultiPolygon", "coordinates": [[square(12.0, 40.0)], []]},
            properties={"eo:cloud_cover": 0, "quality": 3, "flag": False},
            assets={
                "thumbnail": {
                    "href": "https://example.com/t.png",
                    "type": "image/png",
                    "roles": ["thumbnail"],
                }
            },
        ),
        # bbox slightly beyond +-180
        item(
            3,
            bbox=[-180.0001, -10.0, -179.0, -9.0],
            geometry={"type": "Polygon", "coordinates": [square(-180.0001, -10.0)]},
            properties={"view:off_nadir": None, "instruments": ["msi"], "sat:orbit": {"n": 5}},
        ),
        # across the antimeridian: west > east, footprint split in two
        item(
            4,
            bbox=[179.5, 60.0, -179.5, 61.0],
            geometry={
                "type": "MultiPolygon",
                "coordinates": [
                    [[[179.5, 60.0], [180.0, 60.0], [180.0, 61.0], [179.5, 61.0], [179.5, 60.0]]],
                    [[[-180.0, 60.0], [-179.5, 60.0], [-179.5, 61.0], [-180.0, 61.0], [-180.0, 60.0]]],
                ],
            },
            properties={"eo:cloud_cover": None, "proj:epsg": 3413},
        ),
        # no footprint at all (geometry null; bbox then absent too)
        item(5, bbox=None, geometry=None, properties={"eo:cloud_cover": 99.5}),
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, pc_items) -> tuple[list[dict[str, Any]], str, pa.Table]:
    """The whole corpus in one store (Hilbert-sorted, small chunks so statistics matter)."""
    items = pc_items + quirky_items()
    uri, table = ingest(items, tmp_path_factory.mktemp("corpus") / "c.zarr", chunk_size=8, sort=True)
    return items, uri, table


def ingest(items: Any, path: Path, **kw: Any) -> tuple[str, pa.Table]:
    # Chunks near the corpus' size: zarr-python encodes whole chunks, fill included.
    kw.setdefault("chunk_size", 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mixed-type properties are reported, and expected
        uri = write_meta(items, path, **kw)
    return uri, pa.table(open_meta(uri).scan())


def rows_by_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in table.to_pylist()}


def without_empty_parts(geom: dict[str, Any]) -> dict[str, Any]:
    if geom["type"].startswith("Multi"):
        return {**geom, "coordinates": [c for c in geom["coordinates"] if c]}
    return geom


def expected_value(value: Any, field: pa.Field) -> Any:
    """What a STAC value reads back as, for a column of ``field``'s type."""
    t = field.type
    if value is None:
        return None
    if pa.types.is_timestamp(t):
        return parse_datetime(value).astype("datetime64[us]").item()
    if pa.types.is_floating(t):
        return float(value)
    if pa.types.is_string(t) and not isinstance(value, str):
        return json.dumps(value)
    return value


def check_items_read_back(items: list[dict[str, Any]], table: pa.Table) -> int:
    """Every value of every item equals what was read back; returns the number checked."""
    back = rows_by_id(table)
    fields = {f.name: f for f in table.schema}
    checked = 0
    for item in items:
        row = back[item["id"]]
        expected: dict[str, Any] = {
            "collection": item.get("collection"),
            "stac_version": item["stac_version"],
        }
        expected.update({k: v for k, v in item["properties"].items()})
        rest = {}
        for key, asset in (item.get("assets") or {}).items():
            expected.update({f"asset:{key}:{f}": v for f, v in asset.items() if f in ("href", "type")})
            if others := {f: v for f, v in asset.items() if f not in ("href", "type")}:
                rest[key] = others
        if rest:
            expected["assets"] = rest
        if "stac_extensions" in item:
            expected["stac_extensions"] = item["stac_extensions"]
        for name, value in expected.items():
            got = row[name]
            want = expected_value(value, fields[name])
            if pa.types.is_string(fields[name].type) and got is not None and not isinstance(value, str):
                assert json.loads(got) == value, (item["id"], name)
            else:
                assert got == want, (item["id"], name, got, want)
            checked += 1
        # Columns the item lacks read as NULL.
        for name in set(fields) - set(expected) - {"id", "bbox", "geometry", "bbox:zmin", "bbox:zmax"}:
            assert row[name] is None, (item["id"], name)
        # The footprint, coordinates exactly as given.
        if item.get("geometry") is None:
            assert row["geometry"] is None
        else:
            got = shapely.from_wkb(row["geometry"])
            want = shapely.geometry.shape(without_empty_parts(item["geometry"]))
            assert shapely.equals_exact(got, want, tolerance=0), item["id"]
            assert got.has_z == want.has_z
        # The bbox as a box (two across the antimeridian) with its height range.
        bbox = item.get("bbox")
        if bbox is None:
            assert row["bbox"] is None
        else:
            w, s, e, n = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox
            got = shapely.from_wkb(row["bbox"])
            if w <= e:
                assert got.geom_type == "Polygon" and got.bounds == (w, s, e, n)
            else:
                assert got.geom_type == "MultiPolygon"
                assert [p.bounds for p in got.geoms] == [(w, s, 180.0, n), (-180.0, s, e, n)]
            if len(bbox) == 6:
                assert (row["bbox:zmin"], row["bbox:zmax"]) == (bbox[2], bbox[5])
            elif "bbox:zmin" in row:
                assert row["bbox:zmin"] is None
        checked += 2
    return checked


def test_real_and_quirky_items_read_back_value_for_value(corpus):
    items, uri, table = corpus
    assert table.num_rows == len(items)
    assert check_items_read_back(items, table) > 1500
    schema = table.schema
    # One type per column: int/float mixes are float64, integer-only columns stay int64.
    assert schema.field("eo:cloud_cover").type == pa.float64()
    assert schema.field("proj:epsg").type == pa.int64()
    assert schema.field("datetime").type == pa.timestamp("us")
    assert schema.field("created").type == pa.timestamp("us")
    assert schema.field("quality").type == pa.string()  # "good" and 3
    assert schema.field("flag").type == pa.bool_()
    assert "links" not in schema.names and "type" not in schema.names
    assert {"asset:B01:href", "asset:B12:type", "asset:thumbnail:type", "assets"} <= set(schema.names)
    assert "asset:thumbnail:roles" not in schema.names  # kept in the assets column
    # Mixed collections in one batch.
    assert len(set(table.column("collection").to_pylist())) >= 11
    assert verify_statistics(uri) == []


def test_nulls_are_sql_nulls_on_both_hosts(sedona, corpus):
    import datafusion

    items, uri, table = corpus
    ctx = register(datafusion.SessionContext())
    for column in ("proj:epsg", "eo:cloud_cover", "datetime", "flag", "asset:B01:href", "geometry"):
        expected = table.column(column).null_count
        assert 0 < expected < len(items), column
        query = f"SELECT count(*) AS n FROM sd_read_zarr_meta('{uri}') WHERE \"{column}\" IS NULL"
        assert collect(sedona, query).column("n")[0].as_py() == expected, column
        assert ctx.sql(query).to_arrow_table().column("n")[0].as_py() == expected, column
    # A filter never matches a missing value, and statistics do not hide real ones.
    query = f"SELECT id FROM sd_read_zarr_meta('{uri}') WHERE \"eo:cloud_cover\" < 10 ORDER BY id"
    want = sorted(
        i["id"] for i in items if (v := i["properties"].get("eo:cloud_cover")) is not None and v < 10
    )
    assert collect(sedona, query).column("id").to_pylist() == want


def test_the_convention_is_plain_zarr(tmp_path):
    """Other Zarr readers find the missing marker: a boolean validity array named by an attribute."""
    uri, _ = ingest(quirky_items(), tmp_path / "z.zarr")
    g = zarr.open_group(str(tmp_path / "z.zarr" / "meta"), mode="r")
    pointer = g["eo:cloud_cover"].attrs["zarr_meta:validity"]
    assert pointer == "_validity/eo:cloud_cover"
    valid = np.asarray(g[pointer][:])
    ids = list(np.asarray(g["id"][:]))
    assert valid.tolist() == [
        next(i for i in quirky_items() if i["id"] == id_)["properties"].get("eo:cloud_cover") is not None
        for id_ in ids
    ]
    # A column without missing values has no validity array.
    assert "zarr_meta:validity" not in g["id"].attrs


def query_window_ids(sedona, uri: str, column: str, wkt: str) -> list[str]:
    q = (
        f"SELECT id FROM sd_read_zarr_meta('{uri}') "
        f"WHERE ST_Intersects({column}, ST_GeomFromText('{wkt}', 4326)) ORDER BY id"
    )
    return collect(sedona, q).column("id").to_pylist()


def source_boxes(item: dict[str, Any]) -> Any:
    bbox = item.get("bbox")
    if bbox is None:
        return None
    w, s, e, n = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox
    if w <= e:
        return shapely.box(w, s, e, n)
    return shapely.MultiPolygon([shapely.box(w, s, 180, n), shapely.box(-180, s, e, n)])


@pytest.mark.parametrize(
    "window",
    [
        "POLYGON((179.8 60.2, 180 60.2, 180 60.8, 179.8 60.8, 179.8 60.2))",  # east of the antimeridian
        "POLYGON((-180 60.2, -179.8 60.2, -179.8 60.8, -180 60.8, -180 60.2))",  # west of it
        "POLYGON((0 60.2, 10 60.2, 10 60.8, 0 60.8, 0 60.2))",  # inside a world-wide box, outside the item
        "POLYGON((-180.5 -10.5, -179.9 -10.5, -179.9 -9.5, -180.5 -9.5, -180.5 -10.5))",  # beyond -180
        "POLYGON((-125 30, -65 30, -65 50, -125 50, -125 30))",  # the USA
        "POLYGON((5 35, 20 35, 20 50, 5 50, 5 35))",  # Europe
    ],
)
def test_spatial_filters_match_shapely(sedona, corpus, window):
    items, uri, _ = corpus
    area = shapely.from_wkt(window)
    footprints = sorted(
        i["id"]
        for i in items
        if i.get("geometry") is not None
        and shapely.geometry.shape(without_empty_parts(i["geometry"])).intersects(area)
    )
    boxes = sorted(i["id"] for i in items if (b := source_boxes(i)) is not None and b.intersects(area))
    assert query_window_ids(sedona, uri, "geometry", window) == footprints
    assert query_window_ids(sedona, uri, "bbox", window) == boxes


def test_every_input_form_gives_the_same_catalogue(tmp_path, pc_items):
    import pystac

    items = pc_items[::25] + quirky_items()
    _, reference = ingest(items, tmp_path / "ref.zarr")
    (tmp_path / "fc.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    (tmp_path / "items.ndjson").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    (tmp_path / "one.json").write_text(json.dumps(items[0]))
    pystac_items = [pystac.Item.from_dict(copy.deepcopy(i), preserve_dict=True) for i in items]
    forms = {
        "FeatureCollection file": tmp_path / "fc.json",
        "ndjson file": str(tmp_path / "items.ndjson"),
        "FeatureCollection dict": {"type": "FeatureCollection", "features": items},
        "generator of dicts": (i for i in items),
    }
    for k, (name, data) in enumerate(forms.items()):
        _, table = ingest(data, tmp_path / f"f{k}.zarr")
        assert table.schema == reference.schema, name
        assert table.to_pylist() == reference.to_pylist(), name
    # pystac migrates items to its STAC version as it loads them (proj:epsg becomes
    # proj:code, ...): its Items are stored as pystac hands them over.
    _, migrated = ingest([i.to_dict(transform_hrefs=False) for i in pystac_items], tmp_path / "pd.zarr")
    assert migrated.column("stac_version").to_pylist() == [pystac.get_stac_version()] * len(items)
    for k, data in enumerate([pystac_items, pystac.ItemCollection(pystac_items)]):
        _, table = ingest(data, tmp_path / f"p{k}.zarr")
        assert table.schema == migrated.schema
        assert table.to_pylist() == migrated.to_pylist()
    _, single = ingest(tmp_path / "one.json", tmp_path / "single.zarr")
    assert single.column("id").to_pylist() == [items[0]["id"]]


def test_stac_geoparquet_reads_like_json(tmp_path, pc_items):
    """A stac-geoparquet file (bbox struct, assets struct) gives the same values as the JSON items."""
    import pyarrow.parquet as pq

    items = [i for i in quirky_items() if i["bbox"] is not None and len(i["bbox"]) == 4]
    rows = []
    for i in items:
        w, s, e, n = i["bbox"]
        rows.append(
            {
                "type": "Feature",
                "stac_version": i["stac_version"],
                "id": i["id"],
                "collection": i["collection"],
                "bbox": {"xmin": w, "ymin": s, "xmax": e, "ymax": n},
                "geometry": shapely.geometry.shape(i["geometry"]).wkb,
                "datetime": parse_datetime(i["properties"]["datetime"]).item()
                if i["properties"].get("datetime")
                else None,
                "assets": {"data": {"href": f"s3://b/{i['id']}.tif", "type": "image/tiff"}},
                "links": [{"rel": "self", "href": "x"}],
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "items.parquet")
    uri = write_meta(tmp_path / "items.parquet", tmp_path / "gp.zarr")
    back = rows_by_id(pa.table(open_meta(uri).scan()))
    for i in items:
        row = back[i["id"]]
        assert row["asset:data:href"] == f"s3://b/{i['id']}.tif"
        assert shapely.from_wkb(row["bbox"]).equals(source_boxes(i))
        assert "links" not in row and "type" not in row
    assert shapely.from_wkb(back["quirk-4"]["bbox"]).geom_type == "MultiPolygon"


def test_appends_bring_new_collections_and_properties(tmp_path, pc_items):
    path = tmp_path / "a.zarr"
    first = [i for i in pc_items if i["collection"] == "sentinel-2-l2a"]
    second = [i for i in pc_items if i["collection"] == "landsat-c2-l2"]
    third = quirky_items()
    ingest(first, path, chunk_size=3)
    ingest(second, path, mode="a")
    uri, table = ingest(third, path, mode="a")
    assert table.num_rows == len(first) + len(second) + len(third)
    check_items_read_back(first + second + third, table)
    # Landsat's own properties are NULL for the Sentinel-2 rows that came first, and the reverse.
    back = rows_by_id(table)
    assert back[first[0]["id"]]["landsat:wrs_path"] is None
    assert back[second[0]["id"]]["s2:mgrs_tile"] is None
    assert back[second[0]["id"]]["landsat:wrs_path"] == second[0]["properties"]["landsat:wrs_path"]
    assert verify_statistics(uri) == []
    # The statistics of the new columns cover exactly their rows.
    g = zarr.open_group(str(path / "meta"), mode="r")
    stats = g.attrs["zarr_meta:stats"]
    assert stats["num_rows"] == table.num_rows
    assert stats["columns"]["landsat:cloud_cover_land"]["min"][0] is None  # Sentinel-2 only in block 0


def test_append_widens_integers_for_floats_and_refuses_other_changes(tmp_path):
    path = tmp_path / "w.zarr"
    items = quirky_items()
    first = [copy.deepcopy(i) for i in items[:1]]  # eo:cloud_cover 12: int64
    ingest(first, path)
    g = zarr.open_group(str(path / "meta"), mode="r")
    assert g["eo:cloud_cover"].dtype == np.dtype("int64")
    uri, table = ingest([items[1]], path, mode="a")  # 7.25
    assert table.schema.field("eo:cloud_cover").type == pa.float64()
    assert table.column("eo:cloud_cover").to_pylist() == [12.0, 7.25]
    assert verify_statistics(uri) == []
    bad = copy.deepcopy(items[2])
    bad["id"] = "bad"
    bad["properties"]["eo:cloud_cover"] = "cloudy"
    with pytest.raises(ValueError, match="cannot append text values to column 'eo:cloud_cover'"):
        write_meta([bad], path, mode="a")
    # Nothing changed.
    assert pa.table(open_meta(uri).scan()).num_rows == 2


def test_mixed_types_warn_and_bad_items_fail_clearly(tmp_path):
    items = quirky_items()
    with pytest.warns(UserWarning, match="'quality' mixes int, str values; the column is stored as text"):
        write_meta(items, tmp_path / "m.zarr")
    (tmp_path / "broken.ndjson").write_text(json.dumps(items[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"broken.ndjson, line 2: not JSON"):
        write_meta(tmp_path / "broken.ndjson", tmp_path / "b.zarr")
    with pytest.raises(ValueError, match="not a STAC item"):
        write_meta([{"type": "Collection", "id": "c"}], tmp_path / "c.zarr")
    bad_bbox = copy.deepcopy(items[1])
    bad_bbox["bbox"] = [1, 2, 3]
    with pytest.raises(ValueError, match="item 'quirk-1' bbox: a bbox has 4 or 6 numbers"):
        write_meta([bad_bbox], tmp_path / "d.zarr")
    with pytest.raises(FileNotFoundError, match="missing.ndjson"):
        write_meta(tmp_path / "missing.ndjson", tmp_path / "e.zarr")
    assert not (tmp_path / "b.zarr").exists() and not (tmp_path / "d.zarr").exists()


@pytest.mark.filterwarnings("ignore:STAC field")
def test_progress_only_when_asked_or_interactive(tmp_path, capsys):
    items = quirky_items()
    write_meta(items, tmp_path / "p1.zarr", progress=True, chunk_size=4)
    err = capsys.readouterr().err
    assert "reading STAC items" in err and "writing" in err and "100%" in err
    write_meta(items, tmp_path / "p2.zarr", chunk_size=4)  # stderr is not a terminal here
    write_meta(items, tmp_path / "p3.zarr", progress=False, chunk_size=4)
    assert capsys.readouterr().err == ""


def test_ingest_stac_search_pages_through_an_api(tmp_path, pc_items):
    items = pc_items + quirky_items()
    wanted = ["landsat-c2-l2", "sentinel-2-l2a", "quirks"]
    with stac_api(items) as (url, searches), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        uri = ingest_stac_search(url, tmp_path / "api.zarr", collections=wanted, limit=3)
    expected = [i for i in items if i["collection"] in wanted]
    table = pa.table(open_meta(uri).scan())
    assert sorted(table.column("id").to_pylist()) == sorted(i["id"] for i in expected)
    check_items_read_back(expected, table)
    assert len(searches) == -(-len(expected) // 3)  # every page, once


def test_footprints_of_every_kind_keep_their_order_and_coordinates():
    """Polygons and MultiPolygons take the vectorized path, everything else GEOS's GeoJSON
    reader: either way each footprint is exactly its GeoJSON, in the order given."""
    from sedonadb_zarr_meta._geometry import geojson_to_wkb

    third = 1 / 3
    geometries = [
        {"type": "Polygon", "coordinates": [square(third, 0.1), square(0.25, 0.25, 0.5)]},  # with a hole
        None,
        {"type": "Point", "coordinates": [1.5, -2.25]},
        {"type": "MultiPolygon", "coordinates": [[square(0, 0)], [square(5, 5)]]},
        {"type": "Polygon", "coordinates": [[[0, 0, 1], [1, 0, 2], [1, 1, 3], [0, 0, 1]]]},  # 3-D
        {"type": "MultiPolygon", "coordinates": [[square(0, 0)], []]},  # an empty part
        {"type": "MultiPolygon", "coordinates": []},
        {"type": "Polygon", "coordinates": []},
        {"type": "LineString", "coordinates": [[0, 0], [third, 2]]},
    ]
    got = [None if w is None else shapely.from_wkb(w) for w in geojson_to_wkb(geometries, str)]
    assert got[1] is None
    for geometry, shape in zip(geometries, got):
        if geometry is not None:
            want = shapely.geometry.shape(without_empty_parts(geometry))
            assert shape.geom_type == want.geom_type and shapely.equals_exact(shape, want, tolerance=0)
            assert shape.has_z == want.has_z
    assert len(got[5].geoms) == 1 and got[6].is_empty and got[7].is_empty
    bad = [{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}]  # not closed
    with pytest.raises(ValueError, match="item 0: not a valid GeoJSON geometry"):
        geojson_to_wkb([None, *bad], lambda i: f"item {i - 1}")
    with pytest.raises(ValueError, match="two or three coordinates"):
        geojson_to_wkb([{"type": "Point", "coordinates": [1]}], str)
