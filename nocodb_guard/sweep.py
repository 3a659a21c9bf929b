"""One pass over the pending rows: list, download, analyse, decide, act.

The daemon's tick and ``nocodb-guard sweep`` both call :meth:`Sweeper.run`.

Pipelining: while the main thread decides and acts on row *n*, a small thread pool is
already downloading the next rows and handing their pictures to the face workers. The
window of rows in flight is bounded, so memory stays flat however long the backlog is.

Decided rows are written by pages (:mod:`nocodb_guard.acting`): three requests a page.

Safety: one bad row never stops the pass; a transient failure defers the row untouched;
before a row is written it is read again, and left alone if an admin changed it meanwhile;
the page's decisions are in the audit trail (intent) before the page is written.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from nocodb_guard.acting import Acted, BulkClient, Intent, PageCutShort, Purger, act_on_page
from nocodb_guard.backoff import Backoff
from nocodb_guard.errors import (
    DownloadFailed,
    DownloadTooLarge,
    FileNotOnNocoDB,
    NocoDBUnavailable,
    ReferenceSetError,
    RetryLater,
    RowGone,
    Stop,
    UrlNotAllowed,
)
from nocodb_guard.faces.references import ReferenceSet
from nocodb_guard.faces.workers import Analyzer
from nocodb_guard.missing_files import MissingFiles
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
from nocodb_guard.policy import decide
from nocodb_guard.report import SweepResult
from nocodb_guard.sweep_row import (
    Decided,
    Deferral,
    Prepared,
    Slot,
    cut_short,
    internal_error,
    unacted,
)

log = structlog.get_logger("nocodb_guard.sweep")
_RECHECK_WOULD = {Verdict.REJECTED: Action.WOULD_REJECT, Verdict.REVIEW: Action.WOULD_REVIEW}

UNRECORDED = "the audit trail cannot be written: nothing done; left for a later pass"


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


class Journal(Protocol):
    """The audit trail's promise: a decision is on disk before the row is changed."""

    def intend(self, outcome: RowOutcome) -> None: ...


PREFETCH_PER_WORKER = 2
"""Rows in flight per face worker: each worker has the next row's pictures waiting."""


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


class Sweeper:
    """Runs passes; holds no state between them except what it is given."""

    def __init__(
        self,
        client: Client,
        references: References,
        analyzer: Analyzer,
        options: SweepOptions,
        recorders: tuple[Recorder, ...] = (),
        journal: Journal | None = None,
        missing: MissingFiles | None = None,
        purger: Purger | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._journal = journal
        self._missing = missing
        self._downloaded: set[int] = set()  # rows a file of this pass arrived for
        self._downloaded_lock = threading.Lock()
        self._audit_error: str | None = None
        self._client = client
        self._references = references
        self._analyzer = analyzer
        self._options = options
        self._recorders = recorders
        self._purger = purger
        self._backoff = backoff

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
        window: deque[Future[Prepared]] = deque()
        page: list[Decided] = []
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
        result.audit_error = self._audit_error
        log.info("sweep_done", **result.summary())
        return result

    def _next_decided(self, future: Future[Prepared]) -> Decided:
        """One row, guarded: a failure in any stage defers this row, the pass goes on.

        ``_prepare`` turns its own failures into a deferral slot, so ``future.result()``
        raises only what stops everything; a crashed face worker surfaces in ``_finish``.
        """
        prepared = future.result()
        try:
            return self._finish(prepared)
        except (Stop, NocoDBUnavailable):
            raise
        except Exception as exc:  # the row boundary: log it with its traceback, defer the row
            decision = Decision(
                Verdict.DEFERRED, Reason.TRANSIENT_ERROR, internal_error(exc, prepared)
            )
            now = time.perf_counter()
            return Decided(prepared, decision, [], now, now, Action.NONE)

    def _flush(
        self,
        page: list[Decided],
        result: SweepResult,
        on_outcome: Callable[[RowOutcome], None] | None,
    ) -> None:
        """Write the page's decided rows at once, then report each in row order."""
        decided = self._recorded(page)
        intents = [Intent(d.prepared.row, d.decision) for d in decided if d.action is None]
        cause: Exception | None = None
        try:
            acted = act_on_page(self._client, intents, self._purger)
        except PageCutShort as cut:  # the rows written before it are reported as done
            acted, cause = cut.done, cut.cause
            decided = cut_short(decided, acted, cause)
        except (Stop, NocoDBUnavailable):
            raise
        except Exception as exc:  # the page boundary: its rows are deferred, the pass goes on
            decided, acted = unacted(decided, exc), {}
        for d in decided:
            done = Acted(d.action) if d.action is not None else acted[d.prepared.row.id]
            outcome = d.outcome(done.action, done.files_purged)
            self._note_analysis(d)
            result.outcomes.append(outcome)
            self._report(outcome, on_outcome)
        page.clear()
        if isinstance(cause, Stop | NocoDBUnavailable):
            raise cause

    # --- stages -------------------------------------------------------------------------------
    def _fill(
        self, window: deque[Future[Prepared]], rows: Iterator[Row], pool: ThreadPoolExecutor
    ) -> None:
        while len(window) < self._options.prefetch:
            row = next(rows, None)
            if row is None:
                return
            if self._backoff is not None and not self._backoff.due(row.id):
                log.debug("row_backed_off", row_id=row.id)
                continue
            window.append(pool.submit(self._prepare, row))

    def _prepare(self, row: Row) -> Prepared:
        """Download every picture of a row and submit it to the face workers (thread).

        Never raises but :class:`Stop`: any other failure becomes this row's deferral.
        """
        prepared = Prepared(row=row, references=None)
        try:
            prepared.references = self._load_references(row)
            self._download(prepared)
        except Stop:
            raise
        except Exception as exc:  # the row boundary, in the download thread
            prepared.slots.append(Deferral(Reason.TRANSIENT_ERROR, internal_error(exc, prepared)))
        return prepared

    def _download(self, prepared: Prepared) -> None:
        row, refs = prepared.row, prepared.references
        if refs is None or not row.attachments:
            return  # policy decides without pictures
        if len(row.attachments) > self._options.max_attachments:
            return
        started = time.perf_counter()
        try:
            for index, attachment in enumerate(row.attachments, start=1):
                slot = self._slot(row.id, attachment, f"picture {index}", refs)
                prepared.slots.append(slot)
                if isinstance(slot, Deferral):
                    break
        except RowGone:
            prepared.gone = True
        prepared.download_seconds = time.perf_counter() - started

    def _load_references(self, row: Row) -> ReferenceSet | None:
        """A politician whose references became unusable defers its rows; others go on."""
        if not row.politician:
            return None
        try:
            return self._references.load(row.politician)
        except ReferenceSetError as exc:
            log.error("references_unusable", politician=row.politician, error=str(exc))
            return None

    def _slot(self, row_id: int, attachment: Attachment, name: str, refs: ReferenceSet) -> Slot:
        """Download one attachment and submit it to the face workers; RowGone passes through."""
        try:
            data = self._client.download(attachment, row_id)
        except DownloadTooLarge as exc:
            return PictureAnalysis(name=name, problem=Reason.TOO_LARGE, detail=str(exc))
        except UrlNotAllowed as exc:
            return Deferral(Reason.URL_NOT_ALLOWED, str(exc))
        except FileNotOnNocoDB as exc:
            return Deferral(Reason.TRANSIENT_ERROR, str(exc), file_missing=True)
        except (DownloadFailed, RetryLater) as exc:
            return Deferral(Reason.TRANSIENT_ERROR, str(exc))
        with self._downloaded_lock:
            self._downloaded.add(row_id)
        return self._analyzer.submit(data, name, refs.encodings)

    def _finish(self, prepared: Prepared) -> Decided:
        """Collect analyses and decide (main thread, in row order); writing waits for the page."""
        started = time.perf_counter()
        pictures = prepared.pictures()
        analysed = time.perf_counter()
        if prepared.gone:
            decision = Decision(Verdict.DEFERRED, Reason.TRANSIENT_ERROR, "row vanished")
            return Decided(prepared, decision, pictures, started, analysed, Action.GONE)
        evidence = prepared.evidence(pictures)
        decision = decide(evidence, max_attachments=self._options.max_attachments)
        if self._missing is not None:
            place, works = prepared.file_missing(), self._storage_works(prepared.row.id)
            decision = self._missing.settle(prepared.row.id, place, decision, works)
        if self._options.recheck_approved and decision.verdict in _RECHECK_WOULD:
            # Log, audit and the Reason written all say this row had been approved before.
            decision = replace(decision, explanation=f"re-check: {decision.explanation}")
        action = self._settled(decision)
        return Decided(prepared, decision, pictures, started, analysed, action)

    def _storage_works(self, row_id: int) -> bool:
        """A file of *another* row arrived this pass: NocoDB's storage itself works (the
        row's own other files may sit on a part of it that works while another does not)."""
        with self._downloaded_lock:
            return any(other != row_id for other in self._downloaded)

    def _recorded(self, page: list[Decided]) -> list[Decided]:
        """Act only on what is recorded: each row to write has its intent in the audit trail
        first; a row whose intent could not be written is deferred and left out of the page."""
        if self._journal is None:
            return page
        kept: list[Decided] = []
        for d in page:
            if d.action is not None:
                kept.append(d)
                continue
            row = d.prepared.row
            intent = RowOutcome(row.id, row.politician, d.decision, Action.NONE, tuple(d.pictures))
            try:
                self._journal.intend(intent)
                kept.append(d)
            except OSError as exc:
                self._audit_failed(exc)
                unrecorded = Decision(Verdict.DEFERRED, Reason.TRANSIENT_ERROR, UNRECORDED)
                kept.append(replace(d, decision=unrecorded, action=Action.NONE))
        return kept

    def _audit_failed(self, exc: OSError) -> None:
        self._audit_error = f"{type(exc).__name__}: {exc.strerror or exc}"
        log.error("audit_unwritable", error=self._audit_error, consequence="rows deferred")

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

    def _note_analysis(self, d: Decided) -> None:
        """A row whose picture could not be analysed waits before it is tried again."""
        if self._backoff is None:
            return
        if any(p.problem is Reason.TRANSIENT_ERROR for p in d.pictures):
            wait = self._backoff.hold(d.prepared.row.id)
            log.warning("row_held_back", row_id=d.prepared.row.id, seconds=wait)
        else:
            self._backoff.forget(d.prepared.row.id)

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
            try:
                recorder.record(outcome)
            except OSError as exc:  # a full disk; the next row's intent fails and defers
                self._audit_failed(exc)
        if on_outcome is not None:
            on_outcome(outcome)
