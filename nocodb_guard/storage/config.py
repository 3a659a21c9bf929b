"""Settings in, storage objects out: which backend, and the purger a sweep uses."""

from __future__ import annotations

from nocodb_guard.errors import ConfigError
from nocodb_guard.settings import Settings
from nocodb_guard.storage.base import StorageBackend
from nocodb_guard.storage.exposure import AnonymousProbe
from nocodb_guard.storage.ledger import FileLedger
from nocodb_guard.storage.local import LocalStorage
from nocodb_guard.storage.purge import PurgeObserver, Purger
from nocodb_guard.storage.queue import PurgeQueue
from nocodb_guard.storage.s3 import s3_storage
from nocodb_guard.storage.table import AttachmentCells, TableFiles


def backend_from_settings(settings: Settings) -> StorageBackend | None:
    """The configured storage; None when purging is not configured.

    NocoDB stores its uploads in one place at a time: both set is an operator's mistake,
    refused rather than guessed (purging the wrong one would only ever remove nothing).
    """
    if settings.nocodb_data_dir is not None and settings.s3 is not None:
        raise ConfigError("nocodb_data_dir and s3 are both set: NocoDB uses one storage")
    if settings.s3 is not None:
        return s3_storage(settings.s3, settings.connect_timeout, settings.read_timeout)
    if settings.nocodb_data_dir is not None:
        return LocalStorage(settings.nocodb_data_dir)
    return None


def table_files(
    settings: Settings, client: AttachmentCells, *, read_only: bool = False
) -> TableFiles:
    ledger = FileLedger(settings.state_dir, settings.require_table())
    return TableFiles(client, ledger, read_only=read_only)


def build_purger(
    settings: Settings, client: AttachmentCells, observer: PurgeObserver | None = None
) -> Purger | None:
    """The purger for the configured storage, or None when purging is not configured."""
    backend = backend_from_settings(settings)
    if backend is None:
        return None
    return Purger(
        backend,
        PurgeQueue(settings.state_dir),
        table_files(settings, client),
        AnonymousProbe(settings.nocodb_url, timeout=settings.read_timeout),
        observer,
    )
