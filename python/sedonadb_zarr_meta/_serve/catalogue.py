"""The store behind the server: one SedonaDB context kept open between requests, the group's
columns and their STAC roles, and the collections derived from the data.

Every query reads a view of the group as it is now: the package keeps an opened group while
its store is unchanged, and the view is registered again whenever the group was opened again
(a write, a moved branch), so each query sees the store as it is. Queries run one at a time
under a lock: a context is not shared between threads.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from sedonadb_zarr_meta._stac import ASSET_COLUMNS

__all__ = ["ROW", "Catalogue", "Column", "sql_string"]

#: Item members kept as columns of their own (everything else is a property).
TOP_LEVEL = ("id", "collection", "stac_version", "stac_extensions", "bbox", "geometry", "assets")
#: The group attribute holding STAC Collection documents (a list of them) that the server
#: serves as they are, links and missing extents added.
COLLECTIONS_ATTRIBUTE = "zarr_meta:collections"
#: Seconds the collections computed from the data are kept before they are computed again.
COLLECTIONS_TTL = 30.0
#: The column every query of the server sees besides the group's: each item's position in the
#: group (the ``row_number`` read option), the order of search results and of their page tokens.
ROW = "zarr_meta:row"
#: Views kept registered at most (one per version read: the branch's tip, pinned snapshots).
MAX_VIEWS = 16


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Column:
    """One column of the group: its name, Arrow type and what it is in a STAC item."""

    def __init__(self, name: str, type: pa.DataType, is_json: bool, geometry: bool, nullable: bool = True):
        self.name, self.type, self.is_json, self.geometry = name, type, is_json, geometry
        self.nullable = nullable

    @property
    def is_time(self) -> bool:
        return pa.types.is_timestamp(self.type) or pa.types.is_date(self.type)

    @property
    def role(self) -> str:
        """``top`` (an item member), ``asset`` (``asset:<key>:<field>``), ``zrange`` or ``property``."""
        if self.name in TOP_LEVEL:
            return "top"
        if self.name.startswith("asset:") and self.name.rsplit(":", 1)[-1] in ASSET_COLUMNS:
            return "asset"
        if self.name in ("bbox:zmin", "bbox:zmax"):
            return "zrange"
        return "property"


class Catalogue:
    """A store served as a STAC API: its columns, a query engine, and its collections."""

    def __init__(self, uri: str, options: Mapping[str, Any] | None = None):
        import sedonadb

        from sedonadb_zarr_meta import open_meta, validate_options

        self.uri = str(uri)
        self.options = validate_options(dict(options or {}))
        self.branch = self._branch()
        self._lock = threading.Lock()
        self._con = sedonadb.connect()
        #: Options JSON -> (view name, group id), least recently used first.
        self._views: dict[str, tuple[str, int]] = {}
        self._view_numbers = itertools.count()
        meta = open_meta(self.uri, **self.options)
        schema = pa.schema(meta)
        stats = json.loads(meta.attributes_json).get("zarr_meta:stats") or {}
        self.columns: dict[str, Column] = {}
        for field in schema:
            geometry = (field.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"
            is_json = field.name in ("stac_extensions", "assets") or _looks_json(
                stats.get("columns", {}).get(field.name)
            )
            self.columns[field.name] = Column(field.name, field.type, is_json, geometry, field.nullable)
        for required in ("id", "collection"):
            if required not in self.columns:
                raise ValueError(
                    f"{self.uri}: the meta group has no {required!r} column; it cannot be served"
                )
        self._collections: tuple[float, dict[str, dict[str, Any]]] | None = None

    def _options_json(self, snapshot: str | None = None) -> str:
        """The read options of every query (``snapshot`` pinned when given) as JSON: one text, so
        queries and reads by position share the opened group and its decoded chunks."""
        from sedonadb_zarr_meta import options_json

        options = {**self.options, "row_number": ROW}
        if snapshot is not None:
            options = {k: v for k, v in options.items() if k != "branch"} | {"snapshot": snapshot}
        return options_json(options) or "{}"

    def _view(self, snapshot: str | None) -> str:
        """The name of a view of the group as it is now (at ``snapshot`` when given). It is
        registered again only when the group was opened again: a query over a view is planned
        without opening a table for it."""
        from sedonadb_zarr_meta._lib import MetaTable, SedonaTableProvider

        options = self._options_json(snapshot)
        current = MetaTable(self.uri, options).group_id
        kept = self._views.pop(options, None)
        if kept is None or kept[1] != current:
            provider = SedonaTableProvider(self.uri, options)
            name = kept[0] if kept is not None else f"zarr_meta_{next(self._view_numbers)}"
            self._con.create_data_frame(provider).to_view(name, overwrite=True)
            kept = (name, provider.group_id)
        self._views[options] = kept
        while len(self._views) > MAX_VIEWS:
            oldest = next(iter(self._views))
            self._con.drop_view(self._views.pop(oldest)[0])
        return kept[0]

    def _branch(self) -> str | None:
        """The branch read, when the store is an Icechunk repository read at a branch."""
        from sedonadb_zarr_meta import list_versions

        if "snapshot" in self.options or "tag" in self.options:
            return None
        try:
            versions = list_versions(self.uri, storage_options=self.options.get("storage_options"))
        except (FileNotFoundError, ValueError, OSError):
            return None
        branch = self.options.get("branch", "main")
        return branch if branch in versions.branches else None

    def snapshot(self) -> str | None:
        """The snapshot at the tip of the branch read now (``None`` unless an Icechunk branch)."""
        from sedonadb_zarr_meta import list_versions

        if self.branch is None:
            return None
        versions = list_versions(self.uri, storage_options=self.options.get("storage_options"))
        return versions.branches.get(self.branch)

    # ---------------------------------------------------------------- queries

    def query(self, sql: str, snapshot: str | None = None) -> pa.Table:
        """Run ``sql`` (naming the store as ``{meta}``; at ``snapshot`` of an Icechunk
        repository when given) and return its result."""
        with self._lock:
            table = self._con.sql(sql.replace("{meta}", self._view(snapshot))).to_arrow_table()
        return table

    def rows(self, positions: list[int], columns: list[str], snapshot: str | None = None) -> pa.Table:
        """The rows at ``positions`` (those the group has, in group order) with ``columns`` and
        the row-number column: read by position, with no query to plan, decoding whole rows
        only in the chunks that hold them."""
        from sedonadb_zarr_meta._lib import MetaTable

        meta = MetaTable(self.uri, self._options_json(snapshot))
        index = {name: i for i, name in enumerate(meta.column_names)}
        wanted = [index[c] for c in [*columns, ROW]]
        return pa.table(meta.scan(columns=wanted, rows=positions, extension_types=False))

    @property
    def time_columns(self) -> list[str]:
        return [c for c in ("datetime", "start_datetime", "end_datetime") if c in self.columns]

    def collections(self) -> dict[str, dict[str, Any]]:
        """Each collection's item count and extents, computed from the data (kept for a while)."""
        now = time.monotonic()
        if self._collections is not None and now - self._collections[0] < COLLECTIONS_TTL:
            return self._collections[1]
        parts = ["collection", "count(*) AS n"]
        geometry = "bbox" if "bbox" in self.columns else ("geometry" if "geometry" in self.columns else None)
        if geometry:
            g = quote(geometry)
            parts += [
                f"min(ST_XMin({g})) AS w",
                f"min(ST_YMin({g})) AS s",
                f"max(ST_XMax({g})) AS e",
                f"max(ST_YMax({g})) AS n2",
            ]
        times = self.time_columns
        if times:
            parts += [f"min(least({', '.join(quote(t) for t in times)})) AS t0"]
            parts += [f"max(greatest({', '.join(quote(t) for t in times)})) AS t1"]
        rows = self.query(f"SELECT {', '.join(parts)} FROM {{meta}} GROUP BY collection ORDER BY collection")
        documents = self._documents()
        out: dict[str, dict[str, Any]] = {}
        for row in rows.to_pylist():
            if row["collection"] is None:
                continue
            row["document"] = documents.get(row["collection"])
            out[row["collection"]] = row
        self._collections = (now, out)
        return out

    def _documents(self) -> dict[str, dict[str, Any]]:
        """The Collection documents the group's ``zarr_meta:collections`` attribute holds, by id."""
        from sedonadb_zarr_meta import open_meta

        attrs = json.loads(open_meta(self.uri, **self.options).attributes_json)
        documents = attrs.get(COLLECTIONS_ATTRIBUTE) or []
        if not isinstance(documents, list):
            return {}
        return {d["id"]: d for d in documents if isinstance(d, dict) and isinstance(d.get("id"), str)}


def _looks_json(stats: Any) -> bool:
    """A text column whose every chunk's minimum and maximum is a JSON list or object: how
    ingest stores STAC lists and objects (``instruments``, ``proj:shape``, …)."""
    if not isinstance(stats, dict) or not stats.get("min") or not stats.get("max"):
        return False
    for value in [*stats["min"], *stats["max"]]:
        if not isinstance(value, str) or value[:1] not in ("[", "{"):
            return False
        try:
            json.loads(value)
        except ValueError:
            return False
    return True
