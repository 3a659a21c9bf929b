"""The listeners under a flood of slow clients: real sockets, a fixed number of threads.

Issue 14 #5: 300 connections that never finish their request line once held 300 threads,
and valid hooks went unanswered. Here the flood costs file descriptors only, a valid hook
is answered at once, and a client trickling bytes is cut off at the request deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from nocodb_guard.service.httpd import BoundedHTTPServer, Limits, request_size
from nocodb_guard.service.metrics import Metrics
from nocodb_guard.service.webhook import DEFAULT_PATH, SECRET_HEADER, WebhookServer

SECRET = "hook-secret"
FLOOD = 300


def slow_clients(port: int, count: int = FLOOD) -> list[socket.socket]:
    """Connections that send half a request line and then nothing, ever."""
    clients = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /hooks/nocodb HTT")
        clients.append(sock)
    return clients


@pytest.fixture
def hook() -> Iterator[tuple[WebhookServer, threading.Event]]:
    triggered = threading.Event()
    server = WebhookServer("127.0.0.1", 0, SECRET, triggered.set).start()
    yield server, triggered
    server.stop()


def test_300_slow_clients_neither_delay_a_valid_hook_nor_take_threads(
    hook: tuple[WebhookServer, threading.Event],
) -> None:
    server, triggered = hook
    threads_before = threading.active_count()
    clients = slow_clients(server.port)
    try:
        started = time.monotonic()
        answer = requests.post(
            f"http://127.0.0.1:{server.port}{DEFAULT_PATH}",
            headers={SECRET_HEADER: SECRET}, data=b"{}", timeout=5,
        )
        assert answer.status_code == 202
        assert time.monotonic() - started < 2.0
        assert triggered.is_set()
        # at most the handler pool on top of the listener's one reading thread
        assert threading.active_count() <= threads_before + Limits().handler_threads
    finally:
        for sock in clients:
            sock.close()


def test_300_slow_clients_do_not_keep_the_metrics_from_being_scraped() -> None:
    metrics = Metrics()
    port = metrics.start_server("127.0.0.1", 0)
    clients = slow_clients(port)
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 200
        assert "nocodb_guard_sweeps_total" in answer.text
    finally:
        for sock in clients:
            sock.close()
        metrics.stop_server()


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def quick() -> Iterator[BoundedHTTPServer]:
    limits = Limits(max_connections=8, request_seconds=0.5)
    server = BoundedHTTPServer(("127.0.0.1", 0), Hello, "test", limits).start()
    yield server
    server.stop()


def test_a_client_trickling_its_request_is_cut_off_at_the_deadline(
    quick: BoundedHTTPServer,
) -> None:
    """The deadline is for the whole request, not per byte: trickling gains nothing."""
    sock = socket.create_connection(("127.0.0.1", quick.port), timeout=5)
    started = time.monotonic()
    closed = False
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        time.sleep(0.05)
        if time.monotonic() - started > 3:
            break
    sock.settimeout(2)
    if not closed:
        try:
            closed = sock.recv(100) == b""
        except OSError:
            closed = True
    assert closed
    assert time.monotonic() - started < 2.5
    sock.close()


def test_a_new_client_evicts_the_oldest_slow_one_when_the_listener_is_full(
    quick: BoundedHTTPServer,
) -> None:
    clients = slow_clients(quick.port, count=9)
    try:
        clients[0].settimeout(2)
        assert clients[0].recv(100) == b"", "the oldest incomplete connection was closed"
        answer = requests.get(f"http://127.0.0.1:{quick.port}/", timeout=5)
        assert answer.text == "hello"
    finally:
        for sock in clients:
            sock.close()


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"POST / HTTP/1.1\r\nHost: x", None),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27),  # no body
        (b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 38 + 4),  # wait for 2 more
        (b"POST / HTTP/1.1\r\ncontent-length: nope\r\n\r\n", 41),  # the handler says 400
        (b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", 46),  # 413 unread
    ],
)
def test_a_request_is_complete_once_its_head_and_announced_body_arrived(
    request_bytes: bytes, expected: int | None
) -> None:
    assert request_size(request_bytes, Limits()) == expected
