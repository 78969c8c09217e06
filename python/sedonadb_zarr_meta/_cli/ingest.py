"""``zarr-meta ingest``: STAC items (a file, or a STAC API search) written as a store's ``meta`` group."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from sedonadb_zarr_meta._cli.args import (
    UsageError,
    add_storage_options,
    bbox,
    describe,
    epilog,
    names,
    positive_int,
    storage_options,
)
from sedonadb_zarr_meta._cli.text import count, names_text

__all__ = ["add_parser", "run"]

NAME = "ingest"
#: The search parameters of ``--stac-api`` (``ingest_stac_search``'s ``**search_parameters``).
_SEARCH = ("collections", "bbox", "datetime", "max_items", "limit")


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``ingest`` subcommand's parser."""
    parser = commands.add_parser(
        NAME,
        usage=("%(prog)s [options] SRC URI\n       %(prog)s [options] --stac-api URL [search options] URI"),
        help="write STAC items (file or STAC API search) as a store's 'meta' group",
        description=describe(
            "Write item metadata as the 'meta' group of a Zarr store (or Icechunk repository), with "
            "per-chunk statistics and consolidated metadata. SRC is a STAC Item, ItemCollection or "
            "FeatureCollection (.json), newline-delimited STAC items (.ndjson) or a (stac-)GeoParquet "
            "file. With --stac-api, the items come from a STAC API search instead and SRC is omitted. "
            "Without --append an existing group is replaced."
        ),
        epilog=epilog(
            """
            examples:
              zarr-meta ingest examples/stac/items.ndjson catalogue.zarr --sort
              zarr-meta ingest more-items.ndjson catalogue.zarr --append
              zarr-meta ingest items.parquet s3://bucket/catalogue.zarr --chunk-size 50000 \\
                  --storage-option aws_region=eu-central-1
              zarr-meta ingest --stac-api https://stac.example.org/v1 catalogue.zarr \\
                  --collections sentinel-2-l2a --bbox=5,45,11,48 \\
                  --datetime 2024-06-01/2024-08-31 --max-items 5000

            A bounding box starting with a negative number may be written --bbox=-10,35,5,45.
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "src", metavar="SRC", help="STAC .json / .ndjson or GeoParquet file (omit with --stac-api)"
    )
    parser.add_argument(
        "uri", metavar="URI", nargs="?", help="store to write: path, file://, s3://, gs://, az://"
    )
    _add_write_arguments(parser)
    _add_search_arguments(parser)
    return parser


def _add_write_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sort", action="store_true", help="order rows along a Hilbert curve (tighter chunk extents)"
    )
    parser.add_argument("--append", action="store_true", help="append the rows to the existing group")
    parser.add_argument(
        "--chunk-size", type=positive_int, metavar="N", help="rows per chunk (default 100000)"
    )
    parser.add_argument(
        "--crs", metavar="CRS", help="CRS of the geometry columns, e.g. EPSG:32633 (default: the data's)"
    )
    parser.add_argument("--group", metavar="PATH", help="group path inside the store (default meta)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    add_storage_options(parser)
    icechunk = parser.add_argument_group("Icechunk repositories")
    icechunk.add_argument(
        "--icechunk",
        action="store_true",
        help="write into an Icechunk repository at URI, creating it if missing",
    )
    icechunk.add_argument("--branch", metavar="NAME", help="branch to commit to (default main)")
    icechunk.add_argument(
        "--message", metavar="TEXT", help="commit message (default: a summary of the write)"
    )


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
    stac = parser.add_argument_group("STAC API search (--stac-api URL URI)")
    stac.add_argument("--stac-api", metavar="URL", help="search this STAC API instead of reading SRC")
    stac.add_argument("--collections", type=names, metavar="A,B", help="collections to search")
    stac.add_argument(
        "--bbox", type=bbox, metavar="W,S,E,N", help="bounding box to search (longitude/latitude)"
    )
    stac.add_argument(
        "--datetime", metavar="X", help="instant or interval, e.g. 2024-06-01/2024-08-31 or 2024-06-01/.."
    )
    stac.add_argument("--max-items", type=positive_int, metavar="N", help="stop after N items")
    stac.add_argument("--limit", type=positive_int, metavar="N", help="items per page requested from the API")


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


def _source_and_target(args: argparse.Namespace, search: dict[str, Any]) -> tuple[str | None, str]:
    """``(SRC, URI)``, the command line checked: SRC is ``None`` with ``--stac-api``."""
    if args.stac_api:
        if args.uri is not None:
            raise UsageError("with --stac-api give only URI (the store to write), not SRC")
        if args.crs:
            raise UsageError("--crs does not apply to --stac-api: STAC geometries are longitude/latitude")
        return None, args.src
    if args.uri is None:
        raise UsageError("give SRC and URI (or --stac-api URL and URI)")
    if search:
        raise UsageError(f"{', '.join('--' + k.replace('_', '-') for k in search)} need --stac-api")
    if "://" not in args.src and not Path(args.src).exists():
        raise FileNotFoundError(f"{args.src}: no such file")
    return args.src, args.uri


def _read_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options that read the written group back (its group, branch and storage)."""
    from sedonadb_zarr_meta import validate_options

    storage = storage_options(args)
    read: dict[str, Any] = {"storage_options": storage} if storage else {}
    if args.group is not None:
        read["group"] = args.group
    if args.branch:
        read["branch"] = args.branch
    try:
        return validate_options(read)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _write_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``write_meta`` / ``ingest_stac_search`` the command line gives."""
    options: dict[str, Any] = {
        "mode": "a" if args.append else "w",
        "sort": args.sort,
        "progress": False if args.no_progress else None,
        "storage_options": storage_options(args) or None,
    }
    given = {
        "chunk_size": args.chunk_size,
        "crs": args.crs,
        "group": args.group,
        "branch": args.branch,
        "message": args.message,
        "icechunk": True if args.icechunk else None,
    }
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def _existing_rows(uri: str, options: dict[str, Any]) -> int:
    from sedonadb_zarr_meta import open_meta

    try:
        return open_meta(uri, **options).num_rows
    except FileNotFoundError:
        return 0


def run(args: argparse.Namespace) -> int:
    """``zarr-meta ingest``."""
    import sedonadb_zarr_meta as szm

    search = {k: getattr(args, k) for k in _SEARCH if getattr(args, k) is not None}
    src, uri = _source_and_target(args, search)
    read = _read_options(args)
    before = _existing_rows(uri, read) if args.append else 0
    started = time.perf_counter()
    if src is None:
        written = szm.ingest_stac_search(args.stac_api, uri, **_write_options(args), **search)
    else:
        written = szm.write_meta(src, uri, **_write_options(args))
    elapsed = time.perf_counter() - started
    print(_summary(args, szm.open_meta(str(written or uri), **read), str(written or uri), before, elapsed))
    return 0


def _summary(args: argparse.Namespace, table: Any, uri: str, before: int, elapsed: float) -> str:
    """The one paragraph ``ingest`` prints: what was written where, in how many chunks."""
    from sedonadb_zarr_meta._write import DEFAULT_CHUNK_SIZE

    stats = json.loads(table.statistics_json)
    chunk_rows = stats["block_rows"] if stats["present"] else None
    if chunk_rows is None:
        first = next((rows for rows in table.chunk_rows.values() if rows), None)
        chunk_rows = max(first) if first else args.chunk_size or DEFAULT_CHUNK_SIZE
    group = args.group if args.group is not None else "meta"
    if args.append:
        head = f"Appended {table.num_rows - before} rows to {uri} (group {group}, now {table.num_rows} rows)"
    else:
        head = f"Wrote {table.num_rows} rows to {uri} (group {group})"
    source = f"the STAC API {args.stac_api}" if args.stac_api else args.src
    names = table.column_names
    statistics = "with per-chunk statistics" if stats["present"] else "without statistics"
    return (
        f"{head} in {elapsed:.2f} s, from {source}: {len(names)} columns ({names_text(names)}), "
        f"{count(-(-table.num_rows // chunk_rows), 'chunk')} of {chunk_rows} rows {statistics}"
        f"{', Hilbert-sorted' if args.sort else ''}."
    )
