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


@dataclass(frozen=True)
class Intent:
    """A decided row to write: APPROVED (tag it), REVIEW (tag it for an admin) or REJECTED."""

    row: Row
    decision: Decision


def act_on_page(client: BulkClient, intents: Sequence[Intent]) -> dict[int, Action]:
    """Write a page of decided rows; returns what was done to each, by row Id."""
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
    actions.update(client.reject_many(writes[Verdict.REJECTED]))  # nothing sent for an empty list
    actions.update(client.approve_many(writes[Verdict.APPROVED]))
    actions.update(client.review_many(writes[Verdict.REVIEW]))
    return actions
