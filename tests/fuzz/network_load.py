"""Concurrent queries under network faults, in this process: ``python -m
tests.fuzz.network_load SPEC_JSON``.

Opens one context of the host the spec names (``sedonadb`` or
``datafusion``), reads each query once without faults (the expected answers)
and warms up with a round of ``threads`` concurrent queries, then prints
``ready`` with its resident memory. The parent then turns faults on; this
process runs ``threads`` threads issuing the queries in turn for ``seconds``,
and prints one JSON line: per outcome (``equal``, ``error``,
``unclear-error``, ``wrong``) the number of queries, and the resident memory
before and after.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import sys
import threading
import time
import warnings
from typing import Any

from tests.fuzz.network_child import AREA, digest


def rss() -> int:
    """Resident bytes, after giving freed memory back to the kernel."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def queries(host: str, uris: list[str], options: dict[str, Any]) -> list[str]:
    literal = (
        f"ST_SetSRID(ST_GeomFromText('{AREA}'), 4326)" if host == "sedonadb" else f"sd_geomfromtext('{AREA}')"
    )
    out = []
    for uri in uris:
        call = f"sd_read_zarr_meta('{uri}', '{json.dumps(options)}')"
        out += [
            f"SELECT * FROM {call}",
            f"SELECT id FROM {call} WHERE ST_Intersects(bbox, {literal})",
            f"SELECT collection, count(*) AS n FROM {call} GROUP BY collection",
        ]
    return out


def main() -> None:
    warnings.filterwarnings("ignore")
    spec = json.loads(sys.argv[1])
    import pyarrow as pa
    from sedonadb_zarr_meta import register

    if spec["host"] == "sedonadb":
        import sedonadb

        con = register(sedonadb.connect())
        run = lambda sql: pa.table(con.sql(sql))  # noqa: E731
    else:
        import datafusion

        ctx = register(datafusion.SessionContext())
        run = lambda sql: ctx.sql(sql).to_arrow_table()  # noqa: E731
    sqls = queries(spec["host"], spec["uris"], spec["options"])
    expected = [digest(run(sql))[0] for sql in sqls]
    threads, stores = spec["threads"], tuple(spec["uris"])
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def worker(first: int, deadline: float) -> None:
        i = first
        while time.monotonic() < deadline:
            k = i % len(sqls)
            try:
                outcome = "equal" if digest(run(sqls[k]))[0] == expected[k] else "wrong"
            except Exception as e:  # noqa: BLE001 - judged here
                outcome = "error" if any(s in str(e) for s in stores) else "unclear-error"
                if outcome == "unclear-error":
                    print(json.dumps({"unclear": str(e)[:300]}), file=sys.stderr, flush=True)
            with lock:
                counts[outcome] += 1
            i += 1

    def round_of(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        pool = [threading.Thread(target=worker, args=(t, deadline)) for t in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    round_of(spec.get("warmup_s", 10))
    counts.clear()
    before = rss()
    print("ready", before, flush=True)
    sys.stdin.readline()  # faults are on
    round_of(spec["seconds"])
    after = rss()
    print(json.dumps({"counts": dict(counts), "rss_before": before, "rss_after": after}), flush=True)


if __name__ == "__main__":
    main()
