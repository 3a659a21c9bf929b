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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import requests
import structlog

from nocodb_guard import attachments
from nocodb_guard.errors import (
    AttachmentMissing,
    AttachmentNotFound,
    ConfigError,
    NocoDBRequestError,
    RowGone,
    UrlNotAllowed,
)
from nocodb_guard.models import Action, Attachment, Row, RowWrite
from nocodb_guard.nocodb.pacing import Budget, PacingTotals
from nocodb_guard.nocodb.records import (
    ID_FIELD,
    find_same_attachment,
    linked_url,
    parse_attachments,
    parse_row,
)
from nocodb_guard.nocodb.responses import refreshed_link_failure
from nocodb_guard.nocodb.schema import TableSchema, check_field_names, parse_schema
from nocodb_guard.nocodb.transport import RequestObserver, Transport
from nocodb_guard.nocodb.views import View, ViewKind, column_id, parse_views, shows_only
from nocodb_guard.settings import Settings

log = structlog.get_logger(__name__)


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
        check_field_names(settings)
        self._settings = settings

    def __repr__(self) -> str:
        return f"<NocoDBClient {self._transport.base} table={self._table}>"

    def close(self) -> None:
        """Close the session if this client created it."""
        self._transport.close()

    def pacing(self) -> PacingTotals:
        """What the rate limiter cost so far: for the daemon's metrics and status line."""
        return self._transport.pacer.totals()

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
        where = self._pending_where(after_id, status)
        rows, count = self._listed(where, size, "records.list", sort=True)
        return rows, count, max((row.id for row in rows), default=None)

    def _listed(
        self, where: str, size: int, operation: str, *, sort: bool = False
    ) -> tuple[list[Row], int]:
        """(parsed rows, entries NocoDB returned) of one listing request."""
        params = {"where": where, "limit": str(size), "offset": "0", "fields": self._fields_param()}
        if sort:
            params["sort"] = ID_FIELD
        data = self._transport.request("GET", self._records_path, operation, params=params)
        items = data.get("list") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise NocoDBRequestError(f"GET {self._records_path}: answer has no 'list'")
        rows = [row for row in (self._row_or_none(item) for item in items) if row is not None]
        return rows, len(items)

    def _row_or_none(self, item: Any) -> Row | None:
        row = parse_row(item, self._settings)
        if row is None:
            log.warning("nocodb.row_unreadable", reason="no integer Id")
        return row

    def count_pending(self) -> int:
        """How many rows wait for moderation (the queue depth, for metrics and status).

        One attempt, no retries: it is only a gauge, and the pass that follows meets (and
        waits out) whatever made it fail.
        """
        data = self._transport.request(
            "GET",
            f"{self._records_path}/count",
            "records.count",
            params={"where": self._pending_where()},
            retry=False,
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
        """Where to fetch it: ``signedPath`` on the NocoDB origin, else the cell's URL.

        ``path`` is never used: it fails under ``NC_SECURE_ATTACHMENTS``. The result has
        passed the origin/allow-list check (the DNS half runs in :func:`attachments.fetch`).
        """
        if attachment.signed_path:
            url = f"{self._transport.base}/{attachment.signed_path.lstrip('/')}"
        elif attachment.signed_url or attachment.url:
            url = linked_url(attachment) or ""
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
        raise refreshed_link_failure(row_id, second_status)

    def _fetch(self, attachment: Attachment) -> bytes:
        return self._transport.download(self.attachment_url(attachment), attachment.size)

    # --- acting ------------------------------------------------------------------------------
    def get_rows(self, row_ids: Sequence[int]) -> dict[int, Row]:
        """The rows as they are now, in one request (``Id in ...``); a missing Id is gone."""
        if not row_ids:
            return {}
        ids = ",".join(str(int(row_id)) for row_id in row_ids)
        rows, _ = self._listed(f"({ID_FIELD},in,{ids})", len(row_ids), "records.reread")
        return {row.id: row for row in rows}

    def approve(self, row_id: int, reason_text: str) -> Action:
        """Tag the row approved (and explain why); :class:`RowGone` if it vanished."""
        self._patch([RowWrite(row_id, reason_text)], self._settings.status_approved)
        return Action.APPROVED

    def reject(self, row_id: int, reason_text: str) -> Action:
        """One row of :meth:`reject_many` (a row already gone is ``ALREADY_GONE``)."""
        return self.reject_many([RowWrite(row_id, reason_text)])[row_id]

    def approve_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        """Tag every row approved with one ``PATCH`` of the list; see :meth:`_bulk`."""
        status = self._settings.status_approved
        return self._bulk(writes, lambda some: self._patch(some, status), Action.APPROVED)

    def review_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        """Tag every row for an admin (review band) with one ``PATCH``; see :meth:`_bulk`.

        A tagged row is no longer pending (the listing wants a blank status), so it is not
        judged again on every pass: it waits for the admin.
        """
        status = self._settings.status_review
        return self._bulk(writes, lambda some: self._patch(some, status), Action.TAGGED_REVIEW)

    def reject_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        """Delete (or tag) every row with one request of the list; see :meth:`_bulk`."""
        return self._bulk(writes, self._reject, self._rejected, gone=Action.ALREADY_GONE)

    def _bulk(
        self,
        writes: Sequence[RowWrite],
        send: Callable[[Sequence[RowWrite]], object],
        done: Action,
        gone: Action = Action.GONE,
    ) -> dict[int, Action]:
        """One request for the list; row by row if NocoDB refused it for a missing row
        (0.301.3, measured: a 404 ``ERR_RECORD_NOT_FOUND`` for the list, nothing written)."""
        if not writes:
            return {}
        try:
            send(writes)
        except RowGone:
            log.info("nocodb.bulk_row_missing", rows=len(writes))
            return {write.row_id: _send_one(send, write, done, gone) for write in writes}
        return {write.row_id: done for write in writes}

    @property
    def _rejected(self) -> Action:
        return Action.TAGGED_REJECTED if self._settings.reject_action == "tag" else Action.DELETED

    def _reject(self, writes: Sequence[RowWrite]) -> Action:
        if self._settings.reject_action == "tag":
            self._patch(writes, self._settings.status_rejected)
        else:
            body = [{ID_FIELD: int(write.row_id)} for write in writes]
            self._transport.request("DELETE", self._records_path, "records.delete", body=body)
        return self._rejected

    def _patch(self, writes: Sequence[RowWrite], status: str) -> None:
        s = self._settings
        records: list[dict[str, Any]] = []
        for write in writes:
            record: dict[str, Any] = {ID_FIELD: int(write.row_id), s.field_status: status}
            if s.field_reason:
                record[s.field_reason] = write.reason_text
            records.append(record)
        self._transport.request("PATCH", self._records_path, "records.update", body=records)

    # --- storage and exposure -------------------------------------------------------------
    def iter_attachment_cells(self) -> Iterator[tuple[Attachment, ...]]:
        """Every row's attachment cell, whatever its status: which files the table uses.

        Pages by ``Id > last seen`` with only ``Id`` and the photo field. A failure raises
        (never a partial answer): the storage purge must not take "not listed" for "unused".
        """
        after, size = 0, self._settings.page_size
        photo = self._settings.field_photo
        while True:
            params = {
                "where": f"({ID_FIELD},gt,{after})",
                "sort": ID_FIELD,
                "limit": str(size),
                "offset": "0",
                "fields": f"{ID_FIELD},{photo}",
            }
            data = self._transport.request("GET", self._records_path, "records.scan", params=params)
            items = data.get("list") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise NocoDBRequestError(f"GET {self._records_path}: answer has no 'list'")
            ids = [item.get(ID_FIELD) for item in items if isinstance(item, dict)]
            for item in items:
                yield parse_attachments(item.get(photo) if isinstance(item, dict) else item)
            last = max((i for i in ids if isinstance(i, int)), default=None)
            if len(items) < size:
                return
            if last is None or last <= after:
                raise NocoDBRequestError("records scan stalled: rows without integer Id")
            after = last

    def shared_views(self) -> list[View]:
        """The table's shared views; for all but forms, whether they show only approved rows."""
        table = f"/api/v2/meta/tables/{self._table}"
        views = parse_views(
            self._transport.request("GET", f"{table}/views", "meta.views", budget=Budget.META)
        )
        status_id = column_id(
            self._transport.request("GET", table, "meta.table", budget=Budget.META),
            self._settings.field_status,
        )
        approved = self._settings.status_approved
        shared = []
        for view in (v for v in views if v.shared):
            if view.kind is ViewKind.FORM or status_id is None:
                shared.append(view)
                continue
            path = f"/api/v2/meta/views/{view.id}/filters"
            filters = self._transport.request("GET", path, "meta.filters", budget=Budget.META)
            shared.append(replace(view, only_approved=shows_only(filters, status_id, approved)))
        return shared

    # --- schema and health ----------------------------------------------------------------
    def table_schema(self) -> TableSchema:
        """Column titles, types and select options of the table."""
        path = f"/api/v2/meta/tables/{self._table}"
        data = self._transport.request("GET", path, "meta.table", budget=Budget.META)
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise NocoDBRequestError(f"GET {path}: answer has no 'columns'")
        return parse_schema(self._table, data)

    def ping(self) -> float:
        """One cheap authenticated call, no retries; returns its duration in seconds.

        Proves the URL, the token and the table id at once.
        """
        started = time.monotonic()
        params = {"limit": "1", "fields": ID_FIELD}
        self._transport.request("GET", self._records_path, "ping", params=params, retry=False)
        return time.monotonic() - started


def _send_one(
    send: Callable[[Sequence[RowWrite]], object], write: RowWrite, done: Action, gone: Action
) -> Action:
    """One row of a refused bulk write: ``gone`` when that row is the missing one."""
    try:
        send([write])
    except RowGone:
        return gone
    return done


def _where_value(value: str) -> str:
    """A value inside NocoDB's where syntax, which has no quoting for ``( ) , ~``."""
    if any(char in value for char in "(),~"):
        raise ConfigError(f"status value {value!r} may not contain ( ) , or ~")
    return value
