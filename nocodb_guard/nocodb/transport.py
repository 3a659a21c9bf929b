"""HTTP to NocoDB: session, token auth, retries, ``Retry-After`` and backoff.

The final answer becomes a result or one of our errors in :mod:`nocodb_guard.nocodb.responses`.

Every API request goes through :meth:`Transport.request` and every download through
:meth:`Transport.download` (each API attempt through ``_send_once``): the one place to pace,
observe or log traffic. Nothing here knows an API version's paths; the client passes them.

Retries (tenacity) live here and only here: connection errors, timeouts, 408, 425, 429
(honouring ``Retry-After``) and 5xx are retried with jittered exponential backoff for at most
``settings.retry_seconds``, then :class:`NocoDBUnavailable` (the row is deferred). 401/403 is
:class:`NocoDBAuthError` at once; 400/422 :class:`NocoDBRequestError` at once. Downloads are
not retried: a failed one defers its row.

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
from datetime import UTC, datetime
from typing import Any

import requests
import structlog
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from nocodb_guard import __version__, attachments
from nocodb_guard.errors import NocoDBUnavailable
from nocodb_guard.nocodb.responses import interpret
from nocodb_guard.settings import Settings

log = structlog.get_logger(__name__)

USER_AGENT = f"nocodb-guard/{__version__}"
TRANSIENT_STATUSES = frozenset({408, 425, 429})
#: Longest ``Retry-After`` honoured; NocoDB Cloud blocks for 30 s after a burst.
MAX_RETRY_AFTER = 120.0
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
    """One attempt failed in a way worth retrying; internal to the retry loop."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


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
    ) -> None:
        settings.token()  # fail now, with ConfigError, rather than on the first request
        self._settings = settings
        self._owns_session = session is None
        self._session = session if session is not None else build_session()
        self._observer = observer
        self._sleep = sleep
        self._auth = _TokenAuth(settings)
        self.base = settings.nocodb_url.rstrip("/")
        """``nocodb_url`` without a trailing slash; paths are appended to it."""
        self.origins = frozenset({attachments.origin_of(self.base)})
        """Where downloads may go without an allow-list entry: NocoDB's own origin."""

    def close(self) -> None:
        """Close the session if this transport created it."""
        if self._owns_session:
            self._session.close()

    def download(self, url: str, expected_size: int | None) -> bytes:
        """An attachment's bytes, without the token, through :func:`attachments.fetch`."""
        s = self._settings
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
    ) -> Any:
        """Send with retries, map the final status to our errors, return the parsed JSON."""
        budget = self._settings.retry_seconds
        retrying = Retrying(
            stop=stop_before_delay(budget) if retry else stop_after_attempt(1),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            reraise=True,
            sleep=self._sleep,
            before_sleep=self._log_retry(method, path),
        )
        started = time.monotonic()
        try:
            response = retrying(self._send_once, method, path, operation, params, body)
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

    def _send_once(
        self,
        method: str,
        path: str,
        operation: str,
        params: Mapping[str, str] | None,
        body: Any,
    ) -> requests.Response:
        """One attempt. Transient outcomes raise :class:`_Transient`; others are returned."""
        s = self._settings
        started = time.monotonic()
        failure: str | None = None
        try:
            response = self._session.request(
                method,
                self.base + path,
                params=params,
                json=body,
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
        if status in TRANSIENT_STATUSES or status >= 500:
            raise _Transient(
                f"HTTP {status}", retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        return response

    def _wait(self, state: RetryCallState) -> float:
        """``Retry-After`` when the server gave one, else jittered exponential backoff."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return backoff_seconds(state.attempt_number)

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


def backoff_seconds(attempt: int, base: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff with jitter, so several daemons do not retry in lockstep."""
    return min(cap, base * 2.0 ** max(attempt - 1, 0)) + random.uniform(0, base)  # noqa: S311
