"""Filter pushdown only ever changes speed: results equal a filtered full scan,
with and without statistics, on both hosts; and chunks really are skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely
from sedonadb_zarr_meta import ZarrMetaSpec, open_meta, write_meta

from .conftest import collect, items_table, write_group
from .engines import SedonaDB

N = 3000
CHUNK = 250
AREA = "POLYGON((-30 -20, 20 -20, 20 25, -30 25, -30 -20))"
POINT = "POINT(0 0)"


def _table() -> pa.Table:
    return items_table(N, seed=11).append_column("n", pa.array(np.arange(N, dtype="int64")))


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("pushdown")
    table = _table()
    with_stats = write_meta(table, base / "stats.zarr", chunk_size=CHUNK, sort=True)
    # The same (spatially sorted) rows written by zarr-python alone: no statistics.
    table = pa.table(open_meta(with_stats).scan())
    data = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    data["id"] = data["id"].astype(object)
    data["collection"] = data["collection"].astype(object)
    data["bbox"] = np.array(table.column("bbox").to_pylist(), dtype=object)
    without = write_group(base / "plain.zarr", data, chunks=CHUNK)
    assert not open_meta(without).has_stats
    return {"stats": with_stats, "plain": without}


def _geom_mask(table: pa.Table, predicate: str, wkt: str, distance: float = 0.0) -> np.ndarray:
    geoms = shapely.from_wkb(table.column("bbox").to_pylist())
    other = shapely.from_wkt(wkt)
    if predicate == "dwithin":
        return shapely.dwithin(geoms, other, distance)
    return getattr(shapely, predicate)(geoms, other)


CASES = [
    # (SQL predicate, python mask function over the full table)
    ("ST_Intersects(bbox, {g})", lambda t: _geom_mask(t, "intersects", AREA)),
    ("ST_Within(bbox, {g})", lambda t: _geom_mask(t, "within", AREA)),
    ("ST_Contains({g}, bbox)", lambda t: _geom_mask(t, "within", AREA)),
    ("ST_Covers({g}, bbox)", lambda t: _geom_mask(t, "covered_by", AREA)),
    ("ST_CoveredBy(bbox, {g})", lambda t: _geom_mask(t, "covered_by", AREA)),
    ("ST_DWithin(bbox, {p}, 12.5)", lambda t: _geom_mask(t, "dwithin", POINT, 12.5)),
    ("n = 1234", lambda t: pc.equal(t["n"], 1234).to_numpy()),
    ("n < 100", lambda t: pc.less(t["n"], 100).to_numpy()),
    ("n <= 100", lambda t: pc.less_equal(t["n"], 100).to_numpy()),
    ("n > 2900", lambda t: pc.greater(t["n"], 2900).to_numpy()),
    ("n >= 2900", lambda t: pc.greater_equal(t["n"], 2900).to_numpy()),
    ("n BETWEEN 700 AND 760", lambda t: (t["n"].to_numpy() >= 700) & (t["n"].to_numpy() <= 760)),
    ("n IN (3, 1500, 2999)", lambda t: np.isin(t["n"].to_numpy(), [3, 1500, 2999])),
    ("cloud_cover < 2.5", lambda t: t["cloud_cover"].to_numpy() < 2.5),
    (
        "cloud_cover BETWEEN 10 AND 11",
        lambda t: (t["cloud_cover"].to_numpy() >= 10) & (t["cloud_cover"].to_numpy() <= 11),
    ),
    (
        "date >= TIMESTAMP '2024-12-01'",
        lambda t: t["date"].to_numpy() >= np.datetime64("2024-12-01"),
    ),
    (
        "date BETWEEN TIMESTAMP '2024-03-01' AND TIMESTAMP '2024-03-08'",
        lambda t: (
            (t["date"].to_numpy() >= np.datetime64("2024-03-01"))
            & (t["date"].to_numpy() <= np.datetime64("2024-03-08"))
        ),
    ),
    ("collection = 'naip'", lambda t: t["collection"].to_numpy(zero_copy_only=False) == "naip"),
    (
        "collection IN ('naip', 'nope')",
        lambda t: t["collection"].to_numpy(zero_copy_only=False) == "naip",
    ),
    (
        "ST_Intersects(bbox, {g}) AND date < TIMESTAMP '2024-04-01' AND collection = 'landsat-c2-l2'",
        lambda t: (
            _geom_mask(t, "intersects", AREA)
            & (t["date"].to_numpy() < np.datetime64("2024-04-01"))
            & (t["collection"].to_numpy(zero_copy_only=False) == "landsat-c2-l2")
        ),
    ),
]


@pytest.mark.parametrize("host", ["sedonadb", "datafusion"])
@pytest.mark.parametrize("store", ["stats", "plain"])
@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0][:40] for c in CASES])
def test_pushdown_never_changes_results(hosts, stores, host, store, case):
    predicate, mask_of = CASES[case]
    con = hosts[host]
    uri = stores[store]
    full = collect(con, f"SELECT * FROM sd_read_zarr_meta('{uri}')")
    expected = sorted(np.asarray(full.column("id").to_pylist(), dtype=object)[mask_of(full)].tolist())
    where = predicate.format(g=con.geometry(AREA), p=con.geometry(POINT))
    got = collect(con, f"SELECT id FROM sd_read_zarr_meta('{uri}') WHERE {where}")
    assert sorted(got.column("id").to_pylist()) == expected


@pytest.mark.parametrize("store", ["stats", "plain"])
def test_spec_bbox_pushdown_matches(hosts, stores, store):
    engine = hosts["sedonadb"]
    con = engine.con
    uri = stores[store]
    full = pa.table(con.read(uri, format=ZarrMetaSpec()))
    expected = sorted(
        np.asarray(full.column("id").to_pylist(), dtype=object)[_geom_mask(full, "intersects", AREA)].tolist()
    )
    con.read(uri, format=ZarrMetaSpec()).to_view("spec_view", overwrite=True)
    got = engine.collect(f"SELECT id FROM spec_view WHERE ST_Intersects(bbox, {engine.geometry(AREA)})")
    assert sorted(got.column("id").to_pylist()) == expected


def _chunk_dirs(store_uri: str, column: str) -> Path:
    return Path(store_uri.removeprefix("file://")) / "meta" / column / "c"


def _blocks_kept(store: Path) -> tuple[list[bool], int]:
    """Per statistics block of ``store``, whether its recorded bbox meets AREA's
    bounds; and the rows per block."""
    import zarr

    stats = zarr.open_group(str(store / "meta"), mode="r").attrs["zarr_meta:stats"]
    q = shapely.from_wkt(AREA).bounds
    boxes = stats["columns"]["bbox"]["bbox"]
    keep = [b is not None and b[0] <= q[2] and q[0] <= b[2] and b[1] <= q[3] and q[1] <= b[3] for b in boxes]
    return keep, stats["block_rows"]


def _ids_intersecting_area(uri: str) -> list:
    """The sorted ids of ``uri``'s rows whose bbox intersects AREA (shapely's answer)."""
    full = pa.table(open_meta(uri).scan())
    ids = np.asarray(full.column("id").to_pylist(), dtype=object)
    return sorted(ids[_geom_mask(full, "intersects", AREA)].tolist())


def test_chunks_are_skipped_with_statistics(stores, tmp_path):
    """Delete every chunk whose statistics exclude the query: it still answers correctly."""
    src = Path(stores["stats"].removeprefix("file://"))
    dst = tmp_path / "pruned.zarr"
    shutil.copytree(src, dst)
    keep, _ = _blocks_kept(dst)
    q = shapely.from_wkt(AREA).bounds
    assert 0 < sum(keep) < len(keep) / 2
    for column in ("id", "collection", "date", "cloud_cover", "n", "bbox"):
        for i, k in enumerate(keep):
            if not k:
                (dst / "meta" / column / "c" / str(i)).unlink()
    expected = _ids_intersecting_area(stores["stats"])
    stream = open_meta(str(dst)).scan(bbox=("bbox", q))
    got = pa.table(stream)
    assert sum(keep) <= stream.chunks_read <= 6 * sum(keep)
    ids = set(got.column("id").to_pylist())
    assert set(expected) <= ids
    sedona = SedonaDB()
    got = sedona.collect(
        f"SELECT id FROM sd_read_zarr_meta('{dst.as_uri()}') "
        f"WHERE ST_Intersects(bbox, {sedona.geometry(AREA)})"
    )
    assert sorted(got.column("id").to_pylist()) == expected


def test_explain_shows_the_rows_statistics_keep(hosts, stores):
    """EXPLAIN (SedonaDB shows the scan's own line) names the rows of the chunks
    whose statistics allow a match, and the query over them is exact."""
    src = stores["stats"]
    keep, block = _blocks_kept(Path(src.removeprefix("file://")))
    kept = sum(min(block, N - i * block) for i, k in enumerate(keep) if k)
    assert 0 < kept < N
    area = hosts["sedonadb"].geometry(AREA)
    query = f"SELECT id FROM sd_read_zarr_meta('{src}') WHERE ST_Intersects(bbox, {area})"
    plan = "\n".join(collect(hosts["sedonadb"], f"EXPLAIN {query}").column("plan").to_pylist())
    assert f"rows_after_statistics={kept}/{N}" in plan, plan
    got = collect(hosts["sedonadb"], query).column("id").to_pylist()
    assert sorted(got) == _ids_intersecting_area(src)


def test_fallback_reads_only_filter_columns_of_non_matching_chunks(stores):
    uri = stores["plain"]
    table = open_meta(uri)
    q = shapely.from_wkt(AREA).bounds
    stream = table.scan(columns=[table.column_names.index("id")], bbox=("bbox", q))
    got = pa.table(stream)
    n_chunks = N // CHUNK
    assert stream.pieces_skipped > 0
    # bbox chunks are all decoded; id chunks only where something may match.
    assert stream.chunks_read < 2 * n_chunks
    full = pa.table(open_meta(uri).scan())
    expected = set(
        np.asarray(full.column("id").to_pylist(), dtype=object)[_geom_mask(full, "intersects", AREA)].tolist()
    )
    assert expected <= set(got.column("id").to_pylist())


def _corrupt_stats(src: str, dst: Path, change) -> str:
    import json

    shutil.copytree(Path(src.removeprefix("file://")), dst)
    meta_file = dst / "meta" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    change(meta["attributes"]["zarr_meta:stats"]["columns"])
    meta_file.write_text(json.dumps(meta))
    return dst.as_uri()


def _set_all(values: list, value) -> None:
    values[:] = [value] * len(values)


MALFORMED_STATS = {
    "bbox entries not boxes": lambda c: _set_all(c["bbox"]["bbox"], "x"),
    "bbox entries of 3 numbers": lambda c: _set_all(c["bbox"]["bbox"], [0, 0, 1]),
    "inverted bbox": lambda c: _set_all(c["bbox"]["bbox"], [10, 10, -10, -10]),
    "bbox list too short": lambda c: c["bbox"]["bbox"].pop(),
    "bbox not a list": lambda c: c["bbox"].update(bbox={"a": 1}),
    "min above max": lambda c: c["cloud_cover"].update(min=[1e9] * len(c["cloud_cover"]["min"])),
    "min of the wrong type": lambda c: _set_all(c["date"]["min"], "yesterday"),
    "max missing": lambda c: c["n"].pop("max"),
}


@pytest.mark.parametrize("case", list(MALFORMED_STATS))
def test_malformed_statistics_never_prune(stores, tmp_path, case):
    """Statistics that do not parse as what they claim are ignored, never trusted to skip rows."""
    uri = _corrupt_stats(stores["stats"], tmp_path / "bad.zarr", MALFORMED_STATS[case])
    full = pa.table(open_meta(stores["stats"]).scan())
    con = SedonaDB()
    where = (
        f"ST_Intersects(bbox, {con.geometry(AREA)}) AND cloud_cover < 50 "
        "AND n >= 100 AND date < TIMESTAMP '2024-09-01'"
    )
    got = collect(con, f"SELECT id FROM sd_read_zarr_meta('{uri}') WHERE {where}")
    mask = (
        _geom_mask(full, "intersects", AREA)
        & (full["cloud_cover"].to_numpy() < 50)
        & (full["n"].to_numpy() >= 100)
        & (full["date"].to_numpy() < np.datetime64("2024-09-01"))
    )
    expected = sorted(np.asarray(full.column("id").to_pylist(), dtype=object)[mask].tolist())
    assert len(expected) > 0
    assert sorted(got.column("id").to_pylist()) == expected


def test_verify_statistics(stores, tmp_path):
    from sedonadb_zarr_meta import verify_statistics

    assert verify_statistics(stores["stats"]) == []
    with pytest.raises(ValueError, match="no statistics"):
        verify_statistics(stores["plain"])
    import json as _json

    src = Path(stores["stats"].removeprefix("file://"))
    dst = tmp_path / "lying.zarr"
    shutil.copytree(src, dst)
    meta = dst / "meta" / "zarr.json"
    doc = _json.loads(meta.read_text())
    cols = doc["attributes"]["zarr_meta:stats"]["columns"]
    cols["bbox"]["bbox"][2] = [0.0, 0.0, 0.1, 0.1]  # understates block 2's extent
    cols["n"]["max"][0] = -1  # below block 0's values
    meta.write_text(_json.dumps(doc))
    problems = verify_statistics(str(dst))
    assert len(problems) == 2, problems
    assert "column 'bbox' block 2 (rows 500..750): bbox [0.0, 0.0, 0.1, 0.1] does not contain" in problems[0]
    assert "column 'n' block 0 (rows 0..250): max -1 is below the data's " in problems[1]


@pytest.mark.parametrize("host", ["sedonadb", "datafusion"])
def test_row_number_column_selects_rows_and_orders_the_scan(hosts, stores, host):
    """The ``row_number`` option adds each row's position; tests of it read only those rows (a
    keyset page reads from its position on)."""
    con = hosts[host]
    uri = stores["stats"]
    table = f"""sd_read_zarr_meta('{uri}', '{{"row_number": "_row"}}')"""
    full = pa.table(open_meta(uri).scan())  # the group's rows in order
    numbered = collect(con, f"SELECT * FROM {table} ORDER BY _row")
    assert numbered.schema.field("_row").type == pa.uint64() and numbered.column_names[-1] == "_row"
    assert numbered.column("_row").to_pylist() == list(range(N))
    assert numbered.drop_columns(["_row"]).column("id").to_pylist() == full.column("id").to_pylist()
    tail = pa.table(open_meta(uri, row_number="_row").scan(start=N - 10))
    assert tail.column("_row").to_pylist() == list(range(N - 10, N))
    ids = full.column("id").to_pylist()
    # Reading by position: those the group has, in group order, each once, within start..end.
    meta = open_meta(uri, row_number="_row")
    picked = meta.scan(rows=[2999, 7, N + 5, 1234, 7, 1235], start=5, end=3000)
    picked = pa.table(picked)
    assert picked.column("_row").to_pylist() == [7, 1234, 1235, 2999]
    assert picked.column("id").to_pylist() == [ids[7], ids[1234], ids[1235], ids[2999]]
    assert picked.drop_columns(["_row"]).schema == full.schema
    assert pa.table(meta.scan(columns=[0], rows=[])).num_rows == 0
    plain = pa.table(meta.scan(rows=[7, 1234], extension_types=False))
    assert not (plain.schema.field("bbox").metadata or {})
    assert plain.schema.field("bbox").type == pa.binary()
    boxes = [b for c in full.column("bbox").chunks for b in getattr(c, "storage", c).to_pylist()]
    assert plain.column("bbox").to_pylist() == [boxes[7], boxes[1234]]
    got = collect(con, f"SELECT _row, id FROM {table} WHERE _row > 2490 AND _row <= 2510 ORDER BY _row")
    assert got.column("_row").to_pylist() == list(range(2491, 2511))
    assert got.column("id").to_pylist() == ids[2491:2511]
    got = collect(con, f"SELECT id FROM {table} WHERE _row IN (7, 2999, 1234, 5000) ORDER BY _row")
    assert got.column("id").to_pylist() == [ids[7], ids[1234], ids[2999]]
    # A page after a position, with a filter: the first matches after it, in order.
    cloud = full.column("cloud_cover").to_numpy(zero_copy_only=False)
    expected = [i for i in range(1000, N) if cloud[i] < 20][:5]
    query = f"SELECT _row FROM {table} WHERE cloud_cover < 20 AND _row >= 1000 ORDER BY _row LIMIT 5"
    assert collect(con, query).column("_row").to_pylist() == expected
    if host == "sedonadb":  # its plans show the scan's own line
        plan = "\n".join(
            collect(con, f"EXPLAIN SELECT id FROM {table} WHERE _row >= 1000").column("plan").to_pylist()
        )
        assert f"rows_after_statistics={N - 1000}/{N}" in plan, plan
    with pytest.raises(Exception, match="'row_number' column 'id' is already an array"):
        collect(con, f"""SELECT * FROM sd_read_zarr_meta('{uri}', '{{"row_number": "id"}}')""")
