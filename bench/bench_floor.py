"""Section 6: D1's full scan against the decompression floor and the least a
guarantee-keeping reader pays (``examples/decode_floor.rs``).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from bench_common import (
    HERE,
    interleaved,
    median,
    target,
)


def floor_section(py: str, d1: str, rep: list[str]) -> None:
    print("\n== 6. D1 full scan against the decompression floor ==")
    script = HERE / "measure.py"
    surfaces = {
        "ours (SedonaDB SQL)": "sedonadb-sql",
        "ours (datafusion-python SQL)": "datafusion-sql",
        "ours (open_meta().scan())": "core",
    }
    jobs = {"floor": (py, script, "floor", d1, *rep)}
    jobs.update({name: (py, script, what, d1, *rep) for name, what in surfaces.items()})
    limits = decode_floor()
    if limits:
        # The same files in Rust: zstd alone, then zstd plus the split of
        # variable-length chunks into the values and offsets of Arrow arrays.
        jobs["zstd (Rust)"] = decode_floor_job(limits, d1, "zstd", rep)
        jobs["zstd + Arrow layout (Rust)"] = decode_floor_job(limits, d1, "arrow", rep)
        jobs["kept (Rust)"] = decode_floor_job(limits, d1, "kept", rep)
    res = interleaved(jobs)
    fl = res.pop("floor")
    rust = {name: res.pop(name) for name in list(res) if name.endswith("(Rust)")}
    print(
        f"  floor: {fl['chunk_files']} chunk files, {fl['compressed_bytes'] / 1e6:.1f} MB read and "
        f"decompressed to {fl['decompressed_bytes'] / 1e6:.1f} MB by {fl['decoder']} on "
        f"{fl['threads']} threads, nothing else"
    )
    floor = median(fl)
    print(f"  {'decompression alone (the floor)':32s} median {floor:7.3f} s")
    for name, m in res.items():
        if m["rows"] != fl["rows"]:
            raise SystemExit(f"{name}: {m['rows']} rows, the store has {fl['rows']}")
        print(f"  {name:32s} median {median(m):7.3f} s  rows {m['rows']:,}")
    for name, m in res.items():
        ratio = median(m) / floor
        print(f"  ratio {name + ' / floor:':45s} {ratio:5.2f}x  {target(ratio, '<=', 1.25)}")
    if not rust:
        print("  (the Rust limits were skipped: cargo could not build examples/decode_floor)")
        return
    zstd, layout, kept = rust["zstd (Rust)"], rust["zstd + Arrow layout (Rust)"], rust["kept (Rust)"]
    print(
        f"  the least any reader producing Arrow pays, the same files in Rust with buffers reused: "
        f"zstd alone {median(zstd):.3f} s ({median(zstd) / floor:.2f}x the floor), zstd plus the copy "
        f"of variable-length elements into Arrow's layout {median(layout):.3f} s "
        f"({median(layout) / floor:.2f}x the floor)"
    )
    limit = median(kept)
    print(
        f"  the least a reader pays that keeps its guarantees and hands its arrays to a host (the same, "
        f"into memory kept until the scan ends, WKB validated, text checked as UTF-8; still no Arrow "
        f"arrays and no host): {limit:.3f} s = {limit / floor:.2f}x the floor"
    )
    for name, m in res.items():
        print(f"  ratio {name + ' / that limit:':45s} {median(m) / limit:5.2f}x")


@functools.cache
def decode_floor() -> str | None:
    """Build ``examples/decode_floor`` (the Rust limits of a scan) once; its path, or None."""
    root = HERE.parent
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    build = ["cargo", "build", "--release", "--quiet", "--example", "decode_floor"]
    try:
        subprocess.run([*build, "-p", "sedonadb-zarr-meta-core"], cwd=root, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    binary = target_dir / "release" / "examples" / "decode_floor"
    return str(binary) if binary.exists() else None


def decode_floor_job(binary: str, store: str, mode: str, rep: list[str]) -> tuple:
    """A job for ``interleaved``: ``decode_floor`` in ``mode`` on ``store`` (a ``file://``
    URI), as many repetitions as the readers measured beside it."""
    return (binary, Path(store.removeprefix("file://")), mode, rep[rep.index("--repeat") + 1])
