"""Seeded generation of fuzz cases: a valid store written by zarr-python or
``write_meta`` (Zarr v2 and v3; zstd, blosc, gzip or no compression; sharded;
with statistics), then one mutation of its metadata, chunk bytes, shard index,
geometry values, statistics, file-system entries or read options.

Each case is a directory holding the store and ``case.json``: what was done,
the options to read with, and (for mutations that must not change the data,
such as malformed statistics) ``expect_original``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import warnings
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
from sedonadb_zarr_meta import _lib

ROWS = 40
CHUNK = 8
AREA = (-30.0, -20.0, 20.0, 25.0)
JUNK = [
    None,
    [],
    {},
    -1,
    0,
    1,
    2**31,
    2**63,
    -(2**63),
    1e308,
    float("nan"),
    "x",
    "",
    [0],
    [2**40],
    [-1],
    True,
    {"name": "zstd"},
    {"name": "unknown_codec"},
    "float128",
    "<U99999999",
    [[1]],
    "|O",
]
KINDS = [
    "meta_json",
    "group_json",
    "chunk_bytes",
    "shard_index",
    "geometry",
    "stats",
    "fs",
    "options",
    "vlen",
]


def _items(rng: np.random.Generator) -> dict[str, np.ndarray]:
    import shapely

    x, y = rng.uniform(-170, 160, ROWS), rng.uniform(-80, 70, ROWS)
    w, h = rng.uniform(0.5, 10, ROWS), rng.uniform(0.5, 10, ROWS)
    return {
        "id": np.array([f"item-{i:05d}" for i in range(ROWS)], dtype=object),
        "collection": np.array(rng.choice(["s2", "l8", "naip"], ROWS), dtype=object),
        "date": np.datetime64("2024-01-01", "ms") + rng.integers(0, 10**10, ROWS).astype("timedelta64[ms]"),
        "cloud_cover": rng.uniform(0, 100, ROWS).astype("float32"),
        "n": np.arange(ROWS, dtype="int64"),
        "bbox": np.array(shapely.to_wkb(shapely.box(x, y, x + w, y + h)), dtype=object),
    }


def _write_base(path: Path, rng: random.Random, nrng: np.random.Generator) -> dict[str, Any]:
    import zarr

    warnings.filterwarnings("ignore")
    data = _items(nrng)
    layout = rng.choice(["v3", "v3", "v2", "sharded", "write_meta"])
    codec = rng.choice(["zstd", "blosc", "gzip", "none"])
    if layout == "write_meta":
        import pyarrow as pa
        from sedonadb_zarr_meta import write_meta

        table = pa.table(
            {
                **{
                    k: pa.array(list(v))
                    for k, v in data.items()
                    if k not in ("bbox", "date", "cloud_cover", "n")
                },
                "date": pa.array(data["date"]),
                "cloud_cover": pa.array(data["cloud_cover"]),
                # Missing values: validity arrays (_validity/n, _validity/collection) are fuzzed too.
                "n": pa.array(data["n"], mask=nrng.random(ROWS) < 0.2),
                "collection": pa.array(list(data["collection"]), mask=nrng.random(ROWS) < 0.1),
                "bbox": pa.array(list(data["bbox"]), pa.binary()),
            }
        )
        write_meta(table, path, chunk_size=CHUNK)
        return {"layout": layout, "codec": "zstd"}
    fmt = 2 if layout == "v2" else 3
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    g = root.create_group("meta")
    for name, values in data.items():
        kwargs: dict[str, Any] = {"chunks": (CHUNK,)}
        if codec == "none":
            kwargs["compressors"] = None
        elif codec == "blosc":
            kwargs["compressors"] = zarr.codecs.BloscCodec() if fmt == 3 else __import__("numcodecs").Blosc()
        elif codec == "gzip":
            kwargs["compressors"] = zarr.codecs.GzipCodec() if fmt == 3 else __import__("numcodecs").GZip()
        if layout == "sharded":
            kwargs["shards"] = (2 * CHUNK,)
        if name == "bbox":
            dtype: Any = zarr.dtype.VariableLengthBytes()
        elif values.dtype == object:
            dtype = str
        else:
            dtype = values.dtype
        a = g.create_array(name, shape=(ROWS,), dtype=dtype, **kwargs)
        a[:] = values
    return {"layout": layout, "codec": codec}


def _json_files(path: Path, group_level: bool) -> list[Path]:
    out = []
    for p in sorted(path.rglob("*")):
        if p.name in ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata") and p.is_file():
            is_group = p.parent.name == "meta" or p.parent == path
            if is_group == group_level:
                out.append(p)
    return out


def _mutate_json(doc: Any, rng: random.Random) -> Any:
    if not isinstance(doc, dict) or rng.random() < 0.1:
        return rng.choice(JUNK)
    doc = dict(doc)
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 4:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append((node, k))
                walk(v, depth + 1)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                paths.append((node, i))
                walk(v, depth + 1)

    walk(doc, 0)
    for _ in range(rng.randint(1, 3)):
        if not paths:
            break
        parent, key = rng.choice(paths)
        if isinstance(parent, dict) and rng.random() < 0.25:
            parent.pop(key, None)
        elif isinstance(parent, dict) or (isinstance(parent, list) and key < len(parent)):
            parent[key] = rng.choice(JUNK)
    if rng.random() < 0.15:
        doc["must_understand"] = True
        doc[rng.choice(["extension_x", "storage_transformers"])] = [{"name": "x", "must_understand": True}]
    return doc


def _chunk_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name[0].isdigit())


def _bad_wkb(rng: random.Random) -> bytes:
    choice = rng.randrange(8)
    if choice == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
    if choice == 1:  # unknown geometry type
        return struct.pack("<BI", 1, rng.choice([0, 8, 99, 1000, 3999, 2**31])) + b"\x00" * 16
    if choice == 2:  # multipolygon holding a point
        point = struct.pack("<BIdd", 1, 1, 1.0, 2.0)
        return struct.pack("<BII", 1, 6, 1) + point
    if choice == 3:  # ring with two points
        return struct.pack("<BIII", 1, 3, 1, 2) + struct.pack("<dddd", 0, 0, 1, 1)
    if choice == 4:  # huge counts
        return struct.pack("<BII", 1, 2, 2**31 - 1) + b"\x00" * 32
    if choice == 5:  # truncated point
        return struct.pack("<BI", 1, 1) + b"\x00" * 7
    if choice == 6:  # bad byte order
        return struct.pack("<BI", 7, 1) + b"\x00" * 16
    return b"\x01\x03\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00" + b"\x00" * 64  # open ring


def make_case(seed: int, root: Path) -> Path:
    """Write case ``seed`` under ``root``; returns its directory."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    case = root / f"case-{seed:05d}"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir(parents=True)
    store = case / "store.zarr"
    info = _write_base(store, rng, nrng)
    kind = KINDS[seed % len(KINDS)]
    options: dict[str, Any] = {}
    expect_original = False
    what = ""
    if kind == "shard_index" and info["layout"] != "sharded":
        kind = "chunk_bytes"
    if kind == "stats" and info["layout"] != "write_meta":
        kind = "meta_json"
    if kind in ("meta_json", "group_json"):
        files = _json_files(store, kind == "group_json")
        target = rng.choice(files)
        text = target.read_text()
        if rng.random() < 0.1:
            target.write_text(text[: rng.randrange(len(text))])
            what = f"truncated {target.relative_to(store)}"
        else:
            target.write_text(json.dumps(_mutate_json(json.loads(text), rng)))
            what = f"mutated {target.relative_to(store)}"
    elif kind in ("chunk_bytes", "vlen"):
        files = _chunk_files(store)
        if kind == "vlen":
            files = [
                f for f in files if f"{os.sep}bbox{os.sep}" in str(f) or f"{os.sep}id{os.sep}" in str(f)
            ] or files
        target = rng.choice(files)
        raw = bytearray(target.read_bytes())
        op = rng.randrange(6)
        if op == 0 and raw:
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        elif op == 1:
            raw = raw[: rng.randrange(len(raw) + 1)]
        elif op == 2:
            raw += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
        elif op == 3:
            raw = bytearray(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))))
        elif op == 4 and len(raw) >= 16:
            raw[:16] = b"\xff" * 16
        else:
            raw[: min(len(raw), 8)] = b"\x00" * min(len(raw), 8)
        target.write_bytes(bytes(raw))
        what = f"chunk bytes op {op} on {target.relative_to(store)}"
    elif kind == "shard_index":
        target = rng.choice(_chunk_files(store))
        raw = bytearray(target.read_bytes())
        for _ in range(rng.randint(1, 4)):
            i = len(raw) - 1 - rng.randrange(min(len(raw), 40))
            raw[i] = rng.getrandbits(8)
        target.write_bytes(bytes(raw))
        what = f"shard index bytes of {target.relative_to(store)}"
    elif kind == "geometry":
        import zarr

        g = zarr.open_group(str(store), mode="a")["meta"]
        values = np.array(g["bbox"][:], dtype=object)
        for _ in range(rng.randint(1, 3)):
            values[rng.randrange(ROWS)] = _bad_wkb(rng)
        g["bbox"][:] = values
        what = "invalid WKB values in bbox"
    elif kind == "stats":
        meta = store / "meta" / "zarr.json"
        doc = json.loads(meta.read_text())
        stats = doc["attributes"]["zarr_meta:stats"]
        col = rng.choice(sorted(stats["columns"]))
        entry = stats["columns"][col]
        key = rng.choice(sorted(entry))
        entry[key] = rng.choice(
            [
                None,
                5,
                "x",
                [],
                [None],
                [[1, 2]],
                [float("nan")] * len(entry[key]),
                entry[key][:-1],
                [[0, 0, 0.001, 0.001, 9]] * len(entry[key]),
            ]
        )
        if rng.random() < 0.3:
            stats["block_rows"] = rng.choice([0, -1, "8", None, 10**12])
        meta.write_text(json.dumps(doc))
        expect_original = True
        what = f"malformed statistics of {col}.{key}"
    elif kind == "fs":
        op = rng.randrange(4)
        target = rng.choice(_chunk_files(store))
        if op == 0:
            target.unlink()
            os.mkfifo(target)
        elif op == 1:
            target.unlink()
            target.mkdir()
        elif op == 2:
            target.unlink()
            target.symlink_to(target.name)
        else:
            (store / "meta" / os.fsdecode(b"bad\xffname")).mkdir()
        what = f"file-system op {op} on {target.relative_to(store)}"
    elif kind == "options":
        keys = [*_lib.OPTION_KEYS, "bogus"]
        for key in rng.sample(keys, rng.randint(1, 3)):
            options[key] = rng.choice(JUNK + [["id"], ["id", "id"], ["nope"], ["bbox"], "meta", 1, 7, False])
        what = f"options {options!r}"[:200]
    (case / "case.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "kind": kind,
                "what": what,
                "options": options,
                "expect_original": expect_original,
                **info,
            },
            default=str,
        )
    )
    # The unmutated data, for mutations that must not change it.
    np.save(case / "n.npy", np.arange(ROWS))
    return case


# --------------------------------------------------------------------------------------------
# Enumerated cases: every chunk swap between arrays of different dtypes, and compression bombs
# --------------------------------------------------------------------------------------------

#: The dtypes the swap corpus writes, one array each (``id`` and ``bbox`` keep the spatial filter).
SWAP_DTYPES: dict[str, Any] = {
    "id": "str",
    "bbox": "bytes",
    "u8": "uint8",
    "i32": "int32",
    "n": "int64",
    "f32": "float32",
    "f64": "float64",
    "flag": "bool",
    "date": "datetime64[ms]",
}
SWAP_LAYOUTS = ("plain", "sharded")
#: Which chunk (or shard) file is swapped: the first (whole) or the last (partial, rows 32..40).
SWAP_CHUNKS = ("0", "last")


def swap_cases() -> list[tuple[str, str, str, str]]:
    """(source array, target array, layout, chunk) for every ordered pair of dtypes."""
    names = list(SWAP_DTYPES)
    return [
        (src, dst, layout, chunk)
        for layout in SWAP_LAYOUTS
        for chunk in SWAP_CHUNKS
        for src in names
        for dst in names
        if src != dst
    ]


def _swap_values(name: str, rng: np.random.Generator) -> np.ndarray:
    import shapely

    kind = SWAP_DTYPES[name]
    if kind == "str":
        return np.array([f"item-{i:05d}" for i in range(ROWS)], dtype=object)
    if kind == "bytes":
        x, y = rng.uniform(-170, 160, ROWS), rng.uniform(-80, 70, ROWS)
        return np.array(shapely.to_wkb(shapely.box(x, y, x + 5, y + 5)), dtype=object)
    if kind == "bool":
        return rng.random(ROWS) < 0.5
    if kind.startswith("datetime64"):
        return np.datetime64("2024-01-01", "ms") + rng.integers(0, 10**10, ROWS).astype("timedelta64[ms]")
    return (rng.uniform(0, 200, ROWS)).astype(kind)


def make_swap_case(index: int, root: Path) -> Path:
    """Swap case ``index`` of :func:`swap_cases`: a store written by zarr-python whose
    target array's chunk (or shard) file is the source array's."""
    import zarr

    warnings.filterwarnings("ignore")
    src, dst, layout, chunk = swap_cases()[index]
    case = root / f"swap-{index:04d}"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir(parents=True)
    store = case / "store.zarr"
    rng = np.random.default_rng(index)
    g = zarr.open_group(str(store), mode="w").create_group("meta")
    for name, kind in SWAP_DTYPES.items():
        dtype: Any = {"str": str, "bytes": zarr.dtype.VariableLengthBytes()}.get(kind, kind)
        kwargs: dict[str, Any] = {"chunks": (CHUNK,)}
        if layout == "sharded":
            kwargs["shards"] = (2 * CHUNK,)
        g.create_array(name, shape=(ROWS,), dtype=dtype, **kwargs)[:] = _swap_values(name, rng)
    per_file = CHUNK * (2 if layout == "sharded" else 1)
    key = "0" if chunk == "0" else str((ROWS - 1) // per_file)
    shutil.copyfile(store / "meta" / src / "c" / key, store / "meta" / dst / "c" / key)
    what = f"{layout} {'shard' if layout == 'sharded' else 'chunk'} c/{key} of {src} copied into {dst}"
    spec = {"seed": index, "kind": "swap", "what": what, "options": {}, "expect_original": False}
    (case / "case.json").write_text(json.dumps({**spec, "layout": layout, "codec": "zstd"}))
    return case


def _zstd_bomb(raw_head: bytes, size: int) -> bytes:
    """A zstd frame declaring ``size`` decoded bytes: ``raw_head`` then zeros."""
    import io

    import zstandard

    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(out, size=size, closefd=False) as writer:
        writer.write(raw_head)
        zeros = bytes(1 << 20)
        left = size - len(raw_head)
        while left > 0:
            writer.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))
    return out.getvalue()


def _vlen_head(count: int) -> bytes:
    return struct.pack("<I", count) + b"".join(struct.pack("<I", 4) + b"item" for _ in range(count))


#: (name, array, layout, elements per chunk, decoded bytes the bomb declares)
BOMBS = [
    # A text chunk of 6 elements whose frame inflates to 1 GiB: beyond any plausible element size.
    ("vlen-6-1GiB", "id", "plain", 6, 1 << 30),
    # A text chunk of 200 elements declaring 3 GiB: within no bound (a chunk decodes to at most 2 GiB).
    ("vlen-200-3GiB", "id", "plain", 200, 3 << 30),
    # 160 elements may hold 1.9 GiB by the per-element bound, more than the child may allocate.
    ("vlen-160-1.9GiB", "id", "plain", 160, (19 << 30) // 10),
    # Fixed-size elements: 8 int64 values are 64 bytes, the frame says 512 MiB.
    ("int64-512MiB", "n", "plain", 8, 512 << 20),
    # The same bombs inside a shard's inner chunk.
    ("sharded-vlen-1GiB", "id", "sharded", 6, 1 << 30),
    ("sharded-int64-512MiB", "n", "sharded", 8, 512 << 20),
]


def make_bomb_case(index: int, root: Path) -> Path:
    """Compression bomb ``index`` of :data:`BOMBS` in a store written by zarr-python."""
    import zarr

    warnings.filterwarnings("ignore")
    name, target, layout, per_chunk, size = BOMBS[index]
    case = root / f"bomb-{index:02d}"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir(parents=True)
    store = case / "store.zarr"
    rows = 2 * per_chunk
    g = zarr.open_group(str(store), mode="w").create_group("meta")
    kwargs: dict[str, Any] = {"chunks": (per_chunk,)}
    if layout == "sharded":
        kwargs["shards"] = (2 * per_chunk,)
        rows = 4 * per_chunk
    g.create_array("id", shape=(rows,), dtype=str, **kwargs)[:] = np.array(
        [f"item-{i:05d}" for i in range(rows)], dtype=object
    )
    g.create_array("n", shape=(rows,), dtype="int64", **kwargs)[:] = np.arange(rows)
    g.create_array("bbox", shape=(rows,), dtype=zarr.dtype.VariableLengthBytes(), **kwargs)[:] = _swap_values(
        "bbox", np.random.default_rng(index)
    )[np.arange(rows) % ROWS]
    head = _vlen_head(per_chunk) if target == "id" else b""
    frame = _zstd_bomb(head, size)
    chunk_file = store / "meta" / target / "c" / "1"
    if layout == "plain":
        chunk_file.write_bytes(frame)
    else:  # the shard's second inner chunk becomes the bomb; the index points at it
        shard = bytearray(chunk_file.read_bytes())
        inner = len(shard) - 2 * 16 - 4
        entries = list(struct.unpack("<4Q", shard[inner : inner + 32]))
        body = bytes(shard[:inner]) + frame
        entries[2], entries[3] = inner, len(frame)
        encoded = numcodecs.CRC32C().encode(np.frombuffer(struct.pack("<4Q", *entries), "u1"))
        chunk_file.write_bytes(body + bytes(encoded))
    (case / "case.json").write_text(
        json.dumps(
            {"seed": index, "kind": "bomb", "what": name, "options": {}, "expect_original": False}
            | {"layout": layout, "codec": "zstd"}
        )
    )
    return case
