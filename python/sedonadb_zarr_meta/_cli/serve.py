"""``zarr-meta serve``: a store served as a STAC API (stac-fastapi on uvicorn)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sedonadb_zarr_meta._cli.args import add_read_options, describe, epilog, positive_int, read_options

__all__ = ["add_parser", "run"]

NAME = "serve"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``serve`` subcommand's parser."""
    parser = commands.add_parser(
        NAME,
        help="serve a store as a STAC API (search with pystac-client, QGIS, STAC Browser, …)",
        description=describe(
            "Serve the store's 'meta' group as a STAC API: landing page, conformance, collections "
            "(from the 'collection' column, extents from the data), items, GET and POST /search "
            "with CQL2 filters (text and JSON), sort, fields and token paging, and /queryables. "
            "Needs the serve extra: pip install 'sedonadb-zarr-meta[serve]'."
        ),
        epilog=epilog(
            """
            examples:
              zarr-meta serve catalogue.zarr
              zarr-meta serve catalogue.zarr --port 8080
              zarr-meta serve s3://bucket/catalogue.icechunk --option branch=main \\
                  --storage-option aws_region=eu-central-1
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uri", metavar="URI", help="store or repository to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=positive_int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--title", help="the API's title (default: from the store's name)")
    add_read_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """``zarr-meta serve``: runs until interrupted."""
    options = read_options(args)
    try:
        import uvicorn

        from sedonadb_zarr_meta._serve import create_app
    except ImportError as e:
        raise RuntimeError(
            f"zarr-meta serve needs the serve extra ({e.name} is missing): "
            "pip install 'sedonadb-zarr-meta[serve]'"
        ) from None
    app = create_app(args.uri, title=args.title, **options)
    print(f"Serving {args.uri} as a STAC API at http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
