"""NocoDB 0.301.4+'s rate limiter, reproduced for the fault proxy (0.301.3 has none).

What NocoDB does (``packages/nocodb/src/ee/guards/``: ``DataApiLimiterGuard`` and
``MetaApiLimiterGuard`` on @nestjs/throttler with its Redis storage), reproduced here:

- the key is the throttler and the token (``xc-token``, or ``xc-auth`` for the GUI);
  requests without one are not counted, nor are file reads (``/dltemp/``, ``/download/``:
  no guard on them);
- a fixed window of ``ttl`` ms opens at a key's first hit; each request adds a hit;
- the hit that makes the count exceed ``limit`` starts a block of ``block`` ms, during
  which every request answers 429 with ``Retry-After`` (seconds left, rounded up); hits
  go on counting during the block, so a client that keeps knocking may find the window
  over its limit again the moment the block ends, and be blocked again;
- answers that pass carry ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``
  (``limit - hits``, at least 0) and ``X-RateLimit-Reset`` (seconds left in the window,
  rounded up), and ``X-RateLimit-Policy`` (the throttler's name). NocoDB's own 429 carries
  only ``Retry-After``; the proxy adds the three ``X-RateLimit-*`` too (``Remaining: 0``),
  as the issue describes NocoDB Cloud's answers: a client must cope with either.

Defaults are NocoDB's: data 5 per 1000 ms then 30 s (``NC_DATA_COUNT``, ``NC_DATA_API_TTL``,
``NC_DATA_BLOCK_DURATION``), meta 60 per minute then 30 s. Pure and clock-injectable.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

DATA_PATHS = re.compile(r"^/api/(v1/db/data|v1/db/public|v2/tables/[^/]+/records|v3/data)/?")
META_PATHS = re.compile(r"^/api/(v1/db/meta|v2/meta|v1/db/storage|v2/storage)/")


@dataclass(frozen=True)
class Throttler:
    """One of NocoDB's throttlers: ``limit`` hits per ``ttl_ms`` window, then ``block_ms``."""

    name: str
    limit: int
    ttl_ms: int
    block_ms: int


#: NocoDB's defaults (0.301.4+).
DATA = Throttler("data", limit=5, ttl_ms=1000, block_ms=30_000)
META = Throttler("meta", limit=60, ttl_ms=60_000, block_ms=30_000)


@dataclass(frozen=True)
class Verdict:
    """What the limiter says about one request: pass (with headers) or 429 (with headers)."""

    allowed: bool
    headers: dict[str, str]


@dataclass
class _Key:
    hits: int = 0
    window_ends: float = 0.0
    blocked_until: float = 0.0


@dataclass
class NocoLimiter:
    """Counts requests per throttler and token; thread-safe (the proxy is threaded)."""

    data: Throttler = DATA
    meta: Throttler = META
    clock: Callable[[], float] = time.monotonic
    blocks: int = 0
    """Blocks started (each one a 30 s outage for that token by default)."""
    rejected: int = 0
    """429 answers given."""
    _keys: dict[tuple[str, str], _Key] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def throttler_for(self, path: str) -> Throttler | None:
        if DATA_PATHS.match(path):
            return self.data
        if META_PATHS.match(path):
            return self.meta
        return None

    def check(self, path: str, headers: Mapping[str, str]) -> Verdict | None:
        """None when NocoDB would not count this request; else pass or block, with headers."""
        token = headers.get("xc-token") or headers.get("xc-auth")
        throttler = self.throttler_for(path)
        if not token or throttler is None:
            return None
        with self._lock:
            return self._increment(throttler, token)

    def _increment(self, throttler: Throttler, token: str) -> Verdict:
        now = self.clock()
        key = self._keys.setdefault((throttler.name, token), _Key())
        if now >= key.window_ends:  # the window key expired: the next hit opens a new one
            key.hits, key.window_ends = 0, now + throttler.ttl_ms / 1000
        key.hits += 1
        if now < key.blocked_until:
            return self._reject(throttler, key, now)
        if key.hits > throttler.limit:
            key.blocked_until = now + throttler.block_ms / 1000
            self.blocks += 1
            return self._reject(throttler, key, now)
        return Verdict(True, _rate_headers(throttler, key, now))

    def _reject(self, throttler: Throttler, key: _Key, now: float) -> Verdict:
        self.rejected += 1
        headers = _rate_headers(throttler, key, now)
        headers["Retry-After"] = str(math.ceil(key.blocked_until - now))
        return Verdict(False, headers)


def _rate_headers(throttler: Throttler, key: _Key, now: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(throttler.limit),
        "X-RateLimit-Remaining": str(max(0, throttler.limit - key.hits)),
        "X-RateLimit-Reset": str(math.ceil(key.window_ends - now)),
        "X-RateLimit-Policy": throttler.name,
    }
