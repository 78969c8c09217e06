"""The ``zarr-meta`` command: ingest -> info -> query -> verify, run as a user runs it.

Every command runs in a subprocess (the installed console script, else
``python -m sedonadb_zarr_meta``) against stores written into tmp_path. The
catalogue is ``examples/stac/items.ndjson``, the README walkthrough's, and the
expected answers are computed from that file with shapely.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sedonadb_zarr_meta
import shapely
import shapely.geometry
import zarr
from sedonadb_zarr_meta import open_meta

from .conftest import BUCKET, cap_memory, s3_options, stac_api

ITEMS_FILE = Path(__file__).resolve().parents[1] / "examples" / "stac" / "items.ndjson"
ITEMS: list[dict[str, Any]] = [
    json.loads(line) for line in ITEMS_FILE.read_text().splitlines() if line.strip()
]
IDS = sorted(item["id"] for item in ITEMS)
#: An area of interest in north-west Italy, and the items whose footprints intersect it.
AOI = shapely.box(8.0, 44.5, 10.0, 46.0)
AOI_WKT = AOI.wkt
AOI_IDS = sorted(i["id"] for i in ITEMS if shapely.geometry.shape(i["geometry"]).intersects(AOI))
SPATIAL_SQL = (
    "SELECT id, collection, geometry FROM meta "
    f"WHERE ST_Intersects(geometry, ST_SetSRID(ST_GeomFromText('{AOI_WKT}'), 4326)) ORDER BY id"
)
S2_IDS = sorted(i["id"] for i in ITEMS if i["collection"] == "sentinel-2-l2a")
CLOUDS = {i["id"]: i["properties"]["eo:cloud_cover"] for i in ITEMS}


def command() -> list[str]:
    """The installed console script, else the module."""
    script = Path(sys.executable).parent / "zarr-meta"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sedonadb_zarr_meta"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``zarr-meta args...`` in a subprocess; stdout and stderr as text."""
    environment = {k: v for k, v in os.environ.items() if k != "ZARR_META_DEBUG"}
    environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
    environment.update(env or {})
    return subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        check=False,
        preexec_fn=cap_memory,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[str], code: int | tuple[int, ...] = (1, 2)) -> str:
    """The message of a command that must have failed with one ``zarr-meta: error:`` line and no traceback."""
    codes = (code,) if isinstance(code, int) else code
    assert proc.returncode in codes, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("zarr-meta: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0][len("zarr-meta: error: ") :]


def is_crs84(crs: Any) -> bool:
    """Whether ``crs`` is OGC:CRS84, as a code or as PROJJSON (as GeoParquet gives it)."""
    if isinstance(crs, dict):
        return crs.get("id") == {"authority": "OGC", "code": "CRS84"}
    return crs == "OGC:CRS84"


def printed_rows(stdout: str) -> list[list[str]]:
    """The data rows of a printed table (split on runs of 2+ spaces)."""
    import re

    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return [re.split(r" {2,}", line.strip()) for line in lines[rule + 1 :] if not line.startswith("(")]


def write_stac_api_free_source(directory: Path) -> Path:
    """The catalogue as ``write_meta`` takes it here: the ``.ndjson`` itself when it reads STAC
    files, else a GeoParquet file of the same items written with geopandas."""
    from sedonadb_zarr_meta import write_meta

    try:
        write_meta(str(ITEMS_FILE), directory / "probe.zarr")
        return ITEMS_FILE
    except Exception:
        pass
    import geopandas

    frame = geopandas.GeoDataFrame(
        {
            "id": [i["id"] for i in ITEMS],
            "collection": [i["collection"] for i in ITEMS],
            "datetime": [i["properties"]["datetime"] for i in ITEMS],
            "platform": [i["properties"]["platform"] for i in ITEMS],
            "eo:cloud_cover": [i["properties"]["eo:cloud_cover"] for i in ITEMS],
        },
        geometry=[shapely.geometry.shape(i["geometry"]) for i in ITEMS],
        crs="OGC:CRS84",
    )
    path = directory / "items.parquet"
    frame.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stac_api_free_source(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, source: Path) -> tuple[Path, str]:
    """``(store path, ingest's stdout)``: the catalogue ingested in chunks of 4, Hilbert-sorted."""
    store = tmp_path_factory.mktemp("cli") / "catalogue.zarr"
    stdout = ok(run("ingest", str(source), str(store), "--sort", "--chunk-size", "4", "--no-progress"))
    return store, stdout


@pytest.fixture(scope="module")
def store(ingested: tuple[Path, str]) -> Path:
    return ingested[0]


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------


def test_ingest_writes_the_items_and_summarises(ingested: tuple[Path, str]) -> None:
    store, stdout = ingested
    assert stdout.count("\n") == 1, stdout  # one paragraph
    assert stdout.startswith(f"Wrote {len(ITEMS)} rows to {store.resolve().as_uri()} (group meta) in ")
    assert "2 chunks of 4 rows with per-chunk statistics, Hilbert-sorted." in stdout
    table = pa.table(open_meta(str(store)).scan())
    assert sorted(table.column("id").to_pylist()) == IDS
    assert {"id", "collection", "geometry"} <= set(table.column_names)


def test_ingest_append_adds_rows(tmp_path: Path, source: Path) -> None:
    store = tmp_path / "twice.zarr"
    ok(run("ingest", str(source), str(store), "--chunk-size", "5"))
    stdout = ok(run("ingest", str(source), "--append", str(store)))  # options between SRC and URI
    assert stdout.startswith(
        f"Appended {len(ITEMS)} rows to {store.resolve().as_uri()} (group meta, now 16 rows)"
    )
    assert "4 chunks of 5 rows with per-chunk statistics" in stdout
    table = pa.table(open_meta(str(store), arrays=["id"]).scan())
    assert sorted(table.column("id").to_pylist()) == sorted(IDS * 2)


def test_ingest_into_another_group_with_a_crs(tmp_path: Path, source: Path) -> None:
    store = tmp_path / "grouped.zarr"
    stdout = ok(run("ingest", str(source), str(store), "--group", "items", "--crs", "EPSG:4326"))
    assert "(group items)" in stdout
    report = json.loads(ok(run("info", str(store), "--option", "group=items", "--json")))
    assert report["group"] == "items"
    assert report["num_rows"] == len(ITEMS)
    crs = {c["name"]: c["geometry"]["crs"] for c in report["columns"] if c["geometry"]}
    assert crs["geometry"] == "EPSG:4326"


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------


def test_info_describes_the_store(store: Path) -> None:
    stdout = ok(run("info", str(store)))
    lines = stdout.splitlines()
    assert f"store:       {store}" in lines
    assert "group:       meta" in lines
    assert f"rows:        {len(ITEMS)}" in lines
    assert "chunks:      4 rows per chunk, 2 chunks (from the statistics)" in lines
    first = lines.index(f"columns ({len(open_meta(str(store)).column_names)}):") + 1
    last = next(i for i, line in enumerate(lines) if line.startswith("statistics:"))
    columns = dict(line.strip().split(None, 1) for line in lines[first:last])
    assert columns["geometry"] == "geometry (WKB, CRS OGC:CRS84)"
    assert columns["id"] == "string"
    assert columns["collection"] == "string"
    assert any(line.startswith("statistics:  current; 2 chunks of 4 rows covering 8 rows") for line in lines)
    assert "icechunk:    no (a plain Zarr store)" in lines


def test_info_json(store: Path) -> None:
    report = json.loads(ok(run("info", str(store), "--json")))
    assert report["uri"] == str(store)
    assert report["group"] == "meta"
    assert report["num_rows"] == len(ITEMS)
    columns = {c["name"]: c for c in report["columns"]}
    assert columns["id"]["type"] == "string" and columns["id"]["geometry"] is None
    geometry = columns["geometry"]["geometry"]
    assert geometry["encoding"] == "WKB"
    assert is_crs84(geometry["crs"]), geometry
    assert [c["name"] for c in report["columns"]] == open_meta(str(store)).column_names
    assert report["chunks"] == {"rows_per_chunk": 4, "num_chunks": 2, "source": "statistics"}
    stats = report["statistics"]
    assert stats["present"] and stats["current"] and stats["problem"] is None
    assert (stats["num_rows"], stats["block_rows"], stats["num_blocks"]) == (8, 4, 2)
    assert stats["columns"]["geometry"] == ["bbox"]
    assert stats["columns"]["id"] == ["max", "min"]
    assert report["icechunk"] is None


def test_info_reports_stale_statistics_and_local_chunking(tmp_path: Path, store: Path) -> None:
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    group = zarr.open_group(str(copy / "meta"), mode="a")
    stats = dict(group.attrs["zarr_meta:stats"])
    stats["num_rows"] = 7
    group.attrs["zarr_meta:stats"] = stats
    report = json.loads(ok(run("info", str(copy), "--json")))
    assert report["statistics"]["current"] is False
    assert report["statistics"]["problem"] == "the statistics cover 7 rows but the group has 8"
    # Without usable statistics the chunking comes from the arrays' own metadata.
    assert report["chunks"] == {"rows_per_chunk": 4, "num_chunks": 2, "source": "array metadata"}
    assert "stale (the statistics cover 7 rows but the group has 8)" in ok(run("info", str(copy)))


# --------------------------------------------------------------------------------------------
# query
# --------------------------------------------------------------------------------------------


def test_query_prints_the_matching_items(store: Path) -> None:
    stdout = ok(run("query", str(store), SPATIAL_SQL))
    assert stdout.splitlines()[0].split() == ["id", "collection", "geometry"]
    rows = printed_rows(stdout)
    assert [r[0] for r in rows] == AOI_IDS
    assert 0 < len(AOI_IDS) < len(ITEMS)
    assert all(r[2].startswith("POLYGON ((") for r in rows)  # geometry printed as WKT
    assert stdout.rstrip().endswith(f"({len(AOI_IDS)} rows)")


def test_query_names_other_stores_with_the_table_function(store: Path) -> None:
    uri = store.resolve().as_uri()
    sql = (
        f"SELECT m.collection, count(*) AS n FROM meta m JOIN sd_read_zarr_meta('{uri}') o ON m.id = o.id "
        "GROUP BY 1 ORDER BY 1"
    )
    rows = printed_rows(ok(run("query", str(store), sql)))
    assert rows == [["landsat-c2-l2", "4"], ["sentinel-2-l2a", "4"]]


def test_query_on_datafusion_with_options(store: Path) -> None:
    sql = "SELECT id, \"eo:cloud_cover\" FROM meta WHERE collection = 'sentinel-2-l2a' ORDER BY id"
    stdout = ok(run("query", str(store), sql, "--host", "datafusion", "--option", "batch_size=2"))
    rows = printed_rows(stdout)
    assert [r[0] for r in rows] == S2_IDS
    assert [float(r[1]) for r in rows] == [CLOUDS[i] for i in S2_IDS]
    # arrays=a,b limits the columns the store exposes
    narrow = "SELECT * FROM meta ORDER BY id"
    stdout = ok(run("query", str(store), narrow, "--option", "arrays=id,collection", "--max-rows", "0"))
    assert stdout.splitlines()[0].split() == ["id", "collection"]
    assert [r[0] for r in printed_rows(stdout)] == IDS


def test_query_max_rows(store: Path) -> None:
    stdout = ok(run("query", str(store), "SELECT id FROM meta ORDER BY id", "--max-rows", "3"))
    assert [r[0] for r in printed_rows(stdout)] == IDS[:3]
    assert "(first 3 rows shown; raise --max-rows, or write them all with --out)" in stdout


def test_query_out_parquet_is_geoparquet(tmp_path: Path, store: Path) -> None:
    import geopandas

    out = tmp_path / "aoi.parquet"
    stdout = ok(run("query", str(store), SPATIAL_SQL, "--out", str(out)))
    assert stdout.strip() == f"wrote {len(AOI_IDS)} rows to {out} (parquet)"
    frame = geopandas.read_parquet(out)
    assert frame.geometry.name == "geometry"
    assert frame.crs == "OGC:CRS84"
    assert frame["id"].tolist() == AOI_IDS
    by_id = {i["id"]: shapely.geometry.shape(i["geometry"]) for i in ITEMS}
    assert all(g.equals_exact(by_id[i], 0) for i, g in zip(frame["id"], frame.geometry))


def test_query_out_csv(tmp_path: Path, store: Path) -> None:
    out = tmp_path / "s2.csv"
    sql = "SELECT id, \"eo:cloud_cover\", geometry FROM meta WHERE collection = 'sentinel-2-l2a' ORDER BY id"
    ok(run("query", str(store), sql, "--out", str(out)))
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == S2_IDS
    assert [float(r["eo:cloud_cover"]) for r in rows] == [CLOUDS[i] for i in S2_IDS]
    by_id = {i["id"]: shapely.geometry.shape(i["geometry"]) for i in ITEMS}
    assert all(shapely.from_wkt(r["geometry"]).equals_exact(by_id[r["id"]], 0) for r in rows)


def test_query_csv_to_stdout(store: Path) -> None:
    stdout = ok(run("query", str(store), "SELECT id FROM meta ORDER BY id", "--format", "csv"))
    assert stdout.splitlines() == ['"id"', *(f'"{i}"' for i in IDS)]


def test_query_out_geojson(tmp_path: Path, store: Path) -> None:
    out = tmp_path / "aoi.geojson"
    sql = SPATIAL_SQL.replace(
        "SELECT id, collection, geometry", 'SELECT id, collection, "eo:cloud_cover", geometry'
    )
    ok(run("query", str(store), sql, "--format", "geojson", "--out", str(out)))
    collection = json.loads(out.read_text())
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert [f["properties"]["id"] for f in features] == AOI_IDS
    assert [f["id"] for f in features] == AOI_IDS
    by_id = {i["id"]: i for i in ITEMS}
    for feature in features:
        item = by_id[feature["id"]]
        assert feature["properties"] == {
            "id": item["id"],
            "collection": item["collection"],
            "eo:cloud_cover": item["properties"]["eo:cloud_cover"],
        }
        assert shapely.geometry.shape(feature["geometry"]).equals_exact(
            shapely.geometry.shape(item["geometry"]), 0
        )


def test_query_files_keep_every_digit(tmp_path: Path) -> None:
    """Coordinates and numbers of 16 and 17 significant digits come back exactly from every
    output format (CSV's WKT has GEOS's 16 digits)."""
    from sedonadb_zarr_meta import write_meta

    box = shapely.box(1 / 3, -2 / 3, 10 / 3, 2 / 7)
    wide = shapely.box(1 / 3, -2 / 3, 10 / 3, 1e-7 + 1 / 7)  # 0.14285724285714285: 17 digits
    x = 1e-7 + 1 / 7
    table = pa.table(
        {"id": ["a"], "x": [x], "geometry": pa.array([box.wkb], pa.binary()), "wide": [wide.wkb]}
    )
    store = write_meta(table, tmp_path / "digits.zarr", geometry_columns=["wide"])
    sql = "SELECT id, x, geometry, wide FROM meta"
    for name in ("out.geojson", "out.parquet", "out.csv"):
        ok(run("query", store, sql, "--out", str(tmp_path / name)))
    feature = json.loads((tmp_path / "out.geojson").read_text())["features"][0]
    assert shapely.geometry.shape(feature["geometry"]).equals_exact(box, 0)
    assert feature["properties"]["x"] == x
    import geopandas

    frame = geopandas.read_parquet(tmp_path / "out.parquet")
    assert frame.geometry[0].equals_exact(box, 0) and frame["x"][0] == x
    assert frame["wide"][0].equals_exact(wide, 0)  # a geometry column of its own in GeoParquet
    with (tmp_path / "out.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    assert shapely.from_wkt(row["geometry"]).equals_exact(box, 0) and float(row["x"]) == x


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------


def test_verify_sound_statistics(store: Path) -> None:
    stdout = ok(run("verify", str(store)))
    assert stdout.startswith(f"{store}: the statistics agree with the data: 8 rows in 2 chunks of 4 rows;")


def test_verify_corrupted_statistics_exit_1(tmp_path: Path, store: Path) -> None:
    copy = tmp_path / "corrupt.zarr"
    shutil.copytree(store, copy)
    group = zarr.open_group(str(copy / "meta"), mode="a")
    stats = json.loads(json.dumps(group.attrs["zarr_meta:stats"]))
    stats["columns"]["geometry"]["bbox"][0] = [0.0, 0.0, 0.001, 0.001]  # excludes every footprint
    group.attrs["zarr_meta:stats"] = stats
    proc = run("verify", str(copy))
    assert proc.returncode == 1, proc
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{copy}: 1 problem with the chunk statistics:"
    assert lines[1].startswith("  column 'geometry' block 0 (rows 0..4): bbox [0.0, 0.0, 0.001, 0.001]")


def test_verify_without_statistics_is_an_error(tmp_path: Path) -> None:
    store = tmp_path / "plain.zarr"
    group = zarr.open_group(str(store), mode="w").require_group("meta")
    group.create_array("id", shape=(2,), dtype=str, chunks=(2,))[:] = ["a", "b"]
    message = one_error_line(run("verify", str(store)), 1)
    assert "the group has no statistics" in message


# --------------------------------------------------------------------------------------------
# help, version, errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subcommand", [None, "info", "ingest", "query", "verify", "serve"])
def test_help(subcommand: str | None) -> None:
    args = [subcommand, "--help"] if subcommand else ["--help"]
    stdout = ok(run(*[a for a in args if a]))
    assert stdout.startswith(f"usage: zarr-meta{' ' + subcommand if subcommand else ''}")
    assert "examples:" in stdout
    assert f"zarr-meta {subcommand or 'query'} " in stdout.split("examples:")[1]


def test_version() -> None:
    assert ok(run("--version")).strip() == f"zarr-meta {sedonadb_zarr_meta.__version__}"


def test_module_entry_point_is_the_same_command(store: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sedonadb_zarr_meta", "info", str(store), "--json"],
        preexec_fn=cap_memory,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert json.loads(ok(proc))["num_rows"] == len(ITEMS)


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["info", "{tmp}/missing.zarr"], 1, "{tmp}/missing.zarr: store not found"),
        (["query", "{tmp}/missing.zarr", "SELECT 1"], 1, "missing.zarr: store not found"),
        (["query", "{store}", "SELECT 1", "--option", "colour=blue"], 2, "unknown option 'colour'"),
        (
            ["info", "{store}", "--option", "batch_size=0"],
            2,
            "option 'batch_size' must be a positive integer",
        ),
        (["info", "{store}", "--option", "batch_size"], 2, "expected KEY=VALUE, got 'batch_size'"),
        (["query", "{store}", "SELEC id FROM meta"], 1, "SELEC"),
        (
            ["query", "{store}", "SELECT no_such_column FROM meta", "--host", "datafusion"],
            1,
            "no_such_column",
        ),
        (["query", "{store}", "SELECT id FROM meta", "--out", "{tmp}/out.txt"], 2, "cannot tell the format"),
        (["ingest", "{tmp}/missing.ndjson", "{tmp}/new.zarr"], 1, "missing.ndjson: no such file"),
        (["ingest", "{tmp}/only-one-path.zarr"], 2, "give SRC and URI"),
        (["ingest", "x.ndjson", "y.zarr", "--bbox", "1,2,3"], 2, "expected four numbers"),
        (["ingest", "x.ndjson", "y.zarr", "--collections", "a"], 2, "--collections need --stac-api"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, store: Path, args: list[str], code: int, expected: str) -> None:
    fill = {"tmp": str(tmp_path), "store": str(store)}
    message = one_error_line(run(*(a.format(**fill) for a in args)), code)
    assert expected.format(**fill) in message


def test_errors_collapse_newlines_and_debug_shows_the_traceback(tmp_path: Path, store: Path) -> None:
    sql = "SELECT id\nFROM meta\nWHERE no_such_column = 1"
    message = one_error_line(run("query", str(store), sql), 1)
    assert "no_such_column" in message
    proc = run("info", str(tmp_path / "missing.zarr"), env={"ZARR_META_DEBUG": "1"})
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.splitlines()[-1] == f"zarr-meta: error: {tmp_path}/missing.zarr: store not found"


def test_ctrl_c_stops_a_query_quietly_with_status_130(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal
    import time

    from sedonadb_zarr_meta import _cli, write_meta

    uri = f"s3://{BUCKET}/ctrl-c.zarr"
    options = s3_options(s3)
    write_meta(pa.table({"id": [f"item-{i}" for i in range(64)]}), uri, chunk_size=8, storage_options=options)
    # The proxy holds every request for an id chunk: the query waits on the store,
    # memory flat, until the Ctrl-C sent once a request is known to be held.
    s3.control.configure(fault="hold", fault_count=-1, fault_match="/ctrl-c.zarr/meta/id/c/")

    def interrupt_when_waiting() -> None:
        s3.control.wait_held()
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_when_waiting, daemon=True)
    storage = [arg for key, value in options.items() for arg in ("--storage-option", f"{key}={value}")]
    # Ctrl-C as a terminal delivers it: a run started in the background by a shell without
    # job control inherits SIGINT ignored, which the command rightly keeps.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    interrupter.start()
    try:
        status = _cli.main(["query", uri, "SELECT count(*) FROM meta WHERE id <> ''", *storage])
        after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)
        interrupter.join(60)
        s3.control.clear()
    assert status == 130
    # Without Ctrl-C the held requests end only by object_store's 30 s request timeout.
    assert time.monotonic() - started < 25
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert after is signal.default_int_handler  # the command's own handler is gone


def test_a_run_with_sigint_ignored_keeps_it_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A background job (nohup, a shell without job control) must not be stopped by Ctrl-C."""
    import signal

    from sedonadb_zarr_meta import _cli, write_meta

    store = tmp_path / "ignored.zarr"
    write_meta(pa.table({"id": ["a", "b", "c"]}), str(store))
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        status = _cli.main(["query", str(store), "SELECT count(*) AS n FROM meta"])
        during = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert status == 0
    assert during is signal.SIG_IGN
    assert capsys.readouterr().out.splitlines() == ["n", "-", "3", "(1 row)"]


# --------------------------------------------------------------------------------------------
# STAC API searches
# --------------------------------------------------------------------------------------------


def test_stac_api_arguments_reach_ingest_stac_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sedonadb_zarr_meta import _cli, write_meta

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_search(
        api_url: str,
        uri: str,
        *,
        mode: str = "w",
        chunk_size: int = 100_000,
        sort: bool = False,
        progress: bool | None = None,
        storage_options: dict[str, Any] | None = None,
        **search: Any,
    ) -> str:
        # The signature ingest_stac_search documents: write options named, search parameters in **search.
        kwargs = {"mode": mode, "chunk_size": chunk_size, "sort": sort, "progress": progress}
        calls.append(((api_url, uri), {**kwargs, "storage_options": storage_options, **search}))
        table = pa.table({"id": ["a", "b", "c"], "collection": ["x", "x", "y"]})
        return write_meta(table, uri, chunk_size=kwargs["chunk_size"], mode=kwargs["mode"])

    monkeypatch.setattr(sedonadb_zarr_meta, "ingest_stac_search", fake_search, raising=False)
    store = tmp_path / "search.zarr"
    status = _cli.main(
        [
            "ingest",
            "--stac-api",
            "http://127.0.0.1:9/v1",
            str(store),
            "--collections",
            "s2,landsat",
            "--bbox",
            "-10.5,35,5,45.25",
            "--datetime",
            "2024-07-01/2024-07-31",
            "--max-items",
            "50",
            "--limit",
            "10",
            "--chunk-size",
            "2",
            "--sort",
            "--no-progress",
            "--storage-option",
            "aws_region=eu-central-1",
        ]
    )
    assert status == 0
    assert calls == [
        (
            ("http://127.0.0.1:9/v1", str(store)),
            {
                "mode": "w",
                "chunk_size": 2,
                "sort": True,
                "progress": False,
                "storage_options": {"aws_region": "eu-central-1"},
                "collections": ["s2", "landsat"],
                "bbox": [-10.5, 35.0, 5.0, 45.25],
                "datetime": "2024-07-01/2024-07-31",
                "max_items": 50,
                "limit": 10,
            },
        )
    ]
    out = capsys.readouterr().out
    assert out.startswith(f"Wrote 3 rows to {store.resolve().as_uri()} (group meta) in ")
    assert "from the STAC API http://127.0.0.1:9/v1: 2 columns (collection, id), 2 chunks of 2 rows" in out
    # SRC and --stac-api together, and write options the search does not take, are usage errors.
    assert _cli.main(["ingest", "items.ndjson", str(store), "--stac-api", "http://127.0.0.1:9/v1"]) == 2
    assert _cli.main(["ingest", "--stac-api", "http://127.0.0.1:9/v1", str(store), "--crs", "EPSG:4326"]) == 2
    assert len(calls) == 1


@pytest.fixture
def stac_api_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with stac_api(ITEMS) as served:
        yield served


def test_ingest_from_a_stac_api(tmp_path: Path, stac_api_server: tuple[str, list[dict[str, Any]]]) -> None:
    if not hasattr(sedonadb_zarr_meta, "ingest_stac_search"):
        pytest.skip("this sedonadb_zarr_meta has no ingest_stac_search")
    pytest.importorskip("pystac_client")
    url, searches = stac_api_server
    store = tmp_path / "api.zarr"
    stdout = ok(
        run("ingest", "--stac-api", url, str(store), "--collections", "sentinel-2-l2a", "--max-items", "10")
    )
    assert stdout.startswith(f"Wrote {len(S2_IDS)} rows to {store.resolve().as_uri()} (group meta) in ")
    assert f"from the STAC API {url}:" in stdout
    assert len(searches) >= 1
    assert "sentinel-2-l2a" in json.dumps(searches[0])
    rows = printed_rows(ok(run("query", str(store), "SELECT id FROM meta ORDER BY id")))
    assert [r[0] for r in rows] == S2_IDS


# --------------------------------------------------------------------------------------------
# Icechunk repositories
# --------------------------------------------------------------------------------------------


def test_icechunk_ingest_and_info(tmp_path: Path, source: Path) -> None:
    pytest.importorskip("icechunk")
    repo = tmp_path / "catalogue.icechunk"
    stdout = ok(run("ingest", str(source), str(repo), "--icechunk", "--message", "first items"))
    assert stdout.startswith(f"Wrote {len(ITEMS)} rows to {repo.resolve().as_uri()} (group meta)")
    report = json.loads(ok(run("info", str(repo), "--json")))
    assert report["num_rows"] == len(ITEMS)
    versions = report["icechunk"]
    assert versions["reading"] == {"branch": "main"}
    assert list(versions["branches"]) == ["main"]
    assert versions["snapshots"][0]["message"] == "first items"
    assert versions["branches"]["main"] == versions["snapshots"][0]["id"]
    assert report["chunks"]["rows_per_chunk"] == 100_000
    human = ok(run("info", str(repo)))
    assert "icechunk:    repository; reading branch main; 1 branch, 0 tags, 2 snapshots" in human
    assert f"branch main -> {versions['branches']['main']}" in human
    assert "first items" in human
    # A snapshot chosen by id, through the same --option as every read option.
    latest = versions["snapshots"][0]["id"]
    chosen = json.loads(ok(run("info", str(repo), "--option", f"snapshot={latest}", "--json")))
    assert chosen["icechunk"]["reading"] == {"snapshot": latest}
    assert chosen["num_rows"] == len(ITEMS)
