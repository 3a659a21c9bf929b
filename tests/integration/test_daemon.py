"""``nocodb-guard run`` as operators run it: a subprocess against the real NocoDB.

Each test starts the console entry point (``python -m nocodb_guard ... run``) with its own
state dir and reference folder, talks to it only from outside (the public form, signals,
``$NOTIFY_SOCKET``, the metrics and webhook ports, ``nocodb-guard health``) and always
kills it at the end. Logs are JSON lines on stdout, collected in a file per test.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image, ImageOps

from nocodb_guard import samples
from nocodb_guard.service.health import write_heartbeat
from tests.integration.conftest import POLITICIANS, DevServer, free_port

GRACE = "Grace Hopper (demo)"
EILEEN = "Eileen Collins (demo)"
START_TIMEOUT_S = 90.0
"""Start-up: imports, one face worker, encoding two reference photos (cached afterwards)."""
STOP_TIMEOUT_S = 45.0


# --------------------------------------------------------------------------- pictures
def grace_variant() -> bytes:
    """Grace Hopper, but not the reference file: mirrored, cropped and re-encoded."""
    image = Image.open(samples.grace_hopper_path()).convert("RGB")
    image = ImageOps.mirror(image).crop((20, 10, image.width - 10, image.height - 40))
    buffer = io.BytesIO()
    image.resize((image.width * 3 // 4, image.height * 3 // 4)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def submit_grace(nocodb: DevServer, title: str = "grace") -> int:
    return int(nocodb.submit(GRACE, [("grace.jpg", grace_variant(), "image/jpeg")], title)["Id"])


def submit_cat(nocodb: DevServer, title: str = "cat") -> int:
    row = nocodb.submit(EILEEN, [("cat.png", samples.chelsea_png(), "image/png")], title)
    return int(row["Id"])


# --------------------------------------------------------------------------- the daemon
@dataclass
class Service:
    """A running ``nocodb-guard run`` and what it printed."""

    process: subprocess.Popen[bytes]
    log_path: Path
    state_dir: Path
    env: dict[str, str]
    notifications: list[str] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "<not json>", "line": line})
        return events

    def names(self) -> list[str]:
        return [str(e.get("event")) for e in self.events()]

    def wait_for_event(self, name: str, timeout: float, count: int = 1) -> None:
        wait_until(
            lambda: self.names().count(name) >= count,
            timeout,
            f"{count} x {name!r} in the daemon log",
            self,
        )

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, service: Service | None = None
) -> float:
    """Poll ``condition``; returns the seconds it took, fails with the daemon's log tail."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        if service is not None and service.process.poll() is not None:
            pytest.fail(f"daemon exited ({service.process.returncode}) while waiting for "
                        f"{what}:\n{service.tail()}")
        time.sleep(0.2)
    tail = f":\n{service.tail()}" if service is not None else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{tail}")


def daemon_env(
    nocodb: DevServer, references: Path, state_dir: Path, **settings: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOCODB_GUARD_", "NOTIFY_"))}
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    env.update(
        NOCODB_GUARD_REFERENCE_DIR=str(references),
        NOCODB_GUARD_STATE_DIR=str(state_dir),
        NOCODB_GUARD_WORKERS="1",
        NOCODB_GUARD_POLL_INTERVAL="2",
        NOCODB_GUARD_LOG_FORMAT="json",
        NOCODB_GUARD_RETRY_SECONDS="2",
    )
    env.update({f"NOCODB_GUARD_{k.upper()}": v for k, v in settings.items()})
    return env


def guard_command(nocodb: DevServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "nocodb_guard", "--env-file", str(nocodb.env_file), *args]


@contextmanager
def running_daemon(
    nocodb: DevServer,
    references: Path,
    state_dir: Path,
    extra_env: dict[str, str] | None = None,
    **settings: str,
) -> Iterator[Service]:
    """Start ``run`` and wait for ``daemon_ready``; always killed at the end."""
    env = daemon_env(nocodb, references, state_dir, **settings)
    env.update(extra_env or {})
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir.parent / f"{state_dir.name}-daemon-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            guard_command(nocodb, "run"), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    service = Service(process, log_path, state_dir, env)
    try:
        service.wait_for_event("daemon_ready", START_TIMEOUT_S)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def run_guard(
    nocodb: DevServer, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        guard_command(nocodb, *args), env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def status_of(nocodb: DevServer) -> dict[int, str | None]:
    """Row id -> Status (None: pending) for every row still in the table."""
    return {int(r["Id"]): r.get("Status") or None for r in nocodb.rows()}


def decided(nocodb: DevServer, approved: set[int], deleted: set[int]) -> Callable[[], bool]:
    def check() -> bool:
        rows = status_of(nocodb)
        return all(rows.get(i) == "approved" for i in approved) and not (deleted & rows.keys())

    return check


# --------------------------------------------------------------------------- systemd notify
@contextmanager
def notify_socket() -> Iterator[tuple[str, list[str]]]:
    """An abstract AF_UNIX datagram socket collecting sd_notify messages, as systemd does."""
    name = f"nocodb-guard-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    messages: list[str] = []
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.2)
    done = threading.Event()

    def collect() -> None:
        while not done.is_set():
            try:
                messages.extend(sock.recv(4096).decode().splitlines())
            except TimeoutError:
                continue

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    try:
        yield "@" + name, messages
    finally:
        done.set()
        thread.join(timeout=5)
        sock.close()


def metric_value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


# --------------------------------------------------------------------------- tests
def test_the_service_decides_form_uploads_within_one_poll_interval_and_reports_its_health(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    nocodb = clean_table
    state = tmp_path / "state"
    metrics_port = free_port()
    with notify_socket() as (address, messages), running_daemon(
        nocodb, references, state, extra_env={"NOTIFY_SOCKET": address,
                                              "WATCHDOG_USEC": "2000000"},
        poll_interval="2", metrics_port=str(metrics_port),
    ) as service:
        service.wait_for_event("sweep_done", 30)
        assert run_guard(nocodb, service.env, "health").returncode == 0

        grace, cat = submit_grace(nocodb), submit_cat(nocodb)
        took = wait_until(decided(nocodb, {grace}, {cat}), 2 + 20, "both rows decided", service)
        service.wait_for_event("row_decided", 5, count=2)  # logged just after acting
        decisions = {e["row_id"]: e for e in service.events() if e.get("event") == "row_decided"}
        assert decisions[grace]["verdict"] == "approved"
        assert decisions[cat]["verdict"] == "rejected"
        assert decisions[cat]["reason"] == "no_face"
        scrape = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        rows = "nocodb_guard_rows_decided_total"
        assert metric_value(scrape, rows, reason="match", verdict="approved") == 1
        assert metric_value(scrape, rows, reason="no_face", verdict="rejected") == 1
        assert metric_value(scrape, "nocodb_guard_last_success_timestamp_seconds") > 0
        assert metric_value(scrape, "nocodb_guard_sweep_duration_seconds_count") >= 2

        exit_code = service.terminate()
        time.sleep(0.3)  # the last datagrams

    assert exit_code == 0, service.tail()
    assert "READY=1" in messages
    assert any(m.startswith("STATUS=") and "1 approved" in m for m in messages), messages
    assert messages.count("WATCHDOG=1") >= 3
    assert messages[-1] == "STOPPING=1" or "STOPPING=1" in messages
    assert took < 2 + 20
    assert all(e.get("timestamp", "").endswith("Z") for e in service.events()
               if e.get("event") != "<not json>")
    started = [e for e in service.events() if e.get("event") == "daemon_starting"]
    assert len(started) == 1
    assert started[0]["config"]["nocodb_token"] == "set"
    assert nocodb.token not in service.log_path.read_text()


def test_health_fails_before_the_first_sweep_and_when_the_heartbeat_is_stale(
    nocodb: DevServer, references: Path, tmp_path: Path
) -> None:
    env = daemon_env(nocodb, references, tmp_path / "state", heartbeat_max_age="60")

    before_any_sweep = run_guard(nocodb, env, "health")
    write_heartbeat(tmp_path / "state", {"approved": 1}, now=datetime.now(UTC) - timedelta(hours=1))
    stale = run_guard(nocodb, env, "health")
    write_heartbeat(tmp_path / "state", {"approved": 1})
    fresh = run_guard(nocodb, env, "health")

    assert before_any_sweep.returncode == 1, before_any_sweep.stdout
    assert "no successful sweep" in before_any_sweep.stdout
    assert stale.returncode == 1, stale.stdout
    assert "older than 60s" in stale.stdout
    assert fresh.returncode == 0, fresh.stdout


def test_watchdog_pings_continue_between_ticks_longer_than_the_watchdog_interval(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    """Poll every 60 s, watchdog at 1 s: only the idle loop can keep systemd content."""
    with notify_socket() as (address, messages), running_daemon(
        clean_table, references, tmp_path / "state",
        extra_env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"},
        poll_interval="60",
    ) as service:
        service.wait_for_event("sweep_done", 30)
        pings_after_first_tick = messages.count("WATCHDOG=1")
        time.sleep(3)
        pings_while_idle = messages.count("WATCHDOG=1") - pings_after_first_tick
        assert service.terminate() == 0

    assert pings_while_idle >= 4, messages


def test_a_webhook_call_from_nocodb_gets_an_upload_decided_within_seconds(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    nocodb = clean_table
    port, secret = free_port(), uuid.uuid4().hex
    hook_url = f"http://127.0.0.1:{port}/hooks/nocodb"
    with running_daemon(
        nocodb, references, tmp_path / "state", poll_interval="120",
        webhook_port=str(port), webhook_secret=secret,
    ) as service:
        register_hook(nocodb, hook_url, secret)
        try:
            service.wait_for_event("sweep_done", 30)
            grace, cat = submit_grace(nocodb), submit_cat(nocodb)
            took = wait_until(decided(nocodb, {grace}, {cat}), 20, "rows decided", service)
        finally:
            register_hook(nocodb, f"http://127.0.0.1:{free_port()}/closed", secret)
        assert service.terminate() == 0

    assert took < 10, f"decided {took:.1f} s after the upload"
    assert service.names().count("sweep_done") >= 2  # the start-up pass, then the hook's


def register_hook(nocodb: DevServer, url: str, secret: str) -> None:
    """(Re)point the table's after-insert hook; afterwards it points at a closed port,
    which NocoDB's fire-and-forget delivery only logs."""
    args = [a for label in POLITICIANS for a in ("--politician", label)]
    result = nocodb.run("up", *args, "--webhook", url, "--webhook-secret", secret, timeout=120)
    assert result.returncode == 0, result.stderr


def test_bad_references_stop_the_start_with_exit_2(
    nocodb: DevServer, tmp_path: Path
) -> None:
    references = tmp_path / "refs"
    (references / "grace_hopper_demo").mkdir(parents=True)
    (references / "grace_hopper_demo" / "group.jpg").write_bytes(samples.two_faces_side_by_side())
    env = daemon_env(nocodb, references, tmp_path / "state")

    started = time.monotonic()
    result = run_guard(nocodb, env, "run", timeout=120)

    assert result.returncode == 2, result.stderr[-2000:]
    assert "grace_hopper_demo" in result.stderr
    starting = [json.loads(x) for x in result.stdout.splitlines() if "daemon_starting" in x]
    assert len(starting) == 1, "run logs JSON lines on stdout"
    assert time.monotonic() - started < 60


def test_a_refused_token_stops_the_start_with_exit_3(
    nocodb: DevServer, references: Path, tmp_path: Path
) -> None:
    env = daemon_env(nocodb, references, tmp_path / "state", nocodb_token="not-the-token")

    result = run_guard(nocodb, env, "run", timeout=120)

    assert result.returncode == 3, result.stderr[-2000:]
    assert nocodb.token not in result.stdout + result.stderr


@pytest.mark.slow
def test_sigterm_during_a_sweep_finishes_the_row_in_hand_and_the_next_start_does_the_rest(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    nocodb = clean_table
    graces = {submit_grace(nocodb, f"grace {i}") for i in range(6)}
    cats = {submit_cat(nocodb, f"cat {i}") for i in range(6)}
    state = tmp_path / "state"

    with running_daemon(nocodb, references, state, poll_interval="120", act_batch="2") as first:
        first.wait_for_event("row_decided", 60)
        stopped_at = time.monotonic()
        exit_code = first.terminate()
        stop_seconds = time.monotonic() - stopped_at

    assert exit_code == 0, first.tail()
    assert stop_seconds < 30
    assert "daemon_stopped" in first.names()
    rows = status_of(nocodb)
    assert graces <= rows.keys(), "a matching upload was deleted"
    assert all(rows[i] in (None, "approved") for i in graces)
    assert all(rows[i] is None for i in cats & rows.keys()), "a cat was tagged"
    decided_first = [e["row_id"] for e in first.events() if e.get("event") == "row_decided"]
    assert 0 < len(decided_first) < 12, "SIGTERM should land mid-sweep"
    for event in first.events():
        if event.get("event") == "row_decided":  # decided rows are done in NocoDB too
            row_id = event["row_id"]
            assert rows.get(row_id) == ("approved" if row_id in graces else None)
            assert (row_id in rows) == (row_id in graces)

    with running_daemon(nocodb, references, state, poll_interval="120") as second:
        wait_until(decided(nocodb, graces, cats), 90, "the rest decided", second)
        assert second.terminate() == 0


@pytest.mark.slow
def test_the_service_rides_out_nocodb_going_down_and_deletes_nothing_meanwhile(
    clean_table: DevServer, references: Path, tmp_path: Path
) -> None:
    nocodb = clean_table
    with running_daemon(nocodb, references, tmp_path / "state", poll_interval="1") as service:
        service.wait_for_event("sweep_done", 30)
        before = submit_grace(nocodb, "before the outage")
        nocodb.stop()
        try:
            service.wait_for_event("sweep_interrupted", 30)
            time.sleep(2)
            assert service.process.poll() is None, service.tail()
        finally:
            nocodb.start()
        grace, cat = submit_grace(nocodb), submit_cat(nocodb)
        wait_until(decided(nocodb, {before, grace}, {cat}), 60, "rows decided", service)
        assert service.terminate() == 0

    # While NocoDB boots, its API may answer 404 for the table for a moment: a failed tick
    # (logged, retried on the next tick), never a decision.
    assert {e["kind"] for e in service.events() if e.get("event") == "tick_failed"} <= {
        "NocoDBRequestError", "NocoDBAuthError"}
    assert "sweep_interrupted" in service.names()
