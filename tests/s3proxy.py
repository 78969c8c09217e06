"""A loopback HTTP proxy in front of a test S3 server that counts requests and injects faults.

Run as a script (``python s3proxy.py --upstream http://127.0.0.1:PORT``); it
listens on a free port of 127.0.0.1 and prints that port on its first line.
Tests and the benchmark drive it through :class:`ProxyClient`:

* counts requests and response bytes (``stats()``), to prove pruning; ``paths``
  lists the requests and ``faulted`` those that got a fault;
* adds latency to every request (``configure(latency_ms=20)``);
* answers requests with a fault (``configure(fault=..., fault_count=n)``, or
  each request with probability ``fault_probability``, drawn from ``seed``);
  ``fault_match`` restricts faults to paths containing a substring. Faults
  that need no answer from upstream:

  - ``"503"`` (retryable server error), ``"403"`` (S3 ``AccessDenied``),
    ``"reset"`` (connection closed without an answer), ``"hang"`` (no answer
    for ``hang_s`` seconds), ``"hold"`` (no answer until ``release()``; the
    number of requests held so far is ``stats()["held"]``, so a test can act
    at the moment a query is known to be waiting);

  and the network faults, applied to upstream's answer to a ``GET``:

  - ``"truncate"``: the body ends early and the connection closes;
  - ``"short_length"`` / ``"long_length"``: a ``Content-Length`` that lies
    (fewer or more bytes than the body has), then the connection closes;
  - ``"flip"``: one to eight bits of the body flipped;
  - ``"drip"``: the body sent ``drip_bytes`` at a time, ``drip_interval_s`` apart;
  - ``"html200"``: status 200 and an HTML error page for a body, headers kept;
  - ``"reset_mid"``: half the body, then a TCP reset;
  - ``"wrong_range"``: a byte range other than the one asked for (a ranged
    request gets a shifted range with its true ``Content-Range``; a whole
    object gets 206 and its first part);
  - ``"etag"``: another object's ``ETag`` (as if the object changed);
  - ``"mix"``: any of the above or ``"503"``/``"reset"``, drawn per request.

``stats()["faults"]`` counts the faults injected, by kind.

It only ever binds and connects to loopback addresses.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

CONTROL = "/__proxy__"
#: Faults answered without asking upstream.
LOCAL_FAULTS = ("503", "403", "reset", "hang", "hold")
#: Faults applied to upstream's answer to a GET (the network-fault corpus draws from these).
BODY_FAULTS = (
    "truncate",
    "short_length",
    "long_length",
    "flip",
    "drip",
    "html200",
    "reset_mid",
    "wrong_range",
    "etag",
)
HTML_ERROR = (
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
    b"<p>The upstream server did not answer.</p></body></html>"
)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.by_method: dict[str, int] = {}
        self.paths: list[str] = []
        self.faulted: list[str] = []
        self.faults: dict[str, int] = {}
        self.held = 0
        self.latency_ms = 0.0
        self.fault: str | None = None
        self.fault_count = 0
        self.fault_match = ""
        self.fault_probability = 0.0
        self.seed = 0
        self.rng = random.Random(0)
        self.hang_s = 30.0
        self.hold_s = 300.0
        self.drip_bytes = 16
        self.drip_interval_s = 0.5
        self.released.clear()

    def configure(self, config: dict[str, Any]) -> None:
        with self.lock:
            for key, value in config.items():
                setattr(self, key, value)
            if "seed" in config:
                self.rng = random.Random(config["seed"])
            if "fault" in config:
                self.released.clear()

    def take_fault(self, method: str, path: str) -> str | None:
        with self.lock:
            fault = self.fault
            if not fault or self.fault_match not in path:
                return None
            if fault in BODY_FAULTS and method != "GET":
                return None
            if self.fault_probability:
                if self.rng.random() >= self.fault_probability:
                    return None
            elif self.fault_count == 0:
                return None
            elif self.fault_count > 0:
                self.fault_count -= 1
            if fault == "mix":
                fault = self.rng.choice([*BODY_FAULTS, "503", "reset"])
                if fault in BODY_FAULTS and method != "GET":
                    return None
            self.faults[fault] = self.faults.get(fault, 0) + 1
            self.faulted.append(f"{method} {path}")
            return fault


def _closing(sock: socket.socket, *, reset: bool = False) -> None:
    """Close a client connection now: with ``reset``, by a TCP RST."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _make_handler(upstream: tuple[str, int], state: _State) -> type[BaseHTTPRequestHandler]:
    local = threading.local()

    def connection() -> http.client.HTTPConnection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*upstream, timeout=60)
            local.conn = conn
        return conn

    def forward(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[Any, bytes]:
        for attempt in range(2):
            conn = connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp, resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _control(self, body: bytes) -> None:
            action = self.path[len(CONTROL) :].strip("/").split("?")[0]
            if action == "stats":
                with state.lock:
                    out = {
                        "requests": state.requests,
                        "bytes": state.bytes,
                        "by_method": dict(state.by_method),
                        "paths": list(state.paths),
                        "faulted": list(state.faulted),
                        "faults": dict(state.faults),
                        "held": state.held,
                    }
                self._reply(200, json.dumps(out).encode(), {"Content-Type": "application/json"})
            elif action == "reset":
                with state.lock:
                    state.requests, state.bytes, state.by_method, state.paths = 0, 0, {}, []
                    state.faults, state.held, state.faulted = {}, 0, []
                self._reply(200, b"{}")
            elif action == "configure":
                state.configure(json.loads(body or b"{}"))
                self._reply(200, b"{}")
            elif action == "release":
                state.released.set()
                self._reply(200, b"{}")
            else:
                self._reply(404, b"unknown control action")

        def _local_fault(self, fault: str) -> bool:
            """Answer with a fault that needs no upstream answer; False to go on
            forwarding (a held request that was released)."""
            if fault == "503":
                self._reply(503, b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
            elif fault == "403":
                self._reply(
                    403,
                    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
                    {"Content-Type": "application/xml"},
                )
            elif fault == "reset":
                self.close_connection = True
                _closing(self.connection)
            elif fault == "hang":
                time.sleep(state.hang_s)
                self.close_connection = True
            elif fault == "hold":
                with state.lock:
                    state.held += 1
                if state.released.wait(state.hold_s):
                    return False
                self.close_connection = True
            return True

        def _send_head(self, status: int, headers: list[tuple[str, str]], length: int) -> None:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def _body_fault(
            self, fault: str, resp: Any, data: bytes, headers: list[tuple[str, str]], request: dict
        ) -> None:
            """Send upstream's answer ``resp``/``data`` damaged by ``fault``."""
            with state.lock:
                rng = random.Random(state.rng.random())
            if fault == "flip" and data:
                damaged = bytearray(data)
                for _ in range(rng.randint(1, 8)):
                    damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
                data = bytes(damaged)
            elif fault == "etag":
                other = f'"{rng.getrandbits(128):032x}"'
                headers = [(k, other if k.lower() == "etag" else v) for k, v in headers]
            elif fault == "html200":
                headers = [(k, v) for k, v in headers if k.lower() not in ("content-range", "content-type")]
                headers.append(("Content-Type", "text/html"))
                self._send_head(200, headers, len(HTML_ERROR))
                self.wfile.write(HTML_ERROR)
                return
            elif fault == "wrong_range":
                status, headers, data = self._wrong_range(resp, data, headers, request, rng)
                self._send_head(status, headers, len(data))
                self.wfile.write(data)
                return
            elif fault in ("truncate", "short_length", "long_length", "reset_mid", "drip"):
                self._broken_body(fault, resp.status, data, headers, rng)
                return
            self._send_head(resp.status, headers, len(data))
            self.wfile.write(data)

        def _broken_body(
            self, fault: str, status: int, data: bytes, headers: list[tuple[str, str]], rng: random.Random
        ) -> None:
            self.close_connection = True
            if fault == "drip":
                self._send_head(status, headers, len(data))
                for at in range(0, len(data), state.drip_bytes):
                    self.wfile.write(data[at : at + state.drip_bytes])
                    self.wfile.flush()
                    time.sleep(state.drip_interval_s)
                return
            cut = rng.randrange(len(data)) if data else 0
            if fault == "truncate":
                self._send_head(status, headers, len(data))
                self.wfile.write(data[:cut])
            elif fault == "short_length":
                self._send_head(status, headers, cut)
                self.wfile.write(data)
            elif fault == "long_length":
                self._send_head(status, headers, len(data) + rng.randint(1, 4096))
                self.wfile.write(data)
            else:  # reset_mid
                self._send_head(status, headers, len(data))
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                _closing(self.connection, reset=True)
                return
            self.wfile.flush()
            _closing(self.connection)

        def _wrong_range(
            self, resp: Any, data: bytes, headers: list[tuple[str, str]], request: dict, rng: random.Random
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            asked = re.fullmatch(r"bytes=(\d+)-(\d+)", request["headers"].get("Range", ""))
            total = re.search(r"/(\d+)$", resp.getheader("Content-Range") or "")
            plain = [(k, v) for k, v in headers if k.lower() != "content-range"]
            if asked and total and resp.status == 206:
                start, end, size = int(asked[1]), int(asked[2]), int(total[1])
                shift = rng.choice([-1, 1]) * rng.randint(1, 64)
                start, end = max(0, start + shift), min(size - 1, end + shift)
                if (start, end) == (int(asked[1]), int(asked[2])) or start > end:
                    start, end = 0, max(0, min(size - 1, end - start - 1))
                fresh = dict(request["headers"], Range=f"bytes={start}-{end}")
                other, body = forward("GET", self.path, b"", fresh)
                return other.status, [*plain, ("Content-Range", other.getheader("Content-Range") or "")], body
            part = data[: max(1, len(data) // 2)] if data else b""
            return 206, [*plain, ("Content-Range", f"bytes 0-{len(part) - 1}/{len(data)}")], part

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith(CONTROL):
                self._control(body)
                return
            with state.lock:
                state.requests += 1
                state.by_method[self.command] = state.by_method.get(self.command, 0) + 1
                state.paths.append(f"{self.command} {self.path}")
                latency = state.latency_ms
            if latency:
                time.sleep(latency / 1000)
            fault = state.take_fault(self.command, self.path)
            if fault in LOCAL_FAULTS and self._local_fault(fault):
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            resp, data = forward(self.command, self.path, body, headers)
            with state.lock:
                state.bytes += len(data)
            passed = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")
            ]
            try:
                if fault in BODY_FAULTS and resp.status in (200, 206):
                    self._body_fault(fault, resp, data, passed, {"headers": headers})
                elif self.command == "HEAD":
                    self._send_head(resp.status, passed, int(resp.getheader("Content-Length") or 0))
                else:
                    self._send_head(resp.status, passed, len(data))
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


class _Server(ThreadingHTTPServer):
    # Readers open many connections at once; the default backlog of 5 drops some.
    request_queue_size = 256
    daemon_threads = True


def serve_directory(root: str) -> None:
    """A static file server for ``root`` on a free loopback port (http(s):// store tests)."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = bind_low(lambda address: _Server(address, functools.partial(Quiet, directory=root)))
    print(server.server_address[1], flush=True)
    server.serve_forever()


def serve(upstream_url: str) -> None:
    parsed = urlparse(upstream_url)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("the proxy only forwards to loopback servers")
    state = _State()
    handler = _make_handler((parsed.hostname, parsed.port or 80), state)
    server = bind_low(lambda address: _Server(address, handler))
    print(server.server_address[1], flush=True)
    server.serve_forever()


class ProxyClient:
    """Control a running proxy: counters and faults."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, action: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.url}{CONTROL}/{action}", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def reset(self) -> None:
        self._call("reset")

    def configure(self, **settings: Any) -> None:
        """Set ``latency_ms``, ``fault``, ``fault_count`` (-1: always), ``fault_probability``,
        ``seed``, ``fault_match``, ``hang_s``, ``hold_s``, ``drip_bytes``, ``drip_interval_s``."""
        self._call("configure", settings)

    def release(self) -> None:
        """Let every held request (and those to come) through to upstream."""
        self._call("release")

    def wait_held(self, n: int = 1, timeout: float = 60.0) -> None:
        """Return once ``n`` requests are held (a query is waiting on the store)."""
        deadline = time.monotonic() + timeout
        while self.stats()["held"] < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no request held within {timeout} s")
            time.sleep(0.02)

    def clear(self) -> None:
        self.release()
        self.configure(latency_ms=0, fault=None, fault_count=0, fault_probability=0.0, fault_match="")
        self.reset()


def start_process(args: list[str], what: str) -> tuple[subprocess.Popen, int]:
    """Start ``args`` and read the port it prints on its first line."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{what} did not start (got {line!r})")
    return proc, int(line)


#: Ports test servers listen on: below the ephemeral range (32768 and up on Linux), where
#: the kernel picks the ports of outgoing connections.
PORTS = range(20000, 32768)


def bind_low(bind: Callable[[tuple[str, int]], T]) -> T:
    """``bind(("127.0.0.1", port))`` for a random free port of :data:`PORTS`."""
    rng = random.Random()
    for _ in range(200):
        try:
            return bind(("127.0.0.1", rng.randrange(PORTS.start, PORTS.stop)))
        except OSError:
            continue
    raise RuntimeError(f"no free port on 127.0.0.1 in {PORTS.start}..{PORTS.stop - 1}")


def free_port() -> int:
    """A port of :data:`PORTS` free on 127.0.0.1 now, for a server another process starts."""

    def probe(address: tuple[str, int]) -> int:
        with socket.socket() as s:
            s.bind(address)
        return address[1]

    return bind_low(probe)


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class S3Server:
    """moto's S3 server on 127.0.0.1 behind the counting/fault proxy, each in its own process."""

    def __init__(self) -> None:
        port = free_port()
        self.moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.moto_url = f"http://127.0.0.1:{port}"
        try:
            wait_for(self.moto_url)
            self.proxy, proxy_port = start_process(
                [sys.executable, __file__, "--upstream", self.moto_url], "the S3 proxy"
            )
        except BaseException:
            self.moto.kill()
            raise
        self.url = f"http://127.0.0.1:{proxy_port}"
        self.control = ProxyClient(self.url)

    def obstore_store(
        self, bucket: str, prefix: str, *, proxied: bool = False, secret: str = "testing"
    ) -> Any:
        """An obstore ``S3Store`` for ``bucket/prefix``: straight to the server (not counted by the
        proxy), or through the proxy with ``proxied=True``."""
        import obstore.store

        return obstore.store.S3Store(
            bucket,
            prefix=prefix,
            config={
                "endpoint": self.url if proxied else self.moto_url,
                "region": "us-east-1",
                "access_key_id": "testing",
                "secret_access_key": secret,
            },
            client_options={"allow_http": True},
        )

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.moto_url}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        for proc in (self.proxy, self.moto):
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--upstream", help="proxy to this loopback S3 server")
    group.add_argument("--static", help="serve this directory as static files")
    args = parser.parse_args()
    if args.static:
        serve_directory(args.static)
    else:
        serve(args.upstream)
