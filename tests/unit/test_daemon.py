"""The daemon's own logic, without NocoDB or dlib: liveness for the watchdog, webhook
re-runs, the tick boundary, stoppable retries and the request-error kinds.

The daemon end to end (a subprocess against the real NocoDB) is in
tests/integration/test_daemon.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
import requests

from nocodb_guard import attachments
from nocodb_guard.errors import DownloadFailed, NocoDBUnavailable
from nocodb_guard.models import RowOutcome
from nocodb_guard.nocodb.pacing import PacingTotals
from nocodb_guard.report import SweepResult
from nocodb_guard.service.daemon import Daemon, stoppable_sleep
from nocodb_guard.service.health import read_heartbeat
from nocodb_guard.service.liveness import (
    Liveness,
    PurgeProgress,
    progress_observer,
    stall_bound,
)
from nocodb_guard.service.metrics import Metrics, request_error_kind
from nocodb_guard.service.notify import SystemdNotifier
from nocodb_guard.service.signals import Flags
from nocodb_guard.settings import Settings
from nocodb_guard.startup import StartupReport
from nocodb_guard.storage.base import PurgeStatus

WAIT_S = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- liveness
def test_an_idle_loop_is_alive_until_a_tick_is_overdue() -> None:
    clock = FakeClock()
    liveness = Liveness(stall_seconds=100, idle_seconds=40, clock=clock)
    clock.now += 39
    assert liveness.alive()
    clock.now += 2
    assert not liveness.alive()


def test_a_tick_that_keeps_finishing_rows_is_alive_however_long_it_runs() -> None:
    clock = FakeClock()
    liveness = Liveness(stall_seconds=100, idle_seconds=40, clock=clock)
    liveness.tick_started()
    for _ in range(50):
        clock.now += 90
        liveness.progress()
        assert liveness.alive()


def test_a_tick_without_progress_beyond_the_stall_bound_is_hung() -> None:
    clock = FakeClock()
    liveness = Liveness(stall_seconds=100, idle_seconds=40, clock=clock)
    liveness.tick_started()
    clock.now += 99
    assert liveness.alive()
    clock.now += 2
    assert not liveness.alive()


def test_a_finished_tick_restarts_the_idle_clock() -> None:
    clock = FakeClock()
    liveness = Liveness(stall_seconds=100, idle_seconds=40, clock=clock)
    liveness.tick_started()
    clock.now += 99
    liveness.tick_finished()
    clock.now += 39
    assert liveness.alive()


def test_the_stall_bound_covers_the_longest_healthy_step_between_two_signs_of_progress() -> None:
    """Worked out independently, step by step, with the default timeouts (issue 14)."""
    settings = Settings(
        retry_seconds=60, connect_timeout=5, read_timeout=30, max_attachments=5,
        picture_timeout=60,
    )
    call = 60 + 5 + 30  # retry budget, then one more attempt: connect + read
    fetch = 5 + 2 * 30 + 30  # measured below: the deadline plus the read in progress then
    purged_file = 4 * (30 + 30)  # path and three thumbnails probed: connect + read each
    pictures_ahead = 2 * 5  # two rows per worker prefetched, five pictures each
    longest = max(call, fetch, purged_file) + pictures_ahead * 60
    assert stall_bound(settings) >= longest
    # A row with five expired links (five fetches, five re-reads, five more fetches) and a
    # page of 25 such rows take far longer, but each of their requests is progress:
    assert stall_bound(settings) < 5 * (fetch + call + fetch) * 25


def test_every_nocodb_request_and_every_purged_file_is_progress_for_the_watchdog() -> None:
    clock = FakeClock()
    liveness = Liveness(stall_seconds=100, idle_seconds=40, clock=clock)
    seen: list[tuple[str, str]] = []
    observe = progress_observer(lambda op, outcome, _s: seen.append((op, outcome)), liveness)
    metrics = Metrics(enabled=False)
    purges = PurgeProgress(metrics, liveness)
    liveness.tick_started()
    for _ in range(5):  # 5 x 90 s: the tick is far past its bound, yet never silent for it
        clock.now += 90
        observe("attachment.download", "timeout", 90.0)
        assert liveness.alive()
    clock.now += 90
    purges.record_purge(PurgeStatus.PURGED)
    assert liveness.alive()
    assert seen[-1] == ("attachment.download", "timeout")
    clock.now += 101
    assert not liveness.alive()


def test_a_download_dripping_bytes_ends_within_its_deadline_plus_one_read() -> None:
    """The ``fetch`` term of the stall bound, measured against a real dripping server."""
    connect, read = 0.2, 0.3
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        dripping = threading.Thread(target=_drip, args=(listener, read * 0.9), daemon=True)
        dripping.start()
        started = time.monotonic()
        with pytest.raises(DownloadFailed, match="deadline"):
            attachments.fetch(
                requests.Session(), f"http://127.0.0.1:{port}/a.jpg",
                allowed_origins=frozenset({f"http://127.0.0.1:{port}"}), allowed_hosts=(),
                max_bytes=10**6, connect_timeout=connect, read_timeout=read,
            )
        took = time.monotonic() - started
    assert attachments.default_deadline(connect, read) < took
    assert took <= attachments.default_deadline(connect, read) + read + 0.1


def _drip(listener: socket.socket, pause: float) -> None:
    """Answer one request with a 1 MB body sent one byte per ``pause`` seconds."""
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        with contextlib.suppress(OSError):
            for _ in range(100):
                conn.sendall(b"x")
                time.sleep(pause)


# --------------------------------------------------------------------------- stoppable sleep
def test_retry_pauses_sleep_normally_until_a_stop_abandons_them() -> None:
    flags = Flags()
    sleep = stoppable_sleep(flags)
    started = time.monotonic()
    sleep(0.05)
    assert time.monotonic() - started >= 0.04

    threading.Timer(0.05, flags.stop.set).start()
    started = time.monotonic()
    with pytest.raises(NocoDBUnavailable, match="stopping"):
        sleep(30)
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- metrics kinds
@pytest.mark.parametrize(
    ("operation", "outcome", "kind"),
    [
        ("list", "200", None),
        ("attachment.download", "ok", None),
        ("list", "429", "rate_limited"),
        ("list", "503", "server_error"),
        ("list", "401", "auth"),
        ("get", "404", "not_found"),
        ("patch", "422", "client_error"),
        ("list", "timeout", "timeout"),
        ("list", "error", "connection"),
        ("attachment.download", "error", "other"),
    ],
)
def test_nocodb_request_outcomes_map_to_error_kinds(
    operation: str, outcome: str, kind: str | None
) -> None:
    assert request_error_kind(operation, outcome) == kind


def test_the_client_observer_counts_failed_requests_in_the_metrics() -> None:
    metrics = Metrics(enabled=False)
    metrics.observe_request("list", "503", 0.1)
    metrics.observe_request("list", "200", 0.1)
    text = metrics.render().decode()
    assert 'nocodb_guard_nocodb_request_errors_total{kind="server_error"} 1.0' in text


# --------------------------------------------------------------------------- the daemon
class FakeSweeper:
    def __init__(self, run: Callable[[], SweepResult]) -> None:
        self._run = run

    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        on_outcome: Callable[[RowOutcome], None] | None = None,
    ) -> SweepResult:
        return self._run()


class FakeAnalyzer:
    def __init__(self) -> None:
        self.closed = False
        self.restarts = 0

    def restart(self) -> None:
        self.restarts += 1

    def close(self) -> None:
        self.closed = True


class FakeClient:
    """The queue depth and the pacing totals the daemon reads around each pass."""

    def __init__(self, pending: int = 0) -> None:
        self.pending = pending
        self.totals = PacingTotals()

    def count_pending(self) -> int:
        return self.pending

    def pacing(self) -> PacingTotals:
        return self.totals


class FakeRuntime:
    """What the daemon uses of a Runtime; each pass runs ``passes[n]`` (default: empty)."""

    def __init__(self, *passes: Callable[[], SweepResult]) -> None:
        self.passes = list(passes)
        self.count = 0
        self.recorders: list[Any] = []
        self.purger: Any = None
        self.analyzer: Any = FakeAnalyzer()
        self.client = FakeClient()
        self.closed = False

    def sweeper(self) -> FakeSweeper:
        index = self.count
        self.count += 1
        return FakeSweeper(self.passes[index] if index < len(self.passes) else SweepResult)

    def close(self) -> None:
        self.closed = True


def make_daemon(tmp_path: Path, runtime: FakeRuntime, **settings: Any) -> tuple[Daemon, Flags]:
    flags = Flags()
    config = Settings(state_dir=tmp_path, poll_interval=3600, workers=0, **settings)
    daemon = Daemon(
        config, runtime, flags,  # type: ignore[arg-type]
        metrics=Metrics(enabled=False), notifier=SystemdNotifier(environ={}),
    )
    return daemon, flags


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextlib.contextmanager
def after_first_pass(tmp_path: Path, runtime: FakeRuntime) -> Iterator[Daemon]:
    """A started daemon whose first pass has ended; stopped on leaving the block."""
    daemon, flags = make_daemon(tmp_path, runtime)
    daemon.start(StartupReport(options=()))
    try:
        wait_for(lambda: runtime.count == 1 and flags.idle.is_set())
        yield daemon
    finally:
        flags.stop.set()
        daemon.stop()


def test_a_webhook_during_a_pass_triggers_another_pass_right_after(tmp_path: Path) -> None:
    in_first_pass, release = threading.Event(), threading.Event()

    def slow_pass() -> SweepResult:
        in_first_pass.set()
        release.wait(WAIT_S)
        return SweepResult()

    runtime = FakeRuntime(slow_pass)
    daemon, flags = make_daemon(tmp_path, runtime)
    daemon.start(StartupReport(options=()))
    try:
        assert in_first_pass.wait(WAIT_S)
        daemon.trigger()  # the new row may already be behind this pass's listing
        release.set()
        # At least one more pass; the hook's own scheduled run may add a harmless third one
        # when the first pass ends within the scheduler's 10 ms.
        wait_for(lambda: runtime.count >= 2 and flags.idle.is_set())
    finally:
        flags.stop.set()
        assert daemon.stop() == 0
    assert runtime.closed


def test_a_webhook_between_passes_starts_a_pass_at_once(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    with after_first_pass(tmp_path, runtime) as daemon:
        daemon.trigger()
        wait_for(lambda: runtime.count >= 2)


def test_a_pass_that_could_not_write_its_audit_trail_leaves_the_problem_for_health(
    tmp_path: Path,
) -> None:
    def unrecorded() -> SweepResult:
        result = SweepResult()
        result.audit_error = "OSError: No space left on device"
        return result

    with after_first_pass(tmp_path, FakeRuntime(unrecorded)):
        pass

    beat = read_heartbeat(tmp_path)
    assert beat is not None and beat.problem is not None
    assert "audit unwritable (OSError: No space left on device)" in beat.problem


def test_a_pass_that_crashes_is_logged_and_the_next_pass_runs(tmp_path: Path) -> None:
    def crash() -> SweepResult:
        raise RuntimeError("a bug")

    with after_first_pass(tmp_path, FakeRuntime(crash)) as daemon:
        assert read_heartbeat(tmp_path) is None
        daemon.trigger()
        wait_for(lambda: read_heartbeat(tmp_path) is not None)


def test_a_broken_face_worker_pool_is_replaced_for_the_next_pass(tmp_path: Path) -> None:
    def broken() -> SweepResult:
        raise BrokenProcessPool("a worker was killed (OOM?)")

    runtime = FakeRuntime(broken)
    with after_first_pass(tmp_path, runtime):
        pass
    assert runtime.analyzer.restarts == 1


class RecordingNotifier(SystemdNotifier):
    def __init__(self) -> None:
        super().__init__(environ={"NOTIFY_SOCKET": "@unused", "WATCHDOG_USEC": "200000"})
        self.sent: list[str] = []

    def send(self, *assignments: str) -> bool:
        self.sent.extend(assignments)
        return True


def test_watchdog_pings_stop_while_a_pass_is_hung_and_resume_after(tmp_path: Path) -> None:
    hung, release = threading.Event(), threading.Event()

    def hanging_pass() -> SweepResult:
        hung.set()
        release.wait(WAIT_S)
        return SweepResult()

    runtime = FakeRuntime(hanging_pass)
    notifier = RecordingNotifier()
    flags = Flags()
    daemon = Daemon(
        Settings(state_dir=tmp_path, poll_interval=3600, workers=0),
        runtime,  # type: ignore[arg-type]
        flags,
        metrics=Metrics(enabled=False),
        notifier=notifier,
        liveness=Liveness(stall_seconds=0.3, idle_seconds=3600),
    )
    waiter = threading.Thread(target=daemon.wait)
    daemon.start(StartupReport(options=()))
    waiter.start()
    try:
        assert hung.wait(WAIT_S)
        time.sleep(0.6)  # past the stall bound
        pings_when_hung = notifier.sent.count("WATCHDOG=1")
        time.sleep(0.5)
        assert notifier.sent.count("WATCHDOG=1") == pings_when_hung
        assert any("stalled" in line for line in notifier.sent)
        release.set()
        wait_for(lambda: notifier.sent.count("WATCHDOG=1") > pings_when_hung)
    finally:
        release.set()
        flags.stop.set()
        waiter.join(WAIT_S)
        daemon.stop()
    assert notifier.sent[0] == "READY=1"
    assert notifier.sent[-1] == "STOPPING=1"


def test_a_pass_reports_the_queue_depth_and_the_time_it_was_paced(tmp_path: Path) -> None:
    """Operators alert on rows waiting, not rows just handled; and see when pacing slows it."""
    runtime = FakeRuntime()

    def paced_pass() -> SweepResult:
        runtime.client.pending = 3  # rows arrived meanwhile: the gauge shows the count before
        runtime.client.totals = PacingTotals(paced_seconds=12.4, holds=1)
        return SweepResult()

    runtime.passes = [paced_pass]
    runtime.client.pending = 42
    notifier = RecordingNotifier()
    metrics = Metrics(enabled=False)
    flags = Flags()
    daemon = Daemon(
        Settings(state_dir=tmp_path, poll_interval=3600, workers=0),
        runtime,  # type: ignore[arg-type]
        flags,
        metrics=metrics,
        notifier=notifier,
    )
    daemon.start(StartupReport(options=()))
    try:
        wait_for(lambda: read_heartbeat(tmp_path) is not None)
    finally:
        flags.stop.set()
        daemon.stop()

    heartbeat = read_heartbeat(tmp_path)
    assert heartbeat is not None
    assert (heartbeat.pending, heartbeat.paced_seconds) == (42, pytest.approx(12.4))
    status = next(line for line in notifier.sent if "pending" in line)
    assert "42 pending" in status
    assert "paced 12 s by the rate limit (1 server hold(s))" in status
    text = metrics.render().decode()
    assert "nocodb_guard_pending_rows 42.0" in text
    assert "nocodb_guard_paced_seconds_total 12.4" in text
    assert "nocodb_guard_rate_limit_holds_total 1.0" in text


# --------------------------------------------------------------------------- signals
def test_a_first_sigterm_only_sets_the_stop_flag() -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    flags = Flags()
    try:
        flags.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGTERM)
        assert flags.stop.wait(WAIT_S)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


#: A process with a busy child that ignores SIGINT, as a face worker deep in a picture does.
BUSY_PARENT = """
import multiprocessing, signal, sys, time
from nocodb_guard.service.signals import Flags

def busy():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        time.sleep(0.1)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=busy)
    child.start()
    Flags().install_signal_handlers()
    print(child.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_ends_the_process_at_once_and_takes_its_workers_along(
    signum: int, tmp_path: Path
) -> None:
    script = tmp_path / "busy_parent.py"
    script.write_text(BUSY_PARENT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        parent.send_signal(signum)
        time.sleep(0.3)
        assert parent.poll() is None, "the first signal only asks for a stop"
        parent.send_signal(signum)
        assert parent.wait(timeout=10) == -signum
        wait_for(lambda: not _alive(child_pid))
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
