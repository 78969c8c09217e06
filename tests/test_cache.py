"""Opened groups are kept between queries, and a writer's new data is visible to the next
query: on local disk, on the loopback S3 server and in an Icechunk repository, through every
surface of both hosts. The proxy's request counts prove what a kept group saves."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from sedonadb_zarr_meta import open_meta, write_meta

from .conftest import BUCKET, items_table, s3_options
from .conftest import call as call_of
from .engines import ENGINES, Engine

N_FIRST, N_MORE = 300, 120


def _ids(engine: Engine, uri: str, options: dict | None = None) -> list[str]:
    call = call_of(uri, options)
    return sorted(engine.collect(f"SELECT id FROM {call}").column("id").to_pylist())


def _table(n: int, seed: int) -> pa.Table:
    table = items_table(n, seed=seed)
    return table.set_column(0, "id", pa.array([f"s{seed}-{i:05d}" for i in range(n)]))


@pytest.mark.parametrize("engine_class", ENGINES, ids=lambda e: e.name)
def test_local_rewrite_and_append_are_seen_by_the_next_query(tmp_path, engine_class):
    engine = engine_class()
    uri = write_meta(_table(N_FIRST, 1), tmp_path / "c.zarr", chunk_size=64)
    first = _ids(engine, uri)
    assert len(first) == N_FIRST and _ids(engine, uri) == first
    # Rewritten with other items: the next query reads them.
    write_meta(_table(N_FIRST, 2), tmp_path / "c.zarr", chunk_size=64)
    rewritten = _ids(engine, uri)
    assert rewritten == sorted(_table(N_FIRST, 2).column("id").to_pylist())
    # Appended: the next query sees every row, with the statistics of the new chunks.
    write_meta(_table(N_MORE, 3), tmp_path / "c.zarr", mode="a", chunk_size=64)
    assert len(_ids(engine, uri)) == N_FIRST + N_MORE
    in_new = engine.collect(
        f"SELECT count(*) AS n FROM sd_read_zarr_meta('{uri}') WHERE id >= 's3-' AND id < 's4-'"
    )
    assert in_new.column("n").to_pylist() == [N_MORE]
    # An array added by another writer (zarr-python) appears as a column.
    import zarr

    group = zarr.open_group(str(tmp_path / "c.zarr"), path="meta", mode="a")
    group.create_array("extra", shape=(N_FIRST + N_MORE,), dtype="int16")[:] = 7
    extra = engine.collect(f"SELECT max(extra) AS m FROM sd_read_zarr_meta('{uri}')")
    assert extra.column("m").to_pylist() == [7]


def _age(root: Path) -> None:
    """Set every file under ``root`` an hour back, as a catalogue written earlier (files
    modified in the last seconds are never kept decoded)."""
    then = time.time() - 3600
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


@pytest.mark.parametrize("engine_class", ENGINES, ids=lambda e: e.name)
def test_kept_chunks_serve_again_until_a_writer_rewrites_them(tmp_path, engine_class):
    import zarr

    engine = engine_class()
    uri = write_meta(_table(N_FIRST, 1), tmp_path / "c.zarr", chunk_size=64)
    _age(tmp_path / "c.zarr")
    first = sorted(_table(N_FIRST, 1).column("id").to_pylist())
    assert _ids(engine, uri) == first and _ids(engine, uri) == first
    column = open_meta(uri).column_names.index("id")

    def scan() -> tuple[list[str], int, int]:
        stream = open_meta(uri).scan(columns=[column])
        ids = pa.table(stream).column("id").to_pylist()
        return ids, stream.chunks_read, stream.chunks_kept

    ids, read, kept = scan()
    assert sorted(ids) == first and read == 5  # 300 rows in chunks of 64
    assert scan() == (ids, 5, 5)  # every chunk kept decoded
    # zarr-python rewrites the ids in place: the arrays' metadata is unchanged.
    ids_array = zarr.open_group(str(tmp_path / "c.zarr"), path="meta", mode="a")["id"]
    renamed = [f"r-{i:05d}" for i in range(N_FIRST)]
    ids_array[:] = renamed
    assert _ids(engine, uri) == renamed
    assert scan() == (renamed, 5, 0)


def test_open_meta_sees_a_rewrite(tmp_path):
    uri = write_meta(_table(50, 1), tmp_path / "c.zarr", chunk_size=16)
    assert open_meta(uri).num_rows == 50
    write_meta(_table(80, 2), tmp_path / "c.zarr", chunk_size=16)
    table = pa.table(open_meta(uri).scan())
    assert table.num_rows == 80 and table.column("id")[0].as_py() == "s2-00000"


@pytest.mark.parametrize("engine_class", ENGINES, ids=lambda e: e.name)
def test_s3_kept_group_costs_one_conditional_request_and_sees_a_rewrite(s3, engine_class):
    engine = engine_class()
    uri = f"s3://{BUCKET}/cache-{engine_class.name}.zarr"
    opts = s3_options(s3)
    write_meta(_table(N_FIRST, 1), uri, chunk_size=64, storage_options=opts)
    options = {"storage_options": opts, "arrays": ["id"]}
    assert len(_ids(engine, uri, options)) == N_FIRST
    s3.control.reset()
    assert len(_ids(engine, uri, options)) == N_FIRST
    paths = s3.control.stats()["paths"]
    # The kept group: its consolidated metadata checked by one HEAD (If-None-Match), then
    # only the id chunks (5 of 64 rows), no metadata document read again.
    group_metadata = f"HEAD /{BUCKET}/cache-{engine_class.name}.zarr/meta/zarr.json"
    assert [p for p in paths if p.startswith("HEAD")] == [group_metadata]
    assert not any(p.endswith("zarr.json") for p in paths if p.startswith("GET")), paths
    write_meta(_table(N_MORE, 2), uri, chunk_size=64, storage_options=opts)
    assert _ids(engine, uri, options) == sorted(_table(N_MORE, 2).column("id").to_pylist())


@pytest.mark.skipif(
    sys.version_info < (3, 12) or importlib.util.find_spec("icechunk") is None,
    reason="writing Icechunk repositories needs the icechunk package (Python 3.12 or later)",
)
@pytest.mark.parametrize("engine_class", ENGINES, ids=lambda e: e.name)
def test_icechunk_branch_tip_moves_and_tags_stay(tmp_path, engine_class):
    import icechunk

    engine = engine_class()
    path = tmp_path / "c.icechunk"
    write_meta(_table(N_FIRST, 1), path, icechunk=True, chunk_size=64)
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    repo.create_tag("v1", snapshot_id=repo.lookup_branch("main"))
    uri = path.resolve().as_uri()
    assert len(_ids(engine, uri)) == N_FIRST
    write_meta(_table(N_MORE, 2), path, mode="a")
    # The branch moved on: the next query reads its new tip; the tag still reads v1.
    assert len(_ids(engine, uri)) == N_FIRST + N_MORE
    assert len(_ids(engine, uri, {"tag": "v1"})) == N_FIRST
