"""Run one fuzz case in this process, under an address-space cap: read it with
zarr-python (the reference), then through every surface of this package, and
print one JSON line judging each surface.

Verdicts: ``equal`` (the data zarr-python reads), ``error`` (a clean Python
exception naming the store), ``unclear-error`` (an exception that does not
name the store), ``wrong`` (data that differ from the reference, or data where
zarr-python itself cannot read the store, or a filter that loses rows).
Crashes, hangs and allocation failures are judged by the parent.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

GIB = 1 << 30


def vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def normalize(values: Any) -> list:
    """Column values as comparable Python objects (None for missing)."""
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, (bytes, bytearray)):
            out.append(bytes(v) or None)
        elif isinstance(v, (float, np.floating)):
            out.append(None if math.isnan(v) else float(v))
        elif isinstance(v, np.datetime64):
            out.append(None if np.isnat(v) else int(v.astype("datetime64[ms]").astype("int64")))
        elif hasattr(v, "timestamp") and hasattr(v, "year"):
            out.append(
                int(round(v.timestamp() * 1000))
                if v.tzinfo
                else int(round(v.replace(tzinfo=__import__("datetime").timezone.utc).timestamp() * 1000))
            )
        elif isinstance(v, np.generic):
            out.append(v.item())
        else:
            out.append(v)
    return out


def reference(store: str, out: dict[str, Any]) -> None:
    """zarr-python's reading of the ``meta`` group (its own arrays' metadata,
    not consolidated metadata) into ``out``: column → values or the error
    reading that array, ``"__group__"`` → the error opening the group, and
    ``"__blocks__"`` → per chunk of 8 rows, the (ids, bboxes) zarr-python can
    read, or ``None``."""
    import zarr
    from zarr.storage import LocalStore

    class RegularFilesOnly(LocalStore):
        """zarr-python's local store, refusing keys that are not regular files
        (a FIFO would block it forever): such a chunk is unreadable."""

        def _check(self, key: str) -> None:
            path = Path(str(self.root)) / key
            if path.exists() and not path.is_file():
                raise OSError(f"{key}: not a regular file")

        async def get(self, key, prototype=None, byte_range=None):  # type: ignore[override]
            self._check(key)
            return await super().get(key, prototype, byte_range)

        async def get_partial_values(self, prototype, key_ranges):  # type: ignore[override]
            key_ranges = list(key_ranges)
            for key, _ in key_ranges:
                self._check(key)
            return await super().get_partial_values(prototype, key_ranges)

    try:
        meta = RegularFilesOnly(str(Path(store) / "meta"), read_only=True)
        g = zarr.open_group(meta, mode="r", use_consolidated=False)
        arrays = list(g.arrays())
    except BaseException as e:  # noqa: BLE001 - any failure means "zarr-python cannot read it"
        out["__group__"] = f"{type(e).__name__}: {e}"[:300]
        return
    by_name = dict(arrays)
    blocks = []
    if "id" in by_name and "bbox" in by_name:
        rows = by_name["id"].shape[0] if by_name["id"].ndim == 1 else 0
        out["__blocks__"] = blocks
        for start in range(0, min(rows, 10_000), 8):
            blocks.append(None)
            try:
                blocks[-1] = (
                    list(by_name["id"][start : start + 8]),
                    list(by_name["bbox"][start : start + 8]),
                )
            except BaseException:  # noqa: BLE001
                pass
    out["__blocks__"] = blocks  # first: the other arrays may block (a FIFO)
    for name, arr in arrays:
        out[name] = "zarr-python did not finish"
        try:
            values = arr[:]
            if values.dtype.kind == "M":
                values = [None if np.isnat(v) else v for v in values]
            values = normalize(values)
            # The missing-value convention: rows the validity array marks false are None.
            pointer = dict(arr.attrs).get("zarr_meta:validity")
            if pointer is not None:
                valid = g[pointer][:]
                if not isinstance(pointer, str) or valid.dtype != bool or valid.shape != (len(values),):
                    raise ValueError(f"unusable validity array {pointer!r}")
                values = [v if ok else None for v, ok in zip(values, valid.tolist())]
            out[name] = values
        except BaseException as e:  # noqa: BLE001
            out[name] = f"{type(e).__name__}: {e}"[:300]


def reference_within(store: str, seconds: float) -> dict[str, Any]:
    """:func:`reference`, given up after ``seconds`` (zarr-python blocks forever on a FIFO)."""
    import threading

    out: dict[str, Any] = {}
    thread = threading.Thread(target=reference, args=(store, out), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        out.setdefault("__group__", None)
        out["__unfinished__"] = True
    return out


def filter_verdict(ref: dict[str, Any], got: set) -> str:
    """A spatial filter may skip unreadable chunks it can prove irrelevant, but
    must return every matching row of the readable ones and nothing else."""
    import shapely

    if ref.get("__group__"):
        return "wrong"
    area = shapely.box(-30, -20, 20, 25)
    expected, allowed = set(), set()
    for block in ref.get("__blocks__", []):
        if block is None:
            continue
        ids, boxes = block
        allowed.update(ids)
        try:
            geoms = [None if not b else shapely.from_wkb(b) for b in boxes]
        except Exception:  # noqa: BLE001 - invalid WKB: reading this block must fail
            continue
        expected.update(i for i, g in zip(ids, geoms) if g is not None and shapely.intersects(g, area))
    return "equal" if expected <= got <= allowed else "wrong"


def ours(table: Any) -> dict[str, list]:
    out = {}
    for name in table.column_names:
        col = table.column(name)
        import pyarrow as pa

        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ms")).cast(pa.int64())
        out[name] = normalize(col.to_pylist())
    return out


def rows(columns: dict[str, list], names: list[str]) -> list[tuple]:
    """Rows as sortable tuples (SQL gives no order)."""
    return sorted(zip(*(columns[n] for n in names)), key=repr) if names else []


def judge(ref: dict[str, Any], got: dict[str, list]) -> str:
    if ref.get("__group__") or ref.get("__unfinished__"):
        return "wrong"  # zarr-python cannot open the group, yet we returned data
    names = sorted(got)
    if any(isinstance(ref.get(n), str) for n in names):
        return "wrong"  # data for an array zarr-python cannot read
    known = [n for n in names if n in ref]
    return "equal" if rows(got, known) == rows(ref, known) else "wrong"


def main() -> None:
    case = Path(sys.argv[1])
    spec = json.loads((case / "case.json").read_text())
    store = str(case / "store.zarr")
    warnings.filterwarnings("ignore")
    import datafusion
    import pyarrow as pa
    import sedonadb
    from sedonadb_zarr_meta import open_meta, register

    sedona = register(sedonadb.connect())
    ctx = register(datafusion.SessionContext())
    cap = vm_size() + 2 * GIB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    ref = reference_within(store, 20.0)
    options = spec["options"]
    options_sql = json.dumps(options).replace("'", "''") if options else None
    call = (
        f"sd_read_zarr_meta('{store}', '{options_sql}')" if options_sql else f"sd_read_zarr_meta('{store}')"
    )
    area = "POLYGON((-30 -20, 20 -20, 20 25, -30 25, -30 -20))"

    def collect_df(df: Any) -> pa.Table:
        return pa.table(df) if hasattr(df, "__arrow_c_stream__") else df.to_arrow_table()

    surfaces = {
        "open_meta": lambda: pa.table(open_meta(store, **options).scan()),
        "sedonadb": lambda: collect_df(sedona.sql(f"SELECT * FROM {call}")),
        "datafusion": lambda: collect_df(ctx.sql(f"SELECT * FROM {call}")),
        "sedonadb_filter": lambda: collect_df(
            sedona.sql(
                f"SELECT id FROM {call} "
                f"WHERE ST_Intersects(bbox, ST_SetSRID(ST_GeomFromText('{area}'), 4326))"
            )
        ),
    }
    verdicts: dict[str, Any] = {}
    for name, run in surfaces.items():
        try:
            table = run()
        except MemoryError as e:
            verdicts[name] = {"verdict": "oom", "message": str(e)[:300]}
            continue
        except BaseException as e:  # noqa: BLE001
            message = str(e)
            if "memory allocation" in message:
                verdict = "oom"
            elif store in message or "invalid option" in message or "option" in message.lower():
                verdict = "error"
            else:
                verdict = "unclear-error"
            verdicts[name] = {"verdict": verdict, "type": type(e).__name__, "message": message[:300]}
            continue
        if name == "sedonadb_filter":
            verdicts[name] = {"verdict": filter_verdict(ref, set(table.column("id").to_pylist()))}
        else:
            verdicts[name] = {"verdict": judge(ref, ours(table)), "rows": table.num_rows}
    shown = {k: v for k, v in ref.items() if isinstance(v, str) or k == "__unfinished__"} or "ok"
    print(
        json.dumps(
            {
                "seed": spec["seed"],
                "kind": spec["kind"],
                "what": spec["what"],
                "reference": shown,
                "surfaces": verdicts,
            }
        ),
        flush=True,
    )
    os._exit(0)  # a reference thread may still be blocked on a FIFO


if __name__ == "__main__":
    main()
