"""The daemon's two small HTTP listeners (metrics, webhook): bounded whatever clients do.

A thread per connection lets anyone with a TCP client exhaust the service: 300 connections
that never finish their request line once held 300 threads, and under systemd's
``TasksMax`` valid hooks got no answer and ticks could not start a thread. So a listener
here costs a fixed number of threads however many clients connect:

- one thread reads every connection without blocking (``selectors``) until the request
  head and its announced body have arrived, and hands only *complete* requests on;
- a small pool (:attr:`Limits.handler_threads`) runs the ``BaseHTTPRequestHandler`` on the
  buffered bytes, so a valid hook is answered as soon as it has arrived, whoever else is
  slowly connected;
- a request must arrive within :attr:`Limits.request_seconds` (head and body, in total,
  not per ``recv``: a client trickling one byte a second gains nothing), else it is closed;
- at most :attr:`Limits.max_connections` connections are open; a new one evicts the oldest
  still-incomplete one, so a flood of slow clients only ever delays slow clients.
"""

from __future__ import annotations

import io
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

import structlog

from nocodb_guard.errors import ConfigError

log = structlog.get_logger(__name__)

JOIN_SECONDS = 5.0
"""How long a stop waits for the reading thread."""
_POLL_SECONDS = 0.2
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What one listener accepts; defaults suit a webhook hit a few times per upload."""

    max_connections: int = 64
    """Open connections at once (file descriptors and buffers; the oldest slow one goes)."""
    request_seconds: float = 10.0
    """Time for the whole request (head and body) to arrive; NocoDB sends it in one go."""
    max_head_bytes: int = 16 * 1024
    """Request line and headers; NocoDB's are well under 2 kB."""
    max_body_bytes: int = 1024 * 1024
    """Bodies buffered for the handler; a longer announced body is passed on unread."""
    handler_threads: int = 4
    """Complete requests handled at once (each answers in milliseconds)."""
    write_seconds: float = 5.0
    """Time to send an answer to a client that does not read it."""


@dataclass
class _Connection:
    sock: socket.socket
    address: Any
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class _Prebuffered:
    """The socket as the handler sees it: reads come from the bytes already received."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        self._sock = sock
        self._data = data

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        """The handler's ``rfile``; it writes with ``sendall`` (``wbufsize`` 0)."""
        return io.BytesIO(self._data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def request_size(data: bytes | bytearray, limits: Limits) -> int | None:
    """Bytes the request spans once its head is complete; None while the head is not.

    A body that is absent, chunked, malformed or over the limit counts as empty: the
    handler then answers (411, 400, 413) from the head alone, without reading it.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head_size = end + 4
    for line in bytes(data[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return head_size
            return head_size + length if 0 <= length <= limits.max_body_bytes else head_size
    return head_size


class BoundedHTTPServer:
    """Serve ``handler`` on ``address`` with :class:`Limits`; see the module doc."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        name: str,
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._handler = handler
        self._name = name
        self._listener = socket.create_server(address, reuse_port=False)
        self._listener.setblocking(False)
        self.server_address: tuple[Any, ...] = self._listener.getsockname()
        self._open: dict[socket.socket, _Connection] = {}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(self.limits.handler_threads, thread_name_prefix=name)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, drop incomplete requests, let the answers in hand finish."""
        self._stop.set()
        self._thread.join(timeout=JOIN_SECONDS)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the reading thread ----------------------------------------------------------------
    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=_POLL_SECONDS):
                    if key.fileobj is self._listener:
                        self._accept(selector)
                    else:
                        self._read(selector, self._open[key.fileobj])  # type: ignore[index]
                self._expire(selector)
            for connection in list(self._open.values()):
                self._drop(selector, connection)
        self._listener.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            sock, address = self._listener.accept()
        except (BlockingIOError, ConnectionError):
            return
        if len(self._open) >= self.limits.max_connections:
            oldest = min(self._open.values(), key=lambda c: c.deadline)
            log.debug("http connection evicted", listener=self._name)
            self._drop(selector, oldest)
        sock.setblocking(False)
        deadline = time.monotonic() + self.limits.request_seconds
        self._open[sock] = _Connection(sock, address, deadline)
        selector.register(sock, selectors.EVENT_READ)

    def _read(self, selector: selectors.BaseSelector, connection: _Connection) -> None:
        try:
            chunk = connection.sock.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        connection.data.extend(chunk)
        size = request_size(connection.data, self.limits)
        if size is None and (not chunk or len(connection.data) > self.limits.max_head_bytes):
            self._drop(selector, connection)  # hung up or an endless head
        elif size is not None and (len(connection.data) >= size or not chunk):
            selector.unregister(connection.sock)
            del self._open[connection.sock]
            self._pool.submit(self._handle, connection)

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for connection in [c for c in self._open.values() if c.deadline < now]:
            log.debug("http request timed out", listener=self._name)
            self._drop(selector, connection)

    def _drop(self, selector: selectors.BaseSelector, connection: _Connection) -> None:
        selector.unregister(connection.sock)
        del self._open[connection.sock]
        connection.sock.close()

    # --- the handler threads ---------------------------------------------------------------
    def _handle(self, connection: _Connection) -> None:
        sock = connection.sock
        try:
            sock.settimeout(self.limits.write_seconds)
            self._handler(_Prebuffered(sock, bytes(connection.data)), connection.address, self)  # type: ignore[arg-type]
        except Exception as exc:  # a client that hangs up mid-answer is routine
            log.debug("http connection error", listener=self._name, error_type=type(exc).__name__)
        finally:
            sock.close()


@contextmanager
def listening(setting: str, host: str, port: int) -> Iterator[None]:
    """A port that cannot be bound (taken, privileged) is the operator's setting to fix:
    one line naming it, not a traceback."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{setting}: cannot listen on {host}:{port} ({reason})") from None
