"""The same SQL on an Apache DataFusion Ballista cluster.

>>> from sedonadb_zarr_meta import distributed
>>> cluster = distributed.connect("df://scheduler:50050")  # doctest: +SKIP
>>> cluster.register_geoparquet("countries", "/shared/countries.parquet")  # doctest: +SKIP
>>> result = cluster.sql(
...     "SELECT c.name, count(*) AS n FROM sd_read_zarr_meta('s3://bucket/store.zarr') m "
...     "JOIN countries c ON ST_Intersects(m.bbox, c.geometry) GROUP BY c.name"
... )  # doctest: +SKIP
>>> pa.table(result)  # doctest: +SKIP

The cluster's roles and its client are the ``zarr-meta-cluster`` binary
(``rust/sedonadb-zarr-meta-cluster``), built on the Ballista 54.1 crates with
this package's codecs and functions; the plugin's wheel does not carry
Ballista. Each query runs one client process, which plans the SQL, sends it
to the scheduler and streams the result back as Arrow IPC. Tables
registered here (Parquet, GeoParquet) must be paths every executor can read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

#: The environment variable naming the ``zarr-meta-cluster`` binary, when it
#: is not on ``PATH``.
BINARY_ENV = "SZM_CLUSTER_BIN"


def binary() -> str:
    """The ``zarr-meta-cluster`` binary: ``$SZM_CLUSTER_BIN``, else the one on ``PATH``."""
    named = os.environ.get(BINARY_ENV)
    if named:
        if not os.access(named, os.X_OK):
            raise FileNotFoundError(f"{BINARY_ENV}={named}: not an executable file")
        return named
    found = shutil.which("zarr-meta-cluster")
    if found is None:
        raise FileNotFoundError(
            "zarr-meta-cluster not found: build it with "
            "`cargo install --path rust/sedonadb-zarr-meta-cluster` or name it in $" + BINARY_ENV
        )
    return found


def _scheduler_address(url: str) -> tuple[str, int]:
    if not url.startswith("df://"):
        raise ValueError(f"scheduler URL {url!r}: expected df://host:port")
    host, sep, port = url.removeprefix("df://").rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"scheduler URL {url!r}: expected df://host:port")
    return host, int(port)


@dataclass
class Result:
    """A query's result, held in memory: exports the Arrow C stream
    (``pa.table(result)``) and converts to pandas, with geometry columns as
    GeoPandas geometry (with their CRS) when GeoPandas is installed."""

    table: pa.Table

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.table.__arrow_c_stream__(requested_schema)

    def to_arrow_table(self) -> pa.Table:
        return self.table

    def __len__(self) -> int:
        return self.table.num_rows

    def to_pandas(self) -> Any:
        """A pandas DataFrame; a GeoDataFrame when the result has geometry
        columns (``geoarrow.wkb``) and GeoPandas is installed."""
        import json

        frame = self.table.to_pandas()
        geometry = {
            f.name: json.loads((f.metadata or {}).get(b"ARROW:extension:metadata", b"{}") or b"{}").get("crs")
            for f in self.table.schema
            if (f.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"
        }
        if not geometry:
            return frame
        try:
            import geopandas
        except ImportError:
            return frame
        for name, crs in geometry.items():
            frame[name] = geopandas.GeoSeries.from_wkb(frame[name], crs=crs)
        return geopandas.GeoDataFrame(frame, geometry=next(iter(geometry)))


@dataclass
class Cluster:
    """A connection to a Ballista cluster's scheduler. ``timeout`` bounds each query (seconds)."""

    url: str
    timeout: float | None = None
    _parquet: list[tuple[str, str]] = field(default_factory=list)
    _views: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _scheduler_address(self.url)
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    def register_parquet(self, name: str, path: str) -> None:
        """Table ``name`` over the Parquet file or directory ``path`` (a path every executor can read)."""
        self._parquet.append((name, str(path)))

    def register_geoparquet(self, name: str, path: str) -> None:
        """Table ``name`` over a GeoParquet file, geometry typed with its CRS (as on one machine)."""
        from sedonadb_zarr_meta._datafusion import geoparquet_view

        raw, select = geoparquet_view(name, str(path))
        self._parquet.append((raw, str(path)))
        self._views.append((name, select))

    def _command(self, query: str) -> list[str]:
        args = [binary(), "sql", "--scheduler", self.url]
        for name, path in self._parquet:
            args += ["--parquet", f"{name}={path}"]
        for name, sql in self._views:
            args += ["--view", f"{name}={sql}"]
        if self.timeout is not None:
            args += ["--timeout", str(self.timeout)]
        return [*args, "--", query]

    def sql(self, query: str) -> Result:
        """Run ``query`` on the cluster; raises ``ValueError`` with the cluster's message if it fails."""
        proc = subprocess.run(self._command(query), capture_output=True, check=False)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()
            message = message.removeprefix("zarr-meta-cluster: ")
            raise ValueError(message or f"the query failed (status {proc.returncode})")
        with pa.ipc.open_stream(proc.stdout) as reader:
            return Result(reader.read_all())


def connect(url: str, *, timeout: float | None = None) -> Cluster:
    """Connect to the scheduler at ``url`` (``df://host:port``)."""
    return Cluster(url, timeout=timeout)
