"""``verify_statistics``: check a store's chunk statistics against its data.

Readers trust the statistics ``write_meta`` records (``"zarr_meta:stats"``),
as Parquet readers trust theirs: a chunk whose statistics exclude a query is
never read. Statistics that understate the data would silently drop rows, so
stores written or edited by other tools can be checked here first.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from sedonadb_zarr_meta import _lib
from sedonadb_zarr_meta._write.columns import prepare
from sedonadb_zarr_meta._write.stats import block_stats


def _covers(stored: list[float], actual: list[float]) -> bool:
    return (
        stored[0] <= actual[0]
        and stored[1] <= actual[1]
        and stored[2] >= actual[2]
        and stored[3] >= actual[3]
    )


def _block_problems(
    name: str, key: str, stored: Any, actual: list[Any], block_rows: int, rows: int
) -> list[str]:
    """The blocks of one column's ``key`` statistics (``bbox``, ``min``, ``max``) that do not
    bound the data's."""
    if not isinstance(stored, list) or len(stored) != len(actual):
        return [f"column {name!r}: {key!r} statistics have the wrong number of blocks"]
    problems = []
    for block, (s, a) in enumerate(zip(stored, actual)):
        end = min((block + 1) * block_rows, rows)
        where = f"column {name!r} block {block} (rows {block * block_rows}..{end})"
        if a is None:
            continue
        if s is None:
            problems.append(f"{where}: recorded as empty but holds values")
        elif key == "bbox" and not _covers(s, a):
            problems.append(f"{where}: bbox {s} does not contain the data's {a}")
        elif key == "min" and not s <= a:
            problems.append(f"{where}: min {s!r} is above the data's {a!r}")
        elif key == "max" and not s >= a:
            problems.append(f"{where}: max {s!r} is below the data's {a!r}")
    return problems


def verify_statistics(uri: str, **options: Any) -> list[str]:
    """Compare the chunk statistics of ``uri``'s group with its data.

    Every block's recorded bounding box must contain its geometries' extent,
    and every recorded min/max must bound its values; a block recorded as
    empty must hold no value. Reads the whole group once.

    Returns:
        One message per disagreement (empty when the statistics are sound).

    Raises:
        ValueError: the group has no statistics, or they are malformed.

    Examples:
        >>> problems = verify_statistics("s3://bucket/store.zarr")  # doctest: +SKIP
        >>> assert not problems, problems  # doctest: +SKIP
    """
    from sedonadb_zarr_meta import open_meta

    handle = open_meta(uri, **options)
    summary = json.loads(handle.statistics_json)
    if not summary["present"]:
        raise ValueError(f"{uri}: the group has no statistics ({_lib.STATS_ATTRIBUTE!r} attribute)")
    if summary["block_rows"] is None:
        raise ValueError(f"{uri}: malformed statistics: {summary['problem']}")
    block_rows, recorded_rows = int(summary["block_rows"]), int(summary["num_rows"])
    recorded = json.loads(handle.attributes_json)[_lib.STATS_ATTRIBUTE]["columns"]
    problems: list[str] = []
    if recorded_rows != handle.num_rows:
        problems.append(f"statistics cover {recorded_rows} rows but the group has {handle.num_rows}")
    table = pa.table(handle.scan())
    for column in prepare(table, {}, None, None):
        entry = recorded.get(column.name)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            problems.append(f"column {column.name!r}: malformed statistics")
            continue
        for key, values in (block_stats(column, block_rows) or {}).items():
            problems += _block_problems(column.name, key, entry.get(key), values, block_rows, table.num_rows)
    return problems
