"""A loopback HTTP proxy in front of a test S3 server that counts requests and injects faults.

Run as a script (``python s3proxy.py --upstream http://127.0.0.1:PORT``); it
listens on a free port of 127.0.0.1 and prints that port on its first line.
Tests and the benchmark drive it through :class:`ProxyClient`:

* counts requests and response bytes (``stats()``), to prove pruning;
* adds latency to every request (``configure(latency_ms=20)``);
* answers the next *n* requests with a fault: ``"503"`` (retryable server
  error), ``"403"`` (S3 ``AccessDenied``), ``"reset"`` (connection closed
  without an answer) or ``"hang"`` (no answer for ``hang_s`` seconds);
  ``fault_match`` restricts faults to paths containing a substring.

It only ever binds and connects to loopback addresses.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

CONTROL = "/__proxy__"


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.by_method: dict[str, int] = {}
        self.paths: list[str] = []
        self.latency_ms = 0.0
        self.fault: str | None = None
        self.fault_count = 0
        self.fault_match = ""
        self.hang_s = 30.0

    def take_fault(self, path: str) -> str | None:
        with self.lock:
            if self.fault and self.fault_count != 0 and self.fault_match in path:
                if self.fault_count > 0:
                    self.fault_count -= 1
                return self.fault
            return None


def _make_handler(upstream: tuple[str, int], state: _State) -> type[BaseHTTPRequestHandler]:
    local = threading.local()

    def connection() -> http.client.HTTPConnection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*upstream, timeout=60)
            local.conn = conn
        return conn

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
                    }
                self._reply(200, json.dumps(out).encode(), {"Content-Type": "application/json"})
            elif action == "reset":
                with state.lock:
                    state.requests, state.bytes, state.by_method, state.paths = 0, 0, {}, []
                self._reply(200, b"{}")
            elif action == "configure":
                config = json.loads(body or b"{}")
                with state.lock:
                    for key, value in config.items():
                        setattr(state, key, value)
                self._reply(200, b"{}")
            else:
                self._reply(404, b"unknown control action")

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
            fault = state.take_fault(self.path)
            if fault == "503":
                self._reply(503, b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
                return
            if fault == "403":
                self._reply(
                    403,
                    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
                    {"Content-Type": "application/xml"},
                )
                return
            if fault == "reset":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "hang":
                time.sleep(state.hang_s)
                self.close_connection = True
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            for attempt in range(2):
                conn = connection()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    conn.close()
                    local.conn = None
                    if attempt:
                        raise
            with state.lock:
                state.bytes += len(data)
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                    self.send_header(k, v)
            if self.command == "HEAD":
                self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

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

    server = _Server(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    print(server.server_address[1], flush=True)
    server.serve_forever()


def serve(upstream_url: str) -> None:
    parsed = urlparse(upstream_url)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("the proxy only forwards to loopback servers")
    state = _State()
    server = _Server(("127.0.0.1", 0), _make_handler((parsed.hostname, parsed.port or 80), state))
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
        """Set ``latency_ms``, ``fault``, ``fault_count`` (-1: always), ``fault_match``, ``hang_s``."""
        self._call("configure", settings)

    def clear(self) -> None:
        self.configure(latency_ms=0, fault=None, fault_count=0, fault_match="")
        self.reset()


def start_process(args: list[str], what: str) -> tuple[subprocess.Popen, int]:
    """Start ``args`` and read the port it prints on its first line."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{what} did not start (got {line!r})")
    return proc, int(line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
