"""Webhook server: a real HTTP server on a free port, driven with requests."""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Iterator

import pytest
import requests
import structlog

from nocodb_guard.errors import ConfigError
from nocodb_guard.logs import configure_logging
from nocodb_guard.service.webhook import DEFAULT_PATH, MAX_BODY_BYTES, SECRET_HEADER, WebhookServer

SECRET = "s3cr3t-hook-value"
ROW_BODY = '{"type":"records.after.insert","data":{"rows":[{"Id":1,"Name":"VISITOR-TEXT-42"}]}}'


class Trigger:
    def __init__(self) -> None:
        self.calls = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        self.event.set()


@pytest.fixture
def hook() -> Iterator[tuple[WebhookServer, Trigger, str]]:
    trigger = Trigger()
    server = WebhookServer("127.0.0.1", 0, SECRET, trigger).start()
    yield server, trigger, f"http://127.0.0.1:{server.port}"
    server.stop()


def post(url: str, secret: str | None = SECRET, data: str = ROW_BODY) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return requests.post(url, data=data, headers=headers, timeout=5)


def test_a_post_with_the_secret_is_accepted_and_triggers_a_sweep(
    hook: tuple[WebhookServer, Trigger, str],
) -> None:
    _, trigger, base = hook
    assert post(base + DEFAULT_PATH).status_code == 202
    assert trigger.event.wait(2)
    assert trigger.calls == 1


def test_a_wrong_secret_is_refused_and_triggers_nothing(
    hook: tuple[WebhookServer, Trigger, str],
) -> None:
    _, trigger, base = hook
    assert post(base + DEFAULT_PATH, secret="guess").status_code == 401
    assert post(base + DEFAULT_PATH, secret=SECRET + "x").status_code == 401
    assert trigger.calls == 0


def test_a_missing_secret_is_refused(hook: tuple[WebhookServer, Trigger, str]) -> None:
    _, trigger, base = hook
    assert post(base + DEFAULT_PATH, secret=None).status_code == 401
    assert trigger.calls == 0


def test_other_paths_are_not_found(hook: tuple[WebhookServer, Trigger, str]) -> None:
    _, trigger, base = hook
    assert post(base + "/").status_code == 404
    assert post(base + DEFAULT_PATH + "/x").status_code == 404
    assert requests.get(base + "/metrics", timeout=5).status_code == 404
    assert trigger.calls == 0


def test_a_query_string_does_not_change_the_path(
    hook: tuple[WebhookServer, Trigger, str],
) -> None:
    _, trigger, base = hook
    assert post(base + DEFAULT_PATH + "?source=nocodb").status_code == 202
    assert trigger.calls == 1


def test_get_on_the_hook_path_is_method_not_allowed(
    hook: tuple[WebhookServer, Trigger, str],
) -> None:
    _, trigger, base = hook
    response = requests.get(base + DEFAULT_PATH, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert trigger.calls == 0


def test_an_oversized_body_is_refused_without_reading_it(
    hook: tuple[WebhookServer, Trigger, str],
) -> None:
    _, trigger, base = hook
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(
            f"POST {DEFAULT_PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.0 413")
    assert trigger.calls == 0


def test_a_post_without_a_body_is_accepted(hook: tuple[WebhookServer, Trigger, str]) -> None:
    _, trigger, base = hook
    assert post(base + DEFAULT_PATH, data="").status_code == 202
    assert trigger.calls == 1


def test_the_body_and_secret_are_never_logged(
    hook: tuple[WebhookServer, Trigger, str],
) -> None:
    _, _, base = hook
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers), root.level
    configure_logging("debug", fmt="json", stream=stream)
    try:
        post(base + DEFAULT_PATH + "?token=from-query")
        post(base + DEFAULT_PATH, secret="wrong-secret-guess")
    finally:
        for handler in [h for h in root.handlers if h not in before[0]]:
            root.removeHandler(handler)
        root.setLevel(before[1])
        structlog.reset_defaults()
    text = stream.getvalue()
    assert '"status": 202' in text  # the requests were logged...
    assert '"status": 401' in text
    assert "VISITOR-TEXT-42" not in text  # ...but neither body, secret nor query string
    assert SECRET not in text
    assert "wrong-secret-guess" not in text
    assert "from-query" not in text


def test_a_failing_trigger_answers_500_and_the_server_keeps_serving() -> None:
    calls: list[int] = []

    def trigger() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("scheduler gone")

    with WebhookServer("127.0.0.1", 0, SECRET, trigger) as server:
        url = f"http://127.0.0.1:{server.port}{DEFAULT_PATH}"
        assert post(url).status_code == 500
        assert post(url).status_code == 202


def test_a_custom_path_is_honoured() -> None:
    trigger = Trigger()
    with WebhookServer("127.0.0.1", 0, SECRET, trigger, path="custom") as server:
        base = f"http://127.0.0.1:{server.port}"
        assert post(base + "/custom").status_code == 202
        assert post(base + DEFAULT_PATH).status_code == 404


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="webhook_secret"):
        WebhookServer("127.0.0.1", 0, "", lambda: None)


def test_stop_closes_the_port_and_is_idempotent() -> None:
    server = WebhookServer("127.0.0.1", 0, SECRET, lambda: None).start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{port}{DEFAULT_PATH}", timeout=2)
