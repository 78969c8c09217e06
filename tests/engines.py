"""One test engine per host: SedonaDB and datafusion-python, each with this package registered.

Modelled on ``sedonadb.testing``'s engine classes: ``execute`` runs SQL, ``collect`` gives the
result as a pyarrow Table, ``tuples`` as rows of Python values with geometry as WKT, and
``compare`` asserts that two engines (or an engine and expected rows) give the same rows. The
few ways the hosts' SQL differs live here (``geometry``: a WKT literal with the catalogue's
CRS; ``register_geoparquet``: a GeoParquet file as a table), so a test names a host once and
a new host is one class more.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyarrow as pa

__all__ = ["ENGINES", "Ballista", "DataFusion", "Engine", "SedonaDB", "engines"]


def _is_geometry(field: pa.Field) -> bool:
    t = field.type
    if isinstance(t, pa.ExtensionType):
        return t.extension_name == "geoarrow.wkb"
    return (field.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"


def _wkt(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    import geoarrow.pyarrow as ga

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    return ga.format_wkt(ga.wkb().wrap_array(storage)).to_pylist()


def _value(v: Any, digits: int) -> Any:
    """Floats rounded to ``digits`` (aggregation order differs between hosts), NaN as ``None``."""
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, digits)
    return v


class Engine:
    """A host context with ``sd_read_zarr_meta`` registered (``con``), and how to query it."""

    #: The host's name, as ``zarr-meta query --host`` and the tests' parameters spell it.
    name: ClassVar[str]
    #: The class a missing store or version raises when the host plans a query (README's table).
    missing_store_error: ClassVar[type[Exception]]

    def __init__(self) -> None:
        from sedonadb_zarr_meta import register

        self.con = register(self.connect())

    def connect(self) -> Any:
        """A fresh context of the host."""
        raise NotImplementedError

    @classmethod
    def geometry(cls, wkt: str) -> str:
        """SQL for a geometry literal with the catalogue's CRS (OGC:CRS84)."""
        raise NotImplementedError

    def register_geoparquet(self, name: str, path: Any) -> Engine:
        """The GeoParquet file ``path`` as table ``name`` (geometry typed, with its CRS)."""
        raise NotImplementedError

    def execute(self, sql: str) -> Any:
        """The host's (lazy) DataFrame of ``sql``."""
        return self.con.sql(sql)

    def collect(self, sql: str) -> pa.Table:
        """The result of ``sql`` as a pyarrow Table (geometry as GeoArrow WKB with its CRS)."""
        df = self.execute(sql)
        return pa.table(df) if hasattr(df, "__arrow_c_stream__") else df.to_arrow_table()

    def tuples(self, sql: str, *, digits: int = 6, sort: bool = True) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` as tuples of Python values: geometry as WKT, floats rounded to
        ``digits``; sorted unless ``sort`` is false."""
        table = self.collect(sql)
        columns = [
            _wkt(column) if _is_geometry(field) else column.to_pylist()
            for field, column in zip(table.schema, table.columns)
        ]
        rows = [tuple(_value(v, digits) for v in row) for row in zip(*columns)]
        return sorted(rows, key=repr) if sort else rows

    def compare(self, sql: str, expected: Engine | list[tuple[Any, ...]], *, digits: int = 6) -> None:
        """Assert that ``sql`` gives the rows (and column names) ``expected`` gives: another
        engine's answer to the same SQL, or rows as :meth:`tuples` returns them."""
        got = self.tuples(sql, digits=digits)
        if isinstance(expected, Engine):
            names = self.collect(sql).column_names
            other = expected.collect(sql).column_names
            assert names == other, f"{self.name} columns {names} != {expected.name} columns {other}"
            want = expected.tuples(sql, digits=digits)
        else:
            want = sorted(expected, key=repr)
        assert got == want, f"{self.name}: {sql}"


class SedonaDB(Engine):
    """SedonaDB 0.5 (``sedonadb.connect()``)."""

    name = "sedonadb"
    missing_store_error = FileNotFoundError

    def connect(self) -> Any:
        import sedonadb

        return sedonadb.connect()

    @classmethod
    def geometry(cls, wkt: str) -> str:
        return f"ST_SetSRID(ST_GeomFromText('{wkt}'), 4326)"

    def register_geoparquet(self, name: str, path: Any) -> Engine:
        self.con.read_parquet(str(path)).to_view(name, overwrite=True)
        return self


class DataFusion(Engine):
    """datafusion-python 54.1 (``datafusion.SessionContext()``) with SedonaDB's ``ST_*``."""

    name = "datafusion"
    missing_store_error = ValueError

    def connect(self) -> Any:
        import datafusion

        return datafusion.SessionContext()

    @classmethod
    def geometry(cls, wkt: str) -> str:
        return f"sd_geomfromtext('{wkt}')"

    def register_geoparquet(self, name: str, path: Any) -> Engine:
        from sedonadb_zarr_meta import register_geoparquet

        register_geoparquet(self.con, name, str(path))
        return self


#: Every host, in the order tests run them.
ENGINES: tuple[type[Engine], ...] = (SedonaDB, DataFusion)


def engines() -> dict[str, Engine]:
    """A fresh engine of every host, by name."""
    return {cls.name: cls() for cls in ENGINES}


class Ballista(Engine):
    """A Ballista cluster (``sedonadb_zarr_meta.distributed``): the same SQL, planned by a
    scheduler and run by executors. Not in :data:`ENGINES`: it needs a running cluster."""

    name = "ballista"
    missing_store_error = ValueError

    def __init__(self, url: str, *, timeout: float | None = None) -> None:
        from sedonadb_zarr_meta import distributed

        self.con = distributed.connect(url, timeout=timeout)

    @classmethod
    def geometry(cls, wkt: str) -> str:
        return f"ST_SetSRID(ST_GeomFromText('{wkt}'), 4326)"

    def register_geoparquet(self, name: str, path: Any) -> Engine:
        self.con.register_geoparquet(name, str(path))
        return self
