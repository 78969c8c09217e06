"""One read of the network-fault corpus, in this process: ``python -m
tests.fuzz.network_child SPEC_JSON``.

The spec names the store URI, its ``storage_options``, the surface
(``open_meta``, ``sedonadb``, ``datafusion``) and the query (``full``,
``filter`` or ``range``). Prints one JSON line: the digest of the rows read
(order-free), or the error, and the seconds the read took. The parent caps
this process's address space and judges the outcome.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
import time
import warnings
from typing import Any

AREA = "POLYGON((-30 -20, 20 -20, 20 25, -30 25, -30 -20))"
RANGE = (37, 171)


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def digest(table: Any) -> tuple[str, int]:
    """An order-free digest of ``table``'s rows, and their number."""
    columns = [[_plain(v) for v in table.column(name).to_pylist()] for name in sorted(table.column_names)]
    rows = sorted(json.dumps(row, default=str) for row in zip(*columns)) if columns else []
    text = json.dumps([sorted(table.column_names), rows])
    return hashlib.sha256(text.encode()).hexdigest(), table.num_rows


def read(spec: dict[str, Any]) -> Any:
    import pyarrow as pa
    from sedonadb_zarr_meta import open_meta, register

    uri, options, surface, query = spec["uri"], spec["options"], spec["surface"], spec["query"]
    if surface == "open_meta":
        table = open_meta(uri, **options)
        if query == "range":
            return pa.table(table.scan(start=RANGE[0], end=RANGE[1], batch_size=16))
        return pa.table(table.scan())
    call = f"sd_read_zarr_meta('{uri}', '{json.dumps(options)}')"
    if surface == "sedonadb":
        import sedonadb

        con = register(sedonadb.connect())
        literal = f"ST_SetSRID(ST_GeomFromText('{AREA}'), 4326)"
        run = lambda sql: pa.table(con.sql(sql))  # noqa: E731
    else:
        import datafusion

        ctx = register(datafusion.SessionContext())
        literal = f"sd_geomfromtext('{AREA}')"
        run = lambda sql: ctx.sql(sql).to_arrow_table()  # noqa: E731
    if query == "filter":
        return run(f"SELECT id FROM {call} WHERE ST_Intersects(bbox, {literal})")
    return run(f"SELECT * FROM {call}")


def main() -> None:
    warnings.filterwarnings("ignore")
    spec = json.loads(sys.argv[1])
    started = time.monotonic()
    try:
        table = read(spec)
        result: dict[str, Any] = dict(zip(("digest", "rows"), digest(table)))
    except MemoryError as e:
        result = {"error": f"MemoryError: {e}"[:600], "type": "MemoryError"}
    except Exception as e:  # noqa: BLE001 - every error is judged by the parent
        result = {"error": str(e)[:600], "type": type(e).__name__}
    result["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
