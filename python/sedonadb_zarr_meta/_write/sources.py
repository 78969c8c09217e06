"""What ``write_meta`` streams, as Arrow tables of bounded size: STAC files (ndjson line by
line, a ``.json`` FeatureCollection through a streaming parser), STAC items from any iterable
(a STAC API search's pages), (stac-)GeoParquet files by row group, and Arrow tables or streams.

Large STAC files are parsed by other processes while this one writes, so both cores work (two
for ndjson, taking turns; one for a FeatureCollection); at most one batch per parsing process
waits for the writer. A batch is :data:`BATCH_ITEMS` items: its JSON is parsed, turned into
Arrow and dropped before the next is read.
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

#: STAC items per batch (Sentinel-2 items of ~17 kB: ~8.5 MB of JSON).
BATCH_ITEMS = 500
#: Processes parsing an ndjson file (each takes every other batch).
_PARSERS = 2
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


def _ndjson_items(path: Path, size: int = 0, part: int = 0, parts: int = 1) -> Iterator[dict[str, Any]]:
    """The items of an ndjson file; with ``parts`` > 1 only those of every ``parts``-th batch
    of ``size`` items from the ``part``-th (the other lines are read but not parsed)."""
    with path.open("rb") as f:
        item = 0
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            item += 1
            if parts > 1 and ((item - 1) // size) % parts != part:
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


def _is_ndjson(path: Path) -> bool:
    return path.suffix.lower() in (".ndjson", ".jsonl", ".geojsonl")


def stac_file_batches(
    path: Path, size: int | None = None, part: int = 0, parts: int = 1
) -> Iterator[pa.Table]:
    """A STAC file's items, ``size`` (default :data:`BATCH_ITEMS`) at a time, as Arrow (of an
    ndjson file split between ``parts`` processes, the batches of the ``part``-th)."""
    size = size or BATCH_ITEMS
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    items = _ndjson_items(path, size, part, parts) if _is_ndjson(path) else _json_items(path)
    yield from _item_batches(items, size)


def _produce(path: str, size: int, part: int, parts: int, queue: Any) -> None:
    """A parsing process: its batches of a STAC file into ``queue``, with their warnings."""
    try:
        source = stac_file_batches(Path(path), size, part, parts)
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
    """Batches parsed by other processes (two for ndjson, taking turns; one for a
    FeatureCollection, whose parser cannot be split), in the file's order."""
    import multiprocessing as mp
    import queue as queues

    parts = _PARSERS if _is_ndjson(path) else 1
    ctx = mp.get_context("spawn")
    qs = [ctx.Queue(maxsize=1) for _ in range(parts)]
    processes = [
        ctx.Process(target=_produce, args=(str(path), size, k, parts, qs[k]), daemon=True)
        for k in range(parts)
    ]
    for process in processes:
        process.start()
    try:
        turn, done = 0, 0
        while done < parts:
            k = turn % parts
            try:
                kind, value, messages = qs[k].get(timeout=5)
            except queues.Empty:
                if not processes[k].is_alive():
                    code = processes[k].exitcode
                    raise RuntimeError(f"{path}: the process reading it stopped (exit code {code})") from None
                continue
            for message in messages:
                warnings.warn(message, stacklevel=4)
            if kind == "error":
                raise value
            if kind == "end":
                # The others end at their next turn: their batches come after this one's.
                done += 1
            else:
                yield value
            turn += 1
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()


def batches(data: Any, size: int | None = None) -> Iterator[pa.Table]:
    """``data`` (see ``write_meta``) as Arrow tables of at most ``size`` (default
    :data:`BATCH_ITEMS`, read when called) items or :data:`BATCH_ROWS` rows."""
    size = size or BATCH_ITEMS
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
