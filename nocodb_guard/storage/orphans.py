"""Files left behind: known to belong to the table, used by no row, still stored.

Deletions made before the purge existed, rows deleted by an admin in NocoDB's UI, files
removed from a cell: NocoDB keeps all of those files. Only files recorded in the
:class:`~nocodb_guard.storage.ledger.FileLedger` (seen in this table's rows) are
candidates, so files of other tables and bases, and files the guard never saw, are never
touched. Removal goes through the purge queue and :class:`~.purge.Purger`, which checks
the table's references again right before removing anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from nocodb_guard.errors import ConfigError
from nocodb_guard.settings import Settings
from nocodb_guard.storage.base import PurgeStatus, StorageBackend, StorageRefused, StoredFile
from nocodb_guard.storage.config import backend_from_settings, build_purger, table_files
from nocodb_guard.storage.ledger import FileLedger
from nocodb_guard.storage.purge import PurgeReport
from nocodb_guard.storage.queue import PurgeQueue
from nocodb_guard.storage.table import AttachmentCells

log = structlog.get_logger("nocodb_guard.storage")


@dataclass(frozen=True)
class Orphan:
    file: StoredFile
    first_seen: float
    """Unix time the guard first saw the file in a row of the table."""


def find_orphans(
    ledger: FileLedger,
    referenced: frozenset[str],
    backend: StorageBackend,
    *,
    older_than: float,
    now: float | None = None,
) -> list[Orphan]:
    """Recorded files no row references, seen at least ``older_than`` seconds ago, still stored.

    ``older_than`` leaves alone files an admin may be moving between rows right now.
    """
    cutoff = (time.time() if now is None else now) - older_than
    orphans = []
    for key, first_seen in sorted(ledger.known().items()):
        if key in referenced or first_seen > cutoff:
            continue
        file = StoredFile.from_key(key)
        try:
            if backend.exists(file):
                orphans.append(Orphan(file, first_seen))
        except StorageRefused as exc:
            log.error("orphan_refused", file=key, reason=str(exc))
    return orphans


@dataclass(frozen=True)
class OrphanReport:
    orphans: tuple[Orphan, ...]
    purge: PurgeReport | None
    """None for a dry run."""

    def rows(self) -> list[dict[str, str]]:
        """One entry per orphan: its storage location, what happened, and why."""
        results = {r.file: r for r in self.purge.results} if self.purge else {}
        rows = []
        for orphan in self.orphans:
            result = results.get(orphan.file)
            status = result.status.value if result else "dry_run"
            detail = result.detail if result else ""
            rows.append({"file": orphan.file.key, "status": status, "detail": detail})
        return rows

    @property
    def complete(self) -> bool:
        """Nothing left queued or refused."""
        unfinished = (PurgeStatus.QUEUED, PurgeStatus.REFUSED)
        return self.purge is None or not any(self.purge.count(s) for s in unfinished)


def purge_orphans(
    settings: Settings,
    client: AttachmentCells,
    *,
    older_than: float,
    dry_run: bool,
) -> OrphanReport:
    """Find the table's orphans and, unless ``dry_run``, purge them through the queue."""
    backend = backend_from_settings(settings)
    purger = build_purger(settings, client)
    if backend is None or purger is None:
        raise ConfigError("purge: neither nocodb_data_dir nor s3 is set (NocoDB's storage)")
    files = table_files(settings, client, read_only=dry_run)
    found = find_orphans(
        FileLedger(settings.state_dir, settings.require_table()),
        files.referenced_files(),
        backend,
        older_than=older_than,
    )
    if dry_run or not found:
        return OrphanReport(tuple(found), None)
    PurgeQueue(settings.state_dir).add(o.file for o in found)
    return OrphanReport(tuple(found), purger.retry())
