"""Whether the daemon's tick loop is alive, for systemd's watchdog.

A hung daemon (a deadlock, I/O that never returns) must stop pinging the watchdog so that
systemd restarts it; a healthy one must never be killed, however slow NocoDB is. So
progress is signalled at the finest step the daemon has, and the stall bound only has to
cover the longest single step, worked out from each step's own limit:

- every request to NocoDB (API call or download, retries and failures included) is
  progress: the daemon's request observer says so (:func:`progress_observer`);
- every file the purge handles (removed and verified: up to four anonymous probes);
- every decided row: the main thread waits for the oldest row's pictures, which can
  queue behind the pictures of every row prefetched before them (twice the workers, each
  row up to ``max_attachments`` pictures), each bounded by ``picture_timeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nocodb_guard import attachments
from nocodb_guard.nocodb.transport import RequestObserver
from nocodb_guard.settings import Settings
from nocodb_guard.storage.base import PurgeStatus
from nocodb_guard.storage.purge import PurgeObserver
from nocodb_guard.sweep import PREFETCH_PER_WORKER

IDLE_SLACK_SECONDS = 60.0
"""How late the scheduler may start a tick before the loop counts as stuck."""
PROBES_PER_FILE = 4
"""A purged file is verified by fetching its path and its three thumbnails."""


def stall_bound(settings: Settings) -> float:
    """Seconds a healthy tick may go without a sign of progress: its longest single step.

    The longest of: one API call (its retry budget, then one last attempt's connect and
    read timeouts); one download (:func:`attachments.default_deadline` plus the read in
    progress then); one purged file's probes; plus the wait for the oldest row's pictures
    behind the prefetched ones.
    """
    call = settings.retry_seconds + settings.connect_timeout + settings.read_timeout
    download = (
        attachments.default_deadline(settings.connect_timeout, settings.read_timeout)
        + settings.read_timeout
    )
    # Each anonymous probe (storage.config: ``read_timeout``) may take it to connect and again
    # to read the answer's head.
    purged_file = PROBES_PER_FILE * 2 * settings.read_timeout
    queued_pictures = PREFETCH_PER_WORKER * settings.max_attachments
    return max(call, download, purged_file) + queued_pictures * settings.picture_timeout


class Liveness:
    """Whether the tick loop is alive; thread-safe, pure bookkeeping.

    Alive means: a tick is running and made progress (started, a request answered, a file
    purged, a row decided) within ``stall_seconds``; or no tick is running and the last one
    ended (or the loop started) within ``idle_seconds`` (the poll interval plus slack).
    """

    def __init__(
        self,
        stall_seconds: float,
        idle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stall = stall_seconds
        self._idle = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._running = False
        self._last = clock()

    @classmethod
    def of(cls, settings: Settings) -> Liveness:
        return cls(stall_bound(settings), settings.poll_interval + IDLE_SLACK_SECONDS)

    def tick_started(self) -> None:
        self._mark(running=True)

    def progress(self) -> None:
        self._mark(running=None)

    def tick_finished(self) -> None:
        self._mark(running=False)

    def _mark(self, running: bool | None) -> None:
        with self._lock:
            if running is not None:
                self._running = running
            self._last = self._clock()

    def alive(self) -> bool:
        with self._lock:
            quiet = self._clock() - self._last
            return quiet <= (self._stall if self._running else self._idle)


def progress_observer(observer: RequestObserver, liveness: Liveness) -> RequestObserver:
    """``observer``, and every request (answered or failed) counts as progress."""

    def observe(operation: str, outcome: str, seconds: float) -> None:
        liveness.progress()
        observer(operation, outcome, seconds)

    return observe


class PurgeProgress:
    """A purge observer that also counts each handled file as progress."""

    def __init__(self, observer: PurgeObserver, liveness: Liveness) -> None:
        self._observer = observer
        self._liveness = liveness

    def record_purge(self, status: PurgeStatus) -> None:
        self._liveness.progress()
        self._observer.record_purge(status)
