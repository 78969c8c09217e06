"""``zarr-meta query``: SQL over a store (as table ``meta``), printed as a table or written to a file."""

from __future__ import annotations

import argparse
from typing import Any

from sedonadb_zarr_meta._cli import files, hosts
from sedonadb_zarr_meta._cli.args import (
    UsageError,
    add_read_options,
    describe,
    epilog,
    non_negative_int,
    read_options,
)
from sedonadb_zarr_meta._cli.text import count, format_table, simplify, simplify_schema

__all__ = ["add_parser", "run"]

NAME = "query"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``query`` subcommand's parser."""
    parser = commands.add_parser(
        NAME,
        help="run SQL over a store (as table 'meta'); print the result or write it to a file",
        description=describe(
            "Run SQL over the store's 'meta' group, which the SQL names as table 'meta' (or the name "
            "given with --table). SedonaDB's spatial functions (ST_*) are available, and so is "
            "sd_read_zarr_meta(uri [, options_json]) for other stores. The result is printed as a "
            "table (geometry as WKT), or written to --out as Parquet (GeoParquet), CSV (geometry as "
            "WKT) or GeoJSON (the column named geometry, else the first geometry column, is the "
            "features' geometry; the other columns are properties)."
        ),
        epilog=epilog(
            """
            examples:
              zarr-meta query catalogue.zarr "SELECT count(*) FROM meta"
              zarr-meta query catalogue.zarr "SELECT id, platform, \\"eo:cloud_cover\\" FROM meta
                  WHERE ST_Intersects(geometry, ST_SetSRID(ST_GeomFromText(
                  'POLYGON((5 45, 11 45, 11 48, 5 48, 5 45))'), 4326)) ORDER BY id"
              zarr-meta query catalogue.zarr "SELECT * FROM meta WHERE collection = 'sentinel-2-l2a'" \\
                  --out s2.geojson
              zarr-meta query catalogue.zarr "SELECT id, datetime FROM meta" --format csv > items.csv
              zarr-meta query s3://bucket/catalogue.zarr "SELECT count(*) FROM meta" \\
                  --storage-option aws_region=eu-central-1 --host datafusion
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uri", metavar="URI", help="store or repository to register as table 'meta'")
    parser.add_argument("sql", metavar="SQL", help="the query; name the store as table 'meta'")
    parser.add_argument("--out", metavar="FILE", help="write the result to FILE (format from its extension)")
    parser.add_argument(
        "--format",
        choices=sorted(files.FORMATS),
        help="output format (default: from --out's extension); csv and geojson without --out go to stdout",
    )
    parser.add_argument(
        "--host", choices=hosts.HOSTS, help="query engine (default: sedonadb when installed, else datafusion)"
    )
    parser.add_argument(
        "--max-rows",
        type=non_negative_int,
        default=50,
        metavar="N",
        help="rows printed at most (default 50; 0 prints all); --out writes all",
    )
    parser.add_argument(
        "--table", default="meta", metavar="NAME", help="table name of the store in the SQL (default meta)"
    )
    add_read_options(parser)
    return parser


def _batches(df: Any) -> Any:
    """A RecordBatchReader of a SedonaDB or datafusion-python DataFrame."""
    import pyarrow as pa

    return pa.RecordBatchReader.from_stream(df)


def run(args: argparse.Namespace) -> int:
    """``zarr-meta query``."""
    options = read_options(args)
    fmt = files.output_format(args.out, args.format)
    if fmt == "parquet" and args.out is None:
        raise UsageError("--format parquet needs --out FILE")
    if not args.table.isidentifier():
        raise UsageError(f"--table must be a plain SQL name (letters, digits, _), got {args.table!r}")
    con = hosts.connect(args.host or hosts.default_host(), args.uri, options, args.table)
    df = con.sql(args.sql)
    if fmt is not None:
        rows = files.write(_batches(df), fmt, args.out)
        if args.out is not None:
            print(f"wrote {count(rows, 'row')} to {args.out} ({fmt})")
        return 0
    _print(df, args.max_rows)
    return 0


def _print(df: Any, limit: int) -> None:
    """At most ``limit`` rows of ``df`` as a table (every row when ``limit`` is 0)."""
    import pyarrow as pa

    reader = _batches(df.limit(limit + 1) if limit else df)
    table = pa.Table.from_batches([simplify(b) for b in reader], schema=simplify_schema(reader.schema))
    more = bool(limit) and table.num_rows > limit
    if more:
        table = table.slice(0, limit)
    print(format_table(table))
    if more:
        print(f"(first {limit} rows shown; raise --max-rows, or write them all with --out)")
    else:
        print(f"({count(table.num_rows, 'row')})")
