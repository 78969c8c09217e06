"""`sd_read_zarr_meta(...)` in SQL on both hosts: SedonaDB 0.5 and datafusion-python 54.1."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely
from sedonadb_zarr_meta import ZarrMetaSpec, register

from .conftest import call, collect, regions_parquet, sjoin_pairs, write_group
from .engines import SedonaDB

AREA = "POLYGON((-20 -10, 40 -10, 40 35, -20 35, -20 -10))"


@pytest.fixture
def datafusion_ctx():
    import datafusion

    return register(datafusion.SessionContext())


@pytest.fixture(params=["sedonadb", "datafusion"])
def host(request, sedona, datafusion_ctx):
    return sedona if request.param == "sedonadb" else datafusion_ctx


def ids(table: pa.Table) -> list[str]:
    return sorted(table.column("id").to_pylist())


def test_select_star_and_projection(host, items_store, items_data):
    table = collect(host, f"SELECT * FROM {call(items_store)}")
    assert sorted(table.schema.names) == ["bbox", "cloud_cover", "collection", "date", "id"]
    assert table.num_rows == len(items_data["id"])
    assert ids(table) == sorted(items_data["id"].tolist())
    by_id = {r["id"]: r for r in table.to_pylist()}
    for i in (0, 17, 499):
        row = by_id[items_data["id"][i]]
        assert row["bbox"] == items_data["bbox"][i]
        assert row["collection"] == items_data["collection"][i]
    proj = collect(host, f"SELECT collection, cloud_cover FROM {call(items_store)}")
    assert proj.schema.names == ["collection", "cloud_cover"]


def test_count_where_and_limit(host, items_store, items_data):
    n = len(items_data["id"])
    t = collect(host, f"SELECT count(*) AS n FROM {call(items_store)}")
    assert t.column("n").to_pylist() == [n]
    mask = (
        (items_data["collection"] == "landsat-c2-l2")
        & (items_data["cloud_cover"] > 20.5)
        & (items_data["date"] < np.datetime64("2024-06-01"))
    )
    t = collect(
        host,
        f"SELECT id FROM {call(items_store)} WHERE collection = 'landsat-c2-l2' "
        "AND cloud_cover > 20.5 AND date < TIMESTAMP '2024-06-01'",
    )
    assert ids(t) == sorted(items_data["id"][mask].tolist())
    assert collect(host, f"SELECT id FROM {call(items_store)} LIMIT 9").num_rows == 9


def test_st_intersects_literal(host, sedona, items_store, items_data):
    expected = sorted(
        items_data["id"][
            shapely.intersects(shapely.from_wkb(items_data["bbox"]), shapely.from_wkt(AREA))
        ].tolist()
    )
    if host is sedona:
        query = f"SELECT id FROM {call(items_store)} m WHERE ST_Intersects(m.bbox, {SedonaDB.geometry(AREA)})"
    else:
        # datafusion-python: the literal must carry the column's CRS.
        query = (
            f"SELECT id FROM {call(items_store)} m "
            f"WHERE ST_Intersects(m.bbox, sd_geomfromtext('{AREA}', 'OGC:CRS84'))"
        )
    assert ids(collect(host, query)) == expected


def test_reordered_and_renamed(host, items_store, items_data):
    t = collect(host, f"SELECT m.collection AS c, m.id FROM {call(items_store)} m")
    assert t.schema.names == ["c", "id"]
    assert sorted(zip(t.column("id").to_pylist(), t.column("c").to_pylist())) == sorted(
        zip(items_data["id"].tolist(), items_data["collection"].tolist())
    )


def test_aliases_self_join_cte_subquery_and_options(host, items_store, items_data):
    n = len(items_data["id"])
    t = collect(
        host,
        f"SELECT count(*) AS n FROM {call(items_store)} AS a JOIN {call(items_store)} AS b ON a.id = b.id",
    )
    assert t.column("n").to_pylist() == [n]
    t = collect(
        host,
        f"WITH x AS (SELECT id, collection FROM {call(items_store)}) "
        "SELECT count(*) AS n FROM x WHERE collection = 'naip'",
    )
    assert t.column("n").to_pylist() == [int((items_data["collection"] == "naip").sum())]
    t = collect(
        host,
        f"SELECT count(*) AS n FROM (SELECT id FROM {call(items_store)} WHERE cloud_cover < 50) s",
    )
    assert t.column("n").to_pylist() == [int((items_data["cloud_cover"] < 50).sum())]
    t = collect(host, f"SELECT * FROM {call(items_store, {'arrays': ['id', 'date']})}")
    assert sorted(t.schema.names) == ["date", "id"]


def test_spatial_join_with_geoparquet(host, sedona, tmp_path, items_store, items_data):
    parquet = regions_parquet(
        tmp_path / "regions.parquet", {"west": (-180, -60, 0, 20), "east": (0, -60, 180, 20)}
    )
    expected = sjoin_pairs(items_data, parquet)
    if host is sedona:
        host.read_parquet(str(parquet)).to_view("regions", overwrite=True)
    else:
        host.register_parquet("regions", str(parquet))
    # datafusion reads GeoParquet geometry as plain WKB: give it its CRS.
    region_geom = "r.geometry" if host is sedona else "sd_geomfromwkb(r.geometry, 'OGC:CRS84')"
    query = (
        f"SELECT m.id, r.region FROM {call(items_store)} m "
        f"JOIN regions r ON ST_Intersects(m.bbox, {region_geom})"
    )
    got = sorted((r["id"], r["region"]) for r in collect(host, query).to_pylist())
    assert got == expected
    if host is sedona:
        plan = "\n".join(pa.table(host.sql(query).explain()).column("plan").to_pylist())
        assert "SpatialJoinExec" in plan


def test_same_as_read_format(sedona, datafusion_ctx, items_store):
    via_format = pa.table(sedona.read_format(ZarrMetaSpec(), items_store)).sort_by("id")
    for con in (sedona, datafusion_ctx):
        via_sql = collect(con, f"SELECT * FROM {call(items_store)}").sort_by("id")
        assert via_sql.select(via_format.schema.names).equals(via_format)


@pytest.mark.parametrize(
    "args, message",
    [
        ("", "takes 1 or 2 arguments"),
        ("'a', '{{}}', 'c'", "takes 1 or 2 arguments"),
        ("NULL", "must not be NULL"),
        ("42", "must be a string literal"),
        ("'{uri}', 'not json'", "not valid JSON"),
        ("'{uri}', '{{\"colour\": 1}}'", "unknown option 'colour'"),
    ],
)
def test_bad_calls(host, items_store, args, message):
    query = f"SELECT * FROM sd_read_zarr_meta({args.format(uri=items_store)})"
    with pytest.raises(ValueError, match=message) as info:
        collect(host, query)
    assert "sd_read_zarr_meta(uri VARCHAR [, options_json VARCHAR])" in str(info.value)
    assert collect(host, "SELECT 1 AS one").column("one").to_pylist() == [1]


def test_missing_store_is_a_clear_error(host, sedona, tmp_path):
    uri = (tmp_path / "missing.zarr").as_uri()
    # As planning reports it: SedonaDB passes the class on, datafusion-python makes it a ValueError.
    expected = FileNotFoundError if host is sedona else ValueError
    with pytest.raises(expected, match="missing.zarr: store not found"):
        collect(host, f"SELECT * FROM sd_read_zarr_meta('{uri}')")


def test_string_literal_with_call_text_is_unchanged(sedona, items_store):
    text = "sd_read_zarr_meta('x') -- not a call"
    quoted = text.replace("'", "''")
    t = collect(
        sedona,
        f"SELECT '{quoted}' AS s, count(*) AS n FROM {call(items_store)} /* sd_read_zarr_meta('y') */",
    )
    assert t.column("s").to_pylist() == [text]
    assert t.column("n").to_pylist() == [500]


def test_wrong_host_version_is_refused(monkeypatch, items_store):
    import datafusion

    monkeypatch.setattr(datafusion, "__version__", "53.0.0")
    with pytest.raises(ImportError, match="datafusion 53.0.0 is installed.*DataFusion 54"):
        register(datafusion.SessionContext())


def test_plan_uses_filter_pushdown_on_datafusion(datafusion_ctx, items_store):
    plan = collect(
        datafusion_ctx,
        f"EXPLAIN SELECT id FROM {call(items_store)} WHERE collection = 'naip'",
    )
    text = "\n".join(str(v) for v in plan.column(1).to_pylist())
    assert "ZarrMetaExec" in text or "ForeignExecutionPlan" in text


def test_write_group_helper_works_with_v2(tmp_path, host):
    uri = write_group(tmp_path / "v2.zarr", {"x": np.arange(5)}, zarr_format=2)
    assert collect(host, f"SELECT sum(x) AS s FROM {call(uri)}").column("s").to_pylist() == [10]


def test_wrong_sedonadb_version_is_refused(monkeypatch, sedona, items_store):
    import sedonadb
    from sedonadb_zarr_meta import ZarrMetaSpec

    monkeypatch.setattr(sedonadb, "__version__", "0.6.0")
    with pytest.raises(ImportError, match="sedonadb 0.6.0 is installed.*0.5"):
        sedona.read_format(ZarrMetaSpec(), items_store)


def test_register_without_sedona_functions(items_store):
    import datafusion

    ctx = register(datafusion.SessionContext(), sedona_functions=False)
    assert collect(ctx, f"SELECT count(*) AS n FROM {call(items_store)}").column("n").to_pylist() == [500]
    with pytest.raises(ValueError, match="(?i)st_intersects"):
        collect(ctx, f"SELECT id FROM {call(items_store)} m WHERE ST_Intersects(m.bbox, m.bbox)")


def test_calls_over_different_stores_are_not_merged(host, tmp_path):
    """Two calls over stores of the same schema in scalar subqueries: each
    answers from its own store (DataFusion compares scans by name and schema)."""
    a = write_group(tmp_path / "a.zarr", {"x": np.arange(10)}, chunks=4)
    b = write_group(tmp_path / "b.zarr", {"x": np.arange(20)}, chunks=4)
    got = collect(
        host,
        f"SELECT (SELECT count(*) FROM {call(a)}) AS a, (SELECT sum(x) FROM {call(b)}) AS b, "
        f"(SELECT sum(x) FROM {call(a, {'batch_size': 3})}) AS a3",
    )
    assert got.to_pylist() == [{"a": 10, "b": 190, "a3": 45}]
    union = collect(
        host, f"SELECT count(*) AS n FROM {call(a)} UNION ALL SELECT count(*) AS n FROM {call(b)}"
    )
    assert sorted(union.column("n").to_pylist()) == [10, 20]
