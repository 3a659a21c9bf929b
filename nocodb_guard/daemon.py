"""The service: ``nocodb-guard run``.

One APScheduler job runs a sweep every ``poll_interval`` seconds (``max_instances=1`` and
``coalesce=True``: a slow sweep never overlaps itself and missed ticks collapse into one).
The main thread only waits for a stop flag; signal handlers only set that flag.

Whatever one tick meets (NocoDB down for an hour, a corrupt picture, a 429 storm) is
logged and the next tick tries again. Only a bad start (settings, references, token,
schema) exits, with the CLI's exit codes, so that ``Restart=on-failure`` does not spin on
a mistake only a person can fix... and does restart after a crash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from nocodb_guard.errors import AlreadyRunning, GuardError, NocoDBUnavailable, Stop
from nocodb_guard.health import write_heartbeat
from nocodb_guard.locking import sweep_lock
from nocodb_guard.metrics import Metrics
from nocodb_guard.notify import SystemdNotifier
from nocodb_guard.runtime import Runtime, build_runtime
from nocodb_guard.settings import Settings
from nocodb_guard.signals import Flags
from nocodb_guard.startup import StartupReport, check_startup
from nocodb_guard.sweep import SweepResult
from nocodb_guard.webhook import WebhookServer

log = structlog.get_logger("nocodb_guard.daemon")

STOP_BOUND_SECONDS = 60.0
"""How long a stop waits for the row in hand before leaving anyway (systemd: TimeoutStopSec)."""
STARTUP_RETRY_SECONDS = 10.0


class Daemon:
    """Owns the scheduler, the optional HTTP listeners and the tick."""

    def __init__(self, settings: Settings, runtime: Runtime, flags: Flags) -> None:
        self._settings = settings
        self._runtime = runtime
        self._flags = flags
        self._notifier = SystemdNotifier()
        self._metrics = Metrics(enabled=settings.metrics_port > 0)
        runtime.recorders.append(self._metrics)
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._webhook: WebhookServer | None = None
        self._last_ping = 0.0

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, startup: StartupReport) -> None:
        if self._settings.metrics_port:
            self._metrics.start_server(self._settings.metrics_host, self._settings.metrics_port)
        if self._settings.webhook_port:
            secret = self._settings.webhook_secret
            self._webhook = WebhookServer(
                self._settings.webhook_host,
                self._settings.webhook_port,
                secret.get_secret_value() if secret else "",
                self.trigger,
            )
            self._webhook.start()
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

    def wait(self) -> None:
        """Main thread: wait for a stop, pinging the watchdog only while ticks keep coming."""
        interval = self._notifier.watchdog_interval()
        while not self._flags.stop.wait(timeout=min(interval or 1.0, 1.0)):
            if self._flags.sweep_now.is_set():
                self._flags.sweep_now.clear()
                self._run_soon()

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
        """Webhook callback: sweep as soon as possible (polling stays the safety net)."""
        self._flags.sweep_now.set()

    def _run_soon(self) -> None:
        job = self._scheduler.get_job("sweep")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC) + timedelta(milliseconds=10))

    # --- the tick -------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._flags.stop.is_set():
            return
        self._flags.idle.clear()
        try:
            self._ping()
            self._sweep_once()
        finally:
            self._flags.idle.set()
            self._ping()

    def _sweep_once(self) -> None:
        started = time.monotonic()
        try:
            with sweep_lock(self._settings.state_dir):
                result = self._runtime.sweeper().run(
                    should_stop=self._flags.stop.is_set, on_outcome=lambda _: self._ping()
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
        self._tick_done(result, time.monotonic() - started)

    def _tick_done(self, result: SweepResult, seconds: float) -> None:
        self._metrics.observe_sweep(seconds, len(result.outcomes), ok=result.error is None)
        self._notifier.status(result.status_line())
        if result.error is None:
            write_heartbeat(self._settings.state_dir, _counts(result.summary()))

    def _tick_failed(self, exc: GuardError) -> None:
        log.error("tick_failed", error=str(exc), kind=type(exc).__name__)
        self._metrics.observe_error(type(exc).__name__)
        self._notifier.status(f"last tick failed: {type(exc).__name__}")

    def _ping(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= 1.0:
            self._notifier.watchdog()
            self._last_ping = now


def _counts(summary: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)}


def run_daemon(
    settings: Settings,
    runtime_factory: Callable[[Settings], Runtime] = build_runtime,
) -> int:
    """Start, serve until SIGTERM/SIGINT, stop cleanly. Returns the exit code."""
    flags = Flags()
    flags.install_signal_handlers()
    runtime = runtime_factory(settings)
    try:
        startup = _wait_for_startup(settings, runtime, flags)
    except BaseException:
        runtime.close()
        raise
    if startup is None:  # stopped before NocoDB ever answered
        runtime.close()
        return 0
    daemon = Daemon(settings, runtime, flags)
    daemon.start(startup)
    daemon.wait()
    return daemon.stop()


def _wait_for_startup(settings: Settings, runtime: Runtime, flags: Flags) -> StartupReport | None:
    """Settings and references must be right (else exit 2); NocoDB down is waited out."""
    log.info("daemon_starting", config=settings.public_summary())
    while True:
        try:
            return check_startup(settings, runtime)
        except NocoDBUnavailable as exc:
            log.warning("nocodb_unavailable_at_startup", error=str(exc))
            SystemdNotifier().status(f"waiting for NocoDB: {exc}")
            if flags.stop.wait(timeout=STARTUP_RETRY_SECONDS):
                return None
