"""Object stores: every surface reads s3:// stores on a loopback S3 server (moto)
and http(s):// stores from a loopback static file server with exactly the
answers of the same store on local disk; configuration through the environment
and ``storage_options``; pruning proven by counting the server's requests;
faults (5xx, resets, hangs, rejected credentials, missing buckets) end in clear
errors that never show a secret."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely
import zarr
from sedonadb_zarr_meta import ZarrMetaError, ZarrMetaSpec, open_meta, write_meta

from . import s3proxy
from .conftest import (
    BUCKET,
    SECRET,
    call,
    cap_memory,
    collect,
    items,
    items_table,
    regions_parquet,
    s3_options,
    sjoin_pairs,
    write_group,
    zarr_s3_store,
)
from .s3proxy import free_port, start_process, wait_for

AREA = "POLYGON((-30 -20, 20 -20, 20 25, -30 25, -30 -20))"
CHUNK = 100
N = 2000


def _table(n: int = N) -> pa.Table:
    return items_table(n, seed=5)


@pytest.fixture(scope="module")
def twins(s3, tmp_path_factory):
    """The same catalogues on local disk and on S3: one written by zarr-python
    directly (no statistics, no consolidated metadata), one by write_meta."""
    base = tmp_path_factory.mktemp("twins")
    data = items(500, seed=3)
    local_plain = write_group(base / "plain.zarr", data, chunks=64)
    write_group(zarr_s3_store(s3, "plain.zarr"), data, chunks=64)
    table = _table()
    local_meta = write_meta(table, base / "meta.zarr", chunk_size=CHUNK, sort=True)
    opts = s3_options(s3)
    remote_meta = write_meta(
        table, f"s3://{BUCKET}/meta.zarr", chunk_size=CHUNK, sort=True, storage_options=opts
    )
    regions = regions_parquet(
        base / "regions.parquet", {"west": (-30, -20, 20, 25), "east": (60, 0, 120, 50)}
    )
    return {
        "plain": (local_plain, f"s3://{BUCKET}/plain.zarr", data),
        "meta": (local_meta, remote_meta, None),
        "regions": regions,
    }


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([(table.column_names[0], "ascending")]) if table.num_columns else table


# --- every surface returns what the local twin returns -------------------------------------------


@pytest.mark.parametrize("store", ["plain", "meta"])
def test_open_meta_equals_local(s3, twins, store):
    local, remote, _ = twins[store]
    expected = pa.table(open_meta(local).scan())
    got = pa.table(open_meta(remote, storage_options=s3_options(s3)).scan())
    assert got.schema == expected.schema
    assert got.equals(expected)
    assert got.schema.field("bbox").metadata[b"ARROW:extension:name"] == b"geoarrow.wkb"
    projected = pa.table(open_meta(remote, storage_options=s3_options(s3), arrays=["id", "date"]).scan())
    assert projected.equals(expected.select(["id", "date"]))


@pytest.mark.parametrize("layout", ["sharded", "v2", "v2-blosc"])
def test_other_layouts_equal_local(s3, tmp_path, layout):
    """Sharded arrays (read by byte range within a shard) and Zarr v2 arrays without
    consolidated metadata (.zarray/.zattrs) read over S3 exactly as locally."""
    data = items(300, seed=9)
    kwargs: dict = {"chunks": 32}
    if layout == "sharded":
        kwargs["shards"] = (128,)
    else:
        kwargs["zarr_format"] = 2
        if layout == "v2-blosc":
            import numcodecs

            kwargs["compressors"] = numcodecs.Blosc(cname="lz4")
    local = write_group(tmp_path / "s.zarr", data, **kwargs)
    write_group(zarr_s3_store(s3, f"{layout}.zarr"), data, **kwargs)
    remote = f"s3://{BUCKET}/{layout}.zarr"
    expected = pa.table(open_meta(local).scan())
    assert pa.table(open_meta(remote, storage_options=s3_options(s3)).scan()).equals(expected)
    # A piece inside a shard or chunk: a partial read.
    got = pa.table(open_meta(remote, storage_options=s3_options(s3)).scan(start=40, end=75, batch_size=7))
    assert got.equals(expected.slice(40, 35))


QUERIES = [
    "SELECT * FROM {t}",
    "SELECT date, id FROM {t}",  # reordered projection
    "SELECT id AS item, cloud_cover AS cc FROM {t} WHERE cloud_cover < 30",
    "SELECT collection, count(*) AS n FROM {t} GROUP BY collection",
    "SELECT id FROM {t} WHERE ST_Intersects(bbox, {area}) AND date < TIMESTAMP '2024-05-01'",
    "SELECT id FROM {t} LIMIT 0",
]


@pytest.mark.parametrize("host", ["sedonadb", "datafusion"])
@pytest.mark.parametrize("store", ["plain", "meta"])
@pytest.mark.parametrize("query", QUERIES)
def test_sql_equals_local(s3, twins, hosts, host, store, query):
    local, remote, _ = twins[store]
    con = hosts[host]
    q = query.replace("{area}", con.geometry(AREA))
    expected = collect(con, q.format(t=call(local)))
    got = collect(con, q.format(t=call(remote, {"storage_options": s3_options(s3)})))
    assert got.schema == expected.schema
    key = "collection" if "GROUP BY" in q else None
    if key:
        assert got.sort_by(key).equals(expected.sort_by(key))
    else:
        assert sorted_rows(got).equals(sorted_rows(expected))
    if "ST_Intersects" in q:
        assert 0 < got.num_rows < 500


def test_sedonadb_dataframe_surfaces_equal_local(s3, twins, hosts):
    engine = hosts["sedonadb"]
    con = engine.con
    local, remote, _ = twins["meta"]
    spec = ZarrMetaSpec({"storage_options": s3_options(s3)})
    expected = sorted_rows(pa.table(con.read_format(ZarrMetaSpec(), local)))
    assert sorted_rows(pa.table(con.read_format(spec, remote))).equals(expected)
    assert sorted_rows(pa.table(con.read(remote, format=spec))).equals(expected)
    by_name = con.read(remote, format="zarr_meta", options={"storage_options": s3_options(s3)})
    assert sorted_rows(pa.table(by_name)).equals(expected)
    df = con.read_format(ZarrMetaSpec(), remote, options={"storage_options": s3_options(s3)})
    df.to_view("remote_items", overwrite=True)
    got = collect(con, f"SELECT id FROM remote_items WHERE ST_Intersects(bbox, {engine.geometry(AREA)})")
    want = collect(con, f"SELECT id FROM {call(local)} WHERE ST_Intersects(bbox, {engine.geometry(AREA)})")
    assert sorted(got.column("id").to_pylist()) == sorted(want.column("id").to_pylist())


@pytest.mark.parametrize("host", ["sedonadb", "datafusion"])
def test_spatial_join_equals_local(s3, twins, hosts, host):
    local, remote, data = twins["plain"]
    con = hosts[host]
    regions = twins["regions"]
    if host == "sedonadb" or "regions" not in con.con.catalog().schema().names():
        con.register_geoparquet("regions", regions)
    q = "SELECT m.id, r.region FROM {t} m JOIN regions r ON ST_Intersects(m.bbox, r.geometry)"
    got = collect(con, q.format(t=call(remote, {"storage_options": s3_options(s3)})))
    pairs = sorted(zip(got.column("id").to_pylist(), got.column("region").to_pylist()))
    assert pairs == sjoin_pairs(data, regions)
    assert len(pairs) > 0


# --- configuration -------------------------------------------------------------------------------


def test_environment_configuration(s3, twins, monkeypatch):
    local, remote, _ = twins["plain"]
    for key, value in {
        "AWS_ENDPOINT_URL": s3.url,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }.items():
        monkeypatch.setenv(key, value)
    assert pa.table(open_meta(remote).scan()).equals(pa.table(open_meta(local).scan()))
    # storage_options win over the environment.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ZarrMetaError):  # the environment alone points nowhere
        open_meta(remote, storage_options={"max_retries": 0, "connect_timeout": "2s"})
    assert open_meta(remote, storage_options={"aws_endpoint": s3.url}).num_rows == 500


def test_unknown_storage_option_is_named(s3, twins):
    _, remote, _ = twins["plain"]
    with pytest.raises(ValueError, match="unknown storage option 'aws_endpiont'"):
        open_meta(remote, storage_options={**s3_options(s3), "aws_endpiont": "x"})
    with pytest.raises(ValueError, match="storage_options"):
        open_meta(remote, storage_options="aws_endpoint=x")
    with pytest.raises(ValueError, match="max_concurrency"):
        open_meta(remote, max_concurrency=0)


def test_secrets_never_shown(s3, twins, hosts):
    _, remote, _ = twins["plain"]
    opts = s3_options(s3)
    assert SECRET not in repr(ZarrMetaSpec({"storage_options": opts}))
    assert SECRET not in repr(open_meta(remote, storage_options=opts))
    for host in ("sedonadb", "datafusion"):
        con = hosts[host]
        plan = collect(
            con, f"EXPLAIN SELECT id FROM {call(remote, {'storage_options': opts})} WHERE cloud_cover < 5"
        )
        text = " ".join(str(v) for col in plan.columns for v in col.to_pylist())
        assert "ZarrMetaExec" in text or "zarr_meta" in text.lower() or host == "sedonadb"
        assert SECRET not in text
    s3.control.configure(fault="403", fault_count=-1)
    try:
        with pytest.raises(PermissionError) as e:
            open_meta(remote, storage_options=opts)
    finally:
        s3.control.clear()
    assert SECRET not in str(e.value) and remote in str(e.value)


# --- network behaviour ---------------------------------------------------------------------------


def _chunk_gets(stats: dict) -> list[str]:
    return [p for p in stats["paths"] if p.startswith("GET") and "/c/" in p]


def test_consolidated_metadata_opens_in_one_round_trip(s3, twins):
    _, remote, _ = twins["meta"]
    s3.control.reset()
    table = open_meta(remote, storage_options=s3_options(s3))
    stats = s3.control.stats()
    assert table.num_rows == N
    # One round: the group's zarr.json, the root's (which could hold the
    # consolidated metadata instead) and a listing started alongside in case
    # there is none; no array metadata and no second round.
    assert sum("list-type" in p for p in stats["paths"]) <= 1, stats["paths"]
    assert stats["requests"] <= 3, stats["paths"]
    assert not any(
        p.endswith("/zarr.json") and "/meta/" in p.split("meta.zarr", 1)[1][5:] for p in stats["paths"]
    )
    # Without consolidated metadata: one listing plus one concurrent round per array.
    s3.control.reset()
    open_meta(remote, storage_options=s3_options(s3), consolidated=False)
    paths = s3.control.stats()["paths"]
    assert sum("list-type" in p for p in paths) == 1
    assert sum(p.endswith("/zarr.json") for p in paths) >= 5


def test_zarr_v2_consolidated_metadata(s3, tmp_path):
    opts = s3_options(s3)
    table = _table(150)
    uri = write_meta(table, f"s3://{BUCKET}/v2.zarr", chunk_size=64, zarr_format=2, storage_options=opts)
    local = write_meta(table, tmp_path / "v2.zarr", chunk_size=64, zarr_format=2)
    s3.control.reset()
    got = pa.table(open_meta(uri, storage_options=opts).scan())
    # The arrays' metadata came from .zmetadata: no .zarray was requested.
    assert not any(p.endswith(".zarray") for p in s3.control.stats()["paths"])
    assert got.equals(pa.table(open_meta(local).scan()))
    assert got.num_rows == 150


def _stats_blocks(local: str) -> list[int]:
    """Blocks whose stored bbox statistics may intersect AREA (what pruning must read)."""
    attrs = zarr.open_group(local.removeprefix("file://"), mode="r")["meta"].attrs.asdict()
    boxes = attrs["zarr_meta:stats"]["columns"]["bbox"]["bbox"]
    area = shapely.from_wkt(AREA)
    return [i for i, b in enumerate(boxes) if b is not None and shapely.box(*b).intersects(area)]


@pytest.mark.parametrize("host", ["sedonadb", "datafusion"])
def test_selective_query_fetches_only_matching_chunks(s3, twins, hosts, host):
    local, remote, _ = twins["meta"]
    con = hosts[host]
    t = call(remote, {"storage_options": s3_options(s3)})
    s3.control.reset()
    full = collect(con, f"SELECT id, bbox FROM {t}")
    full_stats = s3.control.stats()
    s3.control.reset()
    q = f"SELECT id FROM {t} WHERE ST_Intersects(bbox, {con.geometry(AREA)})"
    got = collect(con, q)
    sel_stats = s3.control.stats()
    expected = collect(con, q.replace(t, call(local)))
    assert sorted(got.column("id").to_pylist()) == sorted(expected.column("id").to_pylist())
    assert full.num_rows == N
    blocks = _stats_blocks(local)
    assert 0 < len(blocks) < N // CHUNK
    chunk_gets = _chunk_gets(sel_stats)
    fetched = {(p.split("/meta/")[1].split("/")[0], int(p.rsplit("/", 1)[1])) for p in chunk_gets}
    # The filter column: exactly the chunks whose statistics can match. The
    # output column: only chunks where a decoded bbox matched, all of those.
    assert {b for c, b in fetched if c == "bbox"} == set(blocks)
    ids = set(got.column("id").to_pylist())
    order = pa.table(open_meta(local, arrays=["id"]).scan()).column("id").to_pylist()
    matching_blocks = {i // CHUNK for i, v in enumerate(order) if v in ids}
    assert matching_blocks <= {b for c, b in fetched if c == "id"} <= set(blocks)
    assert {c for c, _ in fetched} == {"bbox", "id"}
    assert len(chunk_gets) == len(fetched)  # each fetched once
    assert sel_stats["bytes"] < full_stats["bytes"] * 0.6


@pytest.mark.parametrize("host", ["sedonadb", "datafusion"])
def test_limit_fetches_only_the_first_chunks(s3, twins, hosts, host):
    """Peeking at a catalogue (`LIMIT 5`, no filter) fetches the first chunk of
    each projected column, not one per partition, and returns the first rows."""
    local, remote, _ = twins["meta"]
    t = call(remote, {"storage_options": s3_options(s3)})
    s3.control.reset()
    got = collect(hosts[host], f"SELECT id, bbox FROM {t} LIMIT 5")
    stats = s3.control.stats()
    first = pa.table(open_meta(local, arrays=["id"]).scan()).column("id").to_pylist()[:5]
    assert sorted(got.column("id").to_pylist()) == sorted(first)
    fetched = sorted(p.split("/meta/")[1] for p in _chunk_gets(stats))
    assert fetched == ["bbox/c/0", "id/c/0"]


def test_cancelled_scan_stops_requesting(s3, twins):
    _, remote, _ = twins["meta"]
    s3.control.configure(latency_ms=50)
    try:
        reader = pa.RecordBatchReader.from_stream(
            open_meta(remote, storage_options=s3_options(s3), max_concurrency=2).scan(batch_size=50)
        )
        reader.read_next_batch()
        del reader
        time.sleep(0.5)
        before = s3.control.stats()["requests"]
        time.sleep(0.5)
        assert s3.control.stats()["requests"] == before
    finally:
        s3.control.clear()


# --- faults --------------------------------------------------------------------------------------


def test_transient_errors_are_retried(s3, twins):
    local, remote, _ = twins["meta"]
    s3.control.configure(fault="503", fault_count=3)
    try:
        got = pa.table(open_meta(remote, storage_options=s3_options(s3)).scan())
    finally:
        s3.control.clear()
    assert got.equals(pa.table(open_meta(local).scan()))


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_persistent_errors_name_store_array_and_key(s3, twins, fault):
    _, remote, _ = twins["meta"]
    table = open_meta(remote, storage_options=s3_options(s3, max_retries=1), arrays=["id", "cloud_cover"])
    s3.control.configure(fault=fault, fault_count=-1, fault_match="/cloud_cover/c/")
    try:
        with pytest.raises(pa.ArrowInvalid) as e:
            pa.table(table.scan())
    finally:
        s3.control.clear()
    message = str(e.value)
    assert remote in message and "cloud_cover" in message and "meta/cloud_cover/c/" in message, message
    assert SECRET not in message


def test_missing_bucket_prefix_and_group(s3, twins):
    opts = s3_options(s3)
    with pytest.raises(FileNotFoundError, match="store"):
        open_meta("s3://no-such-bucket/x.zarr", storage_options=opts)
    with pytest.raises(FileNotFoundError, match="store"):
        open_meta(f"s3://{BUCKET}/no/such/store.zarr", storage_options=opts)
    _, remote, _ = twins["meta"]
    with pytest.raises(FileNotFoundError, match="group 'items'"):
        open_meta(remote, storage_options=opts, group="items")


def test_unreachable_endpoint_fails_in_bounded_time():
    opts = {
        "aws_endpoint": f"http://127.0.0.1:{free_port()}",
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": SECRET,
        "max_retries": 2,
        "retry_timeout": 5,
    }
    start = time.monotonic()
    with pytest.raises(ZarrMetaError) as e:
        open_meta(f"s3://{BUCKET}/x.zarr", storage_options=opts)
    assert time.monotonic() - start < 15
    assert f"s3://{BUCKET}/x.zarr" in str(e.value) and SECRET not in str(e.value)


def test_hanging_server_times_out(s3, twins):
    _, remote, _ = twins["meta"]
    s3.control.configure(fault="hang", fault_count=-1, hang_s=20)
    start = time.monotonic()
    try:
        with pytest.raises(ZarrMetaError, match="meta.zarr"):
            open_meta(remote, storage_options=s3_options(s3, timeout="1s", max_retries=1))
    finally:
        s3.control.clear()
    assert time.monotonic() - start < 10


def test_sql_errors_on_both_hosts(s3, hosts):
    opts = s3_options(s3)
    for con in hosts.values():
        with pytest.raises(con.missing_store_error, match="store not found"):
            collect(con, f"SELECT * FROM {call(f's3://{BUCKET}/missing.zarr', {'storage_options': opts})}")


# --- writing -------------------------------------------------------------------------------------


def test_write_meta_append_to_s3(s3, tmp_path):
    opts = s3_options(s3)
    table = _table(300)
    first, second = table.slice(0, 200), table.slice(200)
    uri = f"s3://{BUCKET}/appended.zarr"
    local = tmp_path / "appended.zarr"
    for target, kwargs in ((uri, {"storage_options": opts}), (local, {})):
        write_meta(first, target, chunk_size=64, **kwargs)
        write_meta(second, target, chunk_size=64, mode="a", **kwargs)
    remote_table = open_meta(uri, storage_options=opts)
    assert remote_table.has_stats
    got = pa.table(remote_table.scan())
    assert got.equals(pa.table(open_meta(local).scan()))
    assert got.column("id").to_pylist() == table.column("id").to_pylist()
    # Consolidated metadata is current after the append: it is what the reader used.
    assert pa.table(open_meta(uri, storage_options=opts, consolidated=True).scan()).num_rows == 300
    # mode="w" replaces the group, statistics and consolidated metadata included.
    write_meta(table.slice(0, 50), uri, chunk_size=16, storage_options=opts)
    replaced = open_meta(uri, storage_options=opts)
    assert replaced.num_rows == 50 and replaced.has_stats
    assert pa.table(replaced.scan()).column("id").to_pylist() == table.column("id").to_pylist()[:50]


# --- http(s) -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    proc, port = start_process([sys.executable, s3proxy.__file__, "--static", str(root)], "the file server")
    url = f"http://127.0.0.1:{port}"
    wait_for(url)
    yield root, url
    proc.kill()
    proc.wait()


def test_http_store_equals_local(http_root, hosts):
    root, url = http_root
    local = write_meta(_table(400), root / "cat.zarr", chunk_size=64)
    expected = pa.table(open_meta(local).scan())
    assert pa.table(open_meta(f"{url}/cat.zarr").scan()).equals(expected)
    for host, con in hosts.items():
        got = collect(con, f"SELECT id, cloud_cover FROM {call(f'{url}/cat.zarr')} WHERE cloud_cover < 50")
        want = expected.filter(pc.less(expected["cloud_cover"], 50)).select(["id", "cloud_cover"])
        assert sorted_rows(got).equals(sorted_rows(want)), host


def test_http_store_without_consolidated_metadata(http_root):
    root, url = http_root
    data = items(50)
    local = write_group(root / "plain.zarr", data, chunks=16)
    with pytest.raises(NotImplementedError, match="consolidated metadata"):
        open_meta(f"{url}/plain.zarr")
    got = pa.table(open_meta(f"{url}/plain.zarr", arrays=["id", "bbox"]).scan())
    assert got.equals(pa.table(open_meta(local, arrays=["id", "bbox"]).scan()))
    with pytest.raises(FileNotFoundError):
        open_meta(f"{url}/missing.zarr", arrays=["id"])
    np.testing.assert_array_equal(got.column("id").to_numpy(zero_copy_only=False), data["id"])
    assert Path(root / "plain.zarr").is_dir()


INTERRUPTED_SCAN = """
import json, signal, sys, time
import pyarrow as pa
from sedonadb_zarr_meta import open_meta, register

# Ctrl-C as a terminal delivers it, whatever disposition the test run inherited
# (a shell without job control starts background jobs with SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)

uri, options, host = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sql = f"SELECT * FROM sd_read_zarr_meta('{uri}', '{json.dumps(options)}')"
if host == "datafusion":
    import datafusion
    ctx = register(datafusion.SessionContext())
    run = lambda: ctx.sql(sql).to_arrow_table()
else:
    import sedonadb
    con = register(sedonadb.connect())
    run = lambda: pa.table(con.sql(sql))
print("started", flush=True)
try:
    run()
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
except Exception as e:  # SedonaDB turns Ctrl-C into "Operation cancelled"
    print(f"cancelled: {e}", flush=True)
"""


@pytest.mark.parametrize("host", ["datafusion", "sedonadb"])
def test_keyboard_interrupt_stops_a_remote_query(s3, twins, host):
    import signal

    _, remote, _ = twins["meta"]
    # Every request for a bbox chunk is held by the proxy: the query waits on the store
    # with nothing to decode, so its memory stays flat however long it waits.
    s3.control.reset()
    s3.control.configure(fault="hold", fault_count=-1, fault_match="/meta.zarr/meta/bbox/c/")
    options = {"storage_options": s3_options(s3)}
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_SCAN, remote, json.dumps(options), host],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=cap_memory,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        s3.control.wait_held()  # the query is waiting on the store: now Ctrl-C
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        elapsed = time.monotonic() - start
        assert "interrupted" in out or "Operation cancelled" in out, out
        # The held requests never answer, and object_store's request timeout (30 s by
        # default) is the only other way out: well below it, the query ended because of
        # Ctrl-C. 10 s leaves room for a machine whose cores are busy with other work.
        assert elapsed < 10, elapsed
    finally:
        proc.kill()
        s3.control.clear()
