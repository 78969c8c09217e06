"""Streaming ingest: bounded memory, the same catalogue as the in-memory writer, small appends
on plain stores and as one Icechunk commit."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zarr
from sedonadb_zarr_meta import _stac, open_meta, verify_statistics, write_meta
from sedonadb_zarr_meta._write import columns, sources
from sedonadb_zarr_meta._write.stats import block_stats

from .conftest import cap_memory
from .test_stac import quirky_items

ROOT = Path(__file__).resolve().parent.parent


def _item(i: int, extra: int = 0, pad: int = 400) -> dict:
    w, s = -170 + (i * 7) % 330, -60 + (i * 3) % 110
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"item-{i:07d}",
        "collection": "sentinel-2-l2a" if i % 3 else "landsat-c2-l2",
        "bbox": [w, s, w + 1, s + 1],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[w, s], [w + 1, s], [w + 1, s + 1], [w, s + 1], [w, s]]],
        },
        "properties": {
            "datetime": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
            "eo:cloud_cover": (i * 37) % 100,
            "platform": "sentinel-2a",
        },
        "assets": {"data": {"href": f"s3://b/{i}.tif", "type": "image/tiff", "title": "x" * pad}},
        "links": [],
    }
    for k in range(extra):
        item["properties"][f"extra:{k:03d}"] = float(i + k)
    return item


def _table(uri: str) -> pa.Table:
    return pa.table(open_meta(str(uri)).scan())


def test_streamed_equals_in_memory_on_quirky_items(tmp_path):
    """Small batches and chunks, types changing between batches: the same rows, types and
    statistics as the in-memory writer (zarr-python, all items at once)."""
    items = quirky_items() * 3
    for n, item in enumerate(items):
        item = items[n] = copy.deepcopy(item)
        item["id"] = f"{item['id']}-{n}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = _stac.items_to_table(iter(items))
        old = tmp_path / "old.zarr"
        g = zarr.open_group(str(old), mode="w")
        for c in columns.prepare(table, {}, None, None):
            a = g.create_array(c.name, shape=(len(c.values),), dtype=c.dtype, chunks=(4,), attributes=c.attrs)
            a[:] = c.values
        new = tmp_path / "new.zarr"
        original = sources.BATCH_ITEMS
        sources.BATCH_ITEMS = 2
        try:
            w = write_meta(items, new, chunk_size=4, progress=False)
        finally:
            sources.BATCH_ITEMS = original
    ref, got = _table(write_meta(table, tmp_path / "ref.zarr", chunk_size=4, progress=False)), _table(w)
    assert got.schema == ref.schema
    assert got.equals(ref)
    assert verify_statistics(w) == []
    stats = json.loads(open_meta(w).statistics_json)
    assert stats["present"] and stats["block_rows"] == 4
    # The statistics are those of the in-memory computation, block by block.
    doc = zarr.open_group(str(new / "meta")).attrs["zarr_meta:stats"]
    for c in columns.prepare(table, {}, None, None):
        expected = block_stats(c, 4)
        if expected is not None:
            assert doc["columns"][c.name] == json.loads(json.dumps(expected)), c.name


def test_batches_of_a_file_equal_the_whole(tmp_path):
    """ndjson and a FeatureCollection streamed in batches of 500 over two parsing processes give
    what the items give at once."""
    items = [_item(i) for i in range(1_300)]
    ndjson = tmp_path / "items.ndjson"
    ndjson.write_text("".join(json.dumps(i) + "\n" for i in items))
    fc = tmp_path / "items.json"
    fc.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    ref = _table(write_meta(_stac.items_to_table(iter(items)), tmp_path / "ref.zarr", chunk_size=512))
    parallel = sources._PARALLEL_BYTES
    sources._PARALLEL_BYTES = 1  # force the parsing processes on this small file
    try:
        a = _table(write_meta(ndjson, tmp_path / "a.zarr", chunk_size=512, progress=False))
        b = _table(write_meta(fc, tmp_path / "b.zarr", chunk_size=512, progress=False))
    finally:
        sources._PARALLEL_BYTES = parallel
    assert a.equals(ref) and b.equals(ref)
    assert a.column("id").to_pylist()[-1] == "item-0001299"


def test_bad_line_is_named_from_a_parsing_process(tmp_path):
    lines = [json.dumps(_item(i)) for i in range(1_200)]
    lines[1_100] = "{oops"
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines) + "\n")
    parallel = sources._PARALLEL_BYTES
    sources._PARALLEL_BYTES = 1
    try:
        with pytest.raises(ValueError, match=r"bad.ndjson, line 1101: not JSON"):
            write_meta(path, tmp_path / "x.zarr", progress=False)
    finally:
        sources._PARALLEL_BYTES = parallel
    assert not (tmp_path / "x.zarr" / "meta").exists()


#: The bar of streaming ingest: the whole run (the process and its parsing processes) holds
#: under 1 GB, whatever the input size.
INGEST_LIMIT_GB = 1.0


def _run_watched(args: list[str], **kw) -> tuple[subprocess.CompletedProcess, float]:
    """Run a Python script under ``ci/peak_rss.py``, which sums the resident memory of its whole
    process tree; returns the process and its peak in GiB. Resident memory, not an address-space
    cap: the address space a process maps grows with its threads and allocator arenas, which vary
    with the machine (the general subprocess cap still guards against a runaway)."""
    watcher = ROOT / "ci" / "peak_rss.py"
    proc = subprocess.run(
        [sys.executable, str(watcher), "--limit-gb", str(INGEST_LIMIT_GB), "--", sys.executable, *args],
        capture_output=True,
        text=True,
        preexec_fn=cap_memory,
        timeout=540,
        **kw,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = re.search(r"peak_rss: ([0-9.]+) GiB at most", proc.stderr)
    assert peak, proc.stderr[-3000:]
    return proc, float(peak.group(1))


_CAPPED = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from tests.test_ingest_stream import _item
    path = Path(sys.argv[1])
    with path.open("w") as f:  # the generated stream: larger than the memory the run may hold
        for i in range(int(sys.argv[4])):
            f.write(json.dumps(_item(i, pad=18_000)) + "\\n")
    from sedonadb_zarr_meta import write_meta
    write_meta(path, sys.argv[2], chunk_size=20_000, progress=False)
    """
)


def test_ingest_memory_is_bounded_below_the_size_of_its_json(tmp_path):
    """A stream whose JSON is larger than the memory the run may hold is ingested whole."""
    n = 100_000  # of ~18 kB each, as Sentinel-2 items: 1.8 GB of JSON
    src = tmp_path / "big.ndjson"
    _, peak = _run_watched(["-c", _CAPPED, str(src), str(tmp_path / "big.zarr"), str(ROOT), str(n)])
    assert 0 < peak < INGEST_LIMIT_GB < src.stat().st_size / (1 << 30)
    t = open_meta(str(tmp_path / "big.zarr"), arrays=["id", "eo:cloud_cover", "datetime"])
    assert t.num_rows == n
    table = pa.table(t.scan())
    assert table.column("id")[n - 1].as_py() == f"item-{n - 1:07d}"
    assert table.column("eo:cloud_cover").to_pylist()[:3] == [0, 37, 74]
    assert table.schema.field("datetime").type == pa.timestamp("us")
    assert verify_statistics(str(tmp_path / "big.zarr")) == []


def _wide(tmp_path: Path, name: str, icechunk: bool) -> tuple[str, list[dict]]:
    base = [_item(i, extra=40) for i in range(2_050)]
    uri = write_meta(base[:2_000], tmp_path / name, chunk_size=512, icechunk=icechunk, progress=False)
    return uri, base


def test_small_append_plain_store(tmp_path):
    uri, items = _wide(tmp_path, "plain.zarr", False)
    new = copy.deepcopy(items[2_000:])
    new[0]["properties"]["brand:new"] = "x"  # a column the group lacks
    del new[1]["properties"]["eo:cloud_cover"]  # a value missing
    write_meta(new, uri, mode="a", progress=False)
    got = _table(uri)
    ref = _table(
        write_meta(_stac.items_to_table(iter(items[:2_000] + new)), tmp_path / "ref.zarr", chunk_size=512)
    )
    assert got.num_rows == 2_050
    assert got.select(ref.column_names).equals(ref)
    assert got.column("brand:new").null_count == 2_049
    assert verify_statistics(uri) == []
    # Consolidated metadata is current: the shapes and the new column.
    cm = json.loads((tmp_path / "plain.zarr" / "meta" / "zarr.json").read_text())["consolidated_metadata"]
    assert cm["metadata"]["id"]["shape"] == [2_050] and "brand:new" in cm["metadata"]


def test_small_append_is_one_icechunk_commit(tmp_path):
    pytest.importorskip("icechunk")
    from sedonadb_zarr_meta import list_versions

    uri, items = _wide(tmp_path, "repo.icechunk", True)
    before = len(list_versions(uri).snapshots)
    write_meta(items[2_000:], uri, mode="a", progress=False, message="50 new items")
    versions = list_versions(uri)
    assert len(versions.snapshots) == before + 1
    assert versions.snapshots[0].message == "50 new items"
    got = _table(uri)
    assert got.num_rows == 2_050
    assert got.column("id").to_pylist()[-50:] == [i["id"] for i in items[2_000:]]
    assert np.allclose(got.column("extra:039").to_numpy()[-1], 2_049 + 39)
    assert verify_statistics(uri) == []


def _hilbert_keys(table: pa.Table) -> np.ndarray:
    """The Hilbert key (level 16, over the extent of the bbox centres) of each stored row."""
    import geopandas
    import shapely

    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    b = shapely.bounds(geoms)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    extent = (cx.min(), cy.min(), cx.max(), cy.max())
    return geopandas.GeoSeries(geoms).hilbert_distance(total_bounds=extent, level=16).to_numpy()


def test_sorted_stream_equals_the_in_memory_sort(tmp_path, monkeypatch):
    """``sort=True`` through spill files: the rows, types and statistics of the in-memory sort
    (zarr-python, all items at once), with types changing between batches of two items (numbers
    and text in one column, timestamps parsed from text next to other text) and ties kept in
    input order; the spill directory is gone afterwards."""
    from sedonadb_zarr_meta._write import spill, writer

    items = quirky_items() * 4
    for n, item in enumerate(items):
        item = items[n] = copy.deepcopy(item)
        item["id"] = f"{item['id']}-{n}"
        item["properties"]["mixed"] = [1, "a", 2.5, "x", None, 7][n % 6]
        item["properties"]["when"] = ["2024-01-01T00:00:00Z", "soon", None][n % 3]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    runs = []
    monkeypatch.setattr(
        spill, "_runs", lambda schemas, f=spill._runs: runs.append(len(schemas)) or f(schemas)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with monkeypatch.context() as m:
            m.setattr(writer, "streamable", lambda data: False)  # the in-memory writer
            ref = write_meta(items, tmp_path / "ref.zarr", chunk_size=4, sort=True, progress=False)
        monkeypatch.setattr(sources, "BATCH_ITEMS", 2)
        got = write_meta(items, tmp_path / "got.zarr", chunk_size=4, sort=True, progress=False)
    assert runs, "the batches' types did not change"
    r, g = _table(ref), _table(got)
    assert g.schema == r.schema
    assert g.equals(r)
    ids = g.column("id").to_pylist()
    assert ids != [i["id"] for i in items]
    # Items sharing a footprint keep their input order.
    assert ids[:3] == ["quirk-3-3", "quirk-3-9", "quirk-3-15"]
    assert g.column("when").to_pylist()[:2] == ["2024-01-01T00:00:00Z"] * 2
    stats = zarr.open_group(str(tmp_path / "got.zarr" / "meta")).attrs["zarr_meta:stats"]
    assert stats == zarr.open_group(str(tmp_path / "ref.zarr" / "meta")).attrs["zarr_meta:stats"]
    assert verify_statistics(got) == []
    assert not list(tmp_path.glob("zarr-meta-sort-*"))


def test_sorted_stream_removes_its_spill_on_error(tmp_path, monkeypatch):
    lines = [json.dumps(_item(i)) for i in range(30)]
    lines[25] = "{oops"
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sources, "BATCH_ITEMS", 10)
    with pytest.raises(ValueError, match=r"bad.ndjson, line 26: not JSON"):
        write_meta(path, tmp_path / "x.zarr", sort=True, progress=False)
    assert not list(tmp_path.glob("zarr-meta-sort-*"))
    assert not (tmp_path / "x.zarr" / "meta").exists()


def test_sorted_ingest_memory_is_bounded_below_the_size_of_its_json(tmp_path):
    """``sort=True`` on a stream whose JSON is larger than the memory the run may hold: every row,
    in Hilbert order."""
    n = 100_000  # of ~18 kB each: 1.84 GB of JSON
    src = tmp_path / "big.ndjson"
    with src.open("w") as f:
        for i in range(n):
            f.write(json.dumps(_item(i, pad=18_000)) + "\n")
    script = textwrap.dedent(
        """
        import sys
        from sedonadb_zarr_meta import write_meta
        if __name__ == "__main__":  # the parsing processes import it again
            write_meta(sys.argv[1], sys.argv[2], progress=False, sort=True)
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    _, peak = _run_watched(["-c", script, str(src), str(tmp_path / "big.zarr")], env=env)
    assert 0 < peak < INGEST_LIMIT_GB < src.stat().st_size / (1 << 30)
    assert not list(tmp_path.glob("zarr-meta-sort-*"))
    t = open_meta(str(tmp_path / "big.zarr"), arrays=["id", "eo:cloud_cover", "geometry"])
    assert t.num_rows == n
    table = pa.table(t.scan())
    assert np.all(np.diff(_hilbert_keys(table)) >= 0)
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == n and ids != sorted(ids)
    i = ids.index("item-0000001")
    assert table.column("eo:cloud_cover")[i].as_py() == 37
    assert verify_statistics(str(tmp_path / "big.zarr")) == []
