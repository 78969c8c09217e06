"""``write_meta``: write item metadata as a Zarr ``meta`` group with zarr-python.

The group stays readable by zarr-python and other Zarr readers: one 1-D
array per column, geometry as WKB bytes, datetimes as ``datetime64``, the CRS
as ``proj:*`` attributes. Per-chunk statistics (bounding boxes of geometry
columns, min/max of numeric, time and text columns) are recorded in the
group attribute ``"zarr_meta:stats"`` (``_lib.STATS_ATTRIBUTE``) so readers
can skip chunks::

    {"version": 1, "num_rows": N, "block_rows": chunk_size,
     "columns": {"bbox": {"bbox": [[xmin, ymin, xmax, ymax] | null, ...]},
                 "date": {"min": [...], "max": [...]}}}

Time statistics are the stored ``datetime64`` integers; ``null`` marks a
block without valid values.

Modules, in the order data flows through them. Streaming (the default for
Zarr v3): ``sources`` (the input as Arrow batches of bounded size),
``columns_arrow`` (a batch's columns as stored), ``chunks`` (chunks and
metadata documents written directly), ``stream`` (the writer, chunk by chunk),
``spill`` (``sort=True``: the batches spilled to disk, read back in Hilbert
order). In memory, through zarr-python (GeoDataFrames, Zarr v2, groups of
other layouts): ``inputs`` (what is written, as one Arrow table),
``columns`` (each column as zarr-python writes it), ``stats`` (per-chunk
statistics, Hilbert order) and ``append`` (rows added to a written group).
Both: ``targets`` (local or object-store stores) and ``writer``
(``write_meta``: a new group or an Icechunk commit).
"""

from __future__ import annotations

from sedonadb_zarr_meta._write.stats import DEFAULT_CHUNK_SIZE
from sedonadb_zarr_meta._write.writer import ingest_stac_search, write_meta

__all__ = ["DEFAULT_CHUNK_SIZE", "ingest_stac_search", "write_meta"]
