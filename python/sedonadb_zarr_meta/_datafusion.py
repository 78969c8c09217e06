"""Wiring into a datafusion-python ``SessionContext``.

``sd_read_zarr_meta`` is exported as a datafusion-ffi ``FFI_TableFunction``
capsule bound to the user's context (so pushed filters decode against the
functions registered there), and SedonaDB's scalar functions (``ST_*``) are
registered through their ``__datafusion_scalar_udf__`` capsules, together
with ``sd_geomfromtext(wkt [, crs])`` and ``sd_geomfromwkb(wkb [, crs])`` for
geometry literals and plain WKB columns (e.g. from Parquet) with a CRS.
SedonaDB's CRS idioms (``ST_SetSRID``, ``ST_SetCRS``, ``ST_GeomFromText`` /
``ST_GeomFromWKT`` / ``ST_GeomFromWKB`` with an SRID, ``ST_GeomFromEWKT``,
``ST_MakeEnvelope``) are replaced by versions that read their constant SRID or
CRS, so the SQL SedonaDB's documentation teaches runs unchanged.
"""

from __future__ import annotations

from typing import Any

from sedonadb_zarr_meta._lib import CrsIdiomUdf, GeometryUdf, ZarrMetaTableFunction

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
        # SedonaDB's CRS idioms cannot see their constant SRID across
        # datafusion-ffi 54; these versions can (and replace them by name).
        for name in CrsIdiomUdf.names():
            ctx.register_udf(udf(CrsIdiomUdf(name)))
    setattr(ctx, _REGISTERED, True)


def _crs_text(crs: Any) -> str:
    """A GeoParquet column's CRS as the text ``sd_geomfromwkb`` takes: an
    authority code where the PROJJSON names one (as SedonaDB writes its own
    CRSs), else the PROJJSON itself. GeoParquet's default is OGC:CRS84."""
    import json

    if crs is None or crs == {}:
        return "OGC:CRS84"
    if isinstance(crs, str):
        return crs
    ident = crs.get("id") if isinstance(crs, dict) else None
    if isinstance(ident, dict) and "authority" in ident and "code" in ident:
        code = f"{ident['authority']}:{ident['code']}"
        return "OGC:CRS84" if code in ("EPSG:4326", "OGC:CRS84") else code
    return json.dumps(crs)


def geoparquet_view(name: str, path: str) -> tuple[str, str]:
    """How table ``name`` over the GeoParquet file (or directory) ``path`` is
    made: the name to register the plain Parquet under, and the ``SELECT``
    over it that types its WKB geometry columns as geometry with the CRS of
    the file's GeoParquet metadata."""
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    source = Path(path)
    first = source if source.is_file() else next(iter(sorted(source.glob("**/*.parquet"))), None)
    if first is None:
        raise FileNotFoundError(f"{path}: no Parquet file found")
    schema = pq.read_schema(first)
    geo = json.loads((schema.metadata or {}).get(b"geo", b"{}"))
    columns = geo.get("columns", {})
    if not columns:
        raise ValueError(f"{path}: not a GeoParquet file (no 'geo' metadata with geometry columns)")
    raw = f"__{name}_parquet"
    select = []
    for field in schema:
        quoted = '"' + field.name.replace('"', '""') + '"'
        meta = columns.get(field.name)
        if meta is not None and meta.get("encoding", "WKB").upper() == "WKB":
            crs = _crs_text(meta.get("crs")).replace("'", "''")
            select.append(f"sd_geomfromwkb({quoted}, '{crs}') AS {quoted}")
        else:
            select.append(quoted)
    return raw, f"SELECT {', '.join(select)} FROM {raw}"


def register_geoparquet(ctx: Any, name: str, path: str) -> Any:
    """Register the GeoParquet file (or directory) ``path`` as table ``name`` in a
    datafusion-python context, its WKB geometry columns typed as geometry with
    the CRS of the file's GeoParquet metadata (as SedonaDB's reader types them).

    Returns the DataFrame of the table.

    Examples:
        >>> register_geoparquet(ctx, "countries", "/data/countries.parquet")  # doctest: +SKIP
        >>> ctx.sql("SELECT m.id, c.name FROM sd_read_zarr_meta('/data/store.zarr') m "
        ...         "JOIN countries c ON ST_Intersects(m.bbox, c.geometry)")  # doctest: +SKIP
    """
    register(ctx)
    raw, select = geoparquet_view(name, path)
    ctx.register_parquet(raw, str(path))
    df = ctx.sql(select)
    ctx.register_view(name, df)
    return ctx.table(name)
