"""A small durable memory of rows whose file NocoDB says it does not have.

Visitors can submit, through the public form, an attachment JSON whose ``path`` names no
file (NocoDB accepts it). Such a row can never be judged: deferring it forever costs a
download, an audit record and a log line on every pass, and 100 of them clog the queue.
So a row becomes final (rejected as ``no_attachment``) once NocoDB has answered "no such
file" for a freshly signed link on two passes at least :data:`CONFIRM_AFTER` apart, while
other rows' files of the same pass downloaded fine (so NocoDB's storage itself works). A storage
outage never qualifies: then nothing downloads.

Only row ids and first-seen times are kept (``<state_dir>/missing-files.json``, 0600),
nothing about the upload; entries older than :data:`FORGET_AFTER` are dropped.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nocodb_guard.models import Decision, Reason, Verdict
from nocodb_guard.safefiles import open_private, open_to_read

FILE_NAME = "missing-files.json"
CONFIRM_AFTER = timedelta(hours=1)
"""Long enough for an admin restoring NocoDB's upload storage to be done."""
FORGET_AFTER = timedelta(days=7)
"""A row still missing then was deleted by someone else; its entry is dead weight."""
NO_SUCH_FILE = (
    "picture {place}: NocoDB has no such file (a freshly signed link answered 404 "
    "on passes an hour apart, while other rows' files downloaded)"
)


class MissingFiles:
    """Row id -> when its file was first found missing; thread-safe, saved on change."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / FILE_NAME
        self._lock = threading.Lock()
        self._first_seen = self._load()

    def confirmed(self, row_id: int, now: datetime | None = None) -> bool:
        """Note the row's file as missing now; True once it was already missing an hour ago."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        with self._lock:
            first = self._first_seen.get(row_id, moment)
            self._first_seen = {
                row: seen for row, seen in self._first_seen.items() if moment - seen < FORGET_AFTER
            }
            self._first_seen[row_id] = first
            self._save()
            return moment - first >= CONFIRM_AFTER

    def settle(
        self, row_id: int, place: int | None, decision: Decision, storage_works: bool
    ) -> Decision:
        """The row's decision once its missing file (picture ``place``, if any) is counted in.

        A row deferred only because NocoDB has not had its file for an hour, while other
        rows' files of the pass downloaded (``storage_works``), is rejected; any other decision
        ends the row's watch.
        """
        if place is None or decision.verdict is not Verdict.DEFERRED:
            self.forget(row_id)
            return decision
        if not (self.confirmed(row_id) and storage_works):
            return decision
        return Decision(Verdict.REJECTED, Reason.NO_ATTACHMENT, NO_SUCH_FILE.format(place=place))

    def forget(self, row_id: int) -> None:
        """The row was decided (or its file came back): nothing left to remember."""
        with self._lock:
            if self._first_seen.pop(row_id, None) is not None:
                self._save()

    def _load(self) -> dict[int, datetime]:
        try:
            with os.fdopen(open_to_read(self._path), encoding="utf-8") as handle:
                data = json.loads(handle.read())
            return {int(row): datetime.fromisoformat(seen) for row, seen in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}  # absent or damaged: start afresh (costs an hour, never a deletion)

    def _save(self) -> None:
        """Atomic (temporary file + replace), never through a symlink."""
        text = json.dumps({str(row): seen.isoformat() for row, seen in self._first_seen.items()})
        tmp = self._path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as handle:
            handle.write(text)
        os.replace(tmp, self._path)
