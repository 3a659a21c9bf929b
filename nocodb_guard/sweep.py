"""One pass over the pending rows: list, download, analyse, decide, act.

The daemon's tick and ``nocodb-guard sweep`` both call :meth:`Sweeper.run`.

Pipelining: while the main thread decides and acts on row *n*, a small thread pool is
already downloading the next rows and handing their pictures to the face workers. The
window of rows in flight is bounded, so memory stays flat however long the backlog is.

Safety: one bad row never stops the pass; a transient failure defers the row untouched;
before a row is deleted it is read again, and left alone if an admin changed it meanwhile.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog

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
    Attachment,
    Decision,
    PictureAnalysis,
    Reason,
    Row,
    RowOutcome,
    Verdict,
)
from nocodb_guard.policy import RowEvidence, decide

log = structlog.get_logger("nocodb_guard.sweep")


class Client(Protocol):
    """The part of :class:`nocodb_guard.nocodb.client.NocoDBClient` a sweep uses."""

    def iter_pending(self, limit: int | None = None) -> Iterator[Row]: ...

    def iter_approved(self, limit: int | None = None) -> Iterator[Row]: ...

    def get_row(self, row_id: int) -> Row: ...

    def download(self, attachment: Attachment, row_id: int) -> bytes: ...

    def approve(self, row_id: int, reason_text: str) -> str: ...

    def reject(self, row_id: int, reason_text: str) -> str: ...


class References(Protocol):
    def load(self, label: str) -> ReferenceSet | None: ...


class Recorder(Protocol):
    """Audit trail and metrics: told about every outcome."""

    def record(self, outcome: RowOutcome) -> None: ...


@dataclass(frozen=True)
class SweepOptions:
    dry_run: bool = False
    limit: int | None = None
    tolerance: float = 0.6
    max_attachments: int = 5
    prefetch: int = 4
    """Rows downloaded and analysed ahead of the one being acted on."""
    download_threads: int = 4
    recheck_approved: bool = False
    """Re-evaluate rows already approved instead of pending ones (references changed?)."""
    apply: bool = False
    """With ``recheck_approved``: act on rows that now fail (else only report them)."""


@dataclass
class SweepResult:
    outcomes: list[RowOutcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False
    error: str | None = None
    """Set when the pass was cut short by NocoDB becoming unavailable."""

    @property
    def deferred(self) -> int:
        return sum(1 for o in self.outcomes if o.decision.verdict is Verdict.DEFERRED)

    def summary(self) -> dict[str, Any]:
        verdicts = Counter(o.decision.verdict.value for o in self.outcomes)
        rejected = Counter(
            o.decision.reason.value
            for o in self.outcomes
            if o.decision.verdict is Verdict.REJECTED
        )
        deferred = Counter(
            o.decision.reason.value
            for o in self.outcomes
            if o.decision.verdict is Verdict.DEFERRED
        )
        return {
            "rows": len(self.outcomes),
            "approved": verdicts.get("approved", 0),
            "rejected": verdicts.get("rejected", 0),
            "deferred": verdicts.get("deferred", 0),
            "rejected_by_reason": dict(rejected),
            "deferred_by_reason": dict(deferred),
            "seconds": round(self.seconds, 3),
            "stopped_early": self.stopped_early,
            "error": self.error,
        }

    def status_line(self) -> str:
        """One short line for systemd's STATUS= and the console."""
        s = self.summary()
        text = f"{s['rows']} rows: {s['approved']} approved, {s['rejected']} rejected, "
        text += f"{s['deferred']} deferred in {s['seconds']:.1f}s"
        return text + (f" ({self.error})" if self.error else "")


@dataclass
class _Prepared:
    """A row whose pictures are downloaded and submitted for analysis."""

    row: Row
    references: ReferenceSet | None
    futures: list[Future[PictureAnalysis]] = field(default_factory=list)
    bad_pictures: list[PictureAnalysis] = field(default_factory=list)
    failure: Reason | None = None
    failure_detail: str = ""
    gone: bool = False
    download_seconds: float = 0.0


class Sweeper:
    """Runs passes; holds no state between them except what it is given."""

    def __init__(
        self,
        client: Client,
        references: References,
        analyzer: Analyzer,
        options: SweepOptions,
        recorders: tuple[Recorder, ...] = (),
        tolerance_for: Callable[[str], float] | None = None,
    ) -> None:
        self._client = client
        self._references = references
        self._analyzer = analyzer
        self._options = options
        self._recorders = recorders
        self._tolerance_for = tolerance_for

    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        on_outcome: Callable[[RowOutcome], None] | None = None,
    ) -> SweepResult:
        """One pass. Raises only what stops everything (auth, schema); see module doc."""
        started = time.perf_counter()
        result = SweepResult()
        if self._options.recheck_approved:
            rows = self._client.iter_approved(limit=self._options.limit)
        else:
            rows = self._client.iter_pending(limit=self._options.limit)
        window: deque[Future[_Prepared]] = deque()
        with ThreadPoolExecutor(
            max_workers=self._options.download_threads, thread_name_prefix="download"
        ) as pool:
            try:
                self._fill(window, rows, pool)
                while window:
                    if should_stop():
                        result.stopped_early = True
                        break
                    outcome = self._next_outcome(window.popleft())
                    self._fill(window, rows, pool)
                    result.outcomes.append(outcome)
                    self._report(outcome, on_outcome)
            except NocoDBUnavailable as exc:
                result.error = str(exc)
                log.warning("sweep_interrupted", error=str(exc))
            finally:
                for pending in window:
                    pending.cancel()
        result.seconds = time.perf_counter() - started
        log.info("sweep_done", **result.summary())
        return result

    def _next_outcome(self, future: Future[_Prepared]) -> RowOutcome:
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
            return self._outcome(prepared, decision, "none", [], now, now)

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
        for index, attachment in enumerate(row.attachments, start=1):
            if not self._prepare_one(prepared, attachment, index):
                break
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

    def _prepare_one(self, prepared: _Prepared, attachment: Attachment, index: int) -> bool:
        name = f"picture {index}"
        try:
            data = self._client.download(attachment, prepared.row.id)
        except DownloadTooLarge as exc:
            prepared.bad_pictures.append(
                PictureAnalysis(name=name, problem=Reason.TOO_LARGE, detail=str(exc))
            )
            return True
        except UrlNotAllowed as exc:
            prepared.failure, prepared.failure_detail = Reason.URL_NOT_ALLOWED, str(exc)
            return False
        except RowGone:
            prepared.gone = True
            return False
        except (DownloadFailed, RetryLater) as exc:
            prepared.failure, prepared.failure_detail = Reason.TRANSIENT_ERROR, str(exc)
            return False
        assert prepared.references is not None
        prepared.futures.append(
            self._analyzer.submit(data, name, prepared.references.encodings)
        )
        return True

    def _finish(self, prepared: _Prepared) -> RowOutcome:
        """Collect analyses, decide and act (main thread, in row order)."""
        row = prepared.row
        started = time.perf_counter()
        pictures = [f.result() for f in prepared.futures] + prepared.bad_pictures
        analysed = time.perf_counter()
        if prepared.gone:
            decision = Decision(Verdict.DEFERRED, Reason.TRANSIENT_ERROR, "row vanished")
            return self._outcome(prepared, decision, "gone", pictures, started, analysed)
        decision = decide(
            RowEvidence(
                politician=row.politician,
                has_references=prepared.references is not None,
                attachment_count=len(row.attachments),
                pictures=tuple(pictures),
                failure=prepared.failure,
                failure_detail=prepared.failure_detail,
            ),
            tolerance=self._tolerance(prepared),
            max_attachments=self._options.max_attachments,
        )
        if self._options.recheck_approved and decision.verdict is Verdict.REJECTED:
            # Log, audit and the Reason written all say this row had been approved before.
            decision = replace(decision, explanation=f"re-check: {decision.explanation}")
        action = self._act(row, decision)
        return self._outcome(prepared, decision, action, pictures, started, analysed)

    def _tolerance(self, prepared: _Prepared) -> float:
        if prepared.references is not None:
            return prepared.references.tolerance
        if self._tolerance_for is not None and prepared.row.politician:
            return self._tolerance_for(prepared.row.politician)
        return self._options.tolerance

    def _act(self, row: Row, decision: Decision) -> str:
        if self._options.dry_run:
            return "dry_run"
        if decision.verdict is Verdict.DEFERRED:
            return "none"
        if self._options.recheck_approved:
            return self._act_recheck(row, decision)
        try:
            if decision.verdict is Verdict.APPROVED:
                return self._client.approve(row.id, decision.explanation)
            if not self._unchanged(row):
                return "changed_meanwhile"
            return self._client.reject(row.id, decision.explanation)
        except RowGone:
            return "gone"

    def _act_recheck(self, row: Row, decision: Decision) -> str:
        """An approved row that now fails is reported, and only acted on with ``apply``."""
        if decision.verdict is Verdict.APPROVED:
            return "still_approved"
        if not self._options.apply:
            return "would_reject"
        try:
            if not self._unchanged(row):
                return "changed_meanwhile"
            return self._client.reject(row.id, decision.explanation)
        except RowGone:
            return "gone"

    def _unchanged(self, row: Row) -> bool:
        """Deleting is irreversible: read the row again and act only if nobody touched it."""
        current = self._client.get_row(row.id)
        if current.status != row.status or not current.same_upload_as(row):
            log.warning("row_changed_before_delete", row_id=row.id)
            return False
        return True

    def _outcome(
        self,
        prepared: _Prepared,
        decision: Decision,
        action: str,
        pictures: list[PictureAnalysis],
        started: float,
        analysed: float,
    ) -> RowOutcome:
        now = time.perf_counter()
        return RowOutcome(
            row_id=prepared.row.id,
            politician=prepared.row.politician,
            decision=decision,
            action=action,
            pictures=tuple(pictures),
            timings={
                "download_s": round(prepared.download_seconds, 4),
                "analyse_wait_s": round(analysed - started, 4),
                "analyse_s": round(sum(p.seconds for p in pictures), 4),
                "act_s": round(now - analysed, 4),
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
            action=outcome.action,
            explanation=decision.explanation,
            faces=[len(p.faces) for p in outcome.pictures],
            **outcome.timings,
        )
        for recorder in self._recorders:
            recorder.record(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
