"""A small fault-injecting HTTP proxy for the reliability tests (loopback only).

It sits between nocodb-guard and the real NocoDB: point ``NOCODB_GUARD_NOCODB_URL`` at
:attr:`FaultProxy.url`. Every request is forwarded unchanged unless a :class:`Fault` rule
matches it; then the proxy answers a status of its choosing (500, 503, 429 with
``Retry-After``...), waits before forwarding (a slow NocoDB), drops the connection before
answering or half-way through the body, or runs a callback first (an admin acting at the
worst moment). Attachments are fetched from the NocoDB origin, so they pass through too.

With a :class:`~tests.nocodb_limiter.NocoLimiter` (:attr:`FaultProxy.limiter`) it also plays
NocoDB 0.301.4+'s rate limiter in front of 0.301.3 (which has none): per-token windows,
30 s blocks answered 429, ``X-RateLimit-*`` headers on every counted answer.

Every request is logged (:attr:`FaultProxy.log`) with its arrival time and what was done,
so tests can check how often and how fast the client retried.
"""

from __future__ import annotations

import http.client
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

from tests.nocodb_limiter import NocoLimiter

Action = Literal["status", "delay", "drop", "drop_mid_body", "callback"]
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
     "trailers", "transfer-encoding", "upgrade", "content-length"}
)
UPSTREAM_TIMEOUT_S = 60.0
#: NocoDB's body for a throttled request (the ThrottlerException it raises).
THROTTLED = b'{"msg":"ThrottlerException: Too Many Requests"}'


@dataclass
class Fault:
    """What to do with requests whose method and path (with query) match.

    ``path`` is a regular expression searched in the request path; ``times`` is how many
    matching requests it applies to (None: all of them). ``delay`` applies before any
    action (with ``action="delay"`` the request is then forwarded).
    """

    action: Action
    path: str = ""
    method: str | None = None
    status: int = 503
    retry_after: str | None = None
    location: str | None = None
    """``Location`` header of a status answer (a redirect)."""
    payload: bytes | None = None
    """Body of a status answer (default: a small JSON error), e.g. a CDN's HTML error page."""
    content_type: str = "application/json"
    delay: float = 0.0
    times: int | None = None
    callback: Callable[[], None] | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return re.search(self.path, path) is not None


@dataclass(frozen=True)
class Logged:
    """One request the proxy saw: when, what, and what it did (``forwarded`` or an action)."""

    at: float
    method: str
    path: str
    outcome: str


@dataclass
class FaultProxy:
    """A threaded proxy on 127.0.0.1 forwarding to ``upstream`` (an http:// base URL)."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    limiter: NocoLimiter | None = None
    """NocoDB's rate limiter, applied to requests no fault took."""
    log: list[Logged] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------
    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forward everything from now on (the log is kept)."""
        with self._lock:
            self.faults.clear()

    def requests(self, path: str = "", method: str | None = None) -> list[Logged]:
        """Logged requests whose path matches (and the method), in order of arrival."""
        with self._lock:
            found = [
                entry
                for entry in self.log
                if re.search(path, entry.path) and (method is None or entry.method == method)
            ]
        return sorted(found, key=lambda entry: entry.at)

    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="faultproxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- used by the handler ------------------------------------------------------------------
    def _choose(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _record(self, method: str, path: str, outcome: str, at: float) -> None:
        with self._lock:
            self.log.append(Logged(at, method, path, outcome))


class Listener:
    """A TCP listener on 127.0.0.1 that only counts connections (to prove nothing connected)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="listener", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@contextmanager
def listening() -> Iterator[Listener]:
    """A started :class:`Listener`, always closed afterwards."""
    listener = Listener()
    try:
        yield listener
    finally:
        listener.close()


@contextmanager
def running_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A started proxy, always stopped afterwards."""
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()


class _QuietServer(ThreadingHTTPServer):
    """Clients hanging up (after their read timeout, or on a dropped answer) are expected."""

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the owner keeps its own log

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        at = time.monotonic()
        body = self._read_body()
        fault = self.owner._choose(self.command, self.path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.callback is not None:
            fault.callback()
        limiter = self.owner.limiter
        verdict = None
        if fault is None and limiter is not None:
            verdict = limiter.check(self.path.split("?", 1)[0], self.headers)
        action = "forwarded" if fault is None else fault.action
        if verdict is not None and not verdict.allowed:
            action = "rate_limited"
        self.owner._record(self.command, self.path, action, at)
        extra = {} if verdict is None else verdict.headers
        try:
            self._respond(fault, body, action, extra)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up first (its read timeout)

    def _respond(
        self, fault: Fault | None, body: bytes, action: str, extra: dict[str, str]
    ) -> None:
        if fault is not None and fault.action == "status":
            self._answer(fault)
        elif fault is not None and fault.action == "drop":
            self._drop()
        elif action == "rate_limited":
            self._answer(Fault("status", status=429, payload=THROTTLED), extra)
        else:
            cut = fault is not None and fault.action == "drop_mid_body"
            self._forward(body, cut_body=cut, extra=extra)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, fault: Fault, extra: dict[str, str] | None = None) -> None:
        payload = fault.payload
        if payload is None:
            payload = b'{"error":"INJECTED_FAULT","message":"injected by the fault proxy"}'
        self.send_response(fault.status)
        self.send_header("Content-Type", fault.content_type)
        self.send_header("Content-Length", str(len(payload)))
        if fault.retry_after is not None:
            self.send_header("Retry-After", fault.retry_after)
        if fault.location is not None:
            self.send_header("Location", fault.location)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close without a byte of answer (a crashed upstream or a reset)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            return

    def _forward(self, body: bytes, *, cut_body: bool, extra: dict[str, str]) -> None:
        target = urlsplit(self.owner.upstream)
        connection = http.client.HTTPConnection(
            target.hostname or "127.0.0.1", target.port, timeout=UPSTREAM_TIMEOUT_S
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = target.netloc
        try:
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError:
            self._drop()  # upstream down: the client sees what it would see without us
            return
        finally:
            connection.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if cut_body:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._drop()
            return
        self.wfile.write(payload)
