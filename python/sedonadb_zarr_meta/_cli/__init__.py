"""``zarr-meta``: the command-line tool of sedonadb-zarr-meta.

Five subcommands cover a catalogue's life cycle::

    zarr-meta ingest items.ndjson catalogue.zarr --sort     # STAC items -> Zarr meta group
    zarr-meta info catalogue.zarr                           # rows, columns, CRS, chunks, statistics
    zarr-meta query catalogue.zarr "SELECT id FROM meta"    # spatial SQL, printed or written to a file
    zarr-meta verify catalogue.zarr                         # statistics checked against the data
    zarr-meta serve catalogue.zarr                          # a STAC API (the serve extra)

Every error is reported as one line, ``zarr-meta: error: <message>``, on
stderr: exit status 2 for usage errors, 1 for failures (and for ``verify``
finding statistics that disagree with the data), 130 when interrupted.
``ZARR_META_DEBUG=1`` adds the traceback.

One module per command (``info``, ``ingest``, ``query``, ``verify``, ``serve``: each has
``add_parser`` and ``run``); ``args`` parses the command line, ``text`` and
``files`` shape the output, ``hosts`` connects the query engines and ``main``
dispatches. The commands decide nothing the package does not: they read stores
through its public API only.
"""

from __future__ import annotations

from sedonadb_zarr_meta._cli.main import main, run

__all__ = ["main", "run"]
