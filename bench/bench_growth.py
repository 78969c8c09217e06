"""Section 8: the selective query as a catalogue grows, over time and in density."""

from __future__ import annotations

import os
from pathlib import Path

from bench_common import (
    D2_CHUNK,
    HERE,
    WHERE,
    interleaved,
    median,
    target,
)
from bench_data import make_d2


def growth_section(py: str, data: Path, n2: int, rep: list[str], tenfold: bool) -> None:
    """The selective query as the catalogue grows tenfold, two ways.

    Over time, as catalogues grow: monthly batches over 1 year, then over 10
    years (the same items a month), so the query (one area, one month)
    selects the same items at every size and its cost should stay flat in
    the rows it skips (the target). In density: D2 over 2024 at 1M and 10M
    rows, where the same area and month hold ten times the items, so any
    reader decodes and returns ten times the rows (shown for reference)."""
    script = HERE / "measure.py"
    sql = f"SELECT * FROM sd_read_zarr_meta('{{store}}') {WHERE}"

    def run(stores: dict) -> dict:
        jobs = {n: (py, script, "sedonadb-sql", uri, *rep, "--sql", sql) for n, uri in stores.items()}
        res = interleaved(jobs)
        for n, m in res.items():
            print(
                f"  {n:>12,} rows ({-(-n // D2_CHUNK):>5,} chunks)  median {median(m):7.3f} s  "
                f"rows returned {m['rows']:,}"
            )
        return res

    def ratios(res: dict, sizes: list[int], bound: float | None) -> None:
        for small, large in zip(sizes, sizes[1:]):
            r = median(res[large]) / median(res[small])
            print(f"  ratio {large:,} / {small:,} rows: {r:5.2f}x  {target(r, '<', bound) if bound else ''}")

    sizes = [n2 // 10, n2] + ([n2 * 10] if tenfold else [])
    years = {n: 10**i for i, n in enumerate(sizes)}
    print(
        f"\n== 8. growth: the selective query at {', '.join(f'{n:,}' for n in sizes)} rows ==\n"
        f"  a) grown over time: {', '.join(f'{y} year(s)' for y in years.values())} of monthly batches "
        f"(sorted in space within each month), {sizes[0] // 12:,} items a month at every size"
    )
    timeline = {n: make_d2(data / f"t{y}y-{n}-c{D2_CHUNK}.zarr", n, years=y) for n, y in years.items()}
    res = run(timeline)
    ratios(res, sizes, 2)
    print("  b) grown in density: D2 over 2024 (the same area and month hold 10x the items at 10x the rows)")
    res = run({n: make_d2(data / f"d2-{n}-c{D2_CHUNK}.zarr", n) for n in sizes[:2]})
    ratios(res, sizes[:2], None)
    if not tenfold:
        big = n2 * 10
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        print(
            f"  {big:,} rows: skipped (--growth-10x includes it): the generator sorts every row in "
            f"memory, about 190 bytes a row ({big * 190 / 2**30:.0f} GiB of this machine's {mem:.0f} GiB), "
            f"and wrote about 60k rows a second here (about {big / 60_000 / 60:.0f} min)"
        )
