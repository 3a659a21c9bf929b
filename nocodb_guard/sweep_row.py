"""One row on its way through a pass: its attachments' slots, and the evidence they give."""

from __future__ import annotations

import time
from collections.abc import Collection
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TypeAlias

import structlog

from nocodb_guard.errors import NocoDBUnavailable, Stop
from nocodb_guard.faces.references import ReferenceSet
from nocodb_guard.models import (
    Action,
    Decision,
    PictureAnalysis,
    Reason,
    Row,
    RowOutcome,
    Verdict,
)
from nocodb_guard.policy import RowEvidence

log = structlog.get_logger("nocodb_guard.sweep")


@dataclass(frozen=True)
class Deferral:
    """An attachment that cannot be seen now (transient error, URL not allowed)."""

    reason: Reason
    detail: str
    file_missing: bool = False
    """NocoDB answered "no such file" for a freshly signed link (see ``missing_files``)."""


Slot: TypeAlias = Future[PictureAnalysis] | PictureAnalysis | Deferral
"""One attachment: being analysed, refused while downloading (``too_large``), or deferred."""


@dataclass
class Prepared:
    """A row whose pictures are downloaded and submitted for analysis.

    One slot per attachment tried, in upload order: "picture N" in a reason and the audit
    is the N-th file. A deferral ends the slots (the row waits for a later pass anyway).
    """

    row: Row
    references: ReferenceSet | None
    slots: list[Slot] = field(default_factory=list)
    gone: bool = False
    download_seconds: float = 0.0

    def file_missing(self) -> int | None:
        """The place (from 1) of the attachment NocoDB says it does not have, if any."""
        for place, slot in enumerate(self.slots, start=1):
            if isinstance(slot, Deferral) and slot.file_missing:
                return place
        return None

    def pictures(self) -> list[PictureAnalysis]:
        """Every picture seen, in upload order; waits for the face workers."""
        return [
            slot.result() if isinstance(slot, Future) else slot
            for slot in self.slots
            if not isinstance(slot, Deferral)
        ]

    def evidence(self, pictures: list[PictureAnalysis]) -> RowEvidence:
        """What the policy decides on: the pictures seen, and why the rest could not be."""
        deferral = next((s for s in self.slots if isinstance(s, Deferral)), None)
        return RowEvidence(
            politician=self.row.politician,
            tolerance=None if self.references is None else self.references.tolerance,
            review_band=None if self.references is None else self.references.review_band,
            attachment_count=len(self.row.attachments),
            pictures=tuple(pictures),
            failure=None if deferral is None else deferral.reason,
            failure_detail="" if deferral is None else deferral.detail,
        )


@dataclass(frozen=True)
class Decided:
    """A decided row waiting for its page's write; ``action`` set when nothing is to write."""

    prepared: Prepared
    decision: Decision
    pictures: list[PictureAnalysis]
    started: float
    analysed: float
    action: Action | None

    def outcome(self, action: Action, files_purged: int | None) -> RowOutcome:
        """What became of the row; ``act_s`` runs from the decision to the page's write."""
        now, prepared = time.perf_counter(), self.prepared
        return RowOutcome(
            row_id=prepared.row.id,
            politician=prepared.row.politician,
            decision=self.decision,
            action=action,
            pictures=tuple(self.pictures),
            files_purged=files_purged,
            timings={
                "download_s": round(prepared.download_seconds, 4),
                "analyse_wait_s": round(self.analysed - self.started, 4),
                "analyse_s": round(sum(p.seconds for p in self.pictures), 4),
                "act_s": round(now - self.analysed, 4),
            },
        )


def unacted(page: list[Decided], exc: Exception) -> list[Decided]:
    """The page's rows to write, deferred after an unexpected failure while acting on them.

    Some may have been written before it (a later pass finds them decided or gone); none is
    reported as done, and their intents in the audit trail get a "deferred" result.
    """
    log.error("page_failed", rows=[d.prepared.row.id for d in page], error=repr(exc), exc_info=exc)
    failed = Decision(
        Verdict.DEFERRED,
        Reason.TRANSIENT_ERROR,
        f"internal error while acting: {type(exc).__name__}",
    )
    return [
        d if d.action is not None else replace(d, decision=failed, action=Action.NONE) for d in page
    ]


def cut_short(page: list[Decided], done: Collection[int], cause: Exception) -> list[Decided]:
    """The page's rows to report once a write failed part-way (``acting.PageCutShort``).

    Rows written before the failure (``done``) are reported as done. The others are
    deferred as after any failure while acting, or, when the cause stops the pass (NocoDB
    down), not reported at all: the next pass finds them, as before.
    """
    settled = {d.prepared.row.id for d in page if d.action is not None or d.prepared.row.id in done}
    if isinstance(cause, Stop | NocoDBUnavailable):
        return [d for d in page if d.prepared.row.id in settled]
    rest = iter(unacted([d for d in page if d.prepared.row.id not in settled], cause))
    return [d if d.prepared.row.id in settled else next(rest) for d in page]


def internal_error(exc: Exception, prepared: Prepared) -> str:
    """Log an unexpected failure with its traceback; the explanation names only its type."""
    log.error("row_failed", row_id=prepared.row.id, error=repr(exc), exc_info=exc)
    return f"internal error: {type(exc).__name__}"
