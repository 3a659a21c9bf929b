"""Optional Prometheus metrics (off by default: ``metrics_port = 0``).

Every series lives in a private ``CollectorRegistry`` owned by one :class:`Metrics`, not in
prometheus-client's global registry, so two instances (tests, a one-shot sweep inside the
daemon's process) never collide. The daemon always builds one; with ``metrics_port = 0`` it
counts but never listens.

Label values come from closed sets only (``Verdict``, ``Reason``, :data:`NOCODB_ERROR_KINDS`):
nothing an uploader or NocoDB sends can become a label, which bounds cardinality and keeps
tokens, URLs and file names out of the scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import MetricsHandler, generate_latest

from nocodb_guard.errors import GuardError
from nocodb_guard.models import Reason, RowOutcome, Verdict
from nocodb_guard.nocodb.pacing import PacingTotals
from nocodb_guard.service.httpd import BoundedHTTPServer, Limits
from nocodb_guard.storage.base import PurgeStatus

NAMESPACE = "nocodb_guard"

#: Kinds of NocoDB request failure; anything else is counted as ``other``.
NOCODB_ERROR_KINDS = (
    "connection",  # refused, DNS, TLS
    "timeout",
    "rate_limited",  # 429
    "server_error",  # 5xx
    "auth",  # 401/403
    "not_found",  # 404 (row gone, table gone)
    "client_error",  # other 4xx
    "bad_response",  # unparseable JSON, unexpected shape
    "other",
)

SWEEP_OUTCOMES = ("ok", "failed")


def request_error_kind(operation: str, outcome: str) -> str | None:
    """The :data:`NOCODB_ERROR_KINDS` label of one NocoDB request, None when it succeeded.

    ``outcome`` is what :class:`nocodb_guard.nocodb.client.NocoDBClient` tells its observer: an
    HTTP status, ``"timeout"``, ``"error"`` (no answer), or ``"ok"`` for a download.
    """
    if outcome == "ok":
        return None
    if outcome == "timeout":
        return "timeout"
    if outcome == "error":  # a download's "error" may be a size cap or a bad body, too
        return "other" if operation == "attachment.download" else "connection"
    if not outcome.isdigit():
        return "other"
    status = int(outcome)
    if status < 400:
        return None
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    return "client_error"


#: Sweeps take from milliseconds (nothing pending) to minutes (a backlog of pictures).
SWEEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """The real thing: counters and gauges in a private registry, optionally served.

    ``enabled=False`` keeps counting (it is cheap) but :meth:`start_server` never listens,
    so the daemon can build one unconditionally.
    """

    _server: BoundedHTTPServer | None = None

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self.rows_decided = self._counter(
            "rows_decided", "Rows given a verdict, by verdict and reason.", "verdict", "reason"
        )
        self.sweeps = self._counter(
            "sweeps",
            "Sweeps run, by outcome (failed: NocoDB unavailable or an unexpected error).",
            "outcome",
            zeros=SWEEP_OUTCOMES,
        )
        self.sweep_duration = Histogram(
            "sweep_duration_seconds",
            "Wall time of one sweep over the pending rows.",
            buckets=SWEEP_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.nocodb_errors = self._counter(
            "nocodb_request_errors",
            "Failed NocoDB requests (each retry attempt counts), by kind.",
            "kind",
            zeros=NOCODB_ERROR_KINDS,
        )
        self.tick_errors = self._counter(
            "tick_errors",
            "Daemon ticks that failed as a whole, by error class (NocoDBUnavailable, ...).",
            "kind",
        )
        self.last_success = self._gauge(
            "last_success_timestamp_seconds", "Unix time of the last sweep that completed."
        )
        self.pending_rows = self._gauge(
            "pending_rows", "Rows waiting for moderation, counted at the start of the last sweep."
        )
        self.paced_seconds = self._counter(
            "paced_seconds",
            "Seconds NocoDB requests waited for the client-side rate limit or a server hold.",
        )
        self.rate_limit_holds = self._counter(
            "rate_limit_holds",
            "Times NocoDB said to wait (X-RateLimit-Remaining 0, or a 429's Retry-After).",
        )
        self.files_purged = self._counter(
            "stored_files_purge",
            "Stored files of deleted rows handled by the purge, by outcome (PurgeStatus).",
            "outcome",
            zeros=[status.value for status in PurgeStatus],
        )

    def _counter(
        self, name: str, documentation: str, *labels: str, zeros: Iterable[str] = ()
    ) -> Counter:
        """A counter; each of ``zeros`` (values of its one label) is exported at 0 from the
        start, so that ``rate()`` works before the first event."""
        counter = Counter(name, documentation, labels, namespace=NAMESPACE, registry=self.registry)
        for value in zeros:
            counter.labels(value)
        return counter

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, namespace=NAMESPACE, registry=self.registry)

    # --- recording ------------------------------------------------------------------------
    def record(self, outcome: RowOutcome) -> None:
        """The sweep's ``Recorder`` interface: one decided row."""
        self.record_decision(outcome.decision.verdict, outcome.decision.reason)

    def record_purge(self, status: PurgeStatus) -> None:
        """The purger's observer interface: one stored file handled."""
        self.files_purged.labels(outcome=PurgeStatus(status).value).inc()

    def record_decision(self, verdict: Verdict, reason: Reason) -> None:
        self.rows_decided.labels(verdict=Verdict(verdict).value, reason=Reason(reason).value).inc()

    def observe_error(self, kind: str) -> None:
        """A failed tick, labelled by the class name of our error (others: ``other``)."""
        self.tick_errors.labels(kind=kind if kind in _guard_error_names() else "other").inc()

    def record_nocodb_error(self, kind: str) -> None:
        self.nocodb_errors.labels(kind=kind if kind in NOCODB_ERROR_KINDS else "other").inc()

    def observe_request(self, operation: str, outcome: str, seconds: float) -> None:
        """The NocoDB client's ``observer`` hook: count the failed requests by kind."""
        kind = request_error_kind(operation, outcome)
        if kind is not None:
            self.record_nocodb_error(kind)

    def observe_pacing(self, pacing: PacingTotals) -> None:
        """What the rate limiter cost during one pass."""
        self.paced_seconds.inc(max(0.0, pacing.paced_seconds))
        self.rate_limit_holds.inc(max(0, pacing.holds))

    def observe_sweep(self, seconds: float, rows: int | None = None, ok: bool = True) -> None:
        """A finished sweep; ``rows``, when given, is the queue depth counted at its start."""
        self.sweep_duration.observe(max(0.0, seconds))
        self.sweeps.labels(outcome="ok" if ok else "failed").inc()
        if rows is not None:
            self.set_pending(rows)
        if ok:
            self.mark_success()

    def mark_success(self, timestamp: float | None = None) -> None:
        self.last_success.set(time.time() if timestamp is None else timestamp)

    def set_pending(self, count: int) -> None:
        self.pending_rows.set(max(0, count))

    def render(self) -> bytes:
        """The exposition text, as a scrape would see it (tests, debugging)."""
        return bytes(generate_latest(self.registry))

    # --- serving --------------------------------------------------------------------------
    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve ``/metrics`` (any path, in fact); returns the bound port (0 picks one).

        Loopback by default: the metrics say how busy the form is, nothing a stranger needs.
        Returns 0 without listening when the instance is disabled. The listener is the
        bounded one the webhook uses (requests carry no body, hence the zero body limit).
        """
        if not self.enabled:
            return 0
        if self._server is None:
            handler = MetricsHandler.factory(self.registry)
            self._server = BoundedHTTPServer(
                (host, port), handler, "nocodb-guard-metrics", Limits(max_body_bytes=0)
            ).start()
        return self._server.port

    def stop_server(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        self._server = None


def _guard_error_names() -> frozenset[str]:
    """Class names of every nocodb-guard error: the closed set of ``tick_errors`` labels."""
    names: set[str] = set()
    pending: list[type[BaseException]] = [GuardError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return frozenset(names)
