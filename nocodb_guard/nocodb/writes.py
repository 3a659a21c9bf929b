"""Writing verdicts: approve, reject (delete or tag), one row or a page of rows per request.

Part of the v2 client (:class:`~nocodb_guard.nocodb.client.NocoDBClient` exposes these
operations); kept apart because the bulk fallback is its own story.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from nocodb_guard.errors import RowGone
from nocodb_guard.models import Action, RowWrite
from nocodb_guard.nocodb.records import ID_FIELD
from nocodb_guard.nocodb.transport import Transport
from nocodb_guard.settings import Settings

log = structlog.get_logger("nocodb_guard.nocodb.client")


class RowWriter:
    """The write operations on one table's records path."""

    def __init__(self, transport: Transport, settings: Settings, records_path: str) -> None:
        self._transport = transport
        self._settings = settings
        self._records_path = records_path

    def approve(self, row_id: int, reason_text: str) -> Action:
        """Tag the row approved (and explain why); :class:`RowGone` if it vanished."""
        self._patch([RowWrite(row_id, reason_text)], self._settings.status_approved)
        return Action.APPROVED

    def reject(self, row_id: int, reason_text: str) -> Action:
        """Delete the row, or tag it rejected (``reject_action = "tag"``).

        A row that is already gone counts as done (``ALREADY_GONE``): the goal, the row not
        being shown, holds, and a retried DELETE whose first try succeeded must not fail.
        """
        try:
            return self._reject([RowWrite(row_id, reason_text)])
        except RowGone:
            return Action.ALREADY_GONE

    def approve_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        """Tag every row approved with one ``PATCH`` of the list; see :meth:`_bulk`."""
        return self._bulk(
            writes,
            lambda: self._patch(writes, self._settings.status_approved),
            Action.APPROVED,
            self._approve_or_gone,
        )

    def reject_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        """Delete (or tag) every row with one request of the list; see :meth:`_bulk`."""
        return self._bulk(writes, lambda: self._reject(writes), self._rejected, self.reject)

    def _bulk(
        self,
        writes: Sequence[RowWrite],
        send: Callable[[], object],
        done: Action,
        one: Callable[[int, str], Action],
    ) -> dict[int, Action]:
        """One request for the list; row by row if NocoDB refused it for a missing row.

        NocoDB (0.301.3, measured) answers a bulk ``PATCH``/``DELETE`` naming one missing Id
        with 404 ``ERR_RECORD_NOT_FOUND`` and changes nothing; then each row is written alone,
        so that the others are still acted on and the missing one is ``GONE``/``ALREADY_GONE``.
        """
        if not writes:
            return {}
        try:
            send()
        except RowGone:
            log.info("nocodb.bulk_row_missing", rows=len(writes))
            return {write.row_id: one(write.row_id, write.reason_text) for write in writes}
        return {write.row_id: done for write in writes}

    def _approve_or_gone(self, row_id: int, reason_text: str) -> Action:
        try:
            return self.approve(row_id, reason_text)
        except RowGone:
            return Action.GONE

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
