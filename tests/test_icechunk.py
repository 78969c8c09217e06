"""Icechunk repositories written by Python icechunk and zarr-python: every
surface reads them at a branch, tag or snapshot; time travel in SQL on both
hosts; list_versions; write_meta commits (and leaves a branch untouched when
it fails); a scan racing commits sees one snapshot; broken repositories give
errors naming them; the same on the loopback S3 server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import zarr
from sedonadb_zarr_meta import ZarrMetaError, ZarrMetaSpec, list_versions, open_meta, write_meta

from .conftest import call, cap_memory, collect, items_table, write_group

icechunk = pytest.importorskip(
    "icechunk", reason="Icechunk repositories are written with the icechunk package (Python >= 3.12)"
)

CHUNK = 100


def batch(n: int, start: int, seed: int) -> pa.Table:
    """``n`` items whose ids are ``item-{start}`` onwards (distinct across batches)."""
    table = items_table(n, seed=seed)
    ids = pa.array([f"item-{start + i:05d}" for i in range(n)])
    return table.set_column(table.schema.get_field_index("id"), "id", ids)


def ids(table: pa.Table) -> list[str]:
    return sorted(table.column("id").to_pylist())


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A local repository: 300 items tagged v1, then 200 appended on main; a
    branch dev from v1 with 50 other items appended."""
    path = tmp_path_factory.mktemp("ic") / "catalogue.icechunk"
    first, more, other = batch(300, 0, 1), batch(200, 300, 2), batch(50, 1000, 3)
    write_meta(first, path, icechunk=True, chunk_size=CHUNK, message="first 300 items")
    r = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    v1 = r.lookup_branch("main")
    r.create_tag("v1", snapshot_id=v1)
    write_meta(more, path, mode="a", message="append 200 items")
    r.create_branch("dev", snapshot_id=v1)
    write_meta(other, path, mode="a", branch="dev", message="dev items")
    return {
        "path": str(path),
        "uri": path.resolve().as_uri(),
        "v1": v1,
        "main": r.lookup_branch("main"),
        "ids_v1": ids(first),
        "ids_main": ids(pa.concat_tables([first, more])),
        "ids_dev": ids(pa.concat_tables([first, other])),
    }


# --- reading: every surface, every kind of version --------------------------------------------


def test_open_meta_reads_main_by_default(repo):
    t = open_meta(repo["path"])
    assert t.num_rows == 500
    table = pa.table(t.scan())
    assert ids(table) == repo["ids_main"]
    assert table.schema.field("bbox").metadata[b"ARROW:extension:name"] == b"geoarrow.wkb"
    assert pa.table(open_meta(repo["uri"]).scan()).equals(table)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ({"tag": "v1"}, "ids_v1"),
        ({"branch": "dev"}, "ids_dev"),
        ({"branch": "main"}, "ids_main"),
        ("v1", "ids_v1"),
    ],
)
def test_versions_on_every_surface(repo, hosts, version, expected):
    options = {"snapshot": repo["v1"]} if version == "v1" else version
    want = repo[expected]
    assert ids(pa.table(open_meta(repo["path"], **options).scan())) == want
    for host, con in hosts.items():
        got = collect(con, f"SELECT id FROM {call(repo['path'], options)}")
        assert ids(got) == want, host
    sedona = hosts["sedonadb"].con
    assert ids(pa.table(sedona.read_format(ZarrMetaSpec(options), repo["uri"]))) == want
    assert ids(pa.table(sedona.read(repo["uri"], format=ZarrMetaSpec(options)))) == want
    assert ids(pa.table(sedona.read(repo["uri"], format="zarr_meta", options=options))) == want


def test_time_travel_in_sql_on_both_hosts(repo, hosts):
    path = repo["path"]
    query = f"""
        SELECT now.id FROM {call(path)} now
        LEFT JOIN {call(path, {"tag": "v1"})} before ON now.id = before.id
        WHERE before.id IS NULL
    """
    added = sorted(set(repo["ids_main"]) - set(repo["ids_v1"]))
    assert len(added) == 200
    for host, con in hosts.items():
        assert ids(collect(con, query)) == added, host
        counts = collect(
            con,
            f"SELECT (SELECT count(*) FROM {call(path)}) AS main, "
            f"(SELECT count(*) FROM {call(path, {'tag': 'v1'})}) AS v1",
        )
        assert counts.to_pylist() == [{"main": 500, "v1": 300}], host


def test_spatial_filter_on_a_tag(repo, hosts):
    area = "POLYGON((-30 -20, 20 -20, 20 25, -30 25, -30 -20))"
    table = pa.table(open_meta(repo["path"], tag="v1").scan())
    import shapely

    expected = sorted(
        i
        for i, b in zip(table.column("id").to_pylist(), table.column("bbox").to_pylist())
        if shapely.intersects(shapely.from_wkb(b), shapely.from_wkt(area))
    )
    assert expected
    for engine in hosts.values():
        got = engine.collect(
            f"SELECT id FROM {call(repo['path'], {'tag': 'v1'})} "
            f"WHERE ST_Intersects(bbox, {engine.geometry(area)})"
        )
        assert ids(got) == expected, engine.name


def test_list_versions(repo):
    v = list_versions(repo["path"])
    assert v.branches["main"] == repo["main"]
    assert set(v.branches) == {"main", "dev"}
    assert v.tags == {"v1": repo["v1"]}
    messages = [s.message for s in v.snapshots]
    assert {"first 300 items", "append 200 items", "dev items"} <= set(messages)
    assert messages[-1] == "Repository initialized"
    times = [s.time for s in v.snapshots]
    assert times == sorted(times, reverse=True)
    by_id = {s.id: s for s in v.snapshots}
    assert by_id[repo["main"]].parent_id == repo["v1"]
    assert all(t.tzinfo is not None for t in times)


# --- errors ----------------------------------------------------------------------------------


def test_missing_version_lists_what_the_repository_has(repo, hosts):
    for options, named in [({"tag": "v9"}, "tag 'v9'"), ({"branch": "nope"}, "branch 'nope'")]:
        with pytest.raises(FileNotFoundError) as e:
            open_meta(repo["path"], **options)
        message = str(e.value)
        assert named in message and repo["path"] in message, message
        assert "'dev'" in message and "'main'" in message and "'v1'" in message, message
        for con in hosts.values():
            with pytest.raises(con.missing_store_error, match=named):
                collect(con, f"SELECT count(*) FROM {call(repo['path'], options)}")
    with pytest.raises(FileNotFoundError, match="snapshot '0000000000000000000G'"):
        open_meta(repo["path"], snapshot="0000000000000000000G")
    with pytest.raises(ValueError, match="not an Icechunk snapshot id"):
        open_meta(repo["path"], snapshot="not-a-snapshot")
    with pytest.raises(ValueError, match="at most one of 'branch', 'tag' and 'snapshot'"):
        open_meta(repo["path"], branch="main", tag="v1")


def test_version_options_on_a_plain_store(tmp_path, hosts):
    plain = write_group(tmp_path / "plain.zarr", {"x": np.arange(10)})
    with pytest.raises(ValueError, match="'tag' option applies only to Icechunk repositories"):
        open_meta(plain, tag="v1")
    for con in hosts.values():
        with pytest.raises(ValueError, match="applies only to Icechunk repositories"):
            collect(con, f"SELECT count(*) FROM {call(plain, {'branch': 'main'})}")
    with pytest.raises(FileNotFoundError):
        list_versions(plain)


def _copy(src: str, dst: Path) -> str:
    import shutil

    shutil.copytree(src, dst)
    return str(dst)


def test_missing_snapshot_file(repo, tmp_path):
    path = _copy(repo["path"], tmp_path / "broken.icechunk")
    (Path(path) / "snapshots" / repo["main"]).unlink()
    with pytest.raises(ZarrMetaError) as e:
        pa.table(open_meta(path).scan())
    message = str(e.value)
    assert path in message and "snapshot" in message.lower(), message
    # Other versions are intact.
    assert ids(pa.table(open_meta(path, tag="v1").scan())) == repo["ids_v1"]


def test_missing_and_corrupt_manifests(repo, tmp_path):
    for damage in ("delete", "truncate"):
        path = _copy(repo["path"], tmp_path / f"{damage}.icechunk")
        for manifest in (Path(path) / "manifests").iterdir():
            if damage == "delete":
                manifest.unlink()
            else:
                manifest.write_bytes(manifest.read_bytes()[:20])
        with pytest.raises(pa.ArrowInvalid) as e:
            pa.table(open_meta(path).scan())
        message = str(e.value)
        assert path in message and "manifest" in message.lower(), message


def test_not_a_repository_directory_with_markers(tmp_path):
    broken = tmp_path / "fake.icechunk"
    broken.mkdir()
    (broken / "repo").write_bytes(b"not a repository")
    with pytest.raises(ZarrMetaError) as e:
        open_meta(str(broken))
    assert str(broken) in str(e.value)


# --- writing -------------------------------------------------------------------------------------


def test_write_commits_and_appends_recompute_statistics(tmp_path):
    path = tmp_path / "w.icechunk"
    write_meta(batch(250, 0, 4), path, icechunk=True, chunk_size=CHUNK, message="initial")
    write_meta(batch(120, 250, 5), path, mode="a")
    v = list_versions(path)
    assert [s.message for s in v.snapshots[:2]] == ["write_meta: appended 120 rows", "initial"]
    r = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    group = zarr.open_group(r.readonly_session("main").store, mode="r")["meta"]
    stats = group.attrs["zarr_meta:stats"]
    assert stats["num_rows"] == 370 and stats["block_rows"] == CHUNK
    table = pa.table(open_meta(path).scan())
    assert table.num_rows == 370
    # Statistics of every block equal the data's own extent.
    dates = table.column("date")
    for b, (lo, hi) in enumerate(zip(stats["columns"]["date"]["min"], stats["columns"]["date"]["max"])):
        block = dates.slice(b * CHUNK, CHUNK)
        assert pc.min(block).cast(pa.int64()).as_py() == lo
        assert pc.max(block).cast(pa.int64()).as_py() == hi


def test_failed_write_leaves_the_branch_as_it_was(tmp_path):
    path = tmp_path / "f.icechunk"
    write_meta(batch(100, 0, 6), path, icechunk=True, chunk_size=CHUNK)
    r = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    before = r.lookup_branch("main")
    good = batch(10, 100, 7)
    i = good.schema.get_field_index("cloud_cover")
    wrong = good.set_column(i, "cloud_cover", pa.array(["cloudy"] * 10))
    with pytest.raises(ValueError, match="cannot append text values to column 'cloud_cover'"):
        write_meta(wrong, path, mode="a")
    assert r.lookup_branch("main") == before
    assert open_meta(path).num_rows == 100
    with pytest.raises(ValueError, match="branch 'nope' not found"):
        write_meta(batch(10, 100, 7), path, mode="a", branch="nope")
    assert r.lookup_branch("main") == before


def test_write_into_a_callers_session(tmp_path):
    path = tmp_path / "s.icechunk"
    write_meta(batch(100, 0, 8), path, icechunk=True, chunk_size=CHUNK)
    r = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    session = r.writable_session("main")
    # Data and catalogue change in one transaction: the caller writes both.
    zarr.open_group(session.store, mode="a").create_array("data", shape=(4,), dtype="int32")[:] = [1, 2, 3, 4]
    write_meta(batch(30, 100, 9), path, session=session, mode="a")
    assert open_meta(path).num_rows == 100  # not committed yet
    session.commit("data and catalogue")
    assert open_meta(path).num_rows == 130
    assert list_versions(path).snapshots[0].message == "data and catalogue"


def test_branch_and_message_need_a_repository(tmp_path):
    with pytest.raises(ValueError, match="apply to Icechunk repositories"):
        write_meta(batch(5, 0, 1), tmp_path / "plain.zarr", message="x")


RACER = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    from sedonadb_zarr_meta import write_meta
    path, rounds = sys.argv[1], int(sys.argv[2])
    for k in range(1, rounds + 1):
        n = 100 + 37 * k
        t = pa.table({"gen": pa.array([k] * n, pa.int64()), "row": pa.array(range(n), pa.int64())})
        write_meta(t, path, chunk_size=16, message=f"generation {k}")
    """
)


def test_a_scan_racing_commits_sees_one_snapshot(tmp_path):
    path = tmp_path / "race.icechunk"
    write_meta(
        pa.table({"gen": pa.array([0] * 100, pa.int64()), "row": pa.array(range(100), pa.int64())}),
        path,
        icechunk=True,
        chunk_size=16,
    )
    racer = subprocess.Popen([sys.executable, "-c", RACER, str(path), "12"], preexec_fn=cap_memory)
    seen = set()
    try:
        while racer.poll() is None or not seen:
            t = open_meta(path, batch_size=16)
            table = pa.table(t.scan())
            gens = set(table.column("gen").to_pylist())
            assert len(gens) == 1, gens  # never a mix of two commits
            (gen,) = gens
            assert table.num_rows == t.num_rows == 100 + 37 * gen if gen else 100
            assert table.column("row").to_pylist() == list(range(table.num_rows))
            seen.add(gen)
    finally:
        racer.wait(timeout=120)
    assert racer.returncode == 0
    assert open_meta(path).num_rows == 100 + 37 * 12
    assert len(seen) >= 2, seen


# --- on the loopback S3 server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3repo():
    from sedonadb_zarr_meta import _icechunk

    from .s3proxy import S3Server

    server = S3Server()
    server.create_bucket("ice")
    options = {
        "aws_endpoint": server.url,
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "ic-secret-value-0123456789",
    }
    uri = "s3://ice/cat/catalogue.icechunk"
    first, more = batch(300, 0, 1), batch(200, 300, 2)
    write_meta(first, uri, icechunk=True, chunk_size=CHUNK, storage_options=options, message="first")
    r = icechunk.Repository.open(_icechunk.storage(uri, options))
    v1 = r.lookup_branch("main")
    r.create_tag("v1", snapshot_id=v1)
    write_meta(more, uri, mode="a", storage_options=options)
    yield {
        "server": server,
        "uri": uri,
        "options": options,
        "v1": v1,
        "ids_v1": ids(first),
        "ids_main": ids(pa.concat_tables([first, more])),
    }
    server.stop()


def test_s3_repository_on_every_surface(s3repo, hosts, repo):
    uri, storage = s3repo["uri"], {"storage_options": s3repo["options"]}
    # Recognised without any option; read at main.
    table = pa.table(open_meta(uri, **storage).scan())
    assert ids(table) == s3repo["ids_main"]
    for options, want in [
        (storage, "ids_main"),
        ({**storage, "tag": "v1"}, "ids_v1"),
        ({**storage, "snapshot": s3repo["v1"]}, "ids_v1"),
    ]:
        assert ids(pa.table(open_meta(uri, **options).scan())) == s3repo[want]
        for host, con in hosts.items():
            assert ids(collect(con, f"SELECT id FROM {call(uri, options)}")) == s3repo[want], host
        sedona = hosts["sedonadb"].con
        assert ids(pa.table(sedona.read_format(ZarrMetaSpec(options), uri))) == s3repo[want]
    # Time travel across the network, joined in one query.
    query = (
        f"SELECT count(*) AS n FROM {call(uri, storage)} now "
        f"WHERE now.id NOT IN (SELECT id FROM {call(uri, {**storage, 'tag': 'v1'})})"
    )
    for host, con in hosts.items():
        assert collect(con, query).to_pylist() == [{"n": 200}], host
    v = list_versions(uri, storage_options=s3repo["options"])
    assert v.tags == {"v1": s3repo["v1"]} and set(v.branches) == {"main"}


def test_s3_repository_errors_name_it_and_hide_secrets(s3repo):
    uri, options = s3repo["uri"], s3repo["options"]
    with pytest.raises(FileNotFoundError) as e:
        open_meta(uri, storage_options=options, tag="v7")
    assert "tag 'v7'" in str(e.value) and uri in str(e.value) and "'v1'" in str(e.value)
    with pytest.raises(FileNotFoundError):
        open_meta("s3://ice/nothing-here", storage_options=options, tag="v1")
    with pytest.raises(FileNotFoundError):
        list_versions("s3://ice/nothing-here", storage_options=options)
    plain = "s3://ice/plain.zarr"
    write_meta(batch(20, 0, 1), plain, storage_options=options)
    with pytest.raises(ValueError, match="applies only to Icechunk repositories"):
        open_meta(plain, storage_options=options, branch="main")
    assert open_meta(plain, storage_options=options).num_rows == 20


def test_s3_repository_with_rejected_credentials(s3repo):
    uri, options = s3repo["uri"], s3repo["options"]
    control = s3repo["server"].control
    control.configure(fault="403", fault_count=-1)
    try:
        with pytest.raises(PermissionError) as e:
            # Options no earlier test used: the repository is opened afresh (a tag's group
            # opened before is kept and needs no request: tags never change).
            open_meta(uri, storage_options=options, tag="v1", max_concurrency=3)
    finally:
        control.clear()
    assert uri in str(e.value) and options["aws_secret_access_key"] not in str(e.value), str(e.value)
