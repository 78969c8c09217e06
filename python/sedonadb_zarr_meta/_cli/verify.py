"""``zarr-meta verify``: the per-chunk statistics checked against the data (exit 1 when they disagree)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sedonadb_zarr_meta._cli.args import add_read_options, describe, epilog, read_options
from sedonadb_zarr_meta._cli.text import count, names_text

__all__ = ["add_parser", "run"]

NAME = "verify"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``verify`` subcommand's parser."""
    parser = commands.add_parser(
        NAME,
        help="check the per-chunk statistics against the data (exit 1 when they disagree)",
        description=describe(
            "Read the whole group once and check that every chunk's recorded statistics (bounding "
            "boxes, min/max) bound its data, as readers trust them to skip chunks. Exit status 0 when "
            "they agree with the data, 1 when they do not (or the group has none)."
        ),
        epilog=epilog(
            """
            examples:
              zarr-meta verify catalogue.zarr
              zarr-meta verify s3://bucket/catalogue.zarr --storage-option aws_region=eu-central-1
              zarr-meta verify repo.icechunk --option tag=v1
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uri", metavar="URI", help="store or repository to check")
    add_read_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """``zarr-meta verify``: exit status 0 when the statistics bound the data, 1 when they do not."""
    from sedonadb_zarr_meta import open_meta, verify_statistics

    options = read_options(args)
    problems = verify_statistics(args.uri, **options)
    if problems:
        print(f"{args.uri}: {count(len(problems), 'problem')} with the chunk statistics:")
        for problem in problems:
            print(f"  {problem}")
        print(
            "Queries trusting these statistics may skip chunks that hold matching rows; "
            "write the group again (zarr-meta ingest) to fix them."
        )
        return 1
    table = open_meta(args.uri, **options)
    stats = json.loads(table.statistics_json)
    columns = list(stats["columns"] or {})
    block_rows = int(stats["block_rows"] or 1)
    print(
        f"{args.uri}: the statistics agree with the data: {table.num_rows} rows in "
        f"{count(-(-table.num_rows // block_rows), 'chunk')} of {block_rows} rows; statistics of "
        f"{count(len(columns), 'column')} ({names_text(columns, 8)})."
    )
    return 0
