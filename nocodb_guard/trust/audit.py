"""The audit trail: one JSON line per decision, so an admin can ask "why was row 123 deleted?".

Layout: ``<state_dir>/audit/audit-YYYY-MM-DD.jsonl``, one file per UTC day, mode 0600 in a
0700 directory. Day files make retention trivial: :meth:`AuditLog.prune` deletes whole files
(a record is kept ``retention_days`` and at most one day more), and a crash can at worst tear
the last line of today's file, which :meth:`AuditLog.query` skips.

What a record holds, and what it deliberately does not:

- row id, UTC time, the politician chosen in the form, verdict, reason, action, the
  plain-words explanation, the deciding distance and tolerance, the settings version, and
  for a deleted row how many stored files were purged with it (``files_purged``);
- per attachment: its position, detected format, face count, ignored (background) faces,
  the smallest side of each kept face in pixels, best distance, and the problem if any.
- **Never** face encodings, pixels or face coordinates (where a face is in a picture is a
  fact about the uploader's photo; its size is only what ``face_too_small`` needs), and not
  the attachment titles or error details: those are uploader-chosen text.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from nocodb_guard.models import Action, PictureAnalysis, RowOutcome, Verdict
from nocodb_guard.safefiles import open_private, open_to_read, private_dir
from nocodb_guard.settings import Settings

log = logging.getLogger(__name__)

AUDIT_SUBDIR = "audit"
_FILE_RE = re.compile(r"^audit-(\d{4}-\d{2}-\d{2})\.jsonl$")
_RELATIVE_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: Settings that change what a picture is decided to be; hashed by :func:`settings_version`.
DECISION_SETTINGS = (
    "tolerance",
    "review_band",
    "politicians",
    "max_pixels",
    "max_side",
    "detection_model",
    "upsample",
    "min_face_px",
    "min_face_ratio",
    "num_jitters",
    "max_attachments",
    "max_download_bytes",
)


def settings_version(settings: Settings) -> str:
    """A 12-hex-digit hash of the decision-relevant settings.

    Stored in every record, so an admin sees which configuration decided a row and can
    tell decisions made before and after a tolerance change apart.
    """
    relevant = settings.model_dump(mode="json", include=set(DECISION_SETTINGS))
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def picture_record(index: int, picture: PictureAnalysis) -> dict[str, Any]:
    """The audit view of one attachment: counts, sizes and a distance, nothing biometric."""
    distance = picture.distance
    return {
        "index": index,
        "format": picture.format,
        "faces": len(picture.faces),
        "ignored_faces": picture.ignored_faces,
        "face_px": [box.size for box in picture.faces],
        "best_distance": None if distance is None else round(distance, 4),
        "problem": None if picture.problem is None else str(picture.problem),
    }


def outcome_record(
    outcome: RowOutcome,
    *,
    when: datetime,
    version: str,
    dry_run: bool = False,
    intent: bool = False,
) -> dict[str, Any]:
    """The JSON object written for one decision (``intent``: written before acting)."""
    decision = outcome.decision
    return {
        "time": when.astimezone(UTC).isoformat(timespec="seconds"),
        "row_id": outcome.row_id,
        "politician": outcome.politician,
        "verdict": str(decision.verdict),
        "reason": str(decision.reason),
        "action": outcome.action.value,
        "files_purged": outcome.files_purged,
        "explanation": decision.explanation,
        "distance": None if decision.distance is None else round(decision.distance, 4),
        "tolerance": decision.tolerance,
        "pictures": [picture_record(i, p) for i, p in enumerate(outcome.pictures)],
        "settings_version": version,
        "dry_run": dry_run,
        "intent": intent,
    }


class AuditLog:
    """Append-only decision records with automatic retention.

    ``append`` (and ``record``, its form for the sweep) opens the day's file with
    ``O_APPEND``, writes each record in one ``write`` call, then fsyncs: a decision that
    deleted a row must survive a power cut, and several processes (daemon, a manual
    ``sweep``) may append at once. Files are opened without following symlinks.

    Only writing changes anything on disk (creating the folder, pruning on a new day):
    a log built to read (``history``) never modifies the trail it reads.
    """

    def __init__(
        self,
        state_dir: Path,
        retention_days: int = 30,
        settings_version: str = "",
        *,
        dry_run: bool = False,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(state_dir) / AUDIT_SUBDIR
        self.retention_days = retention_days
        self.settings_version = settings_version
        self.dry_run = dry_run
        self.fsync = fsync
        self._pruned_on: date | None = None
        self._deferred: dict[int, tuple[str, str]] = {}
        """Row id -> its last recorded deferral (reason, explanation), this process only."""

    def path_for(self, day: date) -> Path:
        return self.directory / f"audit-{day.isoformat()}.jsonl"

    def files(self) -> list[tuple[date, Path]]:
        """The day files present, oldest first."""
        found = []
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:  # nothing recorded yet
            return []
        for path in entries:
            match = _FILE_RE.match(path.name)
            if match:
                found.append((date.fromisoformat(match.group(1)), path))
        return sorted(found)

    def record(self, outcome: RowOutcome) -> None:
        """Append one decision (the sweep's ``Recorder`` interface).

        A deferral that repeats the row's last one word for word is not written again: a
        row that cannot be judged yet would otherwise add a record on every pass.
        """
        decision = outcome.decision
        key = (decision.reason, decision.explanation)
        if decision.verdict is Verdict.DEFERRED and self._deferred.get(outcome.row_id) == key:
            return
        self.append(outcome)
        if decision.verdict is Verdict.DEFERRED:
            self._deferred[outcome.row_id] = key
        else:
            self._deferred.pop(outcome.row_id, None)

    def intend(self, outcome: RowOutcome) -> None:
        """Record a decision before acting on it (the sweep's ``Journal`` interface).

        Raises OSError when the trail cannot be written (a full disk): the sweep then
        defers the row rather than change it without a record.
        """
        self.append(outcome, intent=True)

    def append(
        self,
        outcome: RowOutcome,
        *,
        dry_run: bool = False,
        intent: bool = False,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Append one decision, pruning first when the UTC day has changed; returns the record.

        The record is marked ``dry_run`` when this log or the call says so, or when the
        sweep's action was ``dry_run``: nothing was changed in NocoDB for it.
        """
        when = (now or datetime.now(UTC)).astimezone(UTC)
        if self._pruned_on != when.date():
            private_dir(self.directory)
            self.prune(when)
        dry = dry_run or self.dry_run or outcome.action is Action.DRY_RUN
        record = outcome_record(
            outcome, when=when, version=self.settings_version, dry_run=dry, intent=intent
        )
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        # A lone surrogate (NocoDB's JSON may carry one) cannot be UTF-8: written as its JSON
        # escape it reads back the same, and the record never fails over it.
        line = text.encode("utf-8", "backslashreplace")
        fd = open_private(self.path_for(when.date()), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, "short write to the audit trail")
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def prune(self, now: datetime) -> list[Path]:
        """Delete day files older than the retention period; returns what was removed."""
        oldest_kept = (now.astimezone(UTC) - timedelta(days=self.retention_days)).date()
        removed = []
        for day, path in self.files():
            if day < oldest_kept:
                path.unlink(missing_ok=True)
                removed.append(path)
        self._pruned_on = now.astimezone(UTC).date()
        return removed

    def query(
        self,
        row_id: int | None = None,
        since: datetime | None = None,
        verdict: Verdict | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Records matching every given filter, oldest first.

        An intent followed by its row's result says nothing the result does not, so it is
        left out; one without a result (the process died, or the disk filled, in between)
        is kept: it is the record of a decision that may have been carried out.
        """
        matching = list(self._matching(row_id, since, verdict))
        answered: set[Any] = set()
        kept = []
        for record in reversed(matching):
            if not record.get("intent"):
                answered.add(record.get("row_id"))
            elif record.get("row_id") in answered:
                continue
            kept.append(record)
        return iter(kept[::-1])

    def _matching(
        self, row_id: int | None, since: datetime | None, verdict: Verdict | str | None
    ) -> Iterator[dict[str, Any]]:
        since_utc = None if since is None else _as_utc(since)
        wanted_verdict = None if verdict is None else str(Verdict(verdict))
        for day, path in self.files():
            if since_utc is not None and day < since_utc.date():
                continue
            for record in _read_records(path):
                if row_id is not None and record.get("row_id") != row_id:
                    continue
                if wanted_verdict is not None and record.get("verdict") != wanted_verdict:
                    continue
                if since_utc is not None and _record_time(record) < since_utc:
                    continue
                yield record


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC: the audit file is in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _record_time(record: dict[str, Any]) -> datetime:
    try:
        return _as_utc(datetime.fromisoformat(str(record.get("time"))))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed lines of one file; a torn or garbled line is skipped with a warning."""
    try:
        handle = os.fdopen(open_to_read(path), encoding="utf-8")
    except FileNotFoundError:  # pruned by another process meanwhile
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("audit: skipping unreadable line %d of %s", number, path.name)
                continue
            if isinstance(record, dict):
                yield record


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since`` for ``history``: an ISO date/time (UTC unless it says otherwise) or an
    age such as ``30m``, ``12h``, ``7d``, ``2w``. Raises ValueError with a usable message.
    """
    cleaned = text.strip().lower()
    match = _RELATIVE_RE.match(cleaned)
    if match:
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return (now or datetime.now(UTC)).astimezone(UTC) - timedelta(seconds=seconds)
    try:
        return _as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected an ISO date/time (2024-05-01, 2024-05-01T12:00) "
            f"or an age (30m, 12h, 7d, 2w)"
        ) from None


def format_record(record: dict[str, Any]) -> str:
    """One human line for ``history``: when, which row, what happened and why."""
    flags = " (dry run: nothing changed)" if record.get("dry_run") else ""
    if record.get("intent"):
        flags += " (intent, written before acting)"
    pictures = "; ".join(_format_picture(p) for p in record.get("pictures", []))
    line = (
        f"{record.get('time')}  row {record.get('row_id')}  {record.get('verdict')}/"
        f"{record.get('reason')} -> {record.get('action')}{flags}  "
        f"politician={record.get('politician')!s}: {record.get('explanation')}"
    )
    if pictures:
        line += f"  [{pictures}]"
    return line + f"  settings={record.get('settings_version')}"


def _format_picture(picture: dict[str, Any]) -> str:
    """``picture N`` counts from 1, as the explanations do (the record's ``index`` is 0-based)."""
    index = picture.get("index")
    label = f"picture {index + 1}" if isinstance(index, int) else "picture ?"
    if picture.get("problem"):
        return f"{label}: {picture['problem']}"
    distance = picture.get("best_distance")
    shown = "" if distance is None else f", distance {distance:.2f}"
    return f"{label}: {picture.get('faces')} face(s){shown}"
