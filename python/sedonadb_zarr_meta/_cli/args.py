"""Command-line arguments: the parser's error handling, argument types, and the read options
every command takes (``--option KEY=VALUE``, ``--storage-option KEY=VALUE``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

__all__ = [
    "PROG",
    "Parser",
    "UsageError",
    "add_read_options",
    "add_storage_options",
    "bbox",
    "describe",
    "epilog",
    "join_bbox_argument",
    "names",
    "non_negative_int",
    "positive_int",
    "read_options",
    "report",
    "storage_options",
]

PROG = "zarr-meta"
#: Read options holding lists of names; a comma-separated string is accepted for them.
_LIST_OPTIONS = ("arrays", "geometry_columns")
#: Read options holding one string.
_STRING_OPTIONS = ("group", "crs", "branch", "tag", "snapshot")

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


class UsageError(Exception):
    """A command line that cannot be carried out as given (exit status 2)."""


def report(message: str) -> None:
    """Print ``message`` as the one error line on stderr (whitespace runs collapsed)."""
    text = " ".join(message.split())
    print(f"{PROG}: error: {text}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        report(f"{message} (see '{self.prog} --help')")
        raise SystemExit(2)


def epilog(text: str) -> str:
    """An epilog written as an indented triple-quoted string."""
    return textwrap.dedent(text).strip("\n")


def describe(text: str) -> str:
    """A description, wrapped (the raw-text formatter keeps the epilogs' examples as written)."""
    return textwrap.fill(text, width=94, break_on_hyphens=False)


# --------------------------------------------------------------------------------------------
# Argument types
# --------------------------------------------------------------------------------------------


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


positive_int = _integer(1)
non_negative_int = _integer(0)


def bbox(text: str) -> list[float]:
    """``W,S,E,N`` as four floats (argparse ``type``)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected four numbers WEST,SOUTH,EAST,NORTH, got {text!r}")
    return values


def names(text: str) -> list[str]:
    """``a,b,c`` as a list of non-empty names (argparse ``type``)."""
    out = [p.strip() for p in text.split(",") if p.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return out


def join_bbox_argument(argv: Sequence[str]) -> list[str]:
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


# --------------------------------------------------------------------------------------------
# Read options
# --------------------------------------------------------------------------------------------


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    """``--storage-option KEY=VALUE`` (repeatable)."""
    parser.add_argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help=_STORAGE_HELP,
    )


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """``--option KEY=VALUE`` and ``--storage-option KEY=VALUE`` (both repeatable)."""
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
    add_storage_options(parser)


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


def storage_options(args: argparse.Namespace) -> dict[str, str]:
    """``--storage-option`` pairs as a mapping (values stay strings, as object stores take them)."""
    return dict(args.storage_options)


def read_options(args: argparse.Namespace) -> dict[str, Any]:
    """The read options of ``--option`` and ``--storage-option``, validated.

    Raises:
        UsageError: an unknown key or a value of the wrong type.
    """
    from sedonadb_zarr_meta import validate_options

    options: dict[str, Any] = {key: _option_value(key, text) for key, text in args.options}
    storage = storage_options(args)
    if storage:
        given = options.get("storage_options")
        if given is not None and not isinstance(given, Mapping):
            raise UsageError(f"--option storage_options must be a JSON object, got {given!r}")
        options["storage_options"] = {**(given or {}), **storage}
    try:
        return validate_options(options)
    except ValueError as e:
        raise UsageError(str(e)) from None
