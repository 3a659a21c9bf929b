"""The fault proxy the reliability tests rely on does what it says (against a tiny upstream)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.faultproxy import Fault, FaultProxy, running_proxy


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        payload = b"x" * 10_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with running_proxy(f"http://127.0.0.1:{server.server_address[1]}") as running:
            yield running
    finally:
        server.shutdown()
        server.server_close()


def test_requests_are_forwarded_unchanged_without_faults(proxy: FaultProxy) -> None:
    response = requests.get(f"{proxy.url}/file?a=1", timeout=5)

    assert response.status_code == 200
    assert response.content == b"x" * 10_000
    assert [(e.method, e.path, e.outcome) for e in proxy.log] == [("GET", "/file?a=1", "forwarded")]


def test_a_status_fault_answers_with_retry_after_for_the_given_number_of_requests(
    proxy: FaultProxy,
) -> None:
    proxy.add(Fault("status", path="^/api", status=429, retry_after="2", times=1))

    first = requests.get(f"{proxy.url}/api/x", timeout=5)
    second = requests.get(f"{proxy.url}/api/x", timeout=5)

    assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
    assert second.status_code == 200


def test_a_dropped_connection_and_a_cut_body_fail_on_the_client(proxy: FaultProxy) -> None:
    proxy.add(Fault("drop", path="dropped"))
    proxy.add(Fault("drop_mid_body", path="cut"))

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/dropped", timeout=5)
    with pytest.raises(requests.RequestException):
        requests.get(f"{proxy.url}/cut", timeout=5).content  # noqa: B018


def test_a_delay_slows_the_answer_and_a_callback_runs_before_forwarding(
    proxy: FaultProxy,
) -> None:
    called: list[float] = []
    proxy.add(Fault("delay", delay=0.3, callback=lambda: called.append(time.monotonic())))

    started = time.monotonic()
    response = requests.get(f"{proxy.url}/slow", timeout=5)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert len(called) == 1
