"""The v2 data and meta API of one NocoDB table: the only module with v2 paths and query syntax.

Facts it relies on (measured on NocoDB 0.301.3, see ``../shared/NOCODB.md``):

- listing pages by ``Id > last seen`` with offset 0: an offset at or past the end is a 422,
  and rows that get approved while we page would shift any offset anyway;
- ``signedPath`` download links expire (2 h by default): a 404 on one is answered by
  re-reading the row once for a fresh link;
- a DELETE of a missing record is a 404 ``ERR_RECORD_NOT_FOUND``: for a rejection that is
  "already done", so deleting is idempotent and safe to retry.

HTTP, retries and secrets are :mod:`nocodb_guard.nocodb.transport`'s business.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import structlog

from nocodb_guard import attachments
from nocodb_guard.errors import (
    AttachmentMissing,
    AttachmentNotFound,
    AttachmentRefused,
    ConfigError,
    NocoDBRequestError,
    RowGone,
    UrlNotAllowed,
)
from nocodb_guard.models import Attachment, Row
from nocodb_guard.nocodb.records import ID_FIELD, find_same_attachment, parse_row
from nocodb_guard.nocodb.schema import TableSchema, parse_schema, politician_options
from nocodb_guard.nocodb.transport import RequestObserver, Transport
from nocodb_guard.settings import Settings

log = structlog.get_logger(__name__)

#: Characters that would break NocoDB's ``where=(field,op,value)`` and ``fields=a,b`` syntax,
#: which has no quoting for field names (spaces are fine: requests percent-encodes them).
FORBIDDEN_FIELD_CHARS = frozenset("(),~")


class NocoDBClient:
    """One NocoDB table through the v2 API; see the module docstring for the facts it relies on."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        observer: RequestObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = Transport(settings, session, observer, sleep)
        self._table = settings.require_table()
        _check_field_names(settings)
        self._settings = settings

    def __repr__(self) -> str:
        return f"<NocoDBClient {self._transport.base} table={self._table}>"

    def close(self) -> None:
        """Close the session if this client created it."""
        self._transport.close()

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
        data = self._transport.request("GET", self._records_path, "records.list", params=params)
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
        data = self._transport.request(
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
        data = self._transport.request(
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
            url = f"{self._transport.base}/{attachment.signed_path.lstrip('/')}"
        elif attachment.signed_url or attachment.url:
            url = attachment.signed_url or attachment.url or ""
        else:
            raise UrlNotAllowed(
                "attachment has no signedPath or url (path alone is not used: it fails "
                "when NocoDB runs with NC_SECURE_ATTACHMENTS)"
            )
        attachments.check_origin(
            url, allowed_origins=self._transport.origins, allowed_hosts=self._settings.allowed_hosts
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
        if second_status in (401, 403):
            raise AttachmentRefused(
                f"row {row_id}: a file answers HTTP {second_status} even with a freshly signed "
                "link: access refused (by a proxy or a storage policy?), not a missing file"
            )
        raise AttachmentMissing(
            f"row {row_id}: a file answers HTTP {second_status} even with a freshly signed "
            "link: it is missing on NocoDB's side (check NocoDB's upload storage)"
        )

    def _fetch(self, attachment: Attachment) -> bytes:
        return self._transport.download(self.attachment_url(attachment), attachment.size)

    # --- acting ------------------------------------------------------------------------------
    def approve(self, row_id: int, reason_text: str) -> str:
        """Tag the row approved (and explain why); :class:`RowGone` if it vanished."""
        self._patch(row_id, self._settings.status_approved, reason_text)
        return "approved"

    def reject(self, row_id: int, reason_text: str) -> str:
        """Delete the row, or tag it rejected (``reject_action = "tag"``).

        A row that is already gone counts as done (``"already_gone"``): the goal, the row not
        being shown, holds, and a retried DELETE whose first try succeeded must not fail.
        """
        try:
            if self._settings.reject_action == "tag":
                self._patch(row_id, self._settings.status_rejected, reason_text)
                return "tagged_rejected"
            self._transport.request(
                "DELETE", self._records_path, "records.delete", body=[{ID_FIELD: int(row_id)}]
            )
        except RowGone:
            return "already_gone"
        return "deleted"

    def _patch(self, row_id: int, status: str, reason_text: str) -> None:
        record: dict[str, Any] = {ID_FIELD: int(row_id), self._settings.field_status: status}
        if self._settings.field_reason:
            record[self._settings.field_reason] = reason_text
        self._transport.request("PATCH", self._records_path, "records.update", body=[record])

    # --- schema and health ----------------------------------------------------------------
    def table_schema(self) -> TableSchema:
        """Column titles, types and select options of the table."""
        path = f"/api/v2/meta/tables/{self._table}"
        data = self._transport.request("GET", path, "meta.table")
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
        params = {"limit": "1", "fields": ID_FIELD}
        self._transport.request("GET", self._records_path, "ping", params=params, retry=False)
        return time.monotonic() - started


def _where_value(value: str) -> str:
    """A value inside NocoDB's where syntax, which has no quoting for ``( ) , ~``."""
    if any(char in value for char in "(),~"):
        raise ConfigError(f"status value {value!r} may not contain ( ) , or ~")
    return value


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
