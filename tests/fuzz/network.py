"""The network-fault corpus: ``python -m tests.fuzz.network [--cases N] [--seed S]``.

The network is read like a file format: the loopback S3 server (moto) sits
behind the fault-injecting proxy (``tests/s3proxy.py``), and each seeded case
damages the answers to some requests — a truncated body, a ``Content-Length``
that lies, flipped bits, a slow drip, an HTML page with status 200, a reset
mid-body, a byte range other than the one asked for, an ``ETag`` that changes
— while one surface (``open_meta``, SedonaDB SQL, datafusion-python SQL) reads
one of three stores (written by ``write_meta``; by zarr-python without
consolidated metadata, so the arrays are listed; sharded, read by byte range).
Each read runs in its own subprocess under an address-space cap and a timeout.

Verdicts: ``equal`` (the rows of the same query on the store's local twin),
``error`` (an exception naming the store and the damaged object or its
array), ``unclear-error``, ``wrong`` (rows that differ: the worst outcome),
``slow`` (longer than the configured timeouts allow), ``hang``, ``crash``.
Exits non-zero on anything but ``equal`` and ``error``.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.s3proxy import BODY_FAULTS, S3Server

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "netfuzz"
STORES = ("meta", "plain", "sharded")
SURFACES = ("open_meta", "sedonadb", "datafusion")
QUERIES = {"open_meta": ("full", "range"), "sedonadb": ("full", "filter"), "datafusion": ("full", "filter")}
BAD = {"wrong", "unclear-error", "slow", "hang", "crash"}
#: The client's limits in every case: a request gives up after TIMEOUT_S, a read
#: retries within RETRY_TIMEOUT_S. A damaged read is repeated within the same
#: budget, so a read may take a budget for object_store's retries of one
#: request and a budget for the repeats: SLOW_S allows that and a process start.
TIMEOUT_S = 2
RETRY_TIMEOUT_S = 6
SLOW_S = 2 * RETRY_TIMEOUT_S + TIMEOUT_S + 15
CHILD_TIMEOUT_S = 120
ADDRESS_SPACE = 6 << 30


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def write_stores(server: S3Server, base: Path) -> dict[str, tuple[str, str]]:
    """The three stores, on local disk and in the bucket: name -> (local path, s3 URI)."""
    import zarr
    from sedonadb_zarr_meta import write_meta

    from tests.conftest import items, items_table, write_group

    server.create_bucket(BUCKET)
    direct = {
        "aws_endpoint": server.moto_url,
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    table = items_table(400, seed=11)
    write_meta(table, base / "meta.zarr", chunk_size=50, sort=True)
    write_meta(table, f"s3://{BUCKET}/meta.zarr", chunk_size=50, sort=True, storage_options=direct)
    data = items(300, seed=12)
    for name, kwargs in (("plain", {"chunks": 64}), ("sharded", {"chunks": 32, "shards": (128,)})):
        write_group(base / f"{name}.zarr", data, **kwargs)
        s3_store = zarr.storage.ObjectStore(server.obstore_store(BUCKET, f"{name}.zarr"))
        write_group(s3_store, data, **kwargs)
    return {name: (str(base / f"{name}.zarr"), f"s3://{BUCKET}/{name}.zarr") for name in STORES}


def read_options(server: S3Server) -> dict[str, Any]:
    """The read options of every case: the proxy, and short timeouts."""
    return {
        "storage_options": {
            "aws_endpoint": server.url,
            "aws_allow_http": "true",
            "aws_region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "timeout": f"{TIMEOUT_S}s",
            "connect_timeout": "1s",
            "max_retries": "3",
            "retry_timeout": str(RETRY_TIMEOUT_S),
        }
    }


def read(uri: str, options: dict[str, Any], surface: str, query: str) -> dict[str, Any]:
    """One read in a capped subprocess: its JSON result, or ``hang``/``crash``."""
    spec = {"uri": uri, "options": options, "surface": surface, "query": query}
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.network_child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            cwd=ROOT,
            preexec_fn=_cap,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": "hang", "seconds": time.monotonic() - started}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"outcome": "crash", "returncode": proc.returncode, "stderr": proc.stderr.strip()[-600:]}
    return json.loads(lines[-1])


class Expected(dict):
    """The digest of a (store, surface, query) on the store's local twin, read when first asked for."""

    def __init__(self, stores: dict[str, tuple[str, str]]) -> None:
        super().__init__()
        self.stores = stores

    def __missing__(self, key: tuple[str, str, str]) -> str:
        store, surface, query = key
        result = read(self.stores[store][0], {}, surface, query)
        assert "digest" in result, (key, result)
        self[key] = result["digest"]
        return result["digest"]


def draw_case(seed: int) -> dict[str, Any]:
    """Case ``seed``: which fault, how often, on which requests, through which surface."""
    rng = random.Random(seed)
    surface = rng.choice(SURFACES)
    case = {
        "seed": seed,
        "fault": rng.choice(BODY_FAULTS),
        "store": rng.choice(STORES),
        "surface": surface,
        "query": rng.choice(QUERIES[surface]),
        # A fault on a few requests (retries should recover), on every matching one (a clean
        # error is due), or on 5% of all requests.
        "count": rng.choice([1, 1, 2, 3, -1]),
        "match": rng.choice(["", "", "/bbox/", "/id/", "zarr.json"]),
    }
    if rng.random() < 0.2:
        case["count"], case["probability"] = 0, 0.05
    return case


def judge(
    case: dict[str, Any], result: dict[str, Any], expected: str, stores: dict, faulted: list[str]
) -> str:
    if "outcome" in result:
        return result["outcome"]
    if result["seconds"] > SLOW_S:
        return "slow"
    if "digest" in result:
        return "equal" if result["digest"] == expected else "wrong"
    message = result["error"]
    uri = stores[case["store"]][1]
    prefix = f"/{BUCKET}/{case['store']}.zarr/"
    keys = {p.split(" ", 1)[-1].split("?")[0].removeprefix(prefix) for p in faulted}
    arrays = {k.split("/")[1] for k in keys if k.startswith("meta/") and k.count("/") >= 2}
    names_object = any(k and k in message for k in keys) or any(f"array '{a}'" in message for a in arrays)
    return "error" if uri in message and names_object else "unclear-error"


def run(cases: int, seed: int, keep: Path | None = None) -> tuple[dict[str, dict[str, int]], list[dict]]:
    """Run ``cases`` seeded cases; returns the verdict counts per fault and per surface, and the bad ones."""
    base = keep or Path(tempfile.mkdtemp(prefix="szm-netfuzz-"))
    server = S3Server()
    try:
        stores = write_stores(server, base)
        expected = Expected(stores)
        options = read_options(server)
        for store, (_, uri) in stores.items():  # the stores answer right without faults
            answer = read(uri, options, "open_meta", "full")
            assert answer.get("digest") == expected[(store, "open_meta", "full")], (store, answer)
        counts: dict[str, dict[str, int]] = collections.defaultdict(collections.Counter)
        bad = []
        for i in range(cases):
            case = draw_case(seed + i)
            server.control.clear()
            server.control.configure(
                fault=case["fault"],
                fault_count=case["count"],
                fault_probability=case.get("probability", 0.0),
                seed=case["seed"],
                fault_match=case["match"],
                drip_bytes=64,
                drip_interval_s=0.25,
            )
            result = read(stores[case["store"]][1], options, case["surface"], case["query"])
            stats = server.control.stats()
            faulted = stats["faulted"]
            verdict = judge(
                case, result, expected[(case["store"], case["surface"], case["query"])], stores, faulted
            )
            if not stats["faults"]:
                verdict = f"{verdict} (no fault)"
            counts[case["fault"]][verdict] += 1
            counts[case["surface"]][verdict] += 1
            if verdict.split(" ")[0] in BAD:
                bad.append({**case, "verdict": verdict, "result": result, "faulted": faulted[:5]})
        return {k: dict(v) for k, v in counts.items()}, bad
    finally:
        server.control.clear()
        server.stop()


def load(host: str, seconds: float, threads: int = 16, probability: float = 0.05) -> dict[str, Any]:
    """``threads`` concurrent queries on one ``host`` context for ``seconds``, with a fault
    drawn from every kind on ``probability`` of the requests: the counts of outcomes and
    the query process's resident memory before and after."""
    base = Path(tempfile.mkdtemp(prefix="szm-netload-"))
    server = S3Server()
    try:
        stores = write_stores(server, base)
        spec = {
            "host": host,
            "uris": [stores["meta"][1], stores["plain"][1]],
            "options": read_options(server),
            "threads": threads,
            "seconds": seconds,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.network_load", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            preexec_fn=_cap,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            ready = proc.stdout.readline().split()
            assert ready[:1] == ["ready"], ready
            server.control.configure(fault="mix", fault_probability=probability, seed=1)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            faults = server.control.stats()["faults"]
            server.control.clear()
            proc.wait(timeout=60)
        finally:
            proc.kill()
        result = json.loads(line)
        return {**result, "faults": faults}
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="write the local twins here (kept after the run)")
    p.add_argument("--load", metavar="SECONDS", type=float, help="instead: 16 concurrent queries per host")
    a = p.parse_args()
    if a.load:
        for host in ("sedonadb", "datafusion"):
            print(host, json.dumps(load(host, a.load)), flush=True)
        return
    started = time.monotonic()
    counts, bad = run(a.cases, a.seed, a.keep)
    print(f"{a.cases} cases (seeds {a.seed}..{a.seed + a.cases - 1}) in {time.monotonic() - started:.0f} s")
    for key, c in sorted(counts.items()):
        print(f"  {key:14s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for b in bad[:40]:
        print("  BAD", json.dumps(b, default=str)[:800])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
