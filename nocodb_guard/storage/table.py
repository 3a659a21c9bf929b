"""The stored files the configured table's rows use now, read from NocoDB.

One full scan of the table's attachment field (``fields=Id,<photo>``, sorted by Id) gives
the set of files a purge must keep: a file copied to another row (admins duplicate rows,
NocoDB then reuses the stored file) is in it. Every scan also feeds the
:class:`~nocodb_guard.storage.ledger.FileLedger`, so the orphan purge knows the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from nocodb_guard.models import Attachment
from nocodb_guard.storage.ledger import FileLedger
from nocodb_guard.storage.purge import stored_files


class AttachmentCells(Protocol):
    """The part of the NocoDB client a scan needs."""

    def iter_attachment_cells(self) -> Iterator[tuple[Attachment, ...]]:
        """Every row's attachment cell; raises RetryLater when NocoDB is unavailable."""
        ...


class TableFiles:
    """:class:`~nocodb_guard.storage.purge.ReferenceSource` for the configured table."""

    def __init__(
        self, client: AttachmentCells, ledger: FileLedger, *, read_only: bool = False
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._read_only = read_only
        """A dry run's: scans record nothing (an admin's ``sudo`` must not create the file)."""
        self._recorded: set[str] | None = None

    def referenced_files(self) -> frozenset[str]:
        """Raises :class:`RetryLater` when NocoDB cannot be read (never a partial answer).

        An entry with no location (a blank ``path`` and no ``url``, or not readable at all)
        names no stored file, so it is skipped. It must not stop the scan: NocoDB stores a
        blank path as written, and a scan that waited on such a cell would hold every purge
        back for good, leaving deleted rows' files on disk.
        """
        keys: set[str] = set()
        for cell in self._client.iter_attachment_cells():
            keys.update(f.key for f in stored_files(cell))
        self.record(keys)
        return frozenset(keys)

    def seen(self, attachments: Iterable[Attachment]) -> None:
        """A row of the table was read: its files belong to the table."""
        self.record(f.key for f in stored_files(attachments))

    def record(self, keys: Iterable[str]) -> None:
        """Append to the ledger the keys it does not hold yet (unless read-only)."""
        if self._read_only:
            return
        if self._recorded is None:
            self._recorded = set(self._ledger.known())
        new = set(keys) - self._recorded
        if new:
            self._ledger.record(new)
            self._recorded |= new
