"""The service under operators' mistakes and hostile clients: a real daemon, real sockets.

Issue 14: a busy port or an unusable state dir ended in a traceback; 300 slow clients on
the webhook port starved valid hooks and the ticks; a second SIGTERM left a face worker
orphaned; and nothing showed that a tick skips while a manual sweep holds the lock.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from nocodb_guard.service.locking import sweep_lock
from nocodb_guard.service.webhook import SECRET_HEADER
from tests.integration.conftest import DevServer, free_port
from tests.integration.test_daemon import (
    daemon_env,
    decided,
    run_guard,
    running_daemon,
    status_of,
    submit_cat,
    submit_grace,
    wait_until,
)

FLOOD = 300


def one_line_error(result_stderr: str, expected: str) -> None:
    assert "Traceback" not in result_stderr, result_stderr[-3000:]
    errors = [line for line in result_stderr.splitlines() if "nocodb-guard: error:" in line]
    assert len(errors) == 1, result_stderr[-3000:]
    assert expected in errors[0]


@pytest.mark.parametrize("setting", ["metrics_port", "webhook_port"])
def test_a_port_already_taken_stops_the_start_with_one_clear_line_and_exit_2(
    nocodb: DevServer, references: Path, tmp_path: Path, setting: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = daemon_env(
            nocodb, references, tmp_path / "state", webhook_secret="s", **{setting: str(port)}
        )
        result = run_guard(nocodb, env, "run", timeout=120)

    assert result.returncode == 2, result.stderr[-3000:]
    one_line_error(result.stderr, f"{setting}: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("command", [("run",), ("sweep",)])
def test_a_state_dir_that_cannot_be_written_stops_with_one_clear_line_and_exit_2(
    nocodb: DevServer, references: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    env = daemon_env(nocodb, references, not_a_folder / "state")

    result = run_guard(nocodb, env, *command, timeout=120)

    assert result.returncode == 2, result.stderr[-3000:]
    one_line_error(result.stderr, f"state_dir {not_a_folder / 'state'}: cannot write sweep.lock")


def test_a_tick_skips_while_a_manual_sweep_holds_the_lock_and_decides_once_it_is_free(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    nocodb, state = clean_table, tmp_path / "state"
    cat = submit_cat(nocodb)
    with sweep_lock(state), running_daemon(nocodb, references, state, poll_interval="1") as svc:
        svc.wait_for_event("tick_skipped", 30, count=2)
        assert cat in status_of(nocodb), "a skipped tick touched a row"
        assert "sweep_done" not in svc.names()
        held = True
    assert held
    with running_daemon(nocodb, references, state, poll_interval="1") as service:
        wait_until(decided(nocodb, set(), {cat}), 30, "the cat deleted", service)
        assert service.terminate() == 0


def children_of(pid: int) -> set[int]:
    """Live child processes of ``pid`` (the face workers of a daemon)."""
    found = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat_file.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_mid_sweep_ends_the_daemon_at_once_and_leaves_no_face_worker(
    clean_table: DevServer, references: Path, tmp_path: Path, signum: int
) -> None:
    nocodb = clean_table
    for i in range(8):
        submit_grace(nocodb, f"grace {i}")
    with running_daemon(nocodb, references, tmp_path / "state", poll_interval="120") as service:
        service.wait_for_event("row_decided", 60)
        workers = children_of(service.process.pid)
        assert workers, "the daemon runs one face worker"
        service.process.send_signal(signum)
        time.sleep(0.05)
        service.process.send_signal(signum)
        assert service.process.wait(timeout=10) == -signum, service.tail()
        wait_until(lambda: not any(alive(pid) for pid in workers), 10, "the workers gone")
    assert all(rows in (None, "approved") for rows in status_of(nocodb).values())


def test_300_slow_clients_on_the_webhook_port_starve_neither_hooks_nor_ticks(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    nocodb = clean_table
    port, secret = free_port(), uuid.uuid4().hex
    with running_daemon(
        nocodb, references, tmp_path / "state", poll_interval="2",
        webhook_port=str(port), webhook_secret=secret,
    ) as service:
        service.wait_for_event("sweep_done", 30)
        threads_before = threads_of(service.process.pid)
        clients = []
        try:
            for _ in range(FLOOD):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"POST /hooks/nocodb HTT")
                clients.append(sock)
            answer = requests.post(
                f"http://127.0.0.1:{port}/hooks/nocodb", headers={SECRET_HEADER: secret},
                data=b"{}", timeout=5,
            )
            assert answer.status_code == 202
            ticks = service.names().count("sweep_done")
            grace, cat = submit_grace(nocodb), submit_cat(nocodb)
            wait_until(decided(nocodb, {grace}, {cat}), 30, "rows decided", service)
            service.wait_for_event("sweep_done", 10, count=ticks + 2)
            assert threads_of(service.process.pid) <= threads_before + 8
        finally:
            for sock in clients:
                sock.close()
        assert service.terminate() == 0


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_a_sweep_whose_audit_trail_cannot_be_written_deletes_nothing_and_says_so(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    nocodb, state = clean_table, tmp_path / "state"
    cat, grace = submit_cat(nocodb), submit_grace(nocodb)
    today = datetime.now(UTC).date().isoformat()
    (state / "audit" / f"audit-{today}.jsonl").mkdir(parents=True)  # where the file should be

    result = run_guard(nocodb, daemon_env(nocodb, references, state), "sweep", "--json")

    assert result.returncode == 1, result.stderr[-3000:]
    assert status_of(nocodb) == {cat: None, grace: None}, "acted without a record"
    one_line_error(result.stderr, "audit trail")
    summary = json.loads(result.stdout)["summary"]
    assert summary["deferred"] == 2 and summary["audit_error"]
