"""The benchmark's workloads, generated once into ``bench/data``: D1 (zarr-python
defaults), D2 (``write_meta``, Hilbert-sorted, with statistics), and D1 in an Icechunk repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bench_common import (
    COLLECTIONS,
    D2_CHUNK,
)


def _columns(n: int, seed: int, years: int = 1) -> dict:
    """``n`` items acquired uniformly over the ``years`` years that end with 2024."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-180, 178, n)
    y = rng.uniform(-60, 73, n)
    w = rng.uniform(0.1, 2.0, n)
    h = rng.uniform(0.1, 2.0, n)
    first = np.datetime64(f"{2025 - years}-01-01", "ms")
    span = int((np.datetime64("2025-01-01", "ms") - first).astype("int64"))
    date = first + rng.integers(0, span, n).astype("timedelta64[ms]")
    return {
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "collection": COLLECTIONS[rng.integers(0, 3, n)],
        "date": date,
        "cloud_cover": rng.uniform(0, 100, n).astype("float32"),
    }


def _boxes(cols: dict, i: int, j: int) -> list:
    """WKB of the boxes of rows i..j of ``cols`` (x, y, w, h)."""
    import shapely

    x, y, w, h = (cols[k][i:j] for k in ("x", "y", "w", "h"))
    return list(shapely.to_wkb(shapely.box(x, y, x + w, y + h)))


def make_d1(path: Path, n: int) -> str:
    import warnings

    import zarr

    warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
    if not (path / "meta" / "bbox").exists():
        cols = _columns(n, 1)
        g = zarr.open_group(str(path), mode="w").create_group("meta")
        chunks = (min(n, 100_000),)
        g.create_array("bbox", shape=(n,), dtype=zarr.dtype.VariableLengthBytes(), chunks=chunks)[:] = (
            np.array(_boxes(cols, 0, n), dtype=object)
        )
        g.create_array("collection", shape=(n,), dtype=str, chunks=chunks)[:] = cols["collection"].astype(
            object
        )
        g.create_array("date", shape=(n,), dtype="datetime64[ms]", chunks=chunks)[:] = cols["date"]
        g.create_array("cloud_cover", shape=(n,), dtype="float32", chunks=chunks)[:] = cols["cloud_cover"]
    return path.resolve().as_uri()


def make_d2(path: Path, n: int, years: int | None = None) -> str:
    """D2: ``n`` items Hilbert-sorted, written by ``write_meta`` in chunks of
    ``D2_CHUNK``. With ``years``, a catalogue grown over time instead: items
    spread over that many years, in acquisition-month order and sorted in
    space within each month, which is what monthly ``write_meta(sort=True,
    mode="a")`` appends produce (the row grid of chunks is the same)."""
    import geopandas
    import pyarrow as pa
    import shapely
    from sedonadb_zarr_meta import write_meta

    if not (path / "meta" / "bbox").exists():
        cols = _columns(n, 2, years or 1)
        cx, cy = cols["x"] + cols["w"] / 2, cols["y"] + cols["h"] / 2
        # The Hilbert key write_meta(sort=True) uses, over the whole area of the generator.
        centres = geopandas.GeoSeries(shapely.points(cx, cy))
        keys = [centres.hilbert_distance(total_bounds=(-180, -60, 180, 75), level=16).to_numpy()]
        if years:
            keys.append(cols["date"].astype("datetime64[M]").astype("int64"))  # last key sorts first
        order = np.lexsort(keys)
        for key in ("x", "y", "w", "h", "collection", "date", "cloud_cover"):
            cols[key] = cols[key][order]
        step = 1_000_000
        for i in range(0, n, step):
            j = min(n, i + step)
            t = pa.table(
                {
                    "bbox": pa.array(_boxes(cols, i, j), pa.binary()),
                    "collection": pa.array(cols["collection"][i:j]),
                    "date": pa.array(cols["date"][i:j]),
                    "cloud_cover": pa.array(cols["cloud_cover"][i:j]),
                }
            )
            write_meta(t, path, chunk_size=min(n, D2_CHUNK), mode="w" if i == 0 else "a")
    return path.resolve().as_uri()


def make_d1_icechunk(plain: str, path: Path) -> str | None:
    """D1's arrays copied chunk for chunk (same chunking, same codecs) into an
    Icechunk repository, one commit."""
    try:
        import icechunk
    except ImportError:
        return None
    import zarr

    if not (path / "repo").exists():
        import shutil

        partial = path.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        src = zarr.open_group(plain.removeprefix("file://"), mode="r")["meta"]
        repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(partial)))
        session = repo.writable_session("main")
        dst = zarr.open_group(session.store, mode="w").create_group("meta")
        for name, arr in src.arrays():
            out = dst.create_array(
                name,
                shape=arr.shape,
                dtype=arr.metadata.data_type,
                chunks=arr.chunks,
                compressors=arr.compressors,
                filters=arr.filters,
                serializer=arr.serializer,
            )
            out[:] = arr[:]
            out.attrs.update(dict(arr.attrs))
        session.commit("D1")
        partial.rename(path)
    return path.resolve().as_uri()
