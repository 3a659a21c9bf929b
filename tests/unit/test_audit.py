"""The audit trail: one JSON line per decision, retention, queries, nothing biometric."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nocodb_guard.models import (
    Action,
    Decision,
    FaceBox,
    Ignored,
    PictureAnalysis,
    Reason,
    RowOutcome,
    SeenFace,
    Verdict,
)
from nocodb_guard.settings import Politician, Settings
from nocodb_guard.trust.audit import AuditLog, format_record, parse_since, settings_version

NOW = datetime(2024, 5, 31, 12, 0, tzinfo=UTC)


def _approved(row_id: int = 123) -> RowOutcome:
    picture = PictureAnalysis(
        name="selfie of me.jpg",
        format="JPEG",
        original_size=(1200, 900),
        analysed_size=(1024, 768),
        faces=(FaceBox(100, 300, 300, 100),),
        seen=(
            SeenFace(FaceBox(100, 300, 300, 100), 0.85),
            SeenFace(FaceBox(20, 60, 60, 20), 0.85, Ignored.BACKGROUND),
        ),
        distances=(0.52, 0.41, 0.47),
    )
    decision = Decision(
        Verdict.APPROVED,
        Reason.MATCH,
        "1 face, distance 0.41 to Grace Hopper (tolerance 0.55)",
        0.41,
        0.55,
    )
    return RowOutcome(row_id, "Grace Hopper", decision, Action.APPROVED, (picture,))


def _rejected(row_id: int = 7) -> RowOutcome:
    picture = PictureAnalysis(
        name="cat.png", problem=Reason.NOT_AN_IMAGE, detail="cannot identify image file cat.png"
    )
    decision = Decision(Verdict.REJECTED, Reason.NOT_AN_IMAGE, "picture 1 is not an image")
    return RowOutcome(row_id, "Grace Hopper", decision, Action.DELETED, (picture,))


def _lines(log: AuditLog) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for _, path in log.files()
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_each_decision_appends_one_json_line(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "abc123")
    log.append(_approved(), now=NOW)
    log.append(_rejected(), now=NOW + timedelta(minutes=1))
    records = _lines(log)
    assert [r["row_id"] for r in records] == [123, 7]
    first = records[0]
    assert first["time"] == "2024-05-31T12:00:00+00:00"
    assert first["politician"] == "Grace Hopper"
    assert (first["verdict"], first["reason"], first["action"]) == ("approved", "match", "approved")
    assert first["explanation"] == "1 face, distance 0.41 to Grace Hopper (tolerance 0.55)"
    assert (first["distance"], first["tolerance"]) == (0.41, 0.55)
    assert first["settings_version"] == "abc123"
    assert first["dry_run"] is False
    assert first["pictures"] == [
        {
            "index": 0,
            "format": "JPEG",
            "faces": 1,
            "ignored_faces": 1,
            "face_px": [200],
            "best_distance": 0.41,
            "problem": None,
        }
    ]
    assert records[1]["pictures"][0]["problem"] == "not_an_image"


def test_the_audit_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.append(_approved(), now=NOW)
    [(_, path)] = log.files()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.name == "audit-2024-05-31.jsonl"


def _walk(value: Any) -> list[Any]:
    """Every nested value of a JSON document, keys included as strings."""
    found = [value]
    if isinstance(value, dict):
        for key, item in value.items():
            found.append(key)
            found.extend(_walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_walk(item))
    return found


def test_a_record_holds_nothing_biometric_nor_uploader_text(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.append(_approved(), now=NOW)
    log.append(_rejected(), now=NOW)
    raw = "".join(p.read_text(encoding="utf-8") for _, p in log.files())
    for value in _walk(_lines(log)):
        if isinstance(value, str):
            assert "encoding" not in value.lower()
        if isinstance(value, list):
            assert len(value) < 128, "a list as long as a face encoding"
    for forbidden in ("selfie of me", "cat.png", "top", "left", "box"):
        assert forbidden not in raw
    # the distance to every reference is not needed: only the best one is kept
    assert "0.52" not in raw


def test_a_dry_run_decision_is_marked(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    assert log.append(_approved(), dry_run=True, now=NOW)["dry_run"] is True
    dry = RowOutcome(1, "Ada", _approved().decision, Action.DRY_RUN)
    assert log.append(dry, now=NOW)["dry_run"] is True
    assert AuditLog(tmp_path, 30, "v", dry_run=True).append(_approved())["dry_run"]


def test_the_sweep_records_through_the_recorder_interface(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.record(_approved(5))
    assert [r["row_id"] for r in log.query()] == [5]


def test_files_older_than_the_retention_are_pruned_by_the_first_record(tmp_path: Path) -> None:
    old = AuditLog(tmp_path, 30, "v")
    old.append(_approved(1), now=NOW - timedelta(days=40))
    old.append(_approved(2), now=NOW - timedelta(days=30))
    log = AuditLog(tmp_path, 30, "v")
    assert [r["row_id"] for r in log.query()] == [1, 2], "opening the log changes nothing"
    log.append(_approved(3), now=NOW)
    assert [r["row_id"] for r in log.query()] == [2, 3]


def test_a_log_opened_to_read_creates_nothing(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "state", 30, "v")
    assert list(log.query()) == []
    assert not (tmp_path / "state").exists()


def test_an_audit_file_planted_as_a_symlink_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    log = AuditLog(tmp_path / "state", 30, "v")
    log.directory.mkdir(parents=True)
    log.path_for(NOW.date()).symlink_to(target)
    with pytest.raises(OSError):
        log.append(_approved(), now=NOW)
    assert target.read_text() == "keep me\n"


def test_loose_modes_of_an_existing_trail_are_tightened(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.directory.mkdir(mode=0o755)
    log.directory.chmod(0o755)
    day_file = log.path_for(NOW.date())
    day_file.write_text("")
    day_file.chmod(0o644)
    log.append(_approved(), now=NOW)
    assert stat.S_IMODE(log.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(day_file.stat().st_mode) == 0o600


def test_recording_on_a_new_day_prunes_expired_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 2, "v")
    log.append(_approved(1), now=NOW)
    log.append(_approved(2), now=NOW + timedelta(days=3))
    assert [r["row_id"] for r in log.query()] == [2]


def test_history_answers_why_a_row_was_deleted(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.append(_approved(123), now=NOW)
    log.append(_rejected(7), now=NOW)
    [record] = log.query(row_id=7)
    assert (record["action"], record["reason"]) == ("deleted", "not_an_image")
    line = format_record(record)
    assert "row 7" in line and "not_an_image" in line and "picture 1 is not an image" in line


def test_text_with_a_lone_surrogate_is_recorded_and_read_back(tmp_path: Path) -> None:
    """NocoDB's JSON may carry one (``\\ud800``): a failing record would fail every pass."""
    log = AuditLog(tmp_path, 30, "v")
    log.append(replace(_rejected(7), politician="Grace \ud800"), now=NOW)
    [record] = log.query(row_id=7)
    assert record["politician"] == "Grace \ud800"
    assert "Grace" in format_record(record)


def test_history_filters_by_verdict_and_time(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.append(_rejected(1), now=NOW - timedelta(days=2))
    log.append(_approved(2), now=NOW - timedelta(hours=1))
    log.append(_rejected(3), now=NOW)
    assert [r["row_id"] for r in log.query(verdict="rejected")] == [1, 3]
    recent = log.query(verdict=Verdict.REJECTED, since=NOW - timedelta(hours=2))
    assert [r["row_id"] for r in recent] == [3]
    assert [r["row_id"] for r in log.query(since=NOW - timedelta(days=1))] == [2, 3]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.append(_approved(1), now=NOW)
    [(_, path)] = log.files()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"row_id": 2, "verd')
    assert [r["row_id"] for r in log.query()] == [1]


def test_an_unknown_verdict_filter_is_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    with pytest.raises(ValueError):
        list(log.query(verdict="maybe"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T08:30:00+02:00", datetime(2024, 5, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_since_accepts_dates_and_ages(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


def test_since_explains_what_it_expects() -> None:
    with pytest.raises(ValueError, match="ISO date"):
        parse_since("yesterday", now=NOW)


def test_the_settings_version_changes_with_the_tolerance_only_when_decisions_can() -> None:
    base = settings_version(Settings(tolerance=0.6))
    assert base == settings_version(Settings(tolerance=0.6, poll_interval=5))
    assert base != settings_version(Settings(tolerance=0.5))
    assert base != settings_version(Settings(politicians={"Ada": Politician(tolerance=0.4)}))
    assert len(base) == 12


def test_an_action_is_written_as_its_plain_word_and_older_records_still_read(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.append(_rejected(7), now=NOW)
    older = {"time": NOW.isoformat(), "row_id": 8, "verdict": "rejected", "reason": "no_face",
             "action": "tagged_rejected", "explanation": "picture: no face found"}
    with log.path_for(NOW.date()).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(older) + "\n")
    assert '"action":"deleted"' in log.path_for(NOW.date()).read_text(encoding="utf-8")
    [record] = log.query(row_id=8)
    assert Action(record["action"]) is Action.TAGGED_REJECTED
    assert "rejected/no_face -> tagged_rejected" in format_record(record)


def test_history_leaves_out_an_intent_once_its_result_is_recorded(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, 30, "v")
    log.append(_rejected(7), intent=True, now=NOW)
    log.append(_rejected(7), now=NOW)
    log.append(_rejected(8), intent=True, now=NOW)  # the disk filled before the result
    assert [(r["row_id"], r["intent"]) for r in log.query()] == [(7, False), (8, True)]
    assert "(intent, written before acting)" in format_record(next(iter(log.query(row_id=8))))
