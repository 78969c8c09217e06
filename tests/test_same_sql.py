"""One SQL for both hosts: a corpus of spatial queries written once, in the
idioms SedonaDB's documentation teaches, runs on SedonaDB and on
datafusion-python (after ``register`` and ``register_geoparquet``) with equal
results; every CRS idiom still skips chunks; the replaced CRS functions give
SedonaDB's own results on every input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
import shapely
from sedonadb_zarr_meta import open_meta, register_geoparquet, write_meta

from .conftest import collect, items_table, regions_parquet

N = 2000
CHUNK = 100
AREA = "POLYGON((-30 -20, 20 -20, 20 25, -30 25, -30 -20))"
BOX = (-30, -20, 20, 25)

# Each way of writing the query area with a CRS, as SedonaDB teaches it.
IDIOMS = {
    "setsrid_text": f"ST_SetSRID(ST_GeomFromText('{AREA}'), 4326)",
    "text_srid": f"ST_GeomFromText('{AREA}', 4326)",
    "wkt_srid": f"ST_GeomFromWKT('{AREA}', 4326)",
    "wkb_srid": f"ST_GeomFromWKB(ST_AsBinary(ST_GeomFromText('{AREA}')), 4326)",
    "setcrs": f"ST_SetCRS(ST_GeomFromText('{AREA}'), 'OGC:CRS84')",
    "envelope_srid": "ST_MakeEnvelope(-30, -20, 20, 25, 4326)",
    "setsrid_envelope": "ST_SetSRID(ST_MakeEnvelope(-30, -20, 20, 25), 4326)",
    "ewkt": f"ST_GeomFromEWKT('SRID=4326;{AREA}')",
}
POINT = "ST_SetSRID(ST_Point(0, 0), 4326)"
M = "sd_read_zarr_meta('{store}')"

CORPUS = {
    **{f"filter_{k}": f"SELECT id FROM {M} WHERE ST_Intersects(bbox, {g})" for k, g in IDIOMS.items()},
    "filter_reversed": f"SELECT id FROM {M} WHERE ST_Intersects({IDIOMS['setsrid_text']}, bbox)",
    "contains": f"SELECT id FROM {M} WHERE ST_Contains({IDIOMS['envelope_srid']}, bbox)",
    "within": f"SELECT id FROM {M} WHERE ST_Within(bbox, {IDIOMS['text_srid']})",
    "not_intersects_count": (
        f"SELECT count(*) AS n FROM {M} WHERE NOT ST_Intersects(bbox, {IDIOMS['setsrid_text']})"
    ),
    "dwithin": f"SELECT id FROM {M} WHERE ST_DWithin(bbox, {POINT}, 12.5)",
    "distance_filter": f"SELECT id FROM {M} WHERE ST_Distance(bbox, {POINT}) < 12.5",
    "nearest": f"SELECT id, ST_Distance(bbox, {POINT}) AS d FROM {M} ORDER BY d, id LIMIT 10",
    "join": f"SELECT m.id, r.region FROM {M} m JOIN regions r ON ST_Intersects(m.bbox, r.geometry)",
    "join_filtered": (
        f"SELECT m.id, r.region FROM {M} m JOIN regions r ON ST_Intersects(m.bbox, r.geometry) "
        "WHERE m.date >= TIMESTAMP '2024-06-01' AND m.cloud_cover < 50"
    ),
    "join_aggregate": (
        f"SELECT r.region, count(*) AS n FROM {M} m JOIN regions r ON ST_Intersects(m.bbox, r.geometry) "
        "GROUP BY r.region"
    ),
    "group_by": (
        f"SELECT collection, count(*) AS n, avg(cloud_cover) AS cc FROM {M} "
        f"WHERE ST_Intersects(bbox, {IDIOMS['envelope_srid']}) GROUP BY collection"
    ),
    "area_sum": f"SELECT sum(ST_Area(bbox)) AS a FROM {M} WHERE ST_Intersects(bbox, {IDIOMS['text_srid']})",
    "astext": f"SELECT id, ST_AsText(bbox) AS wkt FROM {M} WHERE id IN ('item-00001', 'item-00002')",
    "envelope_astext": f"SELECT id, ST_AsText(ST_Envelope(bbox)) AS e FROM {M} WHERE id < 'item-00010'",
    "centroid": (
        f"SELECT id, ST_X(ST_Centroid(bbox)) AS x, ST_Y(ST_Centroid(bbox)) AS y FROM {M} "
        "WHERE id < 'item-00020'"
    ),
    "srid": f"SELECT DISTINCT ST_SRID(bbox) AS s FROM {M}",
    "cte": (
        f"WITH hits AS (SELECT * FROM {M} WHERE ST_Intersects(bbox, {IDIOMS['setsrid_text']})) "
        "SELECT collection, count(*) AS n FROM hits GROUP BY collection"
    ),
    "subquery": (
        f"SELECT count(*) AS n FROM (SELECT id FROM {M} WHERE ST_Intersects(bbox, {IDIOMS['wkt_srid']})) t"
    ),
    "in_subquery": (
        f"SELECT id FROM {M} WHERE id IN (SELECT m2.id FROM {M} m2 JOIN regions r "
        "ON ST_Intersects(m2.bbox, r.geometry) WHERE r.region = 'west')"
    ),
    "time_and_space": (
        f"SELECT id FROM {M} WHERE ST_Intersects(bbox, {IDIOMS['setsrid_envelope']}) "
        "AND date >= TIMESTAMP '2024-03-01' AND date < TIMESTAMP '2024-04-01'"
    ),
    "region_intersection_area": (
        f"SELECT m.id, ST_Area(ST_Intersection(m.bbox, r.geometry)) AS a FROM {M} m "
        "JOIN regions r ON ST_Intersects(m.bbox, r.geometry) WHERE r.region = 'east'"
    ),
    "setsrid_column_cast": (
        f"SELECT id, ST_AsText(ST_SetSRID(bbox, 4326)) AS wkt FROM {M} WHERE id < 'item-00005'"
    ),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory, hosts):
    base = tmp_path_factory.mktemp("same")
    store = write_meta(items_table(N, seed=21), base / "items.zarr", chunk_size=CHUNK, sort=True)
    regions = regions_parquet(base / "regions.parquet", {"west": BOX, "east": (60, 0, 120, 50)})
    for engine in hosts.values():
        engine.register_geoparquet("regions", regions)
    return {"store": store, "regions": regions, "base": base}


def test_corpus_size():
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_same_results_on_both_hosts(hosts, data, name):
    query = CORPUS[name].format(store=data["store"])
    hosts["datafusion"].compare(query, hosts["sedonadb"])
    assert hosts["sedonadb"].collect(query).num_rows > 0


def test_filters_answer_what_shapely_answers(hosts, data):
    full = pa.table(open_meta(data["store"]).scan())
    geoms = shapely.from_wkb(full.column("bbox").to_pylist())
    expected = sorted(
        i
        for i, g in zip(full.column("id").to_pylist(), geoms)
        if shapely.intersects(g, shapely.from_wkt(AREA))
    )
    assert 0 < len(expected) < N
    for name in IDIOMS:
        for host, con in hosts.items():
            got = collect(con, CORPUS[f"filter_{name}"].format(store=data["store"]))
            assert sorted(got.column("id").to_pylist()) == expected, (name, host)


@pytest.mark.parametrize("idiom", sorted(IDIOMS))
def test_every_idiom_skips_chunks(hosts, data, tmp_path, idiom):
    """Chunks whose statistics exclude the area are deleted: a query that read
    one would fail; each idiom still answers correctly on both hosts."""
    import zarr

    src = Path(data["store"].removeprefix("file://"))
    dst = tmp_path / "pruned.zarr"
    shutil.copytree(src, dst)
    boxes = zarr.open_group(str(dst / "meta"), mode="r").attrs["zarr_meta:stats"]["columns"]["bbox"]["bbox"]
    keep = [
        b is not None and b[0] <= BOX[2] and BOX[0] <= b[2] and b[1] <= BOX[3] and BOX[1] <= b[3]
        for b in boxes
    ]
    assert 0 < sum(keep) < len(keep) / 2
    for column in ("id", "collection", "date", "cloud_cover", "bbox"):
        for i, k in enumerate(keep):
            if not k:
                (dst / "meta" / column / "c" / str(i)).unlink()
    query = CORPUS[f"filter_{idiom}"]
    expected = sorted(collect(hosts["sedonadb"], query.format(store=data["store"]))["id"].to_pylist())
    for host, con in hosts.items():
        got = collect(con, query.format(store=dst.as_uri()))
        assert sorted(got.column("id").to_pylist()) == expected, host


CRS_CASES = [
    "SELECT ST_AsText(ST_SetSRID(ST_GeomFromText('POINT(1 2)'), 3857)) AS v, "
    "ST_SRID(ST_SetSRID(ST_GeomFromText('POINT(1 2)'), 3857)) AS s",
    "SELECT ST_SRID(ST_GeomFromText('LINESTRING(0 0, 1 1)', 4326)) AS s, "
    "ST_AsText(ST_GeomFromText('LINESTRING(0 0, 1 1)', 4326)) AS v",
    "SELECT ST_AsText(ST_GeomFromWKT('POLYGON((0 0, 1 0, 1 1, 0 0))')) AS v, "
    "ST_SRID(ST_GeomFromWKT('POINT(0 0)')) AS s",
    "SELECT ST_AsText(ST_MakeEnvelope(0, 1, 2, 3)) AS v, ST_SRID(ST_MakeEnvelope(0.5, 1, 2, 3, 32633)) AS s",
    "SELECT ST_AsText(ST_GeomFromEWKT('SRID=3857;POINT(5 6)')) AS v",
    "SELECT ST_AsText(ST_GeomFromWKB(ST_AsBinary(ST_GeomFromText('MULTIPOINT((1 2), (3 4))')))) AS v",
    "SELECT ST_AsText(ST_SetCRS(ST_Point(1, 2), 'EPSG:32633')) AS v, "
    "ST_SRID(ST_SetCRS(ST_Point(1, 2), 'EPSG:32633')) AS s",
    "SELECT ST_GeomFromText(NULL) IS NULL AS v",
    "SELECT ST_AsText(ST_GeomFromText('POINT EMPTY')) AS v",
]


@pytest.mark.parametrize("query", CRS_CASES)
def test_replaced_functions_give_sedonadb_results(hosts, query):
    hosts["datafusion"].compare(query, hosts["sedonadb"])


def test_srid_from_a_column_is_a_clear_error_on_datafusion(hosts, data):
    query = (
        f"SELECT ST_SetSRID(bbox, CAST(cloud_cover AS BIGINT)) AS g FROM sd_read_zarr_meta('{data['store']}')"
    )
    with pytest.raises(ValueError, match="must be a constant on this host"):
        collect(hosts["datafusion"], query)


def test_register_geoparquet_types_geometry_with_the_file_crs(hosts, data, tmp_path):
    import geopandas

    ctx = hosts["datafusion"].con
    field = collect(ctx, "SELECT * FROM regions").schema.field("geometry")
    assert field.metadata[b"ARROW:extension:name"] == b"geoarrow.wkb"
    assert b"OGC:CRS84" in field.metadata[b"ARROW:extension:metadata"]
    utm = tmp_path / "utm.parquet"
    geopandas.GeoDataFrame(
        {"n": [1]}, geometry=[shapely.box(500000, 0, 501000, 1000)], crs="EPSG:32633"
    ).to_parquet(utm)
    register_geoparquet(ctx, "utm", str(utm))
    meta = (
        collect(ctx, "SELECT geometry FROM utm")
        .schema.field("geometry")
        .metadata[b"ARROW:extension:metadata"]
    )
    assert b"EPSG:32633" in meta
    with pytest.raises(ValueError, match="not a GeoParquet file"):
        pa.parquet.write_table(pa.table({"x": [1]}), tmp_path / "plain.parquet")
        register_geoparquet(ctx, "plain", str(tmp_path / "plain.parquet"))


def test_functions_that_cannot_work_fail_clearly(hosts):
    transform = "SELECT ST_AsText(ST_Transform(ST_GeomFromText('POINT(10 50)', 4326), 'EPSG:3857')) AS v"
    assert collect(hosts["sedonadb"], transform).num_rows == 1
    with pytest.raises(ValueError, match="st_transform is not available on datafusion-python: .*target CRS"):
        collect(hosts["datafusion"], transform)
    with pytest.raises(ValueError, match="Invalid function 'st_envelope_agg'"):
        collect(hosts["datafusion"], "SELECT ST_Envelope_Agg(ST_Point(1, 2)) AS e")
