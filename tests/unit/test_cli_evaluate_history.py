"""``nocodb-guard evaluate`` and ``nocodb-guard history`` as an admin runs them.

``evaluate`` runs the real face stack on ``../shared/faces`` (skipped with a message when the
photos are absent). ``history`` reads an audit trail written by :class:`AuditLog`, the same
object the sweep records with; the sweep's own records are checked end to end against a real
NocoDB in ``tests/integration/test_audit_recheck.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nocodb_guard.cli import main
from nocodb_guard.models import (
    Action,
    Decision,
    FaceBox,
    PictureAnalysis,
    Reason,
    RowOutcome,
    Verdict,
)
from nocodb_guard.trust.audit import AuditLog

SHARED_FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"
VERSION = "0123456789ab"
ENV_SET = {"NOCODB_GUARD_LOG_LEVEL": "warning"}
ENV_CLEARED = ("NOCODB_GUARD_CONFIG", "NOCODB_GUARD_TOLERANCE", "NOCODB_GUARD_POLITICIANS")


def isolate(patch: pytest.MonkeyPatch, root: Path) -> None:
    """Settings from the environment only, with state and references under ``root``."""
    for name in ENV_CLEARED:
        patch.delenv(name, raising=False)
    for name, value in ENV_SET.items():
        patch.setenv(name, value)
    patch.setenv("NOCODB_GUARD_STATE_DIR", str(root / "state"))
    patch.setenv("NOCODB_GUARD_REFERENCE_DIR", str(root / "references"))
    patch.chdir(root)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    return tmp_path


def run_main(*argv: str) -> tuple[int, str]:
    """``nocodb-guard ARGV`` in-process: exit code and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def shared_faces() -> Path:
    if not SHARED_FACES.is_dir():
        pytest.skip(f"real photos absent: {SHARED_FACES} (see DEVELOPERS.md)")
    return SHARED_FACES.resolve()


# --- evaluate ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_evaluation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Any, Path]]:
    """``evaluate --self --json --plot`` on the shared photos, run once (about 11 s)."""
    faces = shared_faces()
    root = tmp_path_factory.mktemp("self-evaluation")
    plot = root / "distances.png"
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, root)
        code, out = run_main("evaluate", "--self", "--json", "--plot", str(plot), str(faces))
    yield code, json.loads(out), plot


@pytest.mark.shared_faces
def test_evaluate_self_on_the_shared_faces_makes_no_error_at_0_6_and_exits_0(
    self_evaluation: tuple[int, Any, Path],
) -> None:
    code, report, _ = self_evaluation
    assert code == 0
    assert report["mode"] == "self"
    assert (report["false_approvals"], report["false_rejections"]) == (0, 0)
    assert {p["tolerance"] for p in report["politicians"]} == {0.6}
    assert report["findings"] == []
    assert all(note["rejected"] for note in report["not_single_face"])


@pytest.mark.shared_faces
def test_evaluate_self_suggests_a_tolerance_between_genuine_and_impostor_distances(
    self_evaluation: tuple[int, Any, Path],
) -> None:
    _, report, _ = self_evaluation
    suggestion = report["overall"]["suggestion"]
    assert suggestion["separable"] is True
    assert suggestion["max_genuine"] < suggestion["tolerance"] < suggestion["min_impostor"]
    genuine = [d for p in report["politicians"] for d in p["genuine"]["distances"]]
    impostor = [d for p in report["politicians"] for d in p["impostor"]["distances"]]
    assert suggestion["max_genuine"] == max(genuine)
    assert suggestion["min_impostor"] == min(impostor)


@pytest.mark.shared_faces
def test_evaluate_json_holds_distances_and_no_encoding(
    self_evaluation: tuple[int, Any, Path],
) -> None:
    _, report, _ = self_evaluation
    assert "encoding" not in json.dumps(report)
    # distances are single numbers: a 128-number face encoding would be a list of lists
    for politician in report["politicians"]:
        for side in ("genuine", "impostor"):
            assert all(isinstance(d, float) for d in politician[side]["distances"])


@pytest.mark.shared_faces
def test_evaluate_plot_writes_a_png(self_evaluation: tuple[int, Any, Path]) -> None:
    pytest.importorskip("matplotlib")
    _, _, plot = self_evaluation
    assert plot.read_bytes().startswith(b"\x89PNG")


def polluted_references(faces: Path, root: Path) -> tuple[Path, Path]:
    """Obama's references with a Biden photo slipped in; a few labelled photos to test on."""
    references, photos = root / "references", root / "photos"
    for person, name in [("obama", "obama.jpg"), ("obama", "obama1.jpg"), ("biden", "biden2.jpg")]:
        (references / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(faces / person / name, references / person / name)
    shutil.copy(faces / "biden" / "biden.jpg", references / "obama" / "oops.jpg")
    for person, name in [("obama", "obama2.jpg"), ("obama", "obama3.jpg"),
                         ("biden", "biden.jpg"), ("kit_harington", "john1.jpeg")]:
        (photos / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(faces / person / name, photos / person / name)
    return references, photos


@pytest.mark.shared_faces
def test_evaluate_flags_another_persons_photo_among_the_configured_references(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    references, photos = polluted_references(shared_faces(), isolated)
    monkeypatch.setenv("NOCODB_GUARD_REFERENCE_DIR", str(references))
    code, out = run_main("evaluate", "--json", str(photos))
    report = json.loads(out)
    assert report["mode"] == "configured"
    outliers = [f for f in report["findings"] if f["kind"] == "outlier_reference"]
    assert [f["files"] for f in outliers] == [["obama/oops.jpg"]]
    assert "probably the wrong person" in outliers[0]["message"]
    assert report["false_approvals"] > 0  # Biden's own photo now passes as Obama
    assert code == 1  # false approvals at the configured tolerance


def test_evaluate_of_a_missing_directory_is_a_settings_error(isolated: Path) -> None:
    code, _ = run_main("evaluate", "--self", str(isolated / "nowhere"))
    assert code == 2


# --- history -----------------------------------------------------------------------------------

NOW = datetime.now(UTC)


def picture(faces: int = 1, distance: float | None = 0.41) -> PictureAnalysis:
    return PictureAnalysis(
        name="picture 1",
        format="JPEG",
        faces=tuple(FaceBox(0, 120, 120, 0) for _ in range(faces)),
        distances=(distance,) if distance is not None and faces == 1 else (),
    )


def outcome(
    row_id: int, decision: Decision, action: Action, *pictures: PictureAnalysis
) -> RowOutcome:
    return RowOutcome(row_id, "Grace Hopper", decision, action, pictures or (picture(),))


APPROVED = Decision(
    Verdict.APPROVED, Reason.MATCH, "1 face, distance 0.41 to Grace Hopper (tolerance 0.55)",
    0.41, 0.55,
)
NO_MATCH = Decision(
    Verdict.REJECTED, Reason.NO_MATCH,
    "1 face, distance 0.83 to Grace Hopper (tolerance 0.55): not Grace Hopper", 0.83, 0.55,
)
TWO_FACES = Decision(
    Verdict.REJECTED, Reason.MULTIPLE_FACES, "picture: 2 faces found, exactly one required"
)


@pytest.fixture
def audit_trail(isolated: Path) -> AuditLog:
    """Five decisions: an old approval, a deletion, a dry run, a group photo and a deferral."""
    log = AuditLog(isolated / "state", 30, VERSION, fsync=False)
    log.append(outcome(100, APPROVED, Action.APPROVED), now=NOW - timedelta(hours=5))
    log.append(outcome(123, NO_MATCH, Action.DELETED, picture(distance=0.83)), now=NOW)
    log.append(outcome(124, NO_MATCH, Action.DRY_RUN, picture(distance=0.83)), now=NOW)
    log.append(outcome(125, TWO_FACES, Action.DELETED, picture(faces=2)), now=NOW)
    deferred = Decision(
        Verdict.DEFERRED, Reason.UNKNOWN_POLITICIAN,
        "no reference photos configured for 'Grace Hopper'; left for a later pass",
    )
    log.append(outcome(126, deferred, Action.NONE), now=NOW)
    return log


def test_history_of_a_row_says_why_it_was_deleted(
    audit_trail: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run_main("history", "--row", "123")
    assert code == 0
    [line] = text.splitlines()
    assert "row 123" in line
    assert "rejected/no_match -> deleted" in line
    assert "distance 0.83 to Grace Hopper (tolerance 0.55): not Grace Hopper" in line
    assert "[picture 1: 1 face(s), distance 0.83]" in line
    assert f"settings={VERSION}" in line
    assert "dry run" not in line


def test_history_prints_a_record_whose_text_no_encoding_can_carry(isolated: Path) -> None:
    """A lone surrogate (NocoDB's JSON may carry one) is escaped, not an internal error."""
    odd = Decision(Verdict.REJECTED, Reason.NO_MATCH, "not Grace \ud800")
    AuditLog(isolated / "state", 30, VERSION, fsync=False).append(
        outcome(7, odd, Action.DELETED), now=NOW
    )
    for extra in ([], ["--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "nocodb_guard", "history", "--row", "7", *extra],
            capture_output=True,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, b"")
        assert b"not Grace \\ud800" in done.stdout


def test_history_json_gives_every_field_of_the_record(audit_trail: AuditLog) -> None:
    code, out = run_main("history", "--row", "123", "--json")
    [record] = json.loads(out)
    assert code == 0
    assert record["verdict"] == "rejected" and record["reason"] == "no_match"
    assert record["action"] == "deleted" and record["dry_run"] is False
    assert (record["distance"], record["tolerance"]) == (0.83, 0.55)
    assert record["settings_version"] == VERSION
    assert record["pictures"] == [
        {"index": 0, "format": "JPEG", "faces": 1, "ignored_faces": 0, "face_px": [120],
         "best_distance": 0.83, "problem": None}
    ]


def test_history_marks_dry_run_decisions_as_changing_nothing(audit_trail: AuditLog) -> None:
    code, text = run_main("history", "--row", "124")
    assert code == 0
    assert "-> dry_run (dry run: nothing changed)" in text


def test_history_filters_by_verdict(audit_trail: AuditLog) -> None:
    code, out = run_main("history", "--verdict", "rejected", "--json")
    assert code == 0
    assert [r["row_id"] for r in json.loads(out)] == [123, 124, 125]
    _, out = run_main("history", "--verdict", "deferred", "--json")
    assert [r["row_id"] for r in json.loads(out)] == [126]


def test_history_since_a_duration_leaves_older_decisions_out(audit_trail: AuditLog) -> None:
    _, out = run_main("history", "--since", "1h", "--json")
    assert [r["row_id"] for r in json.loads(out)] == [123, 124, 125, 126]
    _, out = run_main("history", "--since", "6h", "--json")
    assert next(r["row_id"] for r in json.loads(out)) == 100


def test_history_since_a_date_and_a_row_combine(audit_trail: AuditLog) -> None:
    today = NOW.date().isoformat()
    _, out = run_main("history", "--since", today, "--row", "125", "--json")
    assert [(r["row_id"], r["reason"]) for r in json.loads(out)] == [(125, "multiple_faces")]


def test_history_with_nothing_matching_says_so_and_exits_1(audit_trail: AuditLog) -> None:
    code, text = run_main("history", "--row", "999")
    assert (code, text.strip()) == (1, "no matching decisions")
    code, out = run_main("history", "--row", "999", "--json")
    assert (code, json.loads(out)) == (1, [])


def test_history_with_an_unreadable_since_is_a_usage_error(
    audit_trail: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_main("history", "--since", "last tuesday")
    assert code == 2
    assert "expected an ISO date/time" in capsys.readouterr().err


def test_history_on_an_unusable_state_dir_is_a_settings_error(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = isolated / "state-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("NOCODB_GUARD_STATE_DIR", str(not_a_folder))
    code, _ = run_main("history", "--row", "1")
    assert code == 2
    assert "cannot read the audit trail" in capsys.readouterr().err


def test_history_never_prunes_the_trail_it_reads(
    audit_trail: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only command changes nothing, whatever retention the caller's settings say."""
    old = audit_trail.path_for((NOW - timedelta(days=40)).date())
    old.write_text(json.dumps({"row_id": 1, "verdict": "rejected", "time": "x"}) + "\n")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in audit_trail.directory.iterdir())
    monkeypatch.setenv("NOCODB_GUARD_AUDIT_RETENTION_DAYS", "1")
    code, out = run_main("history", "--row", "1", "--json")
    assert (code, [r["row_id"] for r in json.loads(out)]) == (0, [1])
    assert old.exists()
    assert sorted((p.name, p.stat().st_mtime_ns) for p in audit_trail.directory.iterdir()) == before
