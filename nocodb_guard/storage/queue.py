"""The durable purge queue: files to remove from NocoDB's storage, until they are gone.

A row's files are added *before* the row is deleted and dropped only once their removal is
verified, so a crash (SIGKILL, power cut) anywhere between the deletion and the purge loses
nothing: the next pass finds them here. A file queued for a row that was in the end not
deleted is harmless: every purge first checks that no row references the file any more.

Layout: ``<state_dir>/purge-queue.json``, a JSON list of storage locations (``path`` or
``url``, never bytes, titles or signed links), mode 0600. Every change rewrites it
atomically: a temp file written, fsynced and renamed over the old one, then the folder
fsynced. Both are opened through :mod:`nocodb_guard.safefiles`: a symlink or a FIFO planted
in the state folder is an error, not a redirection or a hang.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from nocodb_guard.safefiles import open_private, open_to_read
from nocodb_guard.storage.base import StoredFile

QUEUE_FILE = "purge-queue.json"


class PurgeQueue:
    """A small set of :class:`StoredFile` kept on disk; safe across threads of one process."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / QUEUE_FILE
        self._lock = threading.Lock()

    def pending(self) -> list[StoredFile]:
        """What is queued, oldest first."""
        with self._lock:
            return self._read()

    def add(self, files: Iterable[StoredFile]) -> None:
        """Remember files durably (returns once they are on disk)."""
        with self._lock:
            current = self._read()
            new = [f for f in dict.fromkeys(files) if f not in current]
            if new:
                self._write(current + new)

    def discard(self, files: Iterable[StoredFile]) -> None:
        """Forget files whose purge is done (verified, kept because referenced, or refused)."""
        done = set(files)
        with self._lock:
            current = self._read()
            remaining = [f for f in current if f not in done]
            if len(remaining) != len(current):
                self._write(remaining)

    def _read(self) -> list[StoredFile]:
        try:
            fd = open_to_read(self.path)
        except FileNotFoundError:
            return []
        with os.fdopen(fd, "rb") as handle:
            entries = json.loads(handle.read() or b"[]")
        return [StoredFile(path=e.get("path"), url=e.get("url")) for e in entries]

    def _write(self, files: list[StoredFile]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        entries = [{"path": f.path, "url": f.url} for f in files]
        data = json.dumps(entries, indent=0).encode()
        temp = self.path.with_name(f".{QUEUE_FILE}.{os.getpid()}.tmp")
        with os.fdopen(open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
