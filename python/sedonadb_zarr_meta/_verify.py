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

from sedonadb_zarr_meta._writer import STATS_ATTRIBUTE, _block_stats, _prepare


def _covers(stored: list[float], actual: list[float]) -> bool:
    return (
        stored[0] <= actual[0]
        and stored[1] <= actual[1]
        and stored[2] >= actual[2]
        and stored[3] >= actual[3]
    )


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

    table_handle = open_meta(uri, **options)
    stats = json.loads(table_handle.attributes_json).get(STATS_ATTRIBUTE)
    if not isinstance(stats, dict):
        raise ValueError(f"{uri}: the group has no statistics ({STATS_ATTRIBUTE!r} attribute)")
    try:
        block_rows = int(stats["block_rows"])
        recorded_rows = int(stats["num_rows"])
        columns = dict(stats["columns"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{uri}: malformed statistics: {e}") from e
    problems: list[str] = []
    if recorded_rows != table_handle.num_rows:
        problems.append(f"statistics cover {recorded_rows} rows but the group has {table_handle.num_rows}")
    table = pa.table(table_handle.scan())
    for column in _prepare(table, {}, None, None):
        recorded = columns.get(column.name)
        if recorded is None:
            continue
        actual = _block_stats(column, block_rows) or {}
        for key, values in actual.items():
            stored = recorded.get(key)
            if not isinstance(stored, list) or len(stored) != len(values):
                problems.append(f"column {column.name!r}: {key!r} statistics have the wrong number of blocks")
                continue
            for block, (s, a) in enumerate(zip(stored, values)):
                end = min((block + 1) * block_rows, table.num_rows)
                rows = f"block {block} (rows {block * block_rows}..{end})"
                if a is None:
                    continue
                if s is None:
                    problems.append(f"column {column.name!r} {rows}: recorded as empty but holds values")
                elif key == "bbox" and not _covers(s, a):
                    problems.append(
                        f"column {column.name!r} {rows}: bbox {s} does not contain the data's {a}"
                    )
                elif key == "min" and not s <= a:
                    problems.append(f"column {column.name!r} {rows}: min {s!r} is above the data's {a!r}")
                elif key == "max" and not s >= a:
                    problems.append(f"column {column.name!r} {rows}: max {s!r} is below the data's {a!r}")
    return problems
