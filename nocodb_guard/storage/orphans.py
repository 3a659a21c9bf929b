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

from nocodb_guard.storage.base import StorageBackend, StorageRefused, StoredFile
from nocodb_guard.storage.ledger import FileLedger

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
