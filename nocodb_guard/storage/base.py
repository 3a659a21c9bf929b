"""What a storage backend does, and the values that travel between purge stages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from nocodb_guard.errors import GuardError, RetryLater
from nocodb_guard.models import Attachment


class StorageRefused(GuardError):
    """A stored file's location is unsafe (escapes the folder, a symlink...): never touched."""


class StorageUnavailable(RetryLater):
    """The storage cannot be changed now (permission, folder missing, S3 down): retry later."""


@dataclass(frozen=True, order=True)
class StoredFile:
    """Where NocoDB keeps one attachment: its ``path`` (local disk) or ``url`` (S3).

    Only these storage locations travel and are written to the purge queue: never bytes,
    never titles (uploader-chosen text), never signed links.
    """

    path: str | None = None
    url: str | None = None

    @property
    def key(self) -> str:
        """The identity used to compare files across rows (what NocoDB reuses on copy)."""
        return self.path or self.url or ""

    @classmethod
    def from_key(cls, key: str) -> StoredFile:
        """The file a :attr:`key` names (as recorded in the ledger)."""
        return cls(url=key) if "://" in key else cls(path=key)

    @classmethod
    def of(cls, attachment: Attachment) -> StoredFile | None:
        """The stored file behind an attachment entry; None for a placeholder without one."""
        if not attachment.path and not attachment.url:
            return None
        return cls(path=attachment.path, url=None if attachment.path else attachment.url)


class PurgeStatus(StrEnum):
    """What happened to one stored file. Values are stable: logs, audit and metrics."""

    PURGED = "purged"
    """Removed (or already absent) and verified gone."""
    KEPT_REFERENCED = "kept_referenced"
    """Another row still uses it (a duplicated row): kept."""
    REFUSED = "refused"
    """Its location is unsafe (crafted path): not touched, dropped from the queue, logged."""
    QUEUED = "queued"
    """Could not be removed or verified now: stays in the queue for the next pass."""


class StorageBackend(Protocol):
    """Removes one attachment's stored object and its thumbnails."""

    name: str

    def remove(self, file: StoredFile) -> int:
        """Remove the object and its thumbnails; the number of objects removed.

        Already absent counts as done (0). Raises :class:`StorageRefused` for a location
        that is not safely inside the storage, :class:`StorageUnavailable` when the
        storage cannot be changed now.
        """
        ...

    def exists(self, file: StoredFile) -> bool:
        """True while the object or any of its thumbnails is still stored."""
        ...

    def identity(self, file: StoredFile) -> str:
        """The stored object ``file`` names, however its location is spelled.

        Locations are input, and several spellings lead to one object (an S3 host in upper
        case, ``a//b`` in a local path): two rows use the same file when their identities
        match, not their strings. :class:`StorageRefused` when it cannot be derived.
        """
        ...

    def probe(self) -> str:
        """Check that the storage is there and writable; a one-line description.

        Raises :class:`StorageUnavailable` (or :class:`StorageRefused`) naming the problem.
        """
        ...
