"""Wiring into a SedonaDB (``sedonadb.connect()``) context.

SedonaDB 0.5 has neither a table-function hook nor a working projection
pushdown for ``ExternalFormatSpec`` tables with reordered columns, so:

* ``read_format`` hands SedonaDB a table provider of ours through its stable
  C ABI (``__sedonadb_table_provider__``): planned as an ordinary table scan,
  re-scanned on every query, with projection, limit and filter pushdown.
* ``con.sql`` is wrapped: every ``sd_read_zarr_meta(...)`` call used as a
  table is located with a real SQL parser, backed by a view over such a
  provider, and only the call's text is replaced by the view's name.
* ``ZarrMetaSpec`` is registered as the ``zarr_meta`` format for
  ``con.read(uri, format="zarr_meta")``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sedonadb_zarr_meta._lib import SedonaTableProvider, find_table_function_calls
from sedonadb_zarr_meta._options import options_json, validate_options
from sedonadb_zarr_meta._spec import ZarrMetaSpec

FUNCTION_NAME = "sd_read_zarr_meta"
SIGNATURE = "sd_read_zarr_meta(uri VARCHAR [, options_json VARCHAR])"
_REGISTERED = "_sedonadb_zarr_meta_registered"


def is_sedonadb_context(con: Any) -> bool:
    try:
        from sedonadb.context import SedonaContext
    except ImportError:
        return False
    return isinstance(con, SedonaContext)


def read_format(con: Any, spec: ZarrMetaSpec, uri: str, options: Mapping[str, Any] | None = None) -> Any:
    """Read ``uri`` with ``spec`` into a SedonaDB DataFrame of ``con``.

    The DataFrame re-scans the store on every query, with projection, limit
    and filter pushdown, and can be joined, filtered or turned into a view.
    """
    if not isinstance(spec, ZarrMetaSpec):
        raise TypeError(f"read_format() expects a ZarrMetaSpec, got {type(spec).__name__}")
    if options:
        spec = spec.with_options(validate_options(options))
    provider = SedonaTableProvider(str(uri), options_json(spec.options))
    return con.create_data_frame(provider)


def _view_name(uri: str, options: str | None) -> str:
    digest = hashlib.sha1(f"{uri}\0{options or ''}".encode()).hexdigest()[:16]
    return f"__sd_read_zarr_meta_{digest}"


def _parse_call_options(args: list[str]) -> str | None:
    if len(args) < 2:
        return None
    try:
        parsed = json.loads(args[1])
    except json.JSONDecodeError as e:
        raise ValueError(f"{FUNCTION_NAME}: options_json is not valid JSON ({e}); usage: {SIGNATURE}") from e
    if not isinstance(parsed, dict):
        raise ValueError(f"{FUNCTION_NAME}: options_json must be a JSON object; usage: {SIGNATURE}")
    try:
        return options_json(validate_options(parsed))
    except ValueError as e:
        raise ValueError(f"{FUNCTION_NAME}: {e}; usage: {SIGNATURE}") from e


def rewrite_sql(con: Any, query: str) -> str:
    """Back each ``sd_read_zarr_meta(...)`` call of ``query`` with a view; return the new text."""
    calls = find_table_function_calls(query, FUNCTION_NAME, SIGNATURE)
    if not calls:
        return query
    pieces: list[str] = []
    done = 0
    views: dict[tuple[str, str | None], str] = {}
    for start, end, args in calls:
        key = (args[0], _parse_call_options(args))
        if key not in views:
            name = _view_name(*key)
            con.create_data_frame(SedonaTableProvider(*key)).to_view(name, overwrite=True)
            views[key] = name
        pieces.append(query[done:start])
        pieces.append(views[key])
        done = end
    pieces.append(query[done:])
    return "".join(pieces)


def register(con: Any) -> None:
    """Register the format, ``con.read_format`` and ``sd_read_zarr_meta`` in ``con.sql``.

    Calling it twice is harmless.
    """
    if getattr(con, _REGISTERED, False):
        return
    con.register(ZarrMetaSpec())
    con.read_format = functools.partial(read_format, con)
    host_sql = con.sql

    @functools.wraps(host_sql)
    def sql(query: str, *args: Any, **kwargs: Any) -> Any:
        return host_sql(rewrite_sql(con, query), *args, **kwargs)

    con.sql = sql
    setattr(con, _REGISTERED, True)
