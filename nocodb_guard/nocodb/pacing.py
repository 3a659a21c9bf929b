"""Client-side pacing: stay under NocoDB's rate limiter instead of walking into its blocks.

NocoDB 0.301.4+ (and NocoDB Cloud) count data API requests per token in a fixed window
(``NC_DATA_API_TTL`` 1000 ms, ``NC_DATA_COUNT`` 5) and answer the request after the fifth
with a **30 s block** (``NC_DATA_BLOCK_DURATION``) of 429s; the meta API allows 60 a minute.
One block costs a backlog 30 s; so the guard spaces its own requests (4 a second by
default, one budget per limiter of NocoDB), and listens to what the server says:

- ``X-RateLimit-Remaining: 0`` means the next request in this window would start a block:
  the budget is held for ``X-RateLimit-Reset`` seconds (NocoDB sends seconds left, rounded
  up, so waiting that long always reaches the next window);
- a 429 anyway (another client on the same token, a server configured lower) holds the
  budget for its ``Retry-After``, once, for every thread at the same time: no retry storm.

Spacing is by reserved slots (each caller takes the next free slot under a lock, then sleeps
outside it), so the download threads and the sweep share one budget fairly. The clock and
the sleep are injectable: the unit tests run on a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

#: Longest hold any header may impose; NocoDB's own block is 30 s.
MAX_HOLD_SECONDS = 120.0
#: Hold after a 429 without a usable ``Retry-After`` (NocoDB's default block length).
DEFAULT_BLOCK_SECONDS = 30.0
#: ``X-RateLimit-Reset`` above this is an epoch timestamp (some gateways), not seconds left.
EPOCH_THRESHOLD = 1_000_000_000.0


class Budget(Enum):
    """NocoDB's separate limiters: data API (per token) and meta API (per token)."""

    DATA = "data"
    META = "meta"


@dataclass(frozen=True)
class PacingTotals:
    """What pacing cost so far (monotonic totals, for metrics deltas and the status line)."""

    paced_seconds: float = 0.0
    """Seconds callers waited for a slot or a hold, summed over callers."""
    holds: int = 0
    """Times the server's headers or a 429 made a budget wait (not the spacing itself)."""

    def since(self, earlier: PacingTotals) -> PacingTotals:
        """What pacing cost between ``earlier`` and these totals (one pass)."""
        return PacingTotals(self.paced_seconds - earlier.paced_seconds, self.holds - earlier.holds)

    def describe(self) -> str:
        """For a status line: empty when pacing cost (next to) nothing."""
        if self.paced_seconds < 0.5 and not self.holds:
            return ""
        text = f"paced {self.paced_seconds:.0f} s by the rate limit"
        return text + (f" ({self.holds} server hold(s))" if self.holds else "")


class _Bucket:
    """One budget's state; only touched under the :class:`Pacer` lock."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_slot = 0.0
        self.hold_until = 0.0


class Pacer:
    """Thread-safe spacing per :class:`Budget`; a rate of 0 turns that budget's spacing off.

    Server holds (``Remaining: 0``, 429) apply even when spacing is off: they are the
    server's word, not a guess.
    """

    def __init__(
        self,
        rates: Mapping[Budget, float],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._buckets = {budget: _Bucket(rates.get(budget, 0.0)) for budget in Budget}
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paced = 0.0
        self._holds = 0

    def acquire(self, budget: Budget) -> float:
        """Wait for this budget's next slot (and any hold); returns the seconds waited."""
        with self._lock:
            bucket = self._buckets[budget]
            now = self._clock()
            slot = max(now, bucket.next_slot, bucket.hold_until)
            bucket.next_slot = slot + bucket.interval
            wait = slot - now
            self._paced += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def wait_for_hold(self, budget: Budget) -> float:
        """Wait out a hold without taking a slot (downloads: NocoDB does not count them)."""
        with self._lock:
            wait = max(0.0, self._buckets[budget].hold_until - self._clock())
            self._paced += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def observe(self, budget: Budget, headers: Mapping[str, str]) -> None:
        """Read ``X-RateLimit-Remaining``/``-Reset``: hold before the server would block."""
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        reset = _number(headers.get("X-RateLimit-Reset"))
        if remaining is None or remaining > 0 or reset is None:
            return
        if reset > EPOCH_THRESHOLD:
            reset -= time.time()
        self.hold(budget, reset)

    def hold(self, budget: Budget, seconds: float | None) -> None:
        """No request of this budget before ``seconds`` from now (a 429's ``Retry-After``)."""
        if seconds is None:
            seconds = DEFAULT_BLOCK_SECONDS
        seconds = min(max(seconds, 0.0), MAX_HOLD_SECONDS)
        with self._lock:
            bucket = self._buckets[budget]
            until = self._clock() + seconds
            if until > bucket.hold_until:
                bucket.hold_until = until
                self._holds += 1

    def totals(self) -> PacingTotals:
        with self._lock:
            return PacingTotals(paced_seconds=self._paced, holds=self._holds)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None
