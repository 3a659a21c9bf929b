"""Heartbeat file and the ``nocodb-guard health`` check built on it.

The daemon writes ``heartbeat.json`` in the state dir after every successful sweep; the
health check (a container ``HEALTHCHECK``, a monitoring probe) only reads that file, so it
needs no token, no NocoDB and no face stack, and it cannot disturb the running service.
A sweep that fails (NocoDB down) writes nothing: the heartbeat ages and the check fails
once it is older than ``heartbeat_max_age``.

The file holds a timestamp, verdict counts, the queue depth (rows waiting at the start of
the pass), the seconds the rate limit paced that pass, a pid and, when the last sweep could
not write its audit trail, that problem: nothing about uploads or uploaders. ``health --json``
prints all of it for monitoring. A state dir without free space is unhealthy whatever the
heartbeat says: the sweep acts only on what it has recorded, so with a full disk it defers
every row (and cannot even write the heartbeat to say so).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nocodb_guard.errors import GuardError
from nocodb_guard.safefiles import open_to_read

HEARTBEAT_FILE = "heartbeat.json"
MIN_FREE_BYTES = 1024 * 1024
"""Below this, audit records (about 1 kB each) may no longer fit: rows would be deferred."""


class InvalidHeartbeat(GuardError):
    """The heartbeat file exists but cannot be understood (truncated, edited by hand)."""


@dataclass(frozen=True)
class Heartbeat:
    """The last successful sweep, as recorded by the daemon."""

    last_success: datetime
    summary: dict[str, int] = field(default_factory=dict)
    pid: int = 0
    pending: int | None = None
    """Rows waiting at the start of that pass; None when the count failed (or older files)."""
    paced_seconds: float = 0.0
    """Seconds that pass's NocoDB requests waited for the rate limit."""
    problem: str | None = None
    """Why the sweep could not do its work although NocoDB answered (audit unwritable)."""


@dataclass(frozen=True)
class HealthStatus:
    """Result of :func:`check_health`: ``age`` is None when there is no usable heartbeat."""

    ok: bool
    message: str
    age: float | None = None
    heartbeat: Heartbeat | None = None

    def as_json(self) -> dict[str, Any]:
        """What ``health --json`` prints."""
        beat = self.heartbeat
        return {
            "ok": self.ok,
            "message": self.message,
            "age_seconds": None if self.age is None else round(self.age, 1),
            "last_success": None if beat is None else beat.last_success.isoformat(),
            "pending": None if beat is None else beat.pending,
            "paced_seconds": None if beat is None else round(beat.paced_seconds, 1),
            "summary": {} if beat is None else beat.summary,
            "problem": None if beat is None else beat.problem,
        }


def heartbeat_path(state_dir: Path) -> Path:
    return state_dir / HEARTBEAT_FILE


def write_heartbeat(
    state_dir: Path,
    summary: Mapping[str, int],
    now: datetime | None = None,
    *,
    pending: int | None = None,
    paced_seconds: float = 0.0,
    problem: str | None = None,
) -> Path:
    """Record a completed sweep; atomic, so a reader never sees half a file."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    payload = {
        "last_success": moment.isoformat(),
        "summary": {str(key): int(value) for key, value in summary.items()},
        "pid": os.getpid(),
        "pending": pending,
        "paced_seconds": round(paced_seconds, 3),
        "problem": problem,
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    target = heartbeat_path(state_dir)
    fd, tmp_name = tempfile.mkstemp(prefix=".heartbeat.", suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def read_heartbeat(state_dir: Path) -> Heartbeat | None:
    """The recorded heartbeat, None when none was written yet.

    Raises :class:`InvalidHeartbeat` when the file is there but unusable.
    """
    try:
        with os.fdopen(open_to_read(heartbeat_path(state_dir)), encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidHeartbeat(f"cannot read {heartbeat_path(state_dir)}: {exc}") from None
    try:
        return _parse(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidHeartbeat(f"corrupt {heartbeat_path(state_dir)}: {exc}") from None


def _parse(data: Any) -> Heartbeat:
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    moment = datetime.fromisoformat(str(data["last_success"]))
    if moment.tzinfo is None:  # written by us always with an offset; be strict anyway
        raise ValueError("last_success has no time zone")
    summary = data.get("summary") or {}
    if not isinstance(summary, dict):
        raise TypeError("summary is not an object")
    pending = data.get("pending")
    return Heartbeat(
        last_success=moment.astimezone(UTC),
        summary={str(key): int(value) for key, value in summary.items()},
        pid=int(data.get("pid", 0)),
        pending=None if pending is None else int(pending),
        paced_seconds=float(data.get("paced_seconds") or 0.0),
        problem=None if data.get("problem") is None else str(data["problem"]),
    )


def check_health(
    state_dir: Path, max_age_seconds: float, now: datetime | None = None
) -> HealthStatus:
    """Healthy when the last sweep is at most ``max_age_seconds`` old and could record."""
    full = _free_space_problem(state_dir)
    if full is not None:
        return HealthStatus(ok=False, message=full)
    try:
        heartbeat = read_heartbeat(state_dir)
    except InvalidHeartbeat as exc:
        return HealthStatus(ok=False, message=str(exc))
    if heartbeat is None:
        return HealthStatus(
            ok=False, message=f"no successful sweep recorded yet in {heartbeat_path(state_dir)}"
        )
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    # A heartbeat slightly in the future (clock stepped back) still proves liveness.
    age = max(0.0, (moment - heartbeat.last_success).total_seconds())
    counts = ", ".join(f"{key}={value}" for key, value in sorted(heartbeat.summary.items()))
    if heartbeat.pending is not None:
        counts += f"{', ' if counts else ''}pending={heartbeat.pending}"
    when = heartbeat.last_success.isoformat(timespec="seconds")
    if age > max_age_seconds:
        return HealthStatus(
            ok=False,
            message=f"last successful sweep {age:.0f}s ago ({when}), "
            f"older than {max_age_seconds:.0f}s",
            age=age,
            heartbeat=heartbeat,
        )
    if heartbeat.problem:
        message = f"last sweep {when}: {heartbeat.problem}"
        return HealthStatus(ok=False, message=message, age=age, heartbeat=heartbeat)
    detail = f"; {counts}" if counts else ""
    return HealthStatus(
        ok=True,
        message=f"last successful sweep {age:.0f}s ago ({when}){detail}",
        age=age,
        heartbeat=heartbeat,
    )


def _free_space_problem(state_dir: Path) -> str | None:
    """A read-only look at the state dir's file system (``health`` must change nothing)."""
    try:
        info = os.statvfs(state_dir)
    except OSError:
        return None  # no state dir yet: the heartbeat check says what matters
    free = info.f_bavail * info.f_frsize
    if free >= MIN_FREE_BYTES:
        return None
    return (
        f"state dir {state_dir} has {free} bytes free: the audit trail cannot be written, "
        "so rows are deferred (nothing deleted or approved)"
    )


def health_main(
    state_dir: Path,
    max_age_seconds: float,
    out: Callable[[str], None],
    now: datetime | None = None,
) -> int:
    """The ``health`` subcommand: report through ``out`` (the CLI's echo); 0 healthy, 1 not."""
    status = check_health(state_dir, max_age_seconds, now=now)
    out(("ok: " if status.ok else "unhealthy: ") + status.message)
    return 0 if status.ok else 1
