"""Wiring into a SedonaDB (``sedonadb.connect()``) context.

SedonaDB 0.5 has no table-function hook and its ``ExternalFormatSpec`` path
fails to plan reordered/renamed projections, so ``read_format`` hands SedonaDB
a table provider of ours through its own stable C ABI
(``__sedonadb_table_provider__``) instead; ``ZarrMetaSpec`` stays available
for ``con.read(uri, format=...)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sedonadb_zarr_meta._lib import SedonaTableProvider
from sedonadb_zarr_meta._options import options_json, validate_options
from sedonadb_zarr_meta._spec import ZarrMetaSpec

_REGISTERED = "_sedonadb_zarr_meta_registered"


def is_sedonadb_context(con: Any) -> bool:
    try:
        from sedonadb.context import SedonaContext
    except ImportError:
        return False
    return isinstance(con, SedonaContext)


def read_format(con: Any, spec: ZarrMetaSpec, uri: str, options: Mapping[str, Any] | None = None):
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


def register(con: Any) -> None:
    """Register the format and add ``con.read_format``; calling twice is harmless."""
    if getattr(con, _REGISTERED, False):
        return
    con.register(ZarrMetaSpec())
    con.read_format = functools.partial(read_format, con)
    setattr(con, _REGISTERED, True)
