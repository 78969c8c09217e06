"""Time a SQL query over a Zarr store's ``meta`` group with zarr-datafusion-search.

Run with a Python environment that has ``zarr-datafusion-search``, ``datafusion``,
``obstore`` and ``pyarrow`` installed::

    python zds_scan.py STORE_PATH [--repeat N] [--query SQL]
    python zds_scan.py s3://BUCKET/STORE [--repeat N]   # endpoint etc. from AWS_* variables

The ``meta`` group is registered as the table ``meta``. The query (default
``SELECT * FROM meta``) is collected into a ``pyarrow.Table`` once as a warm-up,
then ``N`` more times. One JSON line is printed:
``{"reader": "zarr-datafusion-search", "rows": <int>, "seconds": [...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import warnings
from pathlib import Path

import pyarrow as pa
from datafusion import SessionContext
from obstore.store import LocalStore, S3Store
from zarr_datafusion_search import ZarrTable


def _s3_store(uri: str) -> S3Store:
    """An obstore S3Store for ``s3://bucket/prefix`` configured from the AWS_* environment."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    allow_http = os.environ.get("AWS_ALLOW_HTTP", "false").lower() == "true"
    return S3Store(bucket, prefix=prefix, client_options={"allow_http": allow_http})


async def open_table(store_path: str) -> ZarrTable:
    """Open the store's ``meta`` group (must be awaited inside a running loop)."""
    if store_path.startswith("s3://"):
        store = _s3_store(store_path)
    else:
        store = LocalStore(str(Path(store_path).resolve()))
    with warnings.catch_warnings():
        # obstore store passed across wheels: harmless "reconstructed a store" warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return await ZarrTable.from_obstore(store, "/meta")


def make_context(store_path: str) -> tuple[SessionContext, ZarrTable]:
    """Return a session with the store's ``meta`` group registered as ``meta``.

    The ``ZarrTable`` is returned too: the caller must keep it alive, because the
    registered provider only holds a weak reference to the table's task context
    and queries fail ("TaskContextProvider went out of scope") once it is freed.
    """
    table = asyncio.run(open_table(store_path))
    ctx = SessionContext()
    ctx.register_table("meta", table)
    return ctx, table


def run_query(ctx: SessionContext, sql: str) -> pa.Table:
    """Run ``sql`` and collect the result into a pyarrow Table."""
    return ctx.sql(sql).to_arrow_table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store_path", help="path to the Zarr store root")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--query", default="SELECT * FROM meta", help="SQL; table is `meta`")
    args = parser.parse_args()

    ctx, _table = make_context(args.store_path)
    rows = run_query(ctx, args.query).num_rows  # warm-up
    seconds: list[float] = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        rows = run_query(ctx, args.query).num_rows
        seconds.append(time.perf_counter() - start)

    print(json.dumps({"reader": "zarr-datafusion-search", "rows": rows, "seconds": seconds}))


if __name__ == "__main__":
    main()
