"""The query engines ``zarr-meta query`` runs on: a context of either host with the store as a view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HOSTS", "connect", "default_host", "sedonadb_frame"]

#: The hosts ``--host`` chooses from.
HOSTS = ("sedonadb", "datafusion")


def default_host() -> str:
    """SedonaDB when it is installed, else datafusion-python."""
    try:
        import sedonadb  # noqa: F401
    except ImportError:
        return "datafusion"
    return "sedonadb"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _import(host: str) -> Any:
    extra = "sedonadb" if host == "sedonadb" else "datafusion"
    try:
        if host == "sedonadb":
            import sedonadb as module
        else:
            import datafusion as module
    except ImportError:
        raise RuntimeError(
            f"--host {host} needs the {extra} package: pip install 'sedonadb-zarr-meta[{extra}]'"
        ) from None
    return module


def connect(host: str, uri: str, options: Mapping[str, Any], table: str) -> Any:
    """A context of ``host`` with ``sd_read_zarr_meta`` and the store as view ``table``."""
    from sedonadb_zarr_meta import options_json, register

    module = _import(host)
    if host == "sedonadb":
        from sedonadb_zarr_meta import ZarrMetaSpec

        con = register(module.connect())
        con.read_format(ZarrMetaSpec(options), uri).to_view(table, overwrite=True)
        return con
    ctx = register(module.SessionContext())
    call = f"sd_read_zarr_meta({_sql_string(uri)}, {_sql_string(options_json(options) or '{}')})"
    ctx.register_view(table, ctx.sql(f"SELECT * FROM {call}"))
    return ctx


def sedonadb_frame(stream: Any) -> tuple[Any, Any]:
    """A SedonaDB context and a DataFrame of it reading an Arrow stream (a result of either
    host, passed through the Arrow C stream interface), for SedonaDB's file writers."""
    sedonadb = _import("sedonadb")
    con = sedonadb.connect()
    return con, con.create_data_frame(stream)
