"""Acting on a page of decided rows at once: one re-read, one bulk delete, one bulk update.

Row by row, acting cost up to three NocoDB requests per row (a re-read, then a delete or an
update), and NocoDB 0.301.4+ allows 5 requests a second per token. A page of rows costs
three requests in all, whatever its size:

1. one re-read of every row about to be written (``Id in ...``): a row an admin deleted
   is ``GONE``, a row whose status or files changed since it was listed is left alone
   (``CHANGED_MEANWHILE``), approvals included, exactly the check made row by row before;
2. one bulk ``DELETE`` (or tag) of the rejected rows, right after the re-read: the
   irreversible write comes first, so that the gap between check and delete stays one request;
3. one bulk ``PATCH`` of the approved rows (and one of the rows tagged for review, when a
   review band sent some there).

The trade-off: a decided row waits for its page before it is written (at most
``act_batch`` rows, or the end of the pass), and a crash in between leaves it pending for
the next pass to decide again; nothing is ever written without the re-read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from nocodb_guard.models import Action, Decision, Row, RowWrite, Verdict

log = structlog.get_logger("nocodb_guard.acting")


class BulkClient(Protocol):
    """The part of :class:`nocodb_guard.nocodb.client.NocoDBClient` acting uses."""

    def get_rows(self, row_ids: Sequence[int]) -> dict[int, Row]: ...

    def approve_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]: ...

    def reject_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]: ...

    def review_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]: ...


class Purger(Protocol):
    """Removes deleted rows' files from NocoDB's storage (:mod:`nocodb_guard.storage`)."""

    def retry(self) -> object:
        """Finish the purges an earlier pass left queued (once per pass)."""
        ...

    def seen(self, rows: Sequence[Row]) -> None:
        """The rows are the table's: remember their files (for ``purge --orphans``)."""
        ...

    def remember(self, rows: Sequence[Row]) -> None:
        """Queue the rows' files durably, before they are deleted."""
        ...

    def after_delete(self, rows: Sequence[Row], actions: dict[int, Action]) -> dict[int, int]:
        """Purge the files of the rows now gone; files purged per row Id."""
        ...


@dataclass(frozen=True)
class Acted:
    """What was done to a row, and how many of its stored files were purged with it."""

    action: Action
    files_purged: int | None = None


@dataclass(frozen=True)
class Intent:
    """A decided row to write: APPROVED (tag it), REVIEW (tag it for an admin) or REJECTED."""

    row: Row
    decision: Decision


def act_on_page(
    client: BulkClient, intents: Sequence[Intent], purger: Purger | None = None
) -> dict[int, Acted]:
    """Write a page of decided rows; returns what was done to each, by row Id.

    With a ``purger``, the rejected rows' files are queued before the delete and purged
    after the page's writes (:mod:`nocodb_guard.storage.purge` says why that is durable).
    """
    if not intents:
        return {}
    current = client.get_rows([intent.row.id for intent in intents])
    actions: dict[int, Action] = {}
    writes: dict[Verdict, list[RowWrite]] = {verdict: [] for verdict in Verdict}
    for intent in intents:
        row = intent.row
        now = current.get(row.id)
        if now is None:
            actions[row.id] = Action.GONE
        elif now.status != row.status or not now.same_upload_as(row):
            log.warning("row_changed_before_act", row_id=row.id)
            actions[row.id] = Action.CHANGED_MEANWHILE
        else:
            writes[intent.decision.verdict].append(RowWrite(row.id, intent.decision.explanation))
    rejecting = {write.row_id for write in writes[Verdict.REJECTED]}
    rejected = [intent.row for intent in intents if intent.row.id in rejecting]
    if purger is not None:
        purger.seen([intent.row for intent in intents])
        purger.remember(rejected)
    try:
        actions.update(client.reject_many(writes[Verdict.REJECTED]))  # nothing sent if empty
        actions.update(client.approve_many(writes[Verdict.APPROVED]))
        actions.update(client.review_many(writes[Verdict.REVIEW]))
    except Exception as exc:
        raise PageCutShort(_acted(actions, rejected, purger), exc) from exc
    return _acted(actions, rejected, purger)


class PageCutShort(Exception):
    """A write of the page failed (NocoDB went down between its DELETE and its PATCH...).

    The writes before it landed: ``done`` says what was done to those rows, so they are
    reported and audited as done instead of vanishing from the log; the other rows' fate
    is unknown (a request may land and its answer be lost), and ``cause`` is the failure.
    """

    def __init__(self, done: dict[int, Acted], cause: Exception) -> None:
        super().__init__(str(cause))
        self.done = done
        self.cause = cause


def _acted(
    actions: dict[int, Action], rejected: list[Row], purger: Purger | None
) -> dict[int, Acted]:
    """Purge the files of the rejected rows known gone; what was done to each row.

    Only rows with a known action go to the purge: the files of a row whose DELETE may
    have landed unanswered stay queued, for the next pass to purge or keep.
    """
    known = [row for row in rejected if row.id in actions]
    purged = purger.after_delete(known, actions) if purger is not None else {}
    return {row_id: Acted(action, purged.get(row_id)) for row_id, action in actions.items()}
