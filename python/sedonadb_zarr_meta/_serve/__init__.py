"""A STAC API over a store: stac-fastapi with a backend client that searches the store with SQL.

``app`` builds the application, ``client`` answers the endpoints, ``search`` turns a search
into SQL (pushdown, keyset paging), ``cql`` rewrites the ``cql2`` library's SQL to this engine's
idioms, ``items`` rebuilds STAC items from rows, ``catalogue`` holds the open store.
"""

from __future__ import annotations

from sedonadb_zarr_meta._serve.app import create_app

__all__ = ["create_app"]
