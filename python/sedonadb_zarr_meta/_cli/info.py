"""``zarr-meta info``: what a store holds (rows, columns with their CRS, chunks, statistics,
Icechunk versions), from its metadata alone."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from sedonadb_zarr_meta._cli.args import add_read_options, describe, epilog, read_options
from sedonadb_zarr_meta._cli.text import count, crs_label, geometry_crs

__all__ = ["add_parser", "describe_store", "format_report", "run"]

NAME = "info"
#: Snapshots listed by ``info`` (``--json`` lists all).
_SNAPSHOTS_SHOWN = 10


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``info`` subcommand's parser."""
    parser = commands.add_parser(
        NAME,
        help="describe a store: rows, columns and CRSs, chunks, statistics, Icechunk versions",
        description=describe(
            "Describe the 'meta' group of a Zarr store or Icechunk repository: its rows, its columns "
            "with their Arrow types (geometry columns with their CRS), its chunks, which columns have "
            "per-chunk statistics and whether they are current, and for Icechunk repositories the "
            "branches, tags and snapshots. Reads metadata only, never a chunk."
        ),
        epilog=epilog(
            """
            examples:
              zarr-meta info catalogue.zarr
              zarr-meta info catalogue.zarr --json
              zarr-meta info s3://bucket/catalogue.icechunk --option tag=v1 \\
                  --storage-option aws_region=eu-central-1
              zarr-meta info store.zarr --option group=items
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "uri", metavar="URI", help="store or repository: path, file://, s3://, gs://, az://, http(s)://"
    )
    add_read_options(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    """``zarr-meta info``."""
    report = describe_store(args.uri, read_options(args))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(report))
    return 0


# --------------------------------------------------------------------------------------------
# What the store holds
# --------------------------------------------------------------------------------------------


def _versions(uri: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """Branches, tags and snapshots if ``uri`` holds an Icechunk repository, else ``None``."""
    from sedonadb_zarr_meta import list_versions

    try:
        versions = list_versions(uri, storage_options=options.get("storage_options"))
    except FileNotFoundError:
        return None  # the store was opened already, so it is a plain Zarr store
    reading = {k: options[k] for k in ("branch", "tag", "snapshot") if k in options} or {"branch": "main"}
    return {
        "reading": reading,
        "branches": versions.branches,
        "tags": versions.tags,
        "snapshots": [
            {"id": s.id, "parent_id": s.parent_id, "time": s.time.isoformat(), "message": s.message}
            for s in versions.snapshots
        ],
    }


def _chunks(stats: Mapping[str, Any], table: Any) -> dict[str, Any]:
    """Rows per chunk and number of chunks: from current statistics, else from the arrays' metadata."""
    num_rows = table.num_rows
    if stats["present"] and stats["problem"] is None:
        rows = int(stats["block_rows"])
        return {"rows_per_chunk": rows, "num_chunks": -(-num_rows // rows), "source": "statistics"}
    chunk_rows: Mapping[str, Sequence[int]] = table.chunk_rows
    by_array = {name: max(rows) for name, rows in chunk_rows.items() if rows}
    if by_array and len(by_array) == len(chunk_rows):
        sizes = set(by_array.values())
        if len(sizes) == 1:
            rows = sizes.pop()
            return {"rows_per_chunk": rows, "num_chunks": -(-num_rows // rows), "source": "array metadata"}
        return {"rows_per_chunk": None, "num_chunks": None, "source": "array metadata", "by_array": by_array}
    return {"rows_per_chunk": None, "num_chunks": None, "source": None}


def describe_store(uri: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Everything ``zarr-meta info`` reports about ``uri``, as JSON-ready data."""
    import pyarrow as pa

    from sedonadb_zarr_meta import open_meta

    table = open_meta(uri, **options)
    schema = pa.schema(table)
    columns = []
    for field in schema:
        is_geo, crs = geometry_crs(field)
        columns.append(
            {
                "name": field.name,
                "type": str(field.type),
                "nullable": field.nullable,
                "geometry": {"encoding": "WKB", "crs": crs} if is_geo else None,
            }
        )
    stats = json.loads(table.statistics_json)
    if stats["present"]:
        stats["without"] = [f.name for f in schema if f.name not in (stats.get("columns") or {})]
    return {
        "uri": uri,
        "group": options.get("group", "meta"),
        "num_rows": table.num_rows,
        "columns": columns,
        "chunks": _chunks(stats, table),
        "statistics": stats,
        "icechunk": _versions(uri, options),
    }


# --------------------------------------------------------------------------------------------
# As text
# --------------------------------------------------------------------------------------------


def _chunk_lines(chunks: Mapping[str, Any]) -> list[str]:
    if chunks.get("rows_per_chunk"):
        return [
            f"chunks:      {chunks['rows_per_chunk']} rows per chunk, "
            f"{count(chunks['num_chunks'], 'chunk')} (from the {chunks['source']})"
        ]
    if chunks.get("by_array"):
        sizes = ", ".join(f"{k} {v}" for k, v in chunks["by_array"].items())
        return [f"chunks:      rows per chunk differ by array: {sizes}"]
    return ["chunks:      unknown (no statistics, and no array to tell)"]


def _column_lines(columns: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [f"columns ({len(columns)}):"]
    width = max((len(c["name"]) for c in columns), default=0)
    for c in columns:
        kind = f"geometry (WKB, CRS {crs_label(c['geometry']['crs'])})" if c["geometry"] else c["type"]
        lines.append(f"  {c['name']:<{width}}  {kind}")
    return lines


def _kind_label(kinds: Sequence[str]) -> str:
    if list(kinds) == ["max", "min"]:
        return "min/max"
    if list(kinds) == ["bbox"]:
        return "bounding box"
    return "/".join(kinds)


def _statistics_lines(stats: Mapping[str, Any]) -> list[str]:
    if not stats["present"]:
        return ["statistics:  none (every query reads every chunk)"]
    if stats.get("block_rows") is None:
        return [f"statistics:  unusable: {stats['problem']}"]
    state = "current" if stats["current"] else f"stale ({stats['problem']}), not used to skip chunks"
    lines = [
        f"statistics:  {state}; {count(stats['num_blocks'], 'chunk')} of {stats['block_rows']} rows "
        f"covering {stats['num_rows']} rows"
    ]
    by_kind: dict[str, list[str]] = {}
    for name, kinds in stats["columns"].items():
        by_kind.setdefault(_kind_label(kinds), []).append(name)
    if stats["without"]:
        by_kind["none"] = stats["without"]
    label_width = max(len(k) for k in by_kind) + 2 if by_kind else 0
    for label, names in by_kind.items():
        head = f"  {label + ':':<{label_width}}"
        lines.append(
            textwrap.fill(", ".join(names), width=100, initial_indent=head, subsequent_indent=" " * len(head))
        )
    return lines


def _icechunk_lines(versions: Mapping[str, Any] | None) -> list[str]:
    if versions is None:
        return ["icechunk:    no (a plain Zarr store)"]
    reading = ", ".join(f"{k} {v}" for k, v in versions["reading"].items())
    lines = [
        f"icechunk:    repository; reading {reading}; {count(len(versions['branches']), 'branch')}, "
        f"{count(len(versions['tags']), 'tag')}, {count(len(versions['snapshots']), 'snapshot')}"
    ]
    lines += [f"  branch {name} -> {snapshot}" for name, snapshot in versions["branches"].items()]
    lines += [f"  tag {name} -> {snapshot}" for name, snapshot in versions["tags"].items()]
    shown = versions["snapshots"][:_SNAPSHOTS_SHOWN]
    if shown:
        lines.append("  snapshots (newest first):")
    lines += [f"    {s['id']}  {s['time']}  {' '.join(s['message'].split())}" for s in shown]
    if len(versions["snapshots"]) > len(shown):
        lines.append(f"    ... {len(versions['snapshots']) - len(shown)} more (--json lists all)")
    return lines


def format_report(report: Mapping[str, Any]) -> str:
    """``describe_store``'s report as the text ``zarr-meta info`` prints."""
    lines = [
        f"store:       {report['uri']}",
        f"group:       {report['group'] or '(root)'}",
        f"rows:        {report['num_rows']}",
        *_chunk_lines(report["chunks"]),
        *_column_lines(report["columns"]),
        *_statistics_lines(report["statistics"]),
        *_icechunk_lines(report["icechunk"]),
    ]
    return "\n".join(lines)
