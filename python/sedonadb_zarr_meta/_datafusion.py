"""Wiring into a datafusion-python ``SessionContext``.

``sd_read_zarr_meta`` is exported as a datafusion-ffi ``FFI_TableFunction``
capsule bound to the user's context (so pushed filters decode against the
functions registered there), and SedonaDB's scalar functions (``ST_*``) are
registered through their ``__datafusion_scalar_udf__`` capsules, together
with ``sd_geomfromtext(wkt [, crs])`` and ``sd_geomfromwkb(wkb [, crs])`` for
geometry literals and plain WKB columns (e.g. from Parquet) with a CRS.
"""

from __future__ import annotations

from typing import Any

from sedonadb_zarr_meta._lib import GeometryUdf, ZarrMetaTableFunction

FUNCTION_NAME = "sd_read_zarr_meta"
_REGISTERED = "_sedonadb_zarr_meta_registered"


def is_datafusion_context(ctx: Any) -> bool:
    try:
        from datafusion import SessionContext
    except ImportError:
        return False
    return isinstance(ctx, SessionContext)


def sedona_scalar_functions() -> list[Any]:
    """SedonaDB's own scalar functions as objects exposing ``__datafusion_scalar_udf__``."""
    import sedonadb

    con = sedonadb.connect()
    impl = con._impl
    out = []
    for name in impl.list_scalar_udfs():
        udf = impl.scalar_udf(name)
        # DataFusion's built-ins come back too; the host has its own.
        if type(udf).__name__ == "PySedonaScalarUdf":
            out.append(udf)
    return out


def register(ctx: Any, *, sedona_functions: bool = True) -> None:
    """Register ``sd_read_zarr_meta`` (and SedonaDB's ``ST_*`` functions) in ``ctx``."""
    from datafusion import udf
    from datafusion.user_defined import TableFunction

    if getattr(ctx, _REGISTERED, False):
        return
    function = TableFunction(FUNCTION_NAME, ZarrMetaTableFunction(), ctx)
    ctx.register_udtf(function)
    # A geometry literal with a CRS: SedonaDB's ST_SetSRID cannot see its
    # constant SRID across datafusion-ffi 54, so it cannot make one here.
    ctx.register_udf(udf(GeometryUdf("wkt")))
    ctx.register_udf(udf(GeometryUdf("wkb")))
    if sedona_functions:
        try:
            functions = sedona_scalar_functions()
        except ImportError:
            functions = []
        for f in functions:
            ctx.register_udf(udf(f))
    setattr(ctx, _REGISTERED, True)
