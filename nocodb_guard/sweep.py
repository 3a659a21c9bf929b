"""One pass over the pending rows: list, download, analyse, decide, act.

The daemon's tick and ``nocodb-guard sweep`` both call :meth:`Sweeper.run`.

Pipelining: while the main thread decides and acts on row *n*, a small thread pool is
already downloading the next rows and handing their pictures to the face workers. The
window of rows in flight is bounded, so memory stays flat however long the backlog is.

Decided rows are written by pages (:mod:`nocodb_guard.acting`): three requests a page.

Safety: one bad row never stops the pass; a transient failure defers the row untouched;
before a row is written it is read again, and left alone if an admin changed it meanwhile.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeAlias

import structlog

from nocodb_guard.acting import Acted, BulkClient, Intent, Purger, act_on_page
from nocodb_guard.errors import (
    DownloadFailed,
    DownloadTooLarge,
    NocoDBUnavailable,
    ReferenceSetError,
    RetryLater,
    RowGone,
    Stop,
    UrlNotAllowed,
)
from nocodb_guard.faces.references import ReferenceSet
from nocodb_guard.faces.workers import Analyzer
from nocodb_guard.models import (
    Action,
    Attachment,
    Decision,
    PictureAnalysis,
    Reason,
    Row,
    RowOutcome,
    Verdict,
)
from nocodb_guard.policy import RowEvidence, decide
from nocodb_guard.report import SweepResult

log = structlog.get_logger("nocodb_guard.sweep")
_RECHECK_WOULD = {Verdict.REJECTED: Action.WOULD_REJECT, Verdict.REVIEW: Action.WOULD_REVIEW}


class Client(BulkClient, Protocol):
    """The part of :class:`nocodb_guard.nocodb.client.NocoDBClient` a sweep uses."""

    def iter_pending(self, limit: int | None = None) -> Iterator[Row]: ...

    def iter_approved(self, limit: int | None = None) -> Iterator[Row]: ...

    def download(self, attachment: Attachment, row_id: int) -> bytes: ...


class References(Protocol):
    def load(self, label: str) -> ReferenceSet | None: ...


class Recorder(Protocol):
    """Audit trail and metrics: told about every outcome."""

    def record(self, outcome: RowOutcome) -> None: ...


@dataclass(frozen=True)
class SweepOptions:
    dry_run: bool = False
    limit: int | None = None
    max_attachments: int = 5
    prefetch: int = 4
    """Rows downloaded and analysed ahead of the one being acted on."""
    download_threads: int = 4
    act_batch: int = 25
    """Decided rows written together: one re-read, one bulk delete, one bulk update."""
    recheck_approved: bool = False
    """Re-evaluate rows already approved instead of pending ones (references changed?)."""
    apply: bool = False
    """With ``recheck_approved``: act on rows that now fail (else only report them)."""


@dataclass(frozen=True)
class _Deferral:
    """An attachment that cannot be seen now (transient error, URL not allowed)."""

    reason: Reason
    detail: str


_Slot: TypeAlias = Future[PictureAnalysis] | PictureAnalysis | _Deferral
"""One attachment: being analysed, refused while downloading (``too_large``), or deferred."""


@dataclass
class _Prepared:
    """A row whose pictures are downloaded and submitted for analysis.

    One slot per attachment tried, in upload order: "picture N" in a reason and the audit
    is the N-th file. A deferral ends the slots (the row waits for a later pass anyway).
    """

    row: Row
    references: ReferenceSet | None
    slots: list[_Slot] = field(default_factory=list)
    gone: bool = False
    download_seconds: float = 0.0

    def pictures(self) -> list[PictureAnalysis]:
        """Every picture seen, in upload order; waits for the face workers."""
        return [
            slot.result() if isinstance(slot, Future) else slot
            for slot in self.slots
            if not isinstance(slot, _Deferral)
        ]

    def evidence(self, pictures: list[PictureAnalysis]) -> RowEvidence:
        """What the policy decides on: the pictures seen, and why the rest could not be."""
        deferral = next((s for s in self.slots if isinstance(s, _Deferral)), None)
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
class _Decided:
    """A decided row waiting for its page's write; ``action`` set when nothing is to write."""

    prepared: _Prepared
    decision: Decision
    pictures: list[PictureAnalysis]
    started: float
    analysed: float
    action: Action | None


class Sweeper:
    """Runs passes; holds no state between them except what it is given."""

    def __init__(
        self,
        client: Client,
        references: References,
        analyzer: Analyzer,
        options: SweepOptions,
        recorders: tuple[Recorder, ...] = (),
        purger: Purger | None = None,
    ) -> None:
        self._client = client
        self._references = references
        self._analyzer = analyzer
        self._options = options
        self._recorders = recorders
        self._purger = purger

    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        on_outcome: Callable[[RowOutcome], None] | None = None,
    ) -> SweepResult:
        """One pass. Raises only what stops everything (auth, schema); see module doc."""
        started = time.perf_counter()
        result = SweepResult()
        if self._purger is not None:
            self._purger.retry()
        if self._options.recheck_approved:
            rows = self._client.iter_approved(limit=self._options.limit)
        else:
            rows = self._client.iter_pending(limit=self._options.limit)
        window: deque[Future[_Prepared]] = deque()
        page: list[_Decided] = []
        with ThreadPoolExecutor(
            max_workers=self._options.download_threads, thread_name_prefix="download"
        ) as pool:
            try:
                self._fill(window, rows, pool)
                while window:
                    if should_stop():
                        result.stopped_early = True
                        break
                    page.append(self._next_decided(window.popleft()))
                    self._fill(window, rows, pool)
                    if len(page) >= self._options.act_batch or not window:
                        self._flush(page, result, on_outcome)
                self._flush(page, result, on_outcome)  # a stop still writes what is decided
            except NocoDBUnavailable as exc:
                result.error = str(exc)
                log.warning("sweep_interrupted", error=str(exc))
            finally:
                for pending in window:
                    pending.cancel()
        result.seconds = time.perf_counter() - started
        log.info("sweep_done", **result.summary())
        return result

    def _next_decided(self, future: Future[_Prepared]) -> _Decided:
        """One row, guarded: a bug or a crashed worker defers this row, the pass goes on."""
        prepared = future.result()
        try:
            return self._finish(prepared)
        except (Stop, NocoDBUnavailable):
            raise
        except Exception as exc:  # the row boundary: log it with its traceback, defer the row
            log.error("row_failed", row_id=prepared.row.id, error=repr(exc), exc_info=True)
            decision = Decision(
                Verdict.DEFERRED, Reason.TRANSIENT_ERROR, f"internal error: {type(exc).__name__}"
            )
            now = time.perf_counter()
            return _Decided(prepared, decision, [], now, now, Action.NONE)

    def _flush(
        self,
        page: list[_Decided],
        result: SweepResult,
        on_outcome: Callable[[RowOutcome], None] | None,
    ) -> None:
        """Write the page's decided rows at once, then report each in row order."""
        intents = [Intent(d.prepared.row, d.decision) for d in page if d.action is None]
        acted = act_on_page(self._client, intents, self._purger)
        for d in page:
            done = Acted(d.action) if d.action is not None else acted[d.prepared.row.id]
            outcome = self._outcome(d, done)
            result.outcomes.append(outcome)
            self._report(outcome, on_outcome)
        page.clear()

    # --- stages -------------------------------------------------------------------------------
    def _fill(
        self, window: deque[Future[_Prepared]], rows: Iterator[Row], pool: ThreadPoolExecutor
    ) -> None:
        while len(window) < self._options.prefetch:
            row = next(rows, None)
            if row is None:
                return
            window.append(pool.submit(self._prepare, row))

    def _prepare(self, row: Row) -> _Prepared:
        """Download every picture of a row and submit it to the face workers (thread)."""
        prepared = _Prepared(row=row, references=self._load_references(row))
        refs = prepared.references
        if refs is None or not row.attachments:
            return prepared  # policy decides without pictures
        if len(row.attachments) > self._options.max_attachments:
            return prepared
        started = time.perf_counter()
        try:
            for index, attachment in enumerate(row.attachments, start=1):
                slot = self._slot(row.id, attachment, f"picture {index}", refs)
                prepared.slots.append(slot)
                if isinstance(slot, _Deferral):
                    break
        except RowGone:
            prepared.gone = True
        prepared.download_seconds = time.perf_counter() - started
        return prepared

    def _load_references(self, row: Row) -> ReferenceSet | None:
        """A politician whose references became unusable defers its rows; others go on."""
        if not row.politician:
            return None
        try:
            return self._references.load(row.politician)
        except ReferenceSetError as exc:
            log.error("references_unusable", politician=row.politician, error=str(exc))
            return None

    def _slot(self, row_id: int, attachment: Attachment, name: str, refs: ReferenceSet) -> _Slot:
        """Download one attachment and submit it to the face workers; RowGone passes through."""
        try:
            data = self._client.download(attachment, row_id)
        except DownloadTooLarge as exc:
            return PictureAnalysis(name=name, problem=Reason.TOO_LARGE, detail=str(exc))
        except UrlNotAllowed as exc:
            return _Deferral(Reason.URL_NOT_ALLOWED, str(exc))
        except (DownloadFailed, RetryLater) as exc:
            return _Deferral(Reason.TRANSIENT_ERROR, str(exc))
        return self._analyzer.submit(data, name, refs.encodings)

    def _finish(self, prepared: _Prepared) -> _Decided:
        """Collect analyses and decide (main thread, in row order); writing waits for the page."""
        started = time.perf_counter()
        pictures = prepared.pictures()
        analysed = time.perf_counter()
        if prepared.gone:
            decision = Decision(Verdict.DEFERRED, Reason.TRANSIENT_ERROR, "row vanished")
            return _Decided(prepared, decision, pictures, started, analysed, Action.GONE)
        evidence = prepared.evidence(pictures)
        decision = decide(evidence, max_attachments=self._options.max_attachments)
        if self._options.recheck_approved and decision.verdict in _RECHECK_WOULD:
            # Log, audit and the Reason written all say this row had been approved before.
            decision = replace(decision, explanation=f"re-check: {decision.explanation}")
        action = self._settled(decision)
        return _Decided(prepared, decision, pictures, started, analysed, action)

    def _settled(self, decision: Decision) -> Action | None:
        """The action for a row needing no write (re-check: report unless ``apply``), or None."""
        if self._options.dry_run:
            return Action.DRY_RUN
        if decision.verdict is Verdict.DEFERRED:
            return Action.NONE
        if self._options.recheck_approved and decision.verdict is Verdict.APPROVED:
            return Action.STILL_APPROVED
        if self._options.recheck_approved and not self._options.apply:
            return _RECHECK_WOULD[decision.verdict]
        return None

    @staticmethod
    def _outcome(row: _Decided, done: Acted) -> RowOutcome:
        """``act_s`` runs from the decision to the page's write (waiting for the page included)."""
        now, prepared = time.perf_counter(), row.prepared
        return RowOutcome(
            row_id=prepared.row.id,
            politician=prepared.row.politician,
            decision=row.decision,
            action=done.action,
            pictures=tuple(row.pictures),
            files_purged=done.files_purged,
            timings={
                "download_s": round(prepared.download_seconds, 4),
                "analyse_wait_s": round(row.analysed - row.started, 4),
                "analyse_s": round(sum(p.seconds for p in row.pictures), 4),
                "act_s": round(now - row.analysed, 4),
            },
        )

    def _report(self, outcome: RowOutcome, on_outcome: Callable[[RowOutcome], None] | None) -> None:
        decision = outcome.decision
        log.info(
            "row_decided",
            row_id=outcome.row_id,
            politician=outcome.politician,
            verdict=decision.verdict.value,
            reason=decision.reason.value,
            distance=None if decision.distance is None else round(decision.distance, 4),
            tolerance=decision.tolerance,
            action=outcome.action.value,
            explanation=decision.explanation,
            faces=[len(p.faces) for p in outcome.pictures],
            **outcome.timings,
        )
        for recorder in self._recorders:
            recorder.record(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
