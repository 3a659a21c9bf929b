"""Decisions an admin can trust, against the real NocoDB: audit trail, history, re-checks.

One module-wide scenario keeps the run short (about a minute, ``workers=1``): visitors upload
through the public form; a dry run, then a real sweep decide every row; the tests then read
the audit trail, ``history``, the Reasons written in NocoDB and, last, re-check the approved
rows after the tolerance is tightened.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nocodb_guard import samples
from tests.demo_references import install_demo_references
from tests.integration.conftest import REPO, DevServer

GRACE = "Grace Hopper (demo)"
EILEEN = "Eileen Collins (demo)"
NOBODY = "Nobody Configured"
CLI_TIMEOUT_S = 120
#: Uploader-chosen text that must never reach the audit trail or an explanation.
SECRET_TITLE = "uploader-secret-title-7f3a"
SECRET_NAME = "uploader-secret-name-9c2e"


@dataclass
class Scenario:
    """The uploads, where the guard keeps its state, and what the two sweeps printed."""

    server: DevServer
    root: Path
    rows: dict[str, int] = field(default_factory=dict)
    dry_run: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    sweep_code: int = -1

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def audit_dir(self) -> Path:
        return self.state_dir / "audit"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOCODB_GUARD_")}
        env.update(
            {
                "NOCODB_GUARD_REFERENCE_DIR": str(self.root / "references"),
                "NOCODB_GUARD_STATE_DIR": str(self.state_dir),
                "NOCODB_GUARD_WORKERS": "1",
                "NOCODB_GUARD_LOG_LEVEL": "warning",
                "NOCODB_GUARD_TOLERANCE": "0.6",
            }
        )
        env.update({f"NOCODB_GUARD_{k.upper()}": v for k, v in overrides.items()})
        return env

    def cli(self, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        """``nocodb-guard ARGS`` as the console script runs it."""
        return subprocess.run(
            [sys.executable, "-m", "nocodb_guard", "--env-file", str(self.server.env_file), *args],
            env=self.env(**overrides),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    def cli_json(self, *args: str, **overrides: str) -> tuple[int, Any]:
        result = self.cli(*args, "--json", **overrides)
        try:
            return result.returncode, json.loads(result.stdout)
        except ValueError as exc:
            raise AssertionError(
                f"{args} printed no JSON (rc {result.returncode}):\n{result.stdout}\n"
                f"{result.stderr[-3000:]}"
            ) from exc

    def records(self) -> list[dict[str, Any]]:
        """Every decision of every audit day file, parsed (not the intents written first)."""
        return [
            record
            for path in sorted(self.audit_dir.glob("audit-*.jsonl"))
            for line in path.read_text().splitlines()
            if not (record := json.loads(line)).get("intent")
        ]

    def by_row(self, report: dict[str, Any]) -> dict[int, dict[str, Any]]:
        return {int(entry["id"]): entry for entry in report["rows"]}


#: label -> (politician, files); every file named with uploader-chosen text.
UPLOADS: dict[str, tuple[str, list[tuple[str, Any, str]]]] = {
    "match": (GRACE, [(f"{SECRET_NAME}.jpg", samples.grace_hopper_variant, "image/jpeg")]),
    "two_matches": (GRACE, [
        (f"{SECRET_NAME}-1.jpg", samples.grace_hopper_variant, "image/jpeg"),
        (f"{SECRET_NAME}-2.jpg", lambda: samples.as_jpeg(samples.grace_hopper_jpeg(), 80),
         "image/jpeg"),
    ]),
    "wrong_person": (GRACE, [(f"{SECRET_NAME}.png", samples.astronaut_png, "image/png")]),
    "second_picture_wrong": (GRACE, [
        (f"{SECRET_NAME}-1.jpg", samples.grace_hopper_variant, "image/jpeg"),
        (f"{SECRET_NAME}-2.png", samples.astronaut_png, "image/png"),
    ]),
    "cat": (EILEEN, [(f"{SECRET_NAME}.png", samples.chelsea_png, "image/png")]),
    "two_faces": (EILEEN, [(f"{SECRET_NAME}.jpg", samples.two_faces_side_by_side, "image/jpeg")]),
    "text": (GRACE, [(f"{SECRET_NAME}.jpg", samples.text_as_jpg, "image/jpeg")]),
    "nobody": (NOBODY, [(f"{SECRET_NAME}.jpg", samples.grace_hopper_variant, "image/jpeg")]),
}

EXPECTED = {
    "match": ("approved", "match", "approved"),
    "two_matches": ("approved", "match", "approved"),
    "wrong_person": ("rejected", "no_match", "deleted"),
    "second_picture_wrong": ("rejected", "no_match", "deleted"),
    "cat": ("rejected", "no_face", "deleted"),
    "two_faces": ("rejected", "multiple_faces", "deleted"),
    "text": ("rejected", "not_an_image", "deleted"),
    "nobody": ("deferred", "unknown_politician", "none"),
}

#: What a person reads for each row (the Reason written, the log's and the audit's explanation).
EXPLANATIONS = {
    "match": r"^1 face, distance 0\.\d\d to Grace Hopper \(demo\) \(tolerance 0\.60\)$",
    "two_matches": r"^2 pictures, 1 face each, largest distance 0\.\d\d to Grace Hopper \(demo\) "
                   r"\(tolerance 0\.60\)$",
    "wrong_person": r"^1 face, distance 0\.\d\d to Grace Hopper \(demo\) \(tolerance 0\.60\): "
                    r"not Grace Hopper \(demo\)$",
    "second_picture_wrong": r"^picture 2: 1 face, distance 0\.\d\d to Grace Hopper \(demo\) "
                            r"\(tolerance 0\.60\): not Grace Hopper \(demo\)$",
    "cat": r"^picture: no face found$",
    "two_faces": r"^picture: 2 faces found, exactly one required$",
    "text": r"^picture is not an image: the file is text$",
    "nobody": r"^no reference photos configured for 'Nobody Configured'; left for a later pass$",
}


@pytest.fixture(scope="module")
def scenario(nocodb: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Uploads, an expired audit day file, a dry run, then a real sweep (about 30 s)."""
    if nocodb.pid() is None:
        nocodb.start()
    nocodb.clear()
    world = Scenario(nocodb, tmp_path_factory.mktemp("audit-recheck"))
    install_demo_references(world.root / "references")
    world.audit_dir.mkdir(mode=0o700, parents=True)  # as an earlier run left it
    expired = (datetime.now(UTC) - timedelta(days=31)).date()
    (world.audit_dir / f"audit-{expired.isoformat()}.jsonl").write_text('{"row_id": 1}\n')
    for label, (politician, files) in UPLOADS.items():
        made = [(name, make(), mimetype) for name, make, mimetype in files]
        world.rows[label] = int(nocodb.submit(politician, made, title=SECRET_TITLE)["Id"])
    code, world.dry_run = world.cli_json("sweep", "--dry-run")
    assert code == 1, world.dry_run  # the Nobody row is deferred
    world.sweep_code, world.sweep = world.cli_json("sweep")
    yield world
    nocodb.clear()


def label_of(world: Scenario, row_id: int) -> str:
    return next(label for label, known in world.rows.items() if known == row_id)


# --- the sweep's decisions and their audit records ---------------------------------------------


def test_the_sweep_decides_every_row_as_expected(scenario: Scenario) -> None:
    decided = scenario.by_row(scenario.sweep)
    for label, row_id in scenario.rows.items():
        entry = decided[row_id]
        assert (entry["verdict"], entry["reason"], entry["action"]) == EXPECTED[label], entry
    assert scenario.sweep_code == 1  # the Nobody row is deferred, never deleted


def test_every_explanation_says_in_plain_words_what_was_found(scenario: Scenario) -> None:
    decided = scenario.by_row(scenario.sweep)
    for label, row_id in scenario.rows.items():
        assert re.match(EXPLANATIONS[label], decided[row_id]["explanation"]), (label, decided)


def test_the_reason_written_on_an_approved_row_is_its_explanation(scenario: Scenario) -> None:
    for label in ("match", "two_matches"):
        row = scenario.server.row(scenario.rows[label])
        assert row is not None and row["Status"] == "approved"
        assert re.match(EXPLANATIONS[label], row["Reason"]), row["Reason"]


def test_the_audit_holds_one_record_per_decision_and_the_dry_run_apart(
    scenario: Scenario,
) -> None:
    records = scenario.records()
    real = [r for r in records if not r["dry_run"]]
    dry = [r for r in records if r["dry_run"]]
    assert sorted(r["row_id"] for r in real) == sorted(scenario.rows.values())
    assert sorted(r["row_id"] for r in dry) == sorted(scenario.rows.values())
    assert {r["action"] for r in dry} == {"dry_run"}
    for record in real:
        label = label_of(scenario, record["row_id"])
        assert (record["verdict"], record["reason"], record["action"]) == EXPECTED[label]
        assert re.match(EXPLANATIONS[label], record["explanation"])
        assert record["politician"] == UPLOADS[label][0]
        assert len(record["pictures"]) == (0 if label == "nobody" else len(UPLOADS[label][1]))
        assert re.fullmatch(r"[0-9a-f]{12}", record["settings_version"])


def test_an_audit_record_carries_faces_distance_and_tolerance_per_picture(
    scenario: Scenario,
) -> None:
    [record] = [r for r in scenario.records()
                if r["row_id"] == scenario.rows["second_picture_wrong"] and not r["dry_run"]]
    assert record["tolerance"] == 0.6
    first, second = record["pictures"]
    assert (first["index"], first["faces"], second["index"], second["faces"]) == (0, 1, 1, 1)
    assert first["best_distance"] < 0.6 < second["best_distance"]
    assert record["distance"] == second["best_distance"]
    assert {first["format"], second["format"]} == {"JPEG", "PNG"}


def test_the_audit_holds_nothing_biometric_nor_uploader_text(scenario: Scenario) -> None:
    text = "\n".join(p.read_text() for p in scenario.audit_dir.glob("audit-*.jsonl"))
    assert SECRET_TITLE not in text and SECRET_NAME not in text
    assert "encoding" not in text
    allowed = {"index", "format", "faces", "ignored_faces", "face_px", "best_distance", "problem"}
    for record in scenario.records():
        for picture in record["pictures"]:
            assert set(picture) == allowed  # no encoding, no face position
            assert len(picture["face_px"]) <= 2  # face sizes only, a handful of numbers


def test_audit_files_are_private_and_expired_days_are_pruned(scenario: Scenario) -> None:
    files = sorted(scenario.audit_dir.iterdir())
    assert files, "no audit file written"
    oldest = datetime.now(UTC).date() - timedelta(days=31)
    assert all(p.name >= f"audit-{oldest.isoformat()}.jsonl" for p in files)
    assert len(files) <= 2  # today (and yesterday when the run crossed midnight UTC)
    assert scenario.audit_dir.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)


# --- history -----------------------------------------------------------------------------------


def test_history_of_a_deleted_row_says_why(scenario: Scenario) -> None:
    row_id = scenario.rows["wrong_person"]
    result = scenario.cli("history", "--row", str(row_id))
    assert result.returncode == 0, result.stderr
    dry_line, real_line = result.stdout.splitlines()
    assert "(dry run: nothing changed)" in dry_line
    assert f"row {row_id}  rejected/no_match -> deleted  politician={GRACE}" in real_line
    assert re.search(r"distance 0\.\d\d to Grace Hopper \(demo\) \(tolerance 0\.60\)", real_line)
    assert re.search(r"\[picture 1: 1 face\(s\), distance 0\.\d\d\]", real_line)
    assert re.search(r"settings=[0-9a-f]{12}$", real_line)
    assert "dry run" not in real_line


def test_history_of_a_multi_picture_row_names_the_picture_that_failed(scenario: Scenario) -> None:
    result = scenario.cli("history", "--row", str(scenario.rows["second_picture_wrong"]))
    line = result.stdout.splitlines()[-1]
    assert re.search(r": picture 2: 1 face, distance (0\.\d\d) .*"
                     r"\[picture 1: 1 face\(s\), distance 0\.\d\d; "
                     r"picture 2: 1 face\(s\), distance \1\]", line), line


def test_history_json_since_an_hour_filtered_by_verdict(scenario: Scenario) -> None:
    code, records = scenario.cli_json("history", "--since", "1h", "--verdict", "rejected")
    assert code == 0
    rejected = {v for k, v in scenario.rows.items() if EXPECTED[k][0] == "rejected"}
    assert {r["row_id"] for r in records} == rejected
    assert {r["verdict"] for r in records} == {"rejected"}
    assert len(records) == 2 * len(rejected)  # the dry run's and the sweep's


# --- re-checking approved rows -----------------------------------------------------------------


def test_a_tightened_tolerance_re_check_reports_then_applies(scenario: Scenario) -> None:
    approved = {scenario.rows["match"], scenario.rows["two_matches"]}
    reasons_before = {i: scenario.server.row(i)["Reason"] for i in approved}  # type: ignore[index]

    # Unchanged settings: every approved row still passes, nothing to do.
    code, report = scenario.cli_json("sweep", "--recheck-approved")
    assert code == 0, report
    still = {(r["id"], r["action"]) for r in report["rows"]}
    assert still == {(i, "still_approved") for i in approved}

    # Tolerance tightened to 0.1: both approved rows would now fail; reported, not touched.
    code, report = scenario.cli_json("sweep", "--recheck-approved", tolerance="0.1")
    assert code == 1, report
    rows = scenario.by_row(report)
    assert set(rows) == approved  # only approved rows are re-checked (not the deferred one)
    for entry in rows.values():
        assert (entry["verdict"], entry["reason"], entry["action"]) == (
            "rejected", "no_match", "would_reject")
        assert re.match(r"^re-check: .*\(tolerance 0\.10\): not Grace Hopper \(demo\)$",
                        entry["explanation"]), entry["explanation"]
    for row_id in approved:
        row = scenario.server.row(row_id)
        assert row is not None and row["Status"] == "approved"
        assert row["Reason"] == reasons_before[row_id]
    assert scenario.server.row(scenario.rows["nobody"]) is not None

    # --apply acts on them, with the same safeguards as a sweep (re-read before delete).
    code, report = scenario.cli_json("sweep", "--recheck-approved", "--apply", tolerance="0.1")
    assert code == 0, report
    assert {(r["id"], r["action"]) for r in report["rows"]} == {(i, "deleted") for i in approved}
    assert all(scenario.server.row(i) is None for i in approved)
    assert scenario.server.row(scenario.rows["nobody"]) is not None

    # The audit tells the whole story of the row, the re-check's settings version included.
    row_id = scenario.rows["match"]
    code, records = scenario.cli_json("history", "--row", str(row_id))
    assert code == 0
    story = [(r["action"], r["dry_run"]) for r in records]
    assert story == [("dry_run", True), ("approved", False), ("still_approved", True),
                     ("would_reject", True), ("deleted", False)]
    assert records[-1]["tolerance"] == 0.1
    assert records[-1]["explanation"].startswith("re-check: 1 face, distance")
    assert records[-1]["settings_version"] != records[1]["settings_version"]
    text = scenario.cli("history", "--row", str(row_id)).stdout.splitlines()[-1]
    assert "rejected/no_match -> deleted" in text and "re-check:" in text
