"""The same SQL on a Ballista cluster: one scheduler and two executors of the
``zarr-meta-cluster`` binary, started here on 127.0.0.1, against SedonaDB on one
machine; the executors read disjoint row ranges that cover the store; a dead
executor or scheduler gives an answer or a clear error, never a hang."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pyarrow as pa
import pytest
from sedonadb_zarr_meta import distributed, write_meta

from .cluster import LocalCluster, get_json
from .conftest import BUCKET, SECRET, cap_memory, items_table, regions_parquet, s3_options
from .engines import Ballista
from .s3proxy import free_port
from .test_same_sql import BOX, CHUNK, CORPUS, N

BINARY = os.environ.get(distributed.BINARY_ENV) or shutil.which("zarr-meta-cluster")
pytestmark = pytest.mark.skipif(
    not BINARY,
    reason="the zarr-meta-cluster binary is not built (ci/test.sh builds it and sets SZM_CLUSTER_BIN)",
)

#: What this build cannot run, and the word its error names. SedonaDB's predicates and
#: overlays beyond sedona-geo's (ST_Contains, ST_Within, ST_Intersection) are GEOS kernels:
#: the sedona-geos crate needs GEOS 3.12 or later, and Debian's is 3.11.
GEOS = (
    r"(st_contains|st_within|st_intersection) is not available on the cluster: "
    "SedonaDB computes it with GEOS"
)
UNSUPPORTED: dict[str, str] = {name: GEOS for name in ("contains", "within", "region_intersection_area")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(BINARY, tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster-data")
    store = write_meta(items_table(N, seed=21), base / "items.zarr", chunk_size=CHUNK, sort=True)
    regions = regions_parquet(base / "regions.parquet", {"west": BOX, "east": (60, 0, 120, 50)})
    return {"store": store, "regions": regions, "base": base}


@pytest.fixture(scope="module")
def engines(cluster, data, hosts):
    ballista = Ballista(cluster.url, timeout=120).register_geoparquet("regions", data["regions"])
    hosts["sedonadb"].register_geoparquet("regions", data["regions"])
    return {"ballista": ballista, "sedonadb": hosts["sedonadb"]}


def test_the_scheduler_lists_both_executors_on_its_rest_api(cluster):
    executors = cluster.api("executors")
    assert len(executors) == 2
    assert all(e["host"] == "127.0.0.1" for e in executors), executors
    assert isinstance(cluster.api("jobs"), list)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_same_results_as_sedonadb_on_one_machine(engines, data, name):
    query = CORPUS[name].format(store=data["store"])
    if name in UNSUPPORTED:
        with pytest.raises(ValueError, match=UNSUPPORTED[name]):
            engines["ballista"].collect(query)
        return
    engines["ballista"].compare(query, engines["sedonadb"])
    assert engines["sedonadb"].collect(query).num_rows > 0


def test_result_converts_like_sedonadb_results(engines, data):
    query = f"SELECT id, bbox, cloud_cover FROM sd_read_zarr_meta('{data['store']}') WHERE id < 'item-00010'"
    result = engines["ballista"].con.sql(query)
    table = pa.table(result)
    assert table.num_rows == 10 and table.column_names == ["id", "bbox", "cloud_cover"]
    field = table.schema.field("bbox")
    assert field.metadata[b"ARROW:extension:name"] == b"geoarrow.wkb"
    assert (
        "OGC:CRS84" in field.metadata[b"ARROW:extension:metadata"].decode()
        or b"4326" in field.metadata[b"ARROW:extension:metadata"]
    )
    frame = result.to_pandas()
    assert frame.geometry.name == "bbox" and frame.crs.to_string() == "OGC:CRS84"
    assert sorted(frame["id"]) == [f"item-{i:05d}" for i in range(10)]


def test_executors_read_disjoint_ranges_that_cover_the_store(cluster, data, tmp_path):
    store = write_meta(items_table(3_000, seed=5), tmp_path / "split.zarr", chunk_size=200)
    got = Ballista(cluster.url).collect(
        f"SELECT count(*) AS n, sum(cloud_cover) AS s FROM sd_read_zarr_meta('{store}')"
    )
    ref = pa.table(items_table(3_000, seed=5))
    assert got.column("n").to_pylist() == [3_000]
    assert got.column("s").to_pylist() == [pa.compute.sum(ref.column("cloud_cover")).as_py()]
    ranges = cluster.ranges_read(store)
    assert all(ranges.values()), f"an executor read nothing: {ranges}"
    flat = sorted(r for rs in ranges.values() for r in rs)
    assert flat[0][0] == 0 and flat[-1][1] == 3_000
    assert all(a[1] == b[0] for a, b in zip(flat, flat[1:])), f"gaps or overlaps: {flat}"


def test_the_scheduler_prunes_before_it_splits(cluster, data, engines, tmp_path):
    """A selective query reads only the chunks the statistics keep, split across tasks."""
    store = write_meta(items_table(N, seed=21), tmp_path / "prune.zarr", chunk_size=CHUNK, sort=True)
    query = (
        f"SELECT id FROM sd_read_zarr_meta('{store}') "
        "WHERE ST_Intersects(bbox, ST_SetSRID(ST_MakeEnvelope(-30, -20, 20, 25), 4326))"
    )
    engines["ballista"].compare(query, engines["sedonadb"])  # runs the query twice (rows, columns)
    read = sum(b - a for rs in cluster.ranges_read(store).values() for a, b in rs) / 2
    assert 0 < read < N / 2, read


def test_object_store_and_icechunk_versions(cluster, engines, s3, tmp_path):
    from sedonadb_zarr_meta import list_versions

    table = items_table(1_000, seed=3)
    write_meta(table, f"s3://{BUCKET}/cluster.zarr", chunk_size=100, storage_options=s3_options(s3))
    options = json.dumps({"storage_options": s3_options(s3)})
    query = (
        f"SELECT collection, count(*) AS n FROM sd_read_zarr_meta('s3://{BUCKET}/cluster.zarr', "
        f"'{options}') GROUP BY collection"
    )
    engines["ballista"].compare(query, engines["sedonadb"])
    # The options travel with the plan to every role; no role logs the secret in them.
    for name in cluster.procs:
        assert SECRET not in cluster.log(name), name
    pytest.importorskip("icechunk")
    repo = write_meta(table.slice(0, 600), tmp_path / "repo.icechunk", chunk_size=100, icechunk=True)
    first = list_versions(repo).branches["main"]
    write_meta(table.slice(600), repo, mode="a")
    for opts, n in ((None, 1_000), ({"snapshot": first}, 600), ({"branch": "main"}, 1_000)):
        args = f"'{repo}'" + (f", '{json.dumps(opts)}'" if opts else "")
        got = engines["ballista"].collect(f"SELECT count(*) AS n FROM sd_read_zarr_meta({args})")
        assert got.column("n").to_pylist() == [n], opts


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds():
    cluster = distributed.connect(f"df://127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot reach the scheduler at 127\.0\.0\.1:\d+"):
        cluster.sql("SELECT 1")
    assert time.monotonic() - start < 30


def test_bad_urls_and_missing_stores_are_clear_errors(cluster, tmp_path):
    with pytest.raises(ValueError, match="expected df://host:port"):
        distributed.connect("http://127.0.0.1:1")
    missing = tmp_path / "missing.zarr"
    with pytest.raises(ValueError, match="missing.zarr"):
        Ballista(cluster.url, timeout=60).collect(f"SELECT * FROM sd_read_zarr_meta('{missing}')")


def test_a_dead_executor_gives_an_answer_or_a_clear_error(s3, tmp_path):
    """One of two executors is killed while both wait on the store: the query ends within a
    bound, with the right count or an error, never a hang."""
    table = items_table(2_000, seed=9)
    write_meta(table, f"s3://{BUCKET}/dying.zarr", chunk_size=100, storage_options=s3_options(s3))
    options = json.dumps({"storage_options": s3_options(s3)})
    c = LocalCluster(BINARY, tmp_path, executors=2, slots=1)
    try:
        s3.control.reset()
        s3.control.configure(fault="hold", fault_count=-1, fault_match="/dying.zarr/meta/cloud_cover/c/")
        query = (
            f"SELECT count(*) AS n FROM sd_read_zarr_meta('s3://{BUCKET}/dying.zarr', '{options}') "
            "WHERE cloud_cover >= 0"
        )
        proc = subprocess.Popen(
            Ballista(c.url, timeout=150).con._command(query), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        s3.control.wait_held(2)  # both executors wait on the store
        c.kill("executor0")
        s3.control.release()
        start = time.monotonic()
        out, err = proc.communicate(timeout=180)
        elapsed = time.monotonic() - start
        if proc.returncode == 0:
            with pa.ipc.open_stream(out) as reader:
                assert reader.read_all().column("n").to_pylist() == [2_000]
        else:
            assert err.strip(), "a failed query must say why"
            assert b"panicked" not in err
        # The scheduler takes an executor silent for 20 s for dead and runs its tasks on the
        # other one (measured: the right count, 20 s after the kill); 90 s leaves room for a
        # machine whose cores are busy, and stays well below the query's own timeout.
        assert elapsed < 90, elapsed
    finally:
        s3.control.clear()
        c.stop()


def test_zarr_meta_scheduler_runs_the_binary_in_its_place(tmp_path):
    import sys

    port = free_port()
    env = {**os.environ, distributed.BINARY_ENV: BINARY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sedonadb_zarr_meta", "scheduler", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=cap_memory,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert get_json(f"http://127.0.0.1:{port}/api/executors") == []
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
