"""Purging a deleted row's files: queue, check references, remove, verify, forget.

Order, for a page of rejected rows (:mod:`nocodb_guard.storage.queue` says why it is safe):

1. :meth:`Purger.remember` queues the rows' stored files, before the rows are deleted;
2. the sweep deletes the rows (a definitive verdict; :mod:`nocodb_guard.acting`);
3. :meth:`Purger.after_delete` reads which files the table's rows still use (one scan), keeps
   those (an admin duplicated the row: NocoDB reuses the stored file; compared as the storage
   identifies them, not as spelled in the cells), removes the others
   with the storage backend, verifies they are gone (not on the storage any more, and an
   anonymous fetch of their path no longer answers 200), and only then forgets them.

Anything transient (NocoDB or the storage unavailable, a permission refused) leaves the
file queued; :meth:`Purger.retry` runs at every pass. A location that is unsafe (a crafted
path escaping the folder, a symlink) is refused: logged as an error, never touched, and
dropped from the queue, since no retry can make it safe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from nocodb_guard.errors import RetryLater
from nocodb_guard.models import Action, Attachment, Row
from nocodb_guard.storage.base import (
    PurgeStatus,
    StorageBackend,
    StorageRefused,
    StorageUnavailable,
    StoredFile,
)
from nocodb_guard.storage.queue import PurgeQueue

log = structlog.get_logger("nocodb_guard.storage")


class ReferenceSource(Protocol):
    """Which stored files the rows of the table use (:class:`~.table.TableFiles`)."""

    def referenced_files(self) -> frozenset[str]:
        """:attr:`StoredFile.key` of every attachment of every row now; raises RetryLater."""
        ...

    def seen(self, attachments: Iterable[Attachment]) -> None:
        """A row of the table was read: remember that its files belong to the table."""
        ...


class Probe(Protocol):
    """An anonymous fetch from the NocoDB origin (:class:`~.exposure.AnonymousProbe`)."""

    def status(self, path: str) -> int | None: ...

    def close(self) -> None: ...


class PurgeObserver(Protocol):
    """Metrics: told how each file's purge ended."""

    def record_purge(self, status: PurgeStatus) -> None: ...


@dataclass(frozen=True)
class PurgeResult:
    file: StoredFile
    status: PurgeStatus
    removed: int = 0
    """Stored objects removed for this file (the file and its thumbnails)."""
    detail: str = ""


@dataclass(frozen=True)
class PurgeReport:
    results: tuple[PurgeResult, ...] = ()

    def count(self, status: PurgeStatus) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def purged(self) -> int:
        return self.count(PurgeStatus.PURGED)

    def summary(self) -> dict[str, int]:
        return dict(Counter(r.status.value for r in self.results))


GONE_ACTIONS = frozenset({Action.DELETED, Action.ALREADY_GONE})
"""Actions after which a row's files are purged."""


def stored_files(attachments: Iterable[Attachment]) -> list[StoredFile]:
    """The stored files of a row's attachments (placeholders without a location skipped)."""
    files = (StoredFile.of(a) for a in attachments)
    return list(dict.fromkeys(f for f in files if f is not None))


class Purger:
    """Removes deleted rows' files from NocoDB's storage, durably."""

    def __init__(
        self,
        backend: StorageBackend,
        queue: PurgeQueue,
        references: ReferenceSource,
        probe: Probe | None = None,
        observer: PurgeObserver | None = None,
    ) -> None:
        self._backend = backend
        self._queue = queue
        self._references = references
        self._probe = probe
        self.observer = observer
        """Metrics; set by the daemon once it has them."""

    def seen(self, rows: Sequence[Row]) -> None:
        """Rows were moderated: their files belong to the table (for the orphan purge)."""
        self._references.seen(a for row in rows for a in row.attachments)

    def remember(self, rows: Sequence[Row]) -> None:
        """Queue the rows' files durably; call before deleting the rows."""
        self._queue.add(f for row in rows for f in stored_files(row.attachments))

    def after_delete(self, rows: Sequence[Row], actions: Mapping[int, Action]) -> dict[int, int]:
        """Purge the files of the rows now gone; files purged per row Id.

        The signed links of those rows (file and thumbnails, still valid for a while) are
        fetched too, to verify: with ``NC_SECURE_ATTACHMENTS`` they are the only way files
        are served. Rows that were kept (tagged rejected: files stay for the admin's
        review) leave the queue untouched on storage.
        """
        gone = [row for row in rows if actions.get(row.id) in GONE_ACTIONS]
        report = self._purge(*_links(gone)) if gone else PurgeReport()
        purged = {r.file for r in report.results if r.status is PurgeStatus.PURGED}
        kept = {f for row in rows if row not in gone for f in stored_files(row.attachments)}
        self._queue.discard(kept - {r.file for r in report.results})
        return {
            row.id: sum(1 for f in stored_files(row.attachments) if f in purged) for row in gone
        }

    def retry(self) -> PurgeReport:
        """Purge everything still queued (earlier failures, a crash before the purge)."""
        pending = self._queue.pending()
        return self._purge(pending) if pending else PurgeReport()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()

    def _purge(
        self, files: list[StoredFile], links: Mapping[StoredFile, tuple[str, ...]] | None = None
    ) -> PurgeReport:
        try:
            referenced = self._references.referenced_files()
        except RetryLater as exc:
            log.warning("purge_deferred", files=len(files), error=str(exc))
            return self._finish([PurgeResult(f, PurgeStatus.QUEUED, 0, str(exc)) for f in files])
        used = frozenset(self._identity(StoredFile.from_key(key)) for key in referenced)
        known = links or {}
        return self._finish([self._purge_one(f, used, known.get(f, ())) for f in files])

    def _identity(self, file: StoredFile) -> str:
        """What the backend makes of ``file``'s location; the location itself if refused."""
        try:
            return self._backend.identity(file)
        except StorageRefused:
            return file.key

    def _purge_one(
        self, file: StoredFile, used: frozenset[str], links: tuple[str, ...]
    ) -> PurgeResult:
        if self._identity(file) in used:
            return PurgeResult(file, PurgeStatus.KEPT_REFERENCED, 0, "another row uses it")
        try:
            removed = self._backend.remove(file)
            problem = self._still_there(file, links)
        except StorageRefused as exc:
            return PurgeResult(file, PurgeStatus.REFUSED, 0, str(exc))
        except StorageUnavailable as exc:
            return PurgeResult(file, PurgeStatus.QUEUED, 0, str(exc))
        if problem:
            return PurgeResult(file, PurgeStatus.QUEUED, removed, problem)
        return PurgeResult(file, PurgeStatus.PURGED, removed)

    def _still_there(self, file: StoredFile, links: tuple[str, ...]) -> str:
        """Why the file is not verifiably gone; empty when it is."""
        if self._backend.exists(file):
            return "still on the storage after removal"
        if self._probe is None:
            return ""
        for link in ((file.path,) if file.path else ()) + links:
            status = self._probe.status(link)
            if status is None:
                return "NocoDB did not answer the verification fetch"
            if status == 200:
                return "NocoDB still serves it (HTTP 200)"
        return ""

    def _finish(self, results: list[PurgeResult]) -> PurgeReport:
        self._queue.discard(r.file for r in results if r.status is not PurgeStatus.QUEUED)
        for result in results:
            _log(result, self._backend.name)
            if self.observer is not None:
                self.observer.record_purge(result.status)
        return PurgeReport(tuple(results))


def _log(result: PurgeResult, backend: str) -> None:
    """One line per file; the storage path is NocoDB's name for it, not uploader text."""
    fields = {"storage": backend, "file": result.file.key, "status": result.status.value}
    if result.status is PurgeStatus.REFUSED:
        log.error("purge_refused", reason=result.detail, **fields)
    elif result.status is PurgeStatus.QUEUED:
        log.warning("purge_queued", reason=result.detail, **fields)
    else:
        log.info("purge_done", removed=result.removed, **fields)


def _links(rows: Sequence[Row]) -> tuple[list[StoredFile], dict[StoredFile, tuple[str, ...]]]:
    """The rows' stored files, each with the signed links that serve it (for verifying)."""
    links: dict[StoredFile, tuple[str, ...]] = {}
    for attachment in (a for row in rows for a in row.attachments):
        file = StoredFile.of(attachment)
        if file is not None:
            signed = (attachment.signed_path,) if attachment.signed_path else ()
            links[file] = links.get(file, ()) + signed + attachment.thumbnail_links
    return list(links), links
