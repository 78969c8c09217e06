"""Query Earth-observation catalogues kept as a Zarr ``meta`` group with spatial SQL.

Each 1-D array of the group is a column, each index an item; ``bbox`` and
``geometry`` arrays arrive as native geometry (GeoArrow WKB with a CRS).

Examples:
    >>> import sedonadb
    >>> from sedonadb_zarr_meta import ZarrMetaSpec, register
    >>> con = sedonadb.connect()
    >>> register(con)
    >>> df = con.read_format(ZarrMetaSpec(), "file:///data/store.zarr")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from sedonadb_zarr_meta._icechunk import RepositoryVersions, Snapshot, list_versions
from sedonadb_zarr_meta._lib import BatchStream, MetaTable, ZarrMetaError
from sedonadb_zarr_meta._lib import __version__ as __version__
from sedonadb_zarr_meta._options import OPTION_KEYS, options_json, validate_options
from sedonadb_zarr_meta._verify import verify_statistics
from sedonadb_zarr_meta._write import ingest_stac_search, write_meta

__all__ = [
    "OPTION_KEYS",
    "BatchStream",
    "MetaTable",
    "RepositoryVersions",
    "Snapshot",
    "ZarrMetaError",
    "ZarrMetaSpec",
    "create_app",
    "ingest_stac_search",
    "list_versions",
    "open_meta",
    "register",
    "register_geoparquet",
    "verify_statistics",
    "write_meta",
]


def open_meta(uri: str, **options: Any) -> MetaTable:
    """Open the ``meta`` group of ``uri`` without a query engine.

    ``pyarrow.table(open_meta(uri).scan())`` reads it into a pyarrow Table.
    """
    return MetaTable(str(uri), options_json(validate_options(options)))


def register(con: Any, *, sedona_functions: bool = True) -> Any:
    """Make ``sd_read_zarr_meta(uri [, options_json])`` available in ``con``.

    Args:
        con: A SedonaDB context (``sedonadb.connect()``): adds the SQL table
            function to ``con.sql``, ``con.read_format(spec, uri)`` and the
            ``zarr_meta`` format for ``con.read``. Or a datafusion-python
            ``SessionContext``: registers the table function and, unless
            ``sedona_functions=False``, SedonaDB's ``ST_*`` functions.
        sedona_functions: datafusion-python only; see above.

    Registering twice is harmless. Returns ``con``.

    Examples:
        >>> import datafusion
        >>> ctx = register(datafusion.SessionContext())
        >>> ctx.sql("SELECT count(*) FROM sd_read_zarr_meta('/data/store.zarr')")  # doctest: +SKIP
    """
    from sedonadb_zarr_meta import _datafusion, _sedonadb

    if _sedonadb.is_sedonadb_context(con):
        _sedonadb.register(con)
    elif _datafusion.is_datafusion_context(con):
        _datafusion.register(con, sedona_functions=sedona_functions)
    else:
        raise TypeError(
            "register() expects a sedonadb context (sedonadb.connect()) or a "
            f"datafusion.SessionContext, got {type(con).__name__}"
        )
    return con


def register_geoparquet(ctx: Any, name: str, path: str) -> Any:
    """Register a GeoParquet file as table ``name`` in a datafusion-python context,
    geometry typed with the file's CRS (SedonaDB's own readers already do this);
    see :func:`sedonadb_zarr_meta._datafusion.register_geoparquet`."""
    from sedonadb_zarr_meta import _datafusion

    return _datafusion.register_geoparquet(ctx, name, path)


def __getattr__(name: str) -> Any:
    # ZarrMetaSpec needs sedonadb; import it lazily so the core reader works without it.
    if name == "ZarrMetaSpec":
        from sedonadb_zarr_meta._spec import ZarrMetaSpec

        return ZarrMetaSpec
    # create_app needs the serve extra (stac-fastapi, cql2); imported only when asked for.
    if name == "create_app":
        from sedonadb_zarr_meta._serve import create_app

        return create_app
    raise AttributeError(f"module 'sedonadb_zarr_meta' has no attribute {name!r}")
