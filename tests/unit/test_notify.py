"""systemd notify: real AF_UNIX datagram sockets stand in for systemd's."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nocodb_guard.service.notify import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield sock, str(path)
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_without_notify_socket_every_call_is_a_harmless_no_op() -> None:
    notifier = SystemdNotifier(environ={})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("anything") is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False
    assert notifier.watchdog_interval() is None


def test_ready_status_and_stopping_arrive_as_datagrams(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path})
    assert notifier.ready()
    assert receive(sock) == "READY=1"
    assert notifier.status("swept 3 rows: approved=2 rejected=1")
    assert receive(sock) == "STATUS=swept 3 rows: approved=2 rejected=1"
    assert notifier.stopping()
    assert receive(sock) == "STOPPING=1"


def test_a_multi_line_status_is_folded_into_one_line(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    SystemdNotifier(environ={"NOTIFY_SOCKET": path}).status("line one\nREADY=1\n  line two")
    assert receive(sock) == "STATUS=line one READY=1 line two"


def test_an_abstract_socket_written_with_at_sign_is_reached() -> None:
    name = f"nocodb-guard-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert SystemdNotifier(environ={"NOTIFY_SOCKET": "@" + name}).ready()
        assert receive(sock) == "READY=1"


def test_watchdog_interval_is_half_of_watchdog_usec_and_pings_are_sent(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier(environ=environ)
    assert notifier.watchdog_interval() == 15.0
    assert notifier.watchdog()
    assert receive(sock) == "WATCHDOG=1"


def test_a_watchdog_meant_for_another_process_is_not_pinged(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier(
        environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    )
    assert notifier.watchdog_interval() is None
    assert notifier.watchdog() is False
    sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_without_watchdog_usec_there_is_no_watchdog(
    notify_socket: tuple[socket.socket, str],
) -> None:
    _, path = notify_socket
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "garbage"})
    assert notifier.watchdog_interval() is None
    assert notifier.watchdog() is False


def test_a_vanished_socket_never_raises(tmp_path: Path) -> None:
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("still fine") is False


def test_extend_timeout_is_sent_in_microseconds(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    SystemdNotifier(environ={"NOTIFY_SOCKET": path}).extend_timeout(90)
    assert receive(sock) == "EXTEND_TIMEOUT_USEC=90000000"


def test_the_process_environment_is_used_by_default(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert SystemdNotifier().ready()
    assert receive(sock) == "READY=1"
