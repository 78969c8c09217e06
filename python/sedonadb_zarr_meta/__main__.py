"""``python -m sedonadb_zarr_meta``: the ``zarr-meta`` command-line tool."""

from sedonadb_zarr_meta._cli import run

if __name__ == "__main__":
    run()
