"""``zarr-meta``: the command-line tool of sedonadb-zarr-meta.

Four subcommands cover a catalogue's life cycle::

    zarr-meta ingest items.ndjson catalogue.zarr --sort     # STAC items -> Zarr meta group
    zarr-meta info catalogue.zarr                           # rows, columns, CRS, chunks, statistics
    zarr-meta query catalogue.zarr "SELECT id FROM meta"    # spatial SQL, printed or written to a file
    zarr-meta verify catalogue.zarr                         # statistics checked against the data

Every error is reported as one line, ``zarr-meta: error: <message>``, on
stderr: exit status 2 for usage errors, 1 for failures (and for ``verify``
finding statistics that disagree with the data), 130 when interrupted.
``ZARR_META_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import signal
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NoReturn

PROG = "zarr-meta"
_GEOARROW_WKB = "geoarrow.wkb"
_STATS_ATTRIBUTE = "zarr_meta:stats"
#: Output formats of ``query --out`` and the file extensions that imply them.
_FORMATS = {"parquet": (".parquet", ".geoparquet", ".pq"), "csv": (".csv",), "geojson": (".geojson", ".json")}
#: CRSs whose coordinates are longitude/latitude on WGS 84, as GeoJSON expects.
_LONLAT_CRS = {"OGC:CRS84", "EPSG:4326", "WGS84", "WGS 84"}
#: Longest cell printed by ``query`` before it is cut.
_CELL_WIDTH = 60
#: Snapshots listed by ``info`` (``--json`` lists all).
_SNAPSHOTS_SHOWN = 10
#: ``write_meta``'s rows per chunk when none is given.
_DEFAULT_CHUNK_SIZE = 100_000
#: Read options holding lists of names; a comma-separated string is accepted for them.
_LIST_OPTIONS = ("arrays", "geometry_columns")
#: Read options holding one string.
_STRING_OPTIONS = ("group", "crs", "branch", "tag", "snapshot")


class UsageError(Exception):
    """A command line that cannot be carried out as given (exit status 2)."""


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see '{self.prog} --help')"
        _report(f"{message}{hint}")
        raise SystemExit(2)


def _key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a pair (argparse ``type``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _integer(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {minimum}, got {text!r}")
        return value

    return parse


_positive_int = _integer(1)
_non_negative_int = _integer(0)


def _bbox(text: str) -> list[float]:
    """``W,S,E,N`` as four floats (argparse ``type``)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected four numbers WEST,SOUTH,EAST,NORTH, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    """``a,b,c`` as a list of non-empty names (argparse ``type``)."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


_OPTIONS_HELP = (
    "read option KEY=VALUE (repeatable): group, arrays, geometry_columns, crs, batch_size, pushdown, "
    "max_concurrency, consolidated, branch, tag, snapshot, storage_options; VALUE is parsed as JSON "
    "when it parses (numbers, true/false, lists, objects), else taken as a string; arrays and "
    "geometry_columns also take a,b,c"
)
_STORAGE_HELP = (
    "object-store configuration KEY=VALUE (repeatable), e.g. aws_region=eu-central-1 or "
    "aws_endpoint=http://127.0.0.1:9000; overrides the environment"
)


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help=_STORAGE_HELP,
    )


def _add_read_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--option",
        "-o",
        dest="options",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help=_OPTIONS_HELP,
    )
    _add_storage_options(parser)


def _epilog(text: str) -> str:
    """An epilog written as an indented triple-quoted string."""
    return textwrap.dedent(text).strip("\n")


def _describe(text: str) -> str:
    """A description, wrapped (the raw-text formatter keeps the epilogs' examples as written)."""
    return textwrap.fill(text, width=94, break_on_hyphens=False)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``zarr-meta`` parser and its subcommands' parsers by name."""
    from sedonadb_zarr_meta import __version__

    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description="Turn STAC item metadata into a Zarr 'meta' group and query it with spatial SQL.",
        epilog=_epilog(
            """
            examples:
              zarr-meta ingest examples/stac/items.ndjson catalogue.zarr --sort
              zarr-meta info catalogue.zarr
              zarr-meta query catalogue.zarr "SELECT id, platform FROM meta WHERE \\"eo:cloud_cover\\" < 20"
              zarr-meta verify catalogue.zarr

            Run 'zarr-meta COMMAND --help' for a command's options. Errors are one line on stderr
            (exit status 1; 2 for usage errors); ZARR_META_DEBUG=1 adds the traceback.
            """
        ),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers: dict[str, argparse.ArgumentParser] = {}

    info = commands.add_parser(
        "info",
        help="describe a store: rows, columns and CRSs, chunks, statistics, Icechunk versions",
        description=_describe(
            "Describe the 'meta' group of a Zarr store or Icechunk repository: its rows, its columns "
            "with their Arrow types (geometry columns with their CRS), its chunks, which columns have "
            "per-chunk statistics and whether they are current, and for Icechunk repositories the "
            "branches, tags and snapshots. Reads metadata only, never a chunk."
        ),
        epilog=_epilog(
            """
            examples:
              zarr-meta info catalogue.zarr
              zarr-meta info catalogue.zarr --json
              zarr-meta info s3://bucket/catalogue.icechunk --option tag=v1 \\
                  --storage-option aws_region=eu-central-1
              zarr-meta info store.zarr --option group=items
            """
        ),
        formatter_class=formatter,
    )
    info.add_argument(
        "uri", metavar="URI", help="store or repository: path, file://, s3://, gs://, az://, http(s)://"
    )
    _add_read_options(info)
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)
    subparsers["info"] = info

    ingest = commands.add_parser(
        "ingest",
        usage=("%(prog)s [options] SRC URI\n       %(prog)s [options] --stac-api URL [search options] URI"),
        help="write STAC items (file or STAC API search) as a store's 'meta' group",
        description=_describe(
            "Write item metadata as the 'meta' group of a Zarr store (or Icechunk repository), with "
            "per-chunk statistics and consolidated metadata. SRC is a STAC Item, ItemCollection or "
            "FeatureCollection (.json), newline-delimited STAC items (.ndjson) or a (stac-)GeoParquet "
            "file. With --stac-api, the items come from a STAC API search instead and SRC is omitted. "
            "Without --append an existing group is replaced."
        ),
        epilog=_epilog(
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
        formatter_class=formatter,
    )
    ingest.add_argument(
        "src", metavar="SRC", help="STAC .json / .ndjson or GeoParquet file (omit with --stac-api)"
    )
    ingest.add_argument(
        "uri", metavar="URI", nargs="?", help="store to write: path, file://, s3://, gs://, az://"
    )
    ingest.add_argument(
        "--sort", action="store_true", help="order rows along a Hilbert curve (tighter chunk extents)"
    )
    ingest.add_argument("--append", action="store_true", help="append the rows to the existing group")
    ingest.add_argument(
        "--chunk-size", type=_positive_int, metavar="N", help="rows per chunk (default 100000)"
    )
    ingest.add_argument(
        "--crs", metavar="CRS", help="CRS of the geometry columns, e.g. EPSG:32633 (default: the data's)"
    )
    ingest.add_argument("--group", metavar="PATH", help="group path inside the store (default meta)")
    ingest.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    _add_storage_options(ingest)
    icechunk = ingest.add_argument_group("Icechunk repositories")
    icechunk.add_argument(
        "--icechunk",
        action="store_true",
        help="write into an Icechunk repository at URI, creating it if missing",
    )
    icechunk.add_argument("--branch", metavar="NAME", help="branch to commit to (default main)")
    icechunk.add_argument(
        "--message", metavar="TEXT", help="commit message (default: a summary of the write)"
    )
    stac = ingest.add_argument_group("STAC API search (--stac-api URL URI)")
    stac.add_argument("--stac-api", metavar="URL", help="search this STAC API instead of reading SRC")
    stac.add_argument("--collections", type=_names, metavar="A,B", help="collections to search")
    stac.add_argument(
        "--bbox", type=_bbox, metavar="W,S,E,N", help="bounding box to search (longitude/latitude)"
    )
    stac.add_argument(
        "--datetime", metavar="X", help="instant or interval, e.g. 2024-06-01/2024-08-31 or 2024-06-01/.."
    )
    stac.add_argument("--max-items", type=_positive_int, metavar="N", help="stop after N items")
    stac.add_argument(
        "--limit", type=_positive_int, metavar="N", help="items per page requested from the API"
    )
    ingest.set_defaults(func=cmd_ingest)
    subparsers["ingest"] = ingest

    query = commands.add_parser(
        "query",
        help="run SQL over a store (as table 'meta'); print the result or write it to a file",
        description=_describe(
            "Run SQL over the store's 'meta' group, which the SQL names as table 'meta' (or the name "
            "given with --table). SedonaDB's spatial functions (ST_*) are available, and so is "
            "sd_read_zarr_meta(uri [, options_json]) for other stores. The result is printed as a "
            "table (geometry as WKT), or written to --out as Parquet (GeoParquet), CSV (geometry as "
            "WKT) or GeoJSON (the column named geometry, else the first geometry column, is the "
            "features' geometry; the other columns are properties)."
        ),
        epilog=_epilog(
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
        formatter_class=formatter,
    )
    query.add_argument("uri", metavar="URI", help="store or repository to register as table 'meta'")
    query.add_argument("sql", metavar="SQL", help="the query; name the store as table 'meta'")
    query.add_argument("--out", metavar="FILE", help="write the result to FILE (format from its extension)")
    query.add_argument(
        "--format",
        choices=sorted(_FORMATS),
        help="output format (default: from --out's extension); csv and geojson without --out go to stdout",
    )
    query.add_argument(
        "--host",
        choices=["sedonadb", "datafusion"],
        help="query engine (default: sedonadb when installed, else datafusion)",
    )
    query.add_argument(
        "--max-rows",
        type=_non_negative_int,
        default=50,
        metavar="N",
        help="rows printed at most (default 50; 0 prints all); --out writes all",
    )
    query.add_argument(
        "--table", default="meta", metavar="NAME", help="table name of the store in the SQL (default meta)"
    )
    _add_read_options(query)
    query.set_defaults(func=cmd_query)
    subparsers["query"] = query

    verify = commands.add_parser(
        "verify",
        help="check the per-chunk statistics against the data (exit 1 when they disagree)",
        description=_describe(
            "Read the whole group once and check that every chunk's recorded statistics (bounding "
            "boxes, min/max) bound its data, as readers trust them to skip chunks. Exit status 0 when "
            "they agree with the data, 1 when they do not (or the group has none)."
        ),
        epilog=_epilog(
            """
            examples:
              zarr-meta verify catalogue.zarr
              zarr-meta verify s3://bucket/catalogue.zarr --storage-option aws_region=eu-central-1
              zarr-meta verify repo.icechunk --option tag=v1
            """
        ),
        formatter_class=formatter,
    )
    verify.add_argument("uri", metavar="URI", help="store or repository to check")
    _add_read_options(verify)
    verify.set_defaults(func=cmd_verify)
    subparsers["verify"] = verify
    return parser, subparsers


def _join_bbox_argument(argv: list[str]) -> list[str]:
    """``--bbox -10,35,5,45`` as ``--bbox=-10,35,5,45`` (argparse would read ``-10,...`` as an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else ""
        if token == "--bbox" and following.startswith("-") and following[1:2].isdigit():
            out.append(f"--bbox={following}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (without the program name). Exits with status 2 on usage errors."""
    parser, subparsers = build_parser()
    argv = list(argv)
    if argv and argv[0] in subparsers:
        # Intermixed: options may stand between SRC and URI, which argparse's plain
        # parsing refuses when a positional is optional (as URI is for ingest).
        args = subparsers[argv[0]].parse_intermixed_args(_join_bbox_argument(argv[1:]))
        args.command = argv[0]
        return args
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def _option_value(key: str, text: str) -> Any:
    """A ``--option`` value: JSON when it parses, else the string (``a,b`` lists for list options).

    Options that take a string keep the text as given unless it is a JSON string
    (``group=2024`` is the group ``"2024"``).
    """
    try:
        value = json.loads(text)
    except ValueError:
        value = None if key in _STRING_OPTIONS else text
    if key in _STRING_OPTIONS:
        return value if isinstance(value, str) else text
    if key in _LIST_OPTIONS and isinstance(value, str):
        return [p.strip() for p in text.split(",") if p.strip()]
    return value


def _storage_options(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``--storage-option`` pairs as a mapping (values stay strings, as object stores take them)."""
    return dict(pairs)


def read_options(args: argparse.Namespace) -> dict[str, Any]:
    """The read options of ``--option`` and ``--storage-option``, validated.

    Raises:
        UsageError: an unknown key or a value of the wrong type.
    """
    from sedonadb_zarr_meta import validate_options

    options: dict[str, Any] = {}
    for key, text in args.options:
        options[key] = _option_value(key, text)
    storage = _storage_options(args.storage_options)
    if storage:
        given = options.get("storage_options")
        if given is not None and not isinstance(given, Mapping):
            raise UsageError(f"--option storage_options must be a JSON object, got {given!r}")
        options["storage_options"] = {**(given or {}), **storage}
    try:
        return validate_options(options)
    except ValueError as e:
        raise UsageError(str(e)) from None


# --------------------------------------------------------------------------------------------
# Geometry columns
# --------------------------------------------------------------------------------------------


def geometry_crs(field: Any) -> tuple[bool, Any]:
    """``(is_geometry, crs)`` of an Arrow field: GeoArrow WKB by field metadata or extension type."""
    import pyarrow as pa

    t = field.type
    if isinstance(t, pa.ExtensionType):
        if t.extension_name != _GEOARROW_WKB:
            return False, None
        raw = t.__arrow_ext_serialize__()
    else:
        meta = field.metadata or {}
        if meta.get(b"ARROW:extension:name") != _GEOARROW_WKB.encode():
            return False, None
        raw = meta.get(b"ARROW:extension:metadata") or b""
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {}
    return True, parsed.get("crs") if isinstance(parsed, dict) else None


def crs_label(crs: Any) -> str:
    """A short name of a CRS given as a string (code or WKT2) or PROJJSON."""
    if crs is None:
        return "unknown"
    if isinstance(crs, dict):
        ident = crs.get("id")
        if isinstance(ident, dict) and "authority" in ident and "code" in ident:
            return f"{ident['authority']}:{ident['code']}"
        return str(crs.get("name") or "PROJJSON")
    text = str(crs).strip()
    if "[" in text:  # WKT2: its name
        start = text.find('"')
        end = text.find('"', start + 1)
        return text[start + 1 : end] if 0 <= start < end else text[:40]
    return text


def _storage_array(column: Any) -> Any:
    """The storage array of an extension-typed column, else the column."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.storage if isinstance(column, pa.ExtensionArray) else column


def wkb_as_text(values: Sequence[bytes | None], *, precise: bool = False) -> list[str | None]:
    """WKB values as WKT (with shapely), else as hex; ``None`` stays ``None``."""
    try:
        import numpy as np
        import shapely
    except ImportError:
        return [None if v is None else bytes(v).hex() for v in values]
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    geoms = shapely.from_wkb(array, on_invalid="ignore")
    texts = shapely.to_wkt(geoms, rounding_precision=-1 if precise else 6)
    return [
        None if v is None else (str(t) if t is not None else bytes(v).hex()) for v, t in zip(values, texts)
    ]


# --------------------------------------------------------------------------------------------
# info
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
            {
                "id": s.id,
                "parent_id": s.parent_id,
                "time": s.time.isoformat(),
                "message": s.message,
            }
            for s in versions.snapshots
        ],
    }


def _statistics(stats: Any, num_rows: int, names: Sequence[str]) -> dict[str, Any]:
    """What the ``zarr_meta:stats`` attribute covers and whether it is current."""
    if stats is None:
        return {"present": False, "current": False, "problem": None}
    try:
        block_rows = int(stats["block_rows"])
        recorded = int(stats["num_rows"])
        columns = dict(stats["columns"])
        if block_rows <= 0 or recorded < 0:
            raise ValueError("block_rows and num_rows must be positive")
    except (KeyError, TypeError, ValueError) as e:
        return {"present": True, "current": False, "problem": f"malformed statistics ({e})"}
    blocks = -(-recorded // block_rows)
    kinds: dict[str, list[str]] = {}
    problem = None
    for name, entry in columns.items():
        if not isinstance(entry, dict):
            problem = problem or f"malformed statistics of column {name!r}"
            continue
        kinds[name] = sorted(entry)
        if any(not isinstance(v, list) or len(v) != blocks for v in entry.values()):
            problem = problem or f"column {name!r} has statistics for another number of chunks than {blocks}"
    if recorded != num_rows:
        problem = f"the statistics cover {recorded} rows but the group has {num_rows}"
    return {
        "present": True,
        "current": problem is None,
        "problem": problem,
        "num_rows": recorded,
        "block_rows": block_rows,
        "num_blocks": blocks,
        "columns": kinds,
        "without": [n for n in names if n not in kinds],
    }


def _local_store_path(uri: str) -> Path | None:
    """The directory of a local store (path or ``file://`` URL), if it is one."""
    from urllib.parse import unquote, urlparse

    if "://" in uri:
        parsed = urlparse(uri)
        if parsed.scheme.lower() != "file":
            return None
        return Path(unquote(parsed.path))
    return Path(uri)


def _array_chunk_rows(uri: str, group: str, names: Sequence[str]) -> dict[str, int]:
    """Rows per chunk of each array of a local plain store, from its Zarr metadata (v3 or v2)."""
    root = _local_store_path(uri)
    if root is None:
        return {}
    out: dict[str, int] = {}
    for name in names:
        base = root / group / name if group else root / name
        try:
            if (base / "zarr.json").is_file():
                meta = json.loads((base / "zarr.json").read_text())
                out[name] = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
            elif (base / ".zarray").is_file():
                out[name] = int(json.loads((base / ".zarray").read_text())["chunks"][0])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
    return out


def _chunks(
    stats: Mapping[str, Any], uri: str, group: str, names: Sequence[str], num_rows: int, plain: bool
) -> dict[str, Any]:
    """Rows per chunk and number of chunks: from the statistics, else from local array metadata."""
    if stats.get("present") and stats.get("problem") is None:
        rows = int(stats["block_rows"])
        return {"rows_per_chunk": rows, "num_chunks": -(-num_rows // rows), "source": "statistics"}
    by_array = _array_chunk_rows(uri, group, names) if plain else {}
    if by_array and len(by_array) == len(names):
        sizes = set(by_array.values())
        if len(sizes) == 1:
            rows = sizes.pop()
            return {"rows_per_chunk": rows, "num_chunks": -(-num_rows // rows), "source": "array metadata"}
        return {"rows_per_chunk": None, "num_chunks": None, "source": "array metadata", "by_array": by_array}
    return {"rows_per_chunk": None, "num_chunks": None, "source": None}


def describe(uri: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Everything ``zarr-meta info`` reports about ``uri``, as JSON-ready data."""
    import pyarrow as pa

    from sedonadb_zarr_meta import open_meta

    table = open_meta(uri, **options)
    schema = pa.schema(table)
    attributes = json.loads(table.attributes_json)
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
    names = [f.name for f in schema]
    stats = _statistics(attributes.get(_STATS_ATTRIBUTE), table.num_rows, names)
    versions = _versions(uri, options)
    group = options.get("group", "meta")
    return {
        "uri": uri,
        "group": group,
        "num_rows": table.num_rows,
        "columns": columns,
        "chunks": _chunks(stats, uri, group, names, table.num_rows, versions is None),
        "statistics": stats,
        "icechunk": versions,
    }


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}{'es' if noun.endswith(('s', 'ch')) else 's'}"


def _format_info(report: Mapping[str, Any]) -> str:
    lines = [
        f"store:       {report['uri']}",
        f"group:       {report['group'] or '(root)'}",
        f"rows:        {report['num_rows']}",
    ]
    chunks = report["chunks"]
    if chunks.get("rows_per_chunk"):
        lines.append(
            f"chunks:      {chunks['rows_per_chunk']} rows per chunk, "
            f"{_count(chunks['num_chunks'], 'chunk')} (from the {chunks['source']})"
        )
    elif chunks.get("by_array"):
        sizes = ", ".join(f"{k} {v}" for k, v in chunks["by_array"].items())
        lines.append(f"chunks:      rows per chunk differ by array: {sizes}")
    else:
        lines.append("chunks:      unknown (no statistics, and the arrays' metadata is not local)")
    lines.append(f"columns ({len(report['columns'])}):")
    width = max((len(c["name"]) for c in report["columns"]), default=0)
    for c in report["columns"]:
        if c["geometry"]:
            kind = f"geometry (WKB, CRS {crs_label(c['geometry']['crs'])})"
        else:
            kind = c["type"]
        lines.append(f"  {c['name']:<{width}}  {kind}")
    stats = report["statistics"]
    if not stats["present"]:
        lines.append("statistics:  none (every query reads every chunk)")
    elif "columns" not in stats:
        lines.append(f"statistics:  unusable: {stats['problem']}")
    else:
        state = "current" if stats["current"] else f"stale ({stats['problem']}), not used to skip chunks"
        lines.append(
            f"statistics:  {state}; {_count(stats['num_blocks'], 'chunk')} of {stats['block_rows']} rows "
            f"covering {stats['num_rows']} rows"
        )
        by_kind: dict[str, list[str]] = {}
        for name, kinds in stats["columns"].items():
            label = (
                "min/max"
                if kinds == ["max", "min"]
                else "bounding box"
                if kinds == ["bbox"]
                else "/".join(kinds)
            )
            by_kind.setdefault(label, []).append(name)
        if stats["without"]:
            by_kind["none"] = stats["without"]
        label_width = max(len(k) for k in by_kind) + 2 if by_kind else 0
        for label, names in by_kind.items():
            head = f"  {label + ':':<{label_width}}"
            lines.append(
                textwrap.fill(
                    ", ".join(names), width=100, initial_indent=head, subsequent_indent=" " * len(head)
                )
            )
    versions = report["icechunk"]
    if versions is None:
        lines.append("icechunk:    no (a plain Zarr store)")
    else:
        reading = ", ".join(f"{k} {v}" for k, v in versions["reading"].items())
        lines.append(
            f"icechunk:    repository; reading {reading}; {_count(len(versions['branches']), 'branch')}, "
            f"{_count(len(versions['tags']), 'tag')}, {_count(len(versions['snapshots']), 'snapshot')}"
        )
        for name, snapshot in versions["branches"].items():
            lines.append(f"  branch {name} -> {snapshot}")
        for name, snapshot in versions["tags"].items():
            lines.append(f"  tag {name} -> {snapshot}")
        shown = versions["snapshots"][:_SNAPSHOTS_SHOWN]
        if shown:
            lines.append("  snapshots (newest first):")
        for s in shown:
            message = " ".join(s["message"].split())
            lines.append(f"    {s['id']}  {s['time']}  {message}")
        if len(versions["snapshots"]) > len(shown):
            lines.append(f"    ... {len(versions['snapshots']) - len(shown)} more (--json lists all)")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    """``zarr-meta info``."""
    report = describe(args.uri, read_options(args))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(_format_info(report))
    return 0


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------


def _named_parameters(function: Callable[..., Any]) -> set[str]:
    """The parameters ``function`` names (not those its ``**kwargs`` would swallow)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return set()
    return {name for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}


def _existing_rows(uri: str, options: Mapping[str, Any]) -> int:
    from sedonadb_zarr_meta import open_meta

    try:
        return open_meta(uri, **options).num_rows
    except FileNotFoundError:
        return 0


def _names_text(names: Sequence[str], most: int = 12) -> str:
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])} and {len(names) - most} more"


def cmd_ingest(args: argparse.Namespace) -> int:
    """``zarr-meta ingest``."""
    import sedonadb_zarr_meta as szm

    src, uri = args.src, args.uri
    search = {
        "collections": args.collections,
        "bbox": args.bbox,
        "datetime": args.datetime,
        "max_items": args.max_items,
        "limit": args.limit,
    }
    given_search = [f"--{k.replace('_', '-')}" for k, v in search.items() if v is not None]
    if args.stac_api:
        if uri is not None:
            raise UsageError("with --stac-api give only URI (the store to write), not SRC")
        src, uri = None, src
        if args.crs:
            raise UsageError("--crs does not apply to --stac-api: STAC geometries are longitude/latitude")
    else:
        if uri is None:
            raise UsageError("give SRC and URI (or --stac-api URL and URI)")
        if given_search:
            raise UsageError(f"{', '.join(given_search)} need --stac-api")
        if "://" not in src and not Path(src).exists():
            raise FileNotFoundError(f"{src}: no such file")
    storage = _storage_options(args.storage_options)
    read = {"storage_options": storage} if storage else {}
    if args.group is not None:
        read["group"] = args.group
    if args.branch:
        read["branch"] = args.branch
    try:
        from sedonadb_zarr_meta import validate_options

        read = validate_options(read)
    except ValueError as e:
        raise UsageError(str(e)) from None
    mode = "a" if args.append else "w"
    before = _existing_rows(uri, read) if args.append else 0
    common: dict[str, Any] = {
        "mode": mode,
        "sort": args.sort,
        "progress": False if args.no_progress else None,
        "storage_options": storage or None,
    }
    if args.chunk_size is not None:
        common["chunk_size"] = args.chunk_size
    write_options = {"crs": args.crs, "group": args.group, "branch": args.branch, "message": args.message}
    write_options = {k: v for k, v in write_options.items() if v is not None}
    if args.icechunk:
        write_options["icechunk"] = True
    started = time.perf_counter()
    if args.stac_api:
        function = getattr(szm, "ingest_stac_search", None)
        if function is None:
            raise RuntimeError(
                "this installation of sedonadb_zarr_meta has no ingest_stac_search; "
                "upgrade it to use --stac-api"
            )
        named = _named_parameters(function)
        refused = [f"--{k}" for k in write_options if k not in named]
        if refused:
            raise UsageError(f"{', '.join(refused)} cannot be combined with --stac-api")
        parameters = {k: v for k, v in search.items() if v is not None}
        kwargs = {k: v for k, v in {**common, **write_options}.items() if k in named}
        written = function(args.stac_api, uri, **kwargs, **parameters)
    else:
        kwargs = {**common, **write_options}
        if "progress" not in _named_parameters(szm.write_meta):
            kwargs.pop("progress")  # a write_meta without progress bars
        written = szm.write_meta(src, uri, **kwargs)
    elapsed = time.perf_counter() - started
    uri_out = str(written or uri)
    table = szm.open_meta(uri_out, **read)
    stats = json.loads(table.attributes_json).get(_STATS_ATTRIBUTE)
    chunk_rows = stats.get("block_rows") if isinstance(stats, dict) else None
    chunk_rows = int(chunk_rows or args.chunk_size or _DEFAULT_CHUNK_SIZE)
    chunks = -(-table.num_rows // chunk_rows)
    names = table.column_names
    source = f"the STAC API {args.stac_api}" if args.stac_api else src
    group = args.group if args.group is not None else "meta"
    if args.append:
        head = (
            f"Appended {table.num_rows - before} rows to {uri_out} (group {group}, now {table.num_rows} rows)"
        )
    else:
        head = f"Wrote {table.num_rows} rows to {uri_out} (group {group})"
    statistics = "with per-chunk statistics" if isinstance(stats, dict) else "without statistics"
    print(
        f"{head} in {elapsed:.2f} s, from {source}: {len(names)} columns ({_names_text(names)}), "
        f"{_count(chunks, 'chunk')} of {chunk_rows} rows {statistics}"
        f"{', Hilbert-sorted' if args.sort else ''}."
    )
    return 0


# --------------------------------------------------------------------------------------------
# query
# --------------------------------------------------------------------------------------------


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _default_host() -> str:
    try:
        import sedonadb  # noqa: F401
    except ImportError:
        return "datafusion"
    return "sedonadb"


def _connect(host: str, uri: str, options: Mapping[str, Any], table: str) -> Any:
    """A context of ``host`` with ``sd_read_zarr_meta`` and the store as view ``table``."""
    from sedonadb_zarr_meta import options_json, register

    if host == "sedonadb":
        try:
            import sedonadb
        except ImportError:
            raise RuntimeError(
                "--host sedonadb needs the sedonadb package: pip install 'sedonadb-zarr-meta[sedonadb]'"
            ) from None
        from sedonadb_zarr_meta import ZarrMetaSpec

        con = register(sedonadb.connect())
        con.read_format(ZarrMetaSpec(options), uri).to_view(table, overwrite=True)
        return con
    try:
        import datafusion
    except ImportError:
        raise RuntimeError(
            "--host datafusion needs the datafusion package: pip install 'sedonadb-zarr-meta[datafusion]'"
        ) from None
    ctx = register(datafusion.SessionContext())
    call = f"sd_read_zarr_meta({_sql_string(uri)}, {_sql_string(options_json(options) or '{}')})"
    ctx.register_view(table, ctx.sql(f"SELECT * FROM {call}"))
    return ctx


def _plain_type(t: Any) -> Any:
    """The plain Arrow type of a view type (``binary_view`` -> ``binary``), else ``None``."""
    import pyarrow as pa

    if getattr(pa.types, "is_binary_view", lambda _: False)(t):
        return pa.binary()
    if getattr(pa.types, "is_string_view", lambda _: False)(t):
        return pa.string()
    return None


def _simplify_schema(schema: Any) -> Any:
    """``schema`` with view types as their plain equivalents (for writers and printing)."""
    import pyarrow as pa

    fields = [field.with_type(_plain_type(field.type) or field.type) for field in schema]
    return pa.schema(fields, metadata=schema.metadata)


def _simplify(batch: Any) -> Any:
    """``batch`` with view types as their plain equivalents."""
    import pyarrow as pa

    if not any(_plain_type(t) is not None for t in batch.schema.types):
        return batch
    schema = _simplify_schema(batch.schema)
    arrays = [array.cast(field.type) for array, field in zip(batch.columns, schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def jsonable(value: Any) -> Any:
    """``value`` (from ``to_pylist``) as JSON data: dates as ISO 8601, bytes as hex, NaN as null."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def _is_nested(t: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
        or (
            hasattr(pa.types, "is_list_view") and (pa.types.is_list_view(t) or pa.types.is_large_list_view(t))
        )
    )


def _is_binary(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _as_texts(field: Any, column: Any, *, precise: bool) -> list[str | None]:
    """One column as display text: geometry as WKT, binary as hex, nested values as JSON."""
    import pyarrow as pa
    import pyarrow.compute as pc

    is_geo, _ = geometry_crs(field)
    column = _storage_array(column)
    t = column.type
    if is_geo:
        return wkb_as_text(column.to_pylist(), precise=precise)
    if _is_binary(t):
        return [None if v is None else v.hex() for v in column.to_pylist()]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return column.to_pylist()
    if _is_nested(t):
        return [None if v is None else json.dumps(jsonable(v)) for v in column.to_pylist()]
    if pa.types.is_boolean(t):
        return [None if v is None else ("true" if v else "false") for v in column.to_pylist()]
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return [None if v is None else f"{v:.7g}" for v in column.to_pylist()]
    if pa.types.is_floating(t):
        return [None if v is None else repr(v) for v in column.to_pylist()]
    try:
        return pc.cast(column, pa.string()).to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return [None if v is None else str(v) for v in column.to_pylist()]


def _cell(text: str | None) -> str:
    if text is None:
        return "null"
    text = text.replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 3] + "..."


def format_table(table: Any) -> str:
    """A pyarrow Table as aligned text (geometry as WKT with shapely, else hex)."""
    headers = list(table.schema.names)
    columns = [
        [_cell(t) for t in _as_texts(field, table.column(i), precise=False)]
        for i, field in enumerate(table.schema)
    ]
    widths = [max([len(h), *(len(v) for v in col)]) for h, col in zip(headers, columns)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in range(table.num_rows):
        lines.append("  ".join(col[row].ljust(w) for col, w in zip(columns, widths)).rstrip())
    return "\n".join(lines)


def _output_format(out: str | None, fmt: str | None) -> str | None:
    if fmt is not None:
        return fmt
    if out is None:
        return None
    suffix = Path(out).suffix.lower()
    for name, suffixes in _FORMATS.items():
        if suffix in suffixes:
            return name
    raise UsageError(
        f"cannot tell the format of {out!r} from its extension; use --format parquet, csv or geojson"
    )


def _batches(df: Any) -> Any:
    """A RecordBatchReader of a SedonaDB or datafusion-python DataFrame."""
    import pyarrow as pa

    return pa.RecordBatchReader.from_stream(df)


def _geoparquet_crs(crs: Any) -> tuple[bool, Any]:
    """``(expressible, value)`` of a CRS as GeoParquet wants it: omitted for OGC:CRS84, else PROJJSON."""
    if crs is None:
        return True, None
    if isinstance(crs, dict):
        return True, crs
    if str(crs).strip().upper() == "OGC:CRS84":
        return True, "omit"
    try:
        import pyproj
    except ImportError:
        return False, None
    try:
        return True, pyproj.CRS.from_user_input(crs).to_json_dict()
    except pyproj.exceptions.CRSError:
        return False, None


def _geoparquet_metadata(schema: Any) -> dict[str, Any] | None:
    columns: dict[str, Any] = {}
    for field in schema:
        is_geo, crs = geometry_crs(field)
        if not is_geo:
            continue
        ok, value = _geoparquet_crs(crs)
        if not ok:
            print(
                f"{PROG}: note: the CRS of column {field.name!r} cannot be written as GeoParquet PROJJSON "
                "(install pyproj); it is kept as GeoArrow field metadata only",
                file=sys.stderr,
            )
            continue
        entry: dict[str, Any] = {"encoding": "WKB", "geometry_types": []}
        if value != "omit":
            entry["crs"] = value
        columns[field.name] = entry
    if not columns:
        return None
    primary = "geometry" if "geometry" in columns else next(iter(columns))
    return {"version": "1.1.0", "primary_column": primary, "columns": columns}


def _write_parquet(reader: Any, path: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _simplify_schema(reader.schema)
    geo = _geoparquet_metadata(schema)
    if geo is not None:
        schema = schema.with_metadata({**(schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in reader:
            batch = _simplify(batch)
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            rows += batch.num_rows
    return rows


def _csv_batch(batch: Any) -> Any:
    """A batch the CSV writer takes: geometry as WKT, binary as hex, nested values as JSON."""
    import pyarrow as pa

    arrays, names = [], []
    for field, column in zip(batch.schema, batch.columns):
        t = _storage_array(column).type
        if geometry_crs(field)[0] or _is_binary(t) or _is_nested(t):
            column = pa.array(_as_texts(field, column, precise=True), pa.string())
        names.append(field.name)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _write_csv(reader: Any, sink: Any) -> int:
    import pyarrow as pa
    import pyarrow.csv

    rows = 0
    writer = None
    try:
        for batch in reader:
            batch = _csv_batch(_simplify(batch))
            if writer is None:
                writer = pyarrow.csv.CSVWriter(sink, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no batch at all: the header alone
            schema = _simplify_schema(reader.schema)
            empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
            pyarrow.csv.write_csv(_csv_batch(empty), sink)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _write_geojson(reader: Any, sink: IO[str]) -> int:
    try:
        import numpy as np
        import shapely
    except ImportError:
        raise RuntimeError("writing GeoJSON needs the shapely package: pip install shapely") from None
    schema = reader.schema
    geometry = [(i, f) for i, f in enumerate(schema) if geometry_crs(f)[0]]
    primary = next((i for i, f in geometry if f.name == "geometry"), geometry[0][0] if geometry else None)
    if primary is not None:
        crs = geometry_crs(schema.field(primary))[1]
        if crs is not None and crs_label(crs).upper() not in _LONLAT_CRS:
            print(
                f"{PROG}: note: column {schema.field(primary).name!r} has CRS {crs_label(crs)}; GeoJSON "
                "readers expect longitude/latitude (ST_Transform(geom, 'OGC:CRS84') converts)",
                file=sys.stderr,
            )
    sink.write('{"type": "FeatureCollection", "features": [')
    rows = 0
    for batch in reader:
        batch = _simplify(batch)
        shapes = None
        if primary is not None:
            values = np.empty(batch.num_rows, dtype=object)
            values[:] = _storage_array(batch.column(primary)).to_pylist()
            shapes = shapely.from_wkb(values)
        properties: list[tuple[str, list[Any]]] = []
        for i, field in enumerate(batch.schema):
            if i == primary:
                continue
            if geometry_crs(field)[0]:
                properties.append(
                    (field.name, wkb_as_text(_storage_array(batch.column(i)).to_pylist(), precise=True))
                )
            else:
                properties.append((field.name, [jsonable(v) for v in batch.column(i).to_pylist()]))
        for row in range(batch.num_rows):
            shape = shapes[row] if shapes is not None else None
            feature: dict[str, Any] = {"type": "Feature"}
            props = {name: values[row] for name, values in properties}
            if isinstance(props.get("id"), (str, int)) and not isinstance(props.get("id"), bool):
                feature["id"] = props["id"]
            feature["geometry"] = shape.__geo_interface__ if shape is not None else None
            feature["properties"] = props
            sink.write(("\n" if rows == 0 else ",\n") + json.dumps(feature))
            rows += 1
    sink.write("\n]}\n")
    return rows


def _write(reader: Any, fmt: str, out: str | None) -> int:
    """Write every batch of ``reader`` as ``fmt`` to ``out`` (stdout for csv/geojson without a file)."""
    if fmt == "parquet":
        if out is None:
            raise UsageError("--format parquet needs --out FILE")
        return _write_parquet(reader, out)
    if fmt == "csv":
        if out is None:
            return _write_csv(reader, sys.stdout.buffer)
        with open(out, "wb") as sink:
            return _write_csv(reader, sink)
    if out is None:
        return _write_geojson(reader, sys.stdout)
    with open(out, "w", encoding="utf-8") as sink:
        return _write_geojson(reader, sink)


def cmd_query(args: argparse.Namespace) -> int:
    """``zarr-meta query``."""
    import pyarrow as pa

    options = read_options(args)
    fmt = _output_format(args.out, args.format)
    if fmt == "parquet" and args.out is None:
        raise UsageError("--format parquet needs --out FILE")
    if not args.table.isidentifier():
        raise UsageError(f"--table must be a plain SQL name (letters, digits, _), got {args.table!r}")
    con = _connect(args.host or _default_host(), args.uri, options, args.table)
    df = con.sql(args.sql)
    if fmt is not None:
        rows = _write(_batches(df), fmt, args.out)
        if args.out is not None:
            print(f"wrote {_count(rows, 'row')} to {args.out} ({fmt})")
        return 0
    limit = args.max_rows
    shown = df.limit(limit + 1) if limit else df
    reader = _batches(shown)
    table = pa.Table.from_batches([_simplify(b) for b in reader], schema=_simplify_schema(reader.schema))
    more = bool(limit) and table.num_rows > limit
    if more:
        table = table.slice(0, limit)
    print(format_table(table))
    if more:
        print(f"(first {limit} rows shown; raise --max-rows, or write them all with --out)")
    else:
        print(f"({_count(table.num_rows, 'row')})")
    return 0


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    """``zarr-meta verify``: exit status 0 when the statistics bound the data, 1 when they do not."""
    from sedonadb_zarr_meta import open_meta, verify_statistics

    options = read_options(args)
    problems = verify_statistics(args.uri, **options)
    table = open_meta(args.uri, **options)
    stats = json.loads(table.attributes_json).get(_STATS_ATTRIBUTE) or {}
    columns = list(stats.get("columns") or {})
    if problems:
        print(f"{args.uri}: {_count(len(problems), 'problem')} with the chunk statistics:")
        for problem in problems:
            print(f"  {problem}")
        print(
            "Queries trusting these statistics may skip chunks that hold matching rows; "
            "write the group again (zarr-meta ingest) to fix them."
        )
        return 1
    block_rows = int(stats.get("block_rows") or 1)
    chunks = -(-table.num_rows // block_rows)
    print(
        f"{args.uri}: the statistics agree with the data: {table.num_rows} rows in {_count(chunks, 'chunk')} "
        f"of {block_rows} rows; statistics of {_count(len(columns), 'column')} "
        f"({_names_text(columns, 8)})."
    )
    return 0


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _report(message: str) -> None:
    """Print ``message`` as the one error line."""
    text = " ".join(message.split())
    print(f"{PROG}: error: {text}", file=sys.stderr)


def _message(error: BaseException) -> str:
    text = str(error).strip()
    if isinstance(error, KeyError) and error.args:
        text = f"missing {error.args[0]!r}"
    return text or type(error).__name__


class _Interrupt:
    """Ctrl-C, remembered: query engines that see it cancel and raise errors of their own."""

    seen = False

    @classmethod
    def handler(cls, signum: int, frame: Any) -> None:
        cls.seen = True
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zarr-meta`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            previous = signal.signal(signal.SIGINT, _Interrupt.handler)
    _Interrupt.seen = False
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main(argv: Sequence[str]) -> int:
    debug = os.environ.get("ZARR_META_DEBUG", "") not in ("", "0")
    command = PROG
    try:
        args = parse_args(argv)
        command = f"{PROG} {args.command}"
        return int(args.func(args))
    except SystemExit as e:  # --help, --version, usage errors (already reported)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except UsageError as e:
        if debug:
            traceback.print_exc()
        _report(f"{_message(e)} (see '{command} --help')")
        return 2
    except Exception as e:
        if _Interrupt.seen:  # e.g. "Operation cancelled" from an engine that saw Ctrl-C
            return 130
        if debug:
            traceback.print_exc()
        _report(_message(e))
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
