"""HTTP to NocoDB: session, token auth, retries, ``Retry-After`` and backoff.

The final answer becomes a result or one of our errors in :mod:`nocodb_guard.nocodb.responses`.

Every API request goes through :meth:`Transport.request` and every download through
:meth:`Transport.download` (each API attempt through ``_send_once``): the one place to pace,
observe or log traffic. Nothing here knows an API version's paths; the client passes them.

Retries (tenacity) live here and only here: connection errors, timeouts, 408, 425 and 5xx
are retried with jittered exponential backoff (or their ``Retry-After``) for at most
``settings.retry_seconds``, then :class:`NocoDBUnavailable` (the row is deferred). 401/403 is
:class:`NocoDBAuthError` at once; 400/422 :class:`NocoDBRequestError` at once. Downloads are
not retried: a failed one defers its row.

Pacing (:mod:`~nocodb_guard.nocodb.pacing`): every API attempt first takes a slot of its
budget (data or meta), and every answer's ``X-RateLimit-*`` headers are read. A 429 holds
the budget for its ``Retry-After`` (every thread waits it out together) and the request is
tried once more after that one wait; a second 429 gives up (deferred), so a block is never
met with a retry storm. Downloads take no slot (NocoDB's limiter does not count them: they
carry no token) but wait out a hold.

Secrets: the token is added to API requests only, by an auth object whose ``repr`` is redacted
(structlog renders frame locals in tracebacks); never to downloads, which go to hosts that must
not see it. Exception messages carry method, path and status, never the query, headers or a
requests exception's text (which embeds the URL, and signed links are bearer tokens).

Proxies: the session this module builds ignores the environment (``trust_env = False``):
``HTTP(S)_PROXY`` would route the token through a third party and make the private-address
check on attachment hosts meaningless, and ``~/.netrc`` could attach credentials to download
hosts. ``REQUESTS_CA_BUNDLE`` is still honoured, explicitly, for NocoDB behind a private CA.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import structlog
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from tenacity import RetryCallState, Retrying, retry_if_exception

from nocodb_guard import __version__, attachments
from nocodb_guard.errors import NocoDBUnavailable
from nocodb_guard.nocodb.pacing import DEFAULT_BLOCK_SECONDS, MAX_HOLD_SECONDS, Budget, Pacer
from nocodb_guard.nocodb.responses import interpret
from nocodb_guard.settings import Settings

log = structlog.get_logger(__name__)

USER_AGENT = f"nocodb-guard/{__version__}"
TRANSIENT_STATUSES = frozenset({408, 425, 429})
RATE_LIMITED = 429
#: Longest ``Retry-After`` honoured; NocoDB blocks for 30 s after a burst.
MAX_RETRY_AFTER = MAX_HOLD_SECONDS
#: Connections kept per host: the sweep downloads with a few threads.
POOL_SIZE = 8

#: ``observer(operation, outcome, seconds)``: a metrics hook; outcome is an HTTP status,
#: "timeout" or "error" (no answer); downloads report "ok" or "error".
RequestObserver = Callable[[str, str, float], None]


class _TokenAuth(AuthBase):
    """Adds ``xc-token`` at send time, so no frame of ours holds the token in a local."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["xc-token"] = self._settings.token()
        return request

    def __repr__(self) -> str:
        return "<xc-token auth (redacted)>"


class _Transient(Exception):
    """One attempt failed in a way worth retrying; internal to the retry loop.

    ``held`` marks a 429: the pacer already holds the budget for ``retry_after``, so the
    retry loop adds no wait of its own; ``final`` marks the second 429 of one request.
    """

    def __init__(
        self,
        cause: str,
        retry_after: float | None = None,
        *,
        held: bool = False,
        final: bool = False,
    ) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after
        self.held = held
        self.final = final


def build_session(pool_size: int = POOL_SIZE) -> requests.Session:
    """A session for NocoDB and downloads: no environment proxies/netrc, a sized pool, our UA."""
    session = requests.Session()
    session.trust_env = False
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), capped."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Transport:
    """One NocoDB server over HTTP: the client gives method, path, params and body."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        observer: RequestObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
    ) -> None:
        settings.token()  # fail now, with ConfigError, rather than on the first request
        self._settings = settings
        self._owns_session = session is None
        self._session = session if session is not None else build_session()
        self._observer = observer
        self._sleep = sleep
        self.pacer = pacer or Pacer(
            {Budget.DATA: settings.rate_limit, Budget.META: settings.meta_rate_limit},
            sleep=sleep,
        )
        """Shared by every request and download of this transport (and its threads)."""
        self._auth = _TokenAuth(settings)
        self.base = settings.nocodb_url.rstrip("/")
        """``nocodb_url`` without a trailing slash; paths are appended to it."""
        storage = (settings.s3.endpoint,) if settings.s3 is not None else ()
        self.origins = frozenset(attachments.origin_of(url) for url in (self.base, *storage))
        """Where downloads may go without an allow-list entry: NocoDB's own origin, and
        the S3 endpoint the operator configured NocoDB's storage on (its signed links)."""

    def close(self) -> None:
        """Close the session if this transport created it."""
        if self._owns_session:
            self._session.close()

    def download(self, url: str, expected_size: int | None) -> bytes:
        """An attachment's bytes, without the token, through :func:`attachments.fetch`."""
        s = self._settings
        self.pacer.wait_for_hold(Budget.DATA)
        started = time.monotonic()
        outcome = "error"
        try:
            data = attachments.fetch(
                self._session,
                url,
                allowed_origins=self.origins,
                allowed_hosts=s.allowed_hosts,
                max_bytes=s.max_download_bytes,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                expected_size=expected_size,
            )
            outcome = "ok"
            return data
        finally:
            self._observe("attachment.download", outcome, time.monotonic() - started)

    def request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        retry: bool = True,
        gone_on_404: bool = False,
        budget: Budget = Budget.DATA,
    ) -> Any:
        """Send with retries, map the final status to our errors, return the parsed JSON.

        ``budget`` names NocoDB's limiter the path belongs to (the client knows its paths).
        """
        retrying = Retrying(
            stop=self._give_up(retry),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Transient) and not exc.final),
            reraise=True,
            sleep=self._sleep,
            before_sleep=self._log_retry(method, path),
        )
        started = time.monotonic()
        attempt = _Attempt(method, path, operation, budget, params, body)
        try:
            response = retrying(self._send_once, attempt)
        except _Transient as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            cause = exc.cause
            if exc.retry_after is not None:
                cause += f", Retry-After {exc.retry_after:.0f} s"
            elapsed = time.monotonic() - started
            raise NocoDBUnavailable(
                f"{method} {path}: {cause} (gave up after {attempts} attempt(s) in {elapsed:.1f} s)"
            ) from None
        table = self._settings.table_id or ""
        return interpret(method, path, response, table, gone_on_404=gone_on_404)

    def _send_once(self, attempt: _Attempt) -> requests.Response:
        """One attempt, after its slot. Transient outcomes raise :class:`_Transient`."""
        s = self._settings
        method, path, operation = attempt.method, attempt.path, attempt.operation
        self.pacer.acquire(attempt.budget)
        started = time.monotonic()
        failure: str | None = None
        try:
            response = self._session.request(
                method,
                self.base + path,
                params=attempt.params,
                json=attempt.body,
                auth=self._auth,
                timeout=(s.connect_timeout, s.read_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # Raised below, outside this block: the requests exception (and its urllib3
            # context, whose frames hold the headers) must not ride along as __context__.
            failure = attachments.describe_request_error(exc)
        elapsed = time.monotonic() - started
        if failure is not None:
            self._observe(operation, "timeout" if "timeout" in failure else "error", elapsed)
            log.debug("nocodb.request", method=method, path=path, error=failure)
            raise _Transient(failure)
        status = response.status_code
        self._observe(operation, str(status), elapsed)
        log.debug(
            "nocodb.request", method=method, path=path, status=status, ms=round(elapsed * 1000)
        )
        self.pacer.observe(attempt.budget, response.headers)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == RATE_LIMITED:
            self.pacer.hold(attempt.budget, retry_after)
            final, attempt.rate_limited = attempt.rate_limited, True
            raise _Transient(f"HTTP {status}", retry_after, held=True, final=final)
        if status in TRANSIENT_STATUSES or status >= 500:
            raise _Transient(f"HTTP {status}", retry_after=retry_after)
        return response

    def _wait(self, state: RetryCallState) -> float:
        """``Retry-After`` when the server gave one, else jittered exponential backoff.

        Nothing for a 429: the pacer holds its budget, and the next attempt waits there.
        """
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.held:
            return 0.0
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return backoff_seconds(state.attempt_number)

    def _give_up(self, retry: bool) -> Callable[[RetryCallState], bool]:
        """Stop when the next wait (a 429's hold included) would pass ``retry_seconds``."""
        budget = self._settings.retry_seconds

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome is not None else None
            hold = 0.0
            if isinstance(exc, _Transient) and exc.held:
                hold = DEFAULT_BLOCK_SECONDS if exc.retry_after is None else exc.retry_after
            elapsed = state.seconds_since_start or 0.0
            return not retry or elapsed + state.upcoming_sleep + hold >= budget

        return stop

    @staticmethod
    def _log_retry(method: str, path: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.info(
                "nocodb.retry",
                method=method,
                path=path,
                cause=exc.cause if isinstance(exc, _Transient) else "?",
                attempt=state.attempt_number,
                wait=round(state.upcoming_sleep, 2),
            )

        return before_sleep

    def _observe(self, operation: str, outcome: str, seconds: float) -> None:
        if self._observer is not None:
            self._observer(operation, outcome, seconds)


@dataclass
class _Attempt:
    """One request as the retry loop sees it, and whether it already met a 429."""

    method: str
    path: str
    operation: str
    budget: Budget
    params: Mapping[str, str] | None
    body: Any
    rate_limited: bool = False


def backoff_seconds(attempt: int, base: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff with jitter, so several daemons do not retry in lockstep."""
    return min(cap, base * 2.0 ** max(attempt - 1, 0)) + random.uniform(0, base)  # noqa: S311
