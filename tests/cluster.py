"""A Ballista cluster on 127.0.0.1 for tests and benchmarks: a scheduler and executors of the
``zarr-meta-cluster`` binary as subprocesses, on free ports below the ephemeral range, each
logging to a file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from .conftest import cap_memory
from .s3proxy import free_port

#: Longest a cluster's roles may take to start and register (a cold start on a busy machine).
START_S = 60


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class LocalCluster:
    """A scheduler and ``executors`` executors as subprocesses, each logging to a file."""

    def __init__(self, binary: str, logs: Path, executors: int = 2, slots: int = 2) -> None:
        self.binary = binary
        self.logs = logs
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self._start("scheduler", ["scheduler", "--port", str(self.port)])
        self.executors = [f"executor{i}" for i in range(executors)]
        for name in self.executors:
            flight, grpc = free_port(), free_port()
            work = logs / f"{name}-work"
            work.mkdir()
            self._start(
                name,
                ["executor", "--scheduler", f"127.0.0.1:{self.port}", "--port", str(flight)]
                + ["--grpc-port", str(grpc), "--slots", str(slots), "--work-dir", str(work)],
            )
        self.wait_for_executors(executors)

    @property
    def url(self) -> str:
        return f"df://127.0.0.1:{self.port}"

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [self.binary, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=cap_memory,
            start_new_session=True,
        )

    def api(self, path: str) -> Any:
        return get_json(f"http://127.0.0.1:{self.port}/api/{path}")

    def wait_for_executors(self, n: int) -> None:
        deadline = time.monotonic() + START_S
        while True:
            try:
                if len(self.api("executors")) >= n:
                    return
            except OSError:
                pass
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited: {self.log(name)[-2000:]}"
            assert time.monotonic() < deadline, f"{n} executors did not register within {START_S} s"
            time.sleep(0.2)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def ranges_read(self, store: str) -> dict[str, list[tuple[int, int]]]:
        """The row ranges each executor's scans of ``store`` read, from its log."""
        pattern = re.compile(re.escape(store) + r": partition \d+ of \d+ reads rows ([0-9.,]*)")
        out: dict[str, list[tuple[int, int]]] = {}
        for name in self.executors:
            found = []
            for m in pattern.finditer(self.log(name)):
                for r in filter(None, m.group(1).split(",")):
                    a, b = r.split("..")
                    found.append((int(a), int(b)))
            out[name] = found
        return out

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
