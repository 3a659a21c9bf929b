"""The service: ``nocodb-guard run``.

One APScheduler job runs a sweep every ``poll_interval`` seconds (``max_instances=1`` and
``coalesce=True``: a slow sweep never overlaps itself and missed ticks collapse into one).
The main thread only waits for a stop flag (signal handlers only set it), starts a pass
at once when the webhook asked for one, and pings systemd's watchdog while the ticks are
alive (:mod:`~nocodb_guard.service.liveness`): idle between ticks is alive, a tick without
progress for longer than its stall bound is hung, and then the pings stop so that systemd
restarts us.

Whatever one tick meets (NocoDB down for an hour, a corrupt picture, a 429 storm) is
logged and the next tick tries again. Only a bad start (settings, references, token,
schema) exits, with the CLI's exit codes, so that ``Restart=on-failure`` does not spin on
a mistake only a person can fix... and does restart after a crash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from nocodb_guard.errors import (
    AlreadyRunning,
    ConfigError,
    GuardError,
    NocoDBRequestError,
    NocoDBUnavailable,
    Stop,
)
from nocodb_guard.nocodb.pacing import PacingTotals
from nocodb_guard.report import SweepResult
from nocodb_guard.runtime import Runtime, build_runtime
from nocodb_guard.service.health import write_heartbeat
from nocodb_guard.service.httpd import listening
from nocodb_guard.service.liveness import (
    Liveness,
    PurgeProgress,
    progress_observer,
    stall_bound,
)
from nocodb_guard.service.locking import check_state_dir, sweep_lock
from nocodb_guard.service.metrics import Metrics
from nocodb_guard.service.notify import SystemdNotifier
from nocodb_guard.service.signals import Flags
from nocodb_guard.service.webhook import WebhookServer
from nocodb_guard.settings import Settings
from nocodb_guard.startup import StartupReport, check_startup

log = structlog.get_logger("nocodb_guard.service.daemon")

STOP_BOUND_SECONDS = 60.0
"""How long a stop waits for the row in hand before leaving anyway (systemd: TimeoutStopSec)."""
STARTUP_RETRY_SECONDS = 10.0


class Daemon:
    """Owns the scheduler, the optional HTTP listeners and the tick."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        flags: Flags,
        metrics: Metrics | None = None,
        notifier: SystemdNotifier | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self._flags = flags
        self._notifier = notifier or SystemdNotifier()
        self._metrics = metrics or Metrics(enabled=settings.metrics_port > 0)
        runtime.recorders.append(self._metrics)
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._webhook: WebhookServer | None = None
        self._liveness = liveness or Liveness.of(settings)
        if runtime.purger is not None:
            runtime.purger.observer = PurgeProgress(self._metrics, self._liveness)
        self._stalled = False
        self._pacing = PacingTotals()

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, startup: StartupReport) -> None:
        self._listen()
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=self._settings.poll_interval,
            id="sweep",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self._settings.poll_interval)),
            next_run_time=datetime.now(UTC),
        )
        self._flags.idle.set()
        self._scheduler.start()
        self._notifier.ready()
        self._notifier.status(f"ready: {startup.summary}")
        log.info("daemon_ready", **startup.as_log())

    def _listen(self) -> None:
        """Open the optional listeners; a port that is taken is a settings error (exit 2)."""
        settings = self._settings
        if settings.metrics_port:
            with listening("metrics_port", settings.metrics_host, settings.metrics_port):
                self._metrics.start_server(settings.metrics_host, settings.metrics_port)
        if settings.webhook_port:
            secret = settings.webhook_secret
            self._webhook = WebhookServer(
                settings.webhook_host,
                settings.webhook_port,
                secret.get_secret_value() if secret else "",
                self.trigger,
            )
            with listening("webhook_port", settings.webhook_host, settings.webhook_port):
                self._webhook.start()

    def wait(self) -> None:
        """Main thread: wait for a stop, pinging the watchdog only while ticks are alive."""
        interval = self._notifier.watchdog_interval()
        period = min(interval / 2, 1.0) if interval else 1.0
        while not self._flags.stop.wait(timeout=period):
            if self._flags.sweep_now.is_set() and self._flags.idle.is_set():
                self._run_soon()  # a hook the running tick could not take any more
            self._watchdog()

    def _watchdog(self) -> None:
        alive = self._liveness.alive() and self._scheduler.running
        if alive:
            self._notifier.watchdog()
        elif not self._stalled:
            log.error("tick_stalled", stall_bound_seconds=stall_bound(self._settings))
            self._notifier.status("tick loop stalled: watchdog pings stopped")
        self._stalled = not alive

    def stop(self) -> int:
        log.info("daemon_stopping")
        self._notifier.stopping()
        self._scheduler.shutdown(wait=False)
        if self._webhook is not None:
            self._webhook.stop()
        if not self._flags.idle.wait(timeout=STOP_BOUND_SECONDS):
            log.error("stop_timeout", seconds=STOP_BOUND_SECONDS)
            os._exit(1)
        self._metrics.stop_server()
        self._runtime.close()
        log.info("daemon_stopped")
        return 0

    def trigger(self) -> None:
        """Webhook callback: sweep as soon as possible (polling stays the safety net).

        A hook that arrives during a pass may concern a row that pass already listed past:
        the flag stays set and the running tick sweeps once more when it is done.
        """
        self._flags.sweep_now.set()
        self._run_soon()

    def _run_soon(self) -> None:
        if self._flags.stop.is_set():
            return
        job = self._scheduler.get_job("sweep")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC) + timedelta(milliseconds=10))

    # --- the tick -------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._flags.stop.is_set():
            return
        self._flags.idle.clear()
        self._liveness.tick_started()
        try:
            while True:
                self._flags.sweep_now.clear()  # this pass lists every row inserted so far
                self._sweep_once()
                if self._flags.stop.is_set() or not self._flags.sweep_now.is_set():
                    break
                log.info("sweep_again", reason="webhook during the pass")
        finally:
            self._liveness.tick_finished()
            self._flags.idle.set()

    def _sweep_once(self) -> None:
        started = time.monotonic()
        try:
            with sweep_lock(self._settings.state_dir):
                pending = self._count_pending()
                result = self._runtime.sweeper().run(
                    should_stop=self._flags.stop.is_set,
                    on_outcome=lambda _: self._liveness.progress(),
                )
        except AlreadyRunning as exc:
            log.warning("tick_skipped", reason=str(exc))
            return
        except (NocoDBUnavailable, Stop) as exc:
            self._tick_failed(exc)
            return
        except GuardError as exc:
            self._tick_failed(exc)
            return
        except Exception as exc:  # the tick boundary: a bug must not end the service
            self._tick_crashed(exc)
            return
        self._tick_done(result, pending, time.monotonic() - started)

    def _count_pending(self) -> int | None:
        """The queue depth at the start of the pass: one count request, paced like the rest.

        A count that fails must not stop moderation (it is only a gauge): the pass that
        follows meets, and handles, whatever made it fail.
        """
        try:
            return self._runtime.client.count_pending()
        except (NocoDBUnavailable, NocoDBRequestError) as exc:
            log.warning("pending_count_failed", error=str(exc))
            return None

    def _pacing_of_pass(self) -> PacingTotals:
        """What the rate limit cost since the last tick; counted in the metrics."""
        totals = self._runtime.client.pacing()
        delta, self._pacing = totals.since(self._pacing), totals
        self._metrics.observe_pacing(delta)
        return delta

    def _status(self, text: str, pending: int | None = None) -> PacingTotals:
        """sd_notify STATUS: the outcome, the queue depth and whether the pass was paced."""
        paced = self._pacing_of_pass()
        parts = (text, "" if pending is None else f"{pending} pending", paced.describe())
        self._notifier.status("; ".join(part for part in parts if part))
        return paced

    def _tick_done(self, result: SweepResult, pending: int | None, seconds: float) -> None:
        self._metrics.observe_sweep(seconds, pending, ok=result.error is None)
        paced = self._status(result.status_line(), pending)
        if result.error is not None:
            return
        problem = result.audit_error and f"audit unwritable ({result.audit_error}): rows deferred"
        try:
            write_heartbeat(
                self._settings.state_dir,
                _counts(result.summary()),
                pending=pending,
                paced_seconds=paced.paced_seconds,
                problem=problem,
            )
        except OSError as exc:  # a full disk: `health` sees it by the free space
            log.error("heartbeat_unwritable", error=str(exc))

    def _tick_failed(self, exc: GuardError) -> None:
        log.error("tick_failed", error=str(exc), kind=type(exc).__name__)
        self._metrics.observe_error(type(exc).__name__)
        self._status(f"last tick failed: {type(exc).__name__}")

    def _tick_crashed(self, exc: Exception) -> None:
        """Log with the traceback; a dead face worker pool is rebuilt for the next tick."""
        log.error("tick_failed", error=repr(exc), kind=type(exc).__name__, exc_info=True)
        self._metrics.observe_error(type(exc).__name__)
        self._status(f"last tick failed: {type(exc).__name__}")
        if isinstance(exc, BrokenExecutor):
            self._runtime.analyzer.restart()
            log.warning("face_workers_restarted")


def _counts(summary: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)}


def run_daemon(
    settings: Settings,
    runtime_factory: Callable[[Settings], Runtime] | None = None,
) -> int:
    """Start, serve until SIGTERM/SIGINT, stop cleanly. Returns the exit code."""
    check_state_dir(settings.state_dir)
    flags = Flags()
    flags.install_signal_handlers()
    metrics = Metrics(enabled=settings.metrics_port > 0)
    liveness = Liveness.of(settings)
    factory = runtime_factory or partial(
        build_runtime,
        observer=progress_observer(metrics.observe_request, liveness),
        sleep=stoppable_sleep(flags),
    )
    runtime = factory(settings)
    try:
        startup = _wait_for_startup(settings, runtime, flags)
    except BaseException:
        runtime.close()
        raise
    if startup is None:  # stopped before NocoDB ever answered
        runtime.close()
        return 0
    daemon = Daemon(settings, runtime, flags, metrics, liveness=liveness)
    try:
        daemon.start(startup)
    except ConfigError:
        metrics.stop_server()
        runtime.close()
        raise
    daemon.wait()
    return daemon.stop()


def stoppable_sleep(flags: Flags) -> Callable[[float], None]:
    """The NocoDB client's pause between retries, cut short by a stop.

    A stop abandons the retries (the row in hand stays untouched, deferred), so a shutdown
    while NocoDB is down takes one request timeout at most, not the whole retry budget.
    """

    def sleep(seconds: float) -> None:
        if flags.stop.wait(timeout=seconds):
            raise NocoDBUnavailable("stopping: retries abandoned")

    return sleep


def _wait_for_startup(settings: Settings, runtime: Runtime, flags: Flags) -> StartupReport | None:
    """Settings and references must be right (else exit 2); NocoDB down is waited out."""
    log.info("daemon_starting", config=settings.public_summary())
    while True:
        try:
            report = check_startup(settings, runtime)
            runtime.references.release_engine()  # the workers judge; main needs no models
            return report
        except NocoDBUnavailable as exc:
            log.warning("nocodb_unavailable_at_startup", error=str(exc))
            SystemdNotifier().status(f"waiting for NocoDB: {exc}")
            if flags.stop.wait(timeout=STARTUP_RETRY_SECONDS):
                return None
