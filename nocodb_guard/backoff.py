"""Rows whose picture could not be analysed (its worker hit ``picture_timeout`` or its memory
limit, or died) wait before they are tried again.

Such a picture is no fact about the upload, so its row is deferred, never deleted; but
trying it on every pass would hold a face worker for the whole time limit each time, and a
handful of them would hold the pool while new uploads wait. So each such row is skipped for
:data:`FIRST_WAIT`, doubling on every further failure up to :data:`LONGEST_WAIT`; a row that
is analysed (whatever the verdict) is forgotten. In memory only: a restart (or a one-shot
``sweep``) tries every row once more, which is what an operator who changed a limit wants.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FIRST_WAIT = 600.0
"""Ten minutes: long enough for a busy pool to drain, short enough for a loaded machine."""
LONGEST_WAIT = 6 * 3600.0


@dataclass(frozen=True)
class _Hold:
    failures: int
    until: float


class Backoff:
    """Row id -> when it may be tried again; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._holds: dict[int, _Hold] = {}

    def due(self, row_id: int) -> bool:
        """Whether the row may be tried now."""
        with self._lock:
            hold = self._holds.get(row_id)
            return hold is None or self._clock() >= hold.until

    def hold(self, row_id: int) -> float:
        """The row's picture could not be analysed again: returns the seconds it now waits."""
        with self._lock:
            failures = self._holds[row_id].failures + 1 if row_id in self._holds else 1
            wait = min(FIRST_WAIT * 2.0 ** (failures - 1), LONGEST_WAIT)
            self._holds[row_id] = _Hold(failures, self._clock() + wait)
            return wait

    def forget(self, row_id: int) -> None:
        with self._lock:
            self._holds.pop(row_id, None)
