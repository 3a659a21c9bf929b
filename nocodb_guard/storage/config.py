"""Which storage backend the settings describe (None: purging is not configured)."""

from __future__ import annotations

from nocodb_guard.settings import Settings
from nocodb_guard.storage.base import StorageBackend
from nocodb_guard.storage.local import LocalStorage


def backend_from_settings(settings: Settings) -> StorageBackend | None:
    if settings.nocodb_data_dir is not None:
        return LocalStorage(settings.nocodb_data_dir)
    return None
