"""What ``write_meta`` streams, as Arrow tables of bounded size: STAC files (ndjson line by
line, a ``.json`` FeatureCollection through a streaming parser), STAC items from any iterable
(a STAC API search's pages), (stac-)GeoParquet files by row group, and Arrow tables or streams.

Large STAC files are parsed in a second process while this one writes, so both cores work; at
most two batches wait between them. A batch is :data:`BATCH_ITEMS` items: its JSON is parsed,
turned into Arrow and dropped before the next is read.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from sedonadb_zarr_meta import _stac

__all__ = ["BATCH_ITEMS", "BATCH_ROWS", "batches"]

#: STAC items per batch (Sentinel-2 items of ~17 kB: ~35 MB of JSON).
BATCH_ITEMS = 2_000
#: Rows per batch of Arrow and GeoParquet inputs.
BATCH_ROWS = 65_536
#: STAC files from this size on are parsed in a second process.
_PARALLEL_BYTES = 16 << 20

try:  # orjson parses items about twice as fast as the standard library, where installed
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads


def _item_batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[pa.Table]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield _stac.items_to_table(batch, keep_text=True)
            batch = []
    if batch:
        yield _stac.items_to_table(batch, keep_text=True)


def _ndjson_items(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = _loads(line)
            except ValueError as e:
                raise _stac.StacError(f"{path}, line {number}: not JSON ({getattr(e, 'msg', e)})") from None
            yield from _stac.iter_items(value, f"{path}, line {number}")


def _json_items(path: Path) -> Iterator[dict[str, Any]]:
    """The items of a FeatureCollection (or a JSON array of items), parsed as they are read;
    a single Item (a small file) is read whole."""
    import ijson

    with path.open("rb") as f:
        head = f.read(1024).lstrip()
        f.seek(0)
        prefix = "item" if head.startswith(b"[") else "features.item"
        count = 0
        try:
            for count, item in enumerate(ijson.items(f, prefix, use_float=True), 1):
                yield _stac._check_item(item, f"{path}, feature {count}")
        except ijson.JSONError as e:
            raise _stac.StacError(f"{path}: not JSON after feature {count} ({e})") from None
    if not count:
        yield from _stac.iter_items(path)


def stac_file_batches(path: Path, size: int = BATCH_ITEMS) -> Iterator[pa.Table]:
    """A STAC file's items, ``size`` at a time, as Arrow."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    ndjson = path.suffix.lower() in (".ndjson", ".jsonl", ".geojsonl")
    yield from _item_batches(_ndjson_items(path) if ndjson else _json_items(path), size)


def _produce(path: str, size: int, queue: Any) -> None:
    """The second process: a STAC file's batches into ``queue``, with their warnings."""
    try:
        source = stac_file_batches(Path(path), size)
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                table = next(source, None)
            if table is None:
                break
            queue.put(("batch", table, [str(w.message) for w in caught]))
        queue.put(("end", None, []))
    except BaseException as e:  # noqa: BLE001 - handed to the writing process, which raises it
        queue.put(("error", e, []))


def _parallel(path: Path, size: int) -> Iterator[pa.Table]:
    import multiprocessing as mp
    import queue as queues

    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=2)
    process = ctx.Process(target=_produce, args=(str(path), size, q), daemon=True)
    process.start()
    try:
        while True:
            try:
                kind, value, messages = q.get(timeout=5)
            except queues.Empty:
                if not process.is_alive():
                    raise RuntimeError(f"{path}: the process reading it stopped (exit code {process.exitcode})") from None
                continue
            for message in messages:
                warnings.warn(message, stacklevel=4)
            if kind == "end":
                break
            if kind == "error":
                raise value
            yield value
        process.join()
    finally:
        if process.is_alive():
            process.terminate()
            process.join()


def batches(data: Any, size: int = BATCH_ITEMS) -> Iterator[pa.Table]:
    """``data`` (see ``write_meta``) as Arrow tables of at most ``size`` items or
    :data:`BATCH_ROWS` rows."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if _stac.is_stac_path(path):
            if path.exists() and path.stat().st_size >= _PARALLEL_BYTES:
                yield from _parallel(path, size)
            else:
                yield from stac_file_batches(path, size)
            return
        yield from _geoparquet_batches(path)
        return
    if isinstance(data, pa.RecordBatch):
        yield pa.Table.from_batches([data])
        return
    if isinstance(data, pa.Table):
        for batch in data.to_batches(max_chunksize=BATCH_ROWS):
            yield pa.Table.from_batches([batch])
        return
    if hasattr(data, "__arrow_c_stream__"):
        for batch in pa.RecordBatchReader.from_stream(data):
            yield pa.Table.from_batches([batch])
        return
    yield from _item_batches(_stac.iter_items(data), size)


def _geoparquet_batches(path: Path) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    f = pq.ParquetFile(path)
    for batch in f.iter_batches(batch_size=BATCH_ROWS):
        yield _stac.normalise_stac_geoparquet(pa.Table.from_batches([batch]))
