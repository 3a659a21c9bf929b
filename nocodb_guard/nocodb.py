"""The NocoDB client: the only module that knows NocoDB's URLs and JSON.

Facts it relies on (measured on NocoDB 0.301.3, see ``../shared/NOCODB.md``):

- listing pages by ``Id > last seen`` with offset 0: an offset at or past the end is a 422,
  and rows that get approved while we page would shift any offset anyway;
- ``signedPath`` download links expire (2 h by default): a 404 on one is answered by
  re-reading the row once for a fresh link;
- a DELETE of a missing record is a 404 ``ERR_RECORD_NOT_FOUND``: for a rejection that is
  "already done", so deleting is idempotent and safe to retry.

Retries (tenacity) live here and only here: connection errors, timeouts, 408, 429 (honouring
``Retry-After``) and 5xx are retried with jittered exponential backoff for at most
``settings.retry_seconds``, then :class:`NocoDBUnavailable` (the row is deferred). 401/403 is
:class:`NocoDBAuthError` at once; 400/422 :class:`NocoDBRequestError` at once.

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
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
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
from nocodb_guard.errors import (
    AttachmentMissing,
    AttachmentNotFound,
    ConfigError,
    NocoDBAuthError,
    NocoDBRequestError,
    NocoDBUnavailable,
    RowGone,
    SchemaError,
    UrlNotAllowed,
)
from nocodb_guard.models import Action, Attachment, Row
from nocodb_guard.settings import Settings

log = structlog.get_logger(__name__)

ID_FIELD = "Id"
USER_AGENT = f"nocodb-guard/{__version__}"
#: Characters that would break NocoDB's ``where=(field,op,value)`` and ``fields=a,b`` syntax,
#: which has no quoting for field names (spaces are fine: requests percent-encodes them).
FORBIDDEN_FIELD_CHARS = frozenset("(),~")
TRANSIENT_STATUSES = frozenset({408, 425, 429})
#: Longest ``Retry-After`` honoured; NocoDB Cloud blocks for 30 s after a burst.
MAX_RETRY_AFTER = 120.0
#: Connections kept per host: the sweep downloads with a few threads.
POOL_SIZE = 8
REASON_FIELD_TYPES = frozenset({"LongText", "SingleLineText"})
UNREADABLE_ENTRY_TITLE = "(unreadable attachment entry)"

#: ``observer(operation, outcome, seconds)``: a metrics hook; outcome is an HTTP status,
#: "timeout" or "error" (no answer); downloads report "ok" or "error".
RequestObserver = Callable[[str, str, float], None]


@dataclass(frozen=True)
class TableSchema:
    """What the start-up check needs to know about the table: column types and select options."""

    table_id: str
    title: str
    columns: dict[str, str] = field(default_factory=dict)
    """Column title -> NocoDB ``uidt`` (``SingleSelect``, ``Attachment``, ...)."""
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Column title -> its select options, for select columns."""


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


class NocoDBClient:
    """Talks to one NocoDB table with an API token; see the module docstring for the rules."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        observer: RequestObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        settings.token()  # fail now, with ConfigError, rather than on the first request
        self._table = settings.require_table()
        _check_field_names(settings)
        self._settings = settings
        self._owns_session = session is None
        self._session = session if session is not None else build_session()
        self._observer = observer
        self._sleep = sleep
        self._auth = _TokenAuth(settings)
        self._base = settings.nocodb_url.rstrip("/")
        self._origins = frozenset({attachments.origin_of(self._base)})

    def __repr__(self) -> str:
        return f"<NocoDBClient {self._base} table={self._table}>"

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> NocoDBClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- paths -------------------------------------------------------------------------
    @property
    def _records_path(self) -> str:
        return f"/api/v2/tables/{self._table}/records"

    def _pending_where(self, after_id: int | None = None, status: str | None = None) -> str:
        """Blank status (pending), or rows whose status equals ``status`` (re-checks)."""
        field = self._settings.field_status
        where = f"({field},blank)" if status is None else f"({field},eq,{_where_value(status)})"
        if after_id is not None:
            where += f"~and({ID_FIELD},gt,{int(after_id)})"
        return where

    def _fields_param(self) -> str:
        s = self._settings
        return ",".join((ID_FIELD, s.field_politician, s.field_photo, s.field_status))

    # --- reading ---------------------------------------------------------------------------
    def list_pending_page(self, after_id: int = 0, page_size: int | None = None) -> list[Row]:
        """Pending rows (blank status) with ``Id > after_id``, by ascending Id."""
        rows, _, _ = self._list_page(after_id, page_size or self._settings.page_size)
        return rows

    def iter_pending(self, limit: int | None = None) -> Iterator[Row]:
        """Every pending row, page by page (``Id > last seen``), at most ``limit`` of them."""
        return self.iter_rows(limit=limit)

    def iter_approved(self, limit: int | None = None) -> Iterator[Row]:
        """Rows already approved (``sweep --recheck-approved``)."""
        return self.iter_rows(limit=limit, status=self._settings.status_approved)

    def iter_rows(self, *, limit: int | None = None, status: str | None = None) -> Iterator[Row]:
        """Rows with blank (or the given) status, by ascending Id, at most ``limit``."""
        after, yielded = 0, 0
        while limit is None or yielded < limit:
            size = self._settings.page_size
            if limit is not None:
                size = min(size, limit - yielded)
            rows, raw_count, last_id = self._list_page(after, size, status)
            for row in rows:
                yield row
                yielded += 1
            if raw_count < size:
                return
            if last_id is None or last_id <= after:
                log.warning("nocodb.paging_stalled", after_id=after)
                return
            after = last_id

    def _list_page(
        self, after_id: int, size: int, status: str | None = None
    ) -> tuple[list[Row], int, int | None]:
        """(parsed rows, entries NocoDB returned, highest Id seen) for one page."""
        params = {
            "where": self._pending_where(after_id, status),
            "sort": ID_FIELD,
            "limit": str(size),
            "offset": "0",
            "fields": self._fields_param(),
        }
        data = self._request("GET", self._records_path, "records.list", params=params)
        items = data.get("list") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise NocoDBRequestError(f"GET {self._records_path}: answer has no 'list'")
        rows = [row for row in (self._row_or_none(item) for item in items) if row is not None]
        last_id = max((row.id for row in rows), default=None)
        return rows, len(items), last_id

    def _row_or_none(self, item: Any) -> Row | None:
        row = parse_row(item, self._settings)
        if row is None:
            log.warning("nocodb.row_unreadable", reason="no integer Id")
        return row

    def count_pending(self) -> int:
        """How many rows wait for moderation (for status output and metrics)."""
        data = self._request(
            "GET",
            f"{self._records_path}/count",
            "records.count",
            params={"where": self._pending_where()},
        )
        count = data.get("count") if isinstance(data, dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            raise NocoDBRequestError(f"GET {self._records_path}/count: answer has no 'count'")
        return count

    def get_row(self, row_id: int) -> Row:
        """One row as it is now; :class:`RowGone` when it was deleted."""
        path = f"{self._records_path}/{int(row_id)}"
        data = self._request(
            "GET", path, "records.get", params={"fields": self._fields_param()}, gone_on_404=True
        )
        row = parse_row(data, self._settings)
        if row is None:  # some versions answer 200 {} for a missing record
            raise RowGone(f"row {row_id} no longer exists")
        return row

    # --- attachments ---------------------------------------------------------------------
    def attachment_url(self, attachment: Attachment) -> str:
        """Where to fetch it: ``signedPath`` on the NocoDB origin, else ``signedUrl``/``url``.

        ``path`` is never used: it fails under ``NC_SECURE_ATTACHMENTS``. The result has
        passed the origin/allow-list check (the DNS half runs in :func:`attachments.fetch`).
        """
        if attachment.signed_path:
            url = f"{self._base}/{attachment.signed_path.lstrip('/')}"
        elif attachment.signed_url or attachment.url:
            url = attachment.signed_url or attachment.url or ""
        else:
            raise UrlNotAllowed(
                "attachment has no signedPath or url (path alone is not used: it fails "
                "when NocoDB runs with NC_SECURE_ATTACHMENTS)"
            )
        attachments.check_origin(
            url, allowed_origins=self._origins, allowed_hosts=self._settings.allowed_hosts
        )
        return url

    def download(self, attachment: Attachment, row_id: int) -> bytes:
        """The attachment's bytes; an expired link is refreshed once by re-reading the row.

        A file that still answers 404 with a fresh link raises :class:`AttachmentMissing`
        (a :class:`DownloadFailed`): the file is gone on NocoDB's side. That is not the
        uploader's doing, so it must never lead to a deletion; the row is deferred and the
        message tells the operator where to look.
        """
        try:
            return self._fetch(attachment)
        except AttachmentNotFound as exc:
            first_status = exc.status
        log.info("nocodb.attachment_link_refresh", row_id=row_id, status=first_status)
        fresh = find_same_attachment(attachment, self.get_row(row_id).attachments)
        if fresh is None:
            raise AttachmentMissing(
                f"row {row_id}: the file is no longer in the row (edited since it was listed)"
            )
        try:
            return self._fetch(fresh)
        except AttachmentNotFound as exc:
            second_status = exc.status
        raise AttachmentMissing(
            f"row {row_id}: a file answers HTTP {second_status} even with a freshly signed "
            "link: it is missing on NocoDB's side (check NocoDB's upload storage)"
        )

    def _fetch(self, attachment: Attachment) -> bytes:
        url = self.attachment_url(attachment)
        s = self._settings
        started = time.monotonic()
        outcome = "error"
        try:
            data = attachments.fetch(
                self._session,
                url,
                allowed_origins=self._origins,
                allowed_hosts=s.allowed_hosts,
                max_bytes=s.max_download_bytes,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                expected_size=attachment.size,
            )
            outcome = "ok"
            return data
        finally:
            self._observe("attachment.download", outcome, time.monotonic() - started)

    # --- acting ------------------------------------------------------------------------------
    def approve(self, row_id: int, reason_text: str) -> Action:
        """Tag the row approved (and explain why); :class:`RowGone` if it vanished."""
        self._patch(row_id, self._settings.status_approved, reason_text)
        return Action.APPROVED

    def reject(self, row_id: int, reason_text: str) -> Action:
        """Delete the row, or tag it rejected (``reject_action = "tag"``).

        A row that is already gone counts as done (``"already_gone"``): the goal, the row not
        being shown, holds, and a retried DELETE whose first try succeeded must not fail.
        """
        try:
            if self._settings.reject_action == "tag":
                self._patch(row_id, self._settings.status_rejected, reason_text)
                return Action.TAGGED_REJECTED
            self._request(
                "DELETE", self._records_path, "records.delete", body=[{ID_FIELD: int(row_id)}]
            )
        except RowGone:
            return Action.ALREADY_GONE
        return Action.DELETED

    def _patch(self, row_id: int, status: str, reason_text: str) -> None:
        record: dict[str, Any] = {ID_FIELD: int(row_id), self._settings.field_status: status}
        if self._settings.field_reason:
            record[self._settings.field_reason] = reason_text
        self._request("PATCH", self._records_path, "records.update", body=[record])

    # --- schema and health ----------------------------------------------------------------
    def table_schema(self) -> TableSchema:
        """Column titles, types and select options of the table."""
        path = f"/api/v2/meta/tables/{self._table}"
        data = self._request("GET", path, "meta.table")
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise NocoDBRequestError(f"GET {path}: answer has no 'columns'")
        return parse_schema(self._table, data)

    def politician_options(self) -> list[str]:
        """The politician select's options, read from NocoDB."""
        return politician_options(self.table_schema(), self._settings.field_politician)

    def ping(self) -> float:
        """One cheap authenticated call, no retries; returns its duration in seconds.

        Proves the URL, the token and the table id at once.
        """
        started = time.monotonic()
        self._request(
            "GET",
            self._records_path,
            "ping",
            params={"limit": "1", "fields": ID_FIELD},
            retry=False,
        )
        return time.monotonic() - started

    # --- HTTP -----------------------------------------------------------------------------------
    def _request(
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
        return _result(method, path, response, self._table, gone_on_404=gone_on_404)

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
                self._base + path,
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


# --- responses ------------------------------------------------------------------------------
def _result(
    method: str, path: str, response: requests.Response, table: str, *, gone_on_404: bool
) -> Any:
    """The parsed body of a 2xx; every other status becomes the error the caller must see."""
    status = response.status_code
    if 200 <= status < 300:
        return _json_body(method, path, response)
    code, message = _error_info(response)
    where = f"{method} {path}: HTTP {status}" + (f" {code}" if code else "")
    if status in (401, 403):
        raise NocoDBAuthError(f"{where}: NocoDB rejected the API token (check nocodb_token)")
    if status == 404:
        _raise_not_found(where, code, message, table, gone_on_404)
    if 300 <= status < 400:
        raise NocoDBRequestError(f"{where}: unexpected redirect (check nocodb_url)")
    raise NocoDBRequestError(f"{where}: {message}" if message else where)


def _raise_not_found(where: str, code: str, message: str, table: str, gone_on_404: bool) -> None:
    upper = code.upper()
    if "TABLE" in upper or "BASE" in upper:
        raise NocoDBAuthError(
            f"{where}: table {table!r} not found (check table_id, and that the token's "
            "user can see its base)"
        )
    if "RECORD" in upper or "ROW" in upper or gone_on_404:
        raise RowGone(f"{where}: the row no longer exists")
    if "FIELD" in upper or "COLUMN" in upper:
        raise SchemaError(f"{where}: {message or 'a configured field is missing'}")
    if not code:
        # Not NocoDB's own answer: it is still starting (its API routes are mounted after
        # the socket opens) or a proxy in front answered. Transient: try again later.
        raise NocoDBUnavailable(f"{where}: not found, without a NocoDB error (starting up?)")
    raise NocoDBRequestError(f"{where}: {message}" if message else where)


def _json_body(method: str, path: str, response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise NocoDBUnavailable(f"{method} {path}: answer is not JSON (a proxy page?)") from None


def _error_info(response: requests.Response) -> tuple[str, str]:
    """(error code, message) from NocoDB's error JSON, cleaned and shortened; may be empty."""
    try:
        data = response.json()
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    code = data.get("error")
    message = data.get("message") or data.get("msg")
    return _clean(code if isinstance(code, str) else ""), _clean(
        message if isinstance(message, str) else ""
    )


def _clean(text: str, limit: int = 300) -> str:
    printable = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return printable[:limit]


# --- parsing ----------------------------------------------------------------------------------
def parse_row(item: Any, settings: Settings) -> Row | None:
    """A listed/read record as a :class:`Row`; None when it has no usable integer Id."""
    if not isinstance(item, dict):
        return None
    row_id = _int_or_none(item.get(ID_FIELD))
    if row_id is None:
        return None
    return Row(
        id=row_id,
        politician=_text_or_none(item.get(settings.field_politician)),
        attachments=parse_attachments(item.get(settings.field_photo)),
        status=_text_or_none(item.get(settings.field_status)),
    )


def parse_attachments(cell: Any) -> tuple[Attachment, ...]:
    """An attachment cell as :class:`Attachment` values.

    Tolerates what versions and edits produce: null or empty (no files), a JSON string
    instead of a list, a single object. An entry that cannot be read is kept as a
    placeholder without any link rather than dropped: dropping it could turn a row into
    "no attachment", a deletion, over a format this code does not know. A placeholder
    cannot be downloaded (``UrlNotAllowed``), so such a row is deferred instead.
    """
    if cell is None or cell == "":
        return ()
    if isinstance(cell, str):
        try:
            cell = json.loads(cell)
        except ValueError:
            return (Attachment(title=UNREADABLE_ENTRY_TITLE),)
        if cell is None:
            return ()
    if isinstance(cell, dict):
        cell = [cell]
    if not isinstance(cell, list):
        return (Attachment(title=UNREADABLE_ENTRY_TITLE),)
    return tuple(parse_attachment_entry(entry) for entry in cell)


def parse_attachment_entry(entry: Any) -> Attachment:
    """One entry of the cell; anything unexpected yields a link-less placeholder."""
    if not isinstance(entry, dict):
        return Attachment(title=UNREADABLE_ENTRY_TITLE)
    path = _text_or_none(entry.get("path"))
    title = _text_or_none(entry.get("title")) or (path.rsplit("/", 1)[-1] if path else None)
    entry_id = entry.get("id")
    return Attachment(
        title=title or UNREADABLE_ENTRY_TITLE,
        mimetype=_text_or_none(entry.get("mimetype")),
        size=_int_or_none(entry.get("size")),
        path=path,
        signed_path=_text_or_none(entry.get("signedPath")),
        url=_text_or_none(entry.get("url")),
        signed_url=_text_or_none(entry.get("signedUrl")),
        id=str(entry_id) if isinstance(entry_id, str | int) and entry_id != "" else None,
    )


def find_same_attachment(att: Attachment, candidates: tuple[Attachment, ...]) -> Attachment | None:
    """The entry of a re-read row that is ``att`` (by id, then path, then title and size)."""
    keys: list[Callable[[Attachment], object]] = [
        lambda a: a.id,
        lambda a: a.path,
        lambda a: (a.title, a.size) if a.title != UNREADABLE_ENTRY_TITLE else None,
    ]
    for key in keys:
        wanted = key(att)
        if wanted is None:
            continue
        for candidate in candidates:
            if key(candidate) == wanted:
                return candidate
    return None


def _where_value(value: str) -> str:
    """A value inside NocoDB's where syntax, which has no quoting for ``( ) , ~``."""
    if any(char in value for char in "(),~"):
        raise ConfigError(f"status value {value!r} may not contain ( ) , or ~")
    return value


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text_or_none(value: Any) -> str | None:
    if isinstance(value, str):
        return value if value.strip() else None
    return None


# --- schema ------------------------------------------------------------------------------------
def parse_schema(table_id: str, data: Mapping[str, Any]) -> TableSchema:
    """``GET /api/v2/meta/tables/{id}`` as a :class:`TableSchema`; odd columns are skipped."""
    columns: dict[str, str] = {}
    options: dict[str, tuple[str, ...]] = {}
    for column in data.get("columns") or []:
        if not isinstance(column, dict):
            continue
        title, uidt = column.get("title"), column.get("uidt")
        if not isinstance(title, str) or not isinstance(uidt, str):
            continue
        columns[title] = uidt
        col_options = column.get("colOptions")
        raw = col_options.get("options") if isinstance(col_options, dict) else None
        if isinstance(raw, list):
            options[title] = tuple(
                o["title"] for o in raw if isinstance(o, dict) and isinstance(o.get("title"), str)
            )
    title = data.get("title")
    return TableSchema(
        table_id=table_id,
        title=title if isinstance(title, str) else table_id,
        columns=columns,
        options=options,
    )


def check_schema(schema: TableSchema, settings: Settings) -> list[str]:
    """Problems with the table for these settings, in plain words; empty when all is well."""
    s = settings
    problems: list[str] = []
    if ID_FIELD not in schema.columns:
        problems.append(f"{ID_FIELD} column is missing (a renamed primary key is not supported)")
    expected = [
        ("field_politician", s.field_politician, {"SingleSelect"}),
        ("field_photo", s.field_photo, {"Attachment"}),
        ("field_status", s.field_status, {"SingleSelect"}),
    ]
    if s.field_reason:
        expected.append(("field_reason", s.field_reason, set(REASON_FIELD_TYPES)))
    for setting, title, types in expected:
        problem = _column_problem(schema, setting, title, types)
        if problem:
            problems.append(problem)
    if schema.columns.get(s.field_status) == "SingleSelect":
        needed = [("status_approved", s.status_approved)]
        if s.reject_action == "tag":
            needed.append(("status_rejected", s.status_rejected))
        have = schema.options.get(s.field_status, ())
        problems.extend(
            f"field {s.field_status!r} has no option {value!r} ({setting}); options: "
            f"{', '.join(have) or 'none'}"
            for setting, value in needed
            if value not in have
        )
    return problems


def _column_problem(schema: TableSchema, setting: str, title: str, types: set[str]) -> str | None:
    uidt = schema.columns.get(title)
    if uidt is None:
        return f"field {title!r} ({setting}) is missing from table {schema.title!r}"
    if uidt not in types:
        return f"field {title!r} ({setting}) is a {uidt}, expected {' or '.join(sorted(types))}"
    return None


def politician_options(schema: TableSchema, field_name: str = "Politician") -> list[str]:
    """The options of the politician select column, in NocoDB's order."""
    return list(schema.options.get(field_name, ()))


def _check_field_names(settings: Settings) -> None:
    """Refuse field names NocoDB's query syntax cannot carry (it has no quoting for them).

    ``field_reason`` only ever appears as a JSON key, so any name works for it.
    """
    names = {
        "field_politician": settings.field_politician,
        "field_photo": settings.field_photo,
        "field_status": settings.field_status,
    }
    for setting, name in names.items():
        if not name.strip():
            raise ConfigError(f"{setting}: must not be empty")
        bad = sorted(FORBIDDEN_FIELD_CHARS.intersection(name))
        if bad:
            raise ConfigError(
                f"{setting}: {name!r} contains {' '.join(bad)}, which NocoDB's where/fields "
                "syntax cannot carry; rename the field in NocoDB"
            )
