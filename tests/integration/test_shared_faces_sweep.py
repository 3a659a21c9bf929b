"""Every real photo of ``<repo>/../shared/faces`` uploaded for ``obama``: one sweep sorts them.

The reference is ONE Obama source photo (``obama/obama.jpg``, source ``obama_A``). The
resized and cropped copies of obama_A match trivially; the other Obama photos (sources
obama_B, obama_C, obama_D) are the real test of the comparison. Every other person is
deleted as ``no_match``, every group photo as ``multiple_faces``. Two face workers.
"""

from __future__ import annotations

import csv
import mimetypes
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import DevServer
from tests.integration.test_sweep import by_id, run_guard, sweep_json

SHARED_FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"
REFERENCE = "obama/obama.jpg"

pytestmark = [
    pytest.mark.shared_faces,
    pytest.mark.skipif(
        not (SHARED_FACES / "manifest.csv").is_file(),
        reason=f"real test photos absent: {SHARED_FACES} (shared/faces beside the checkout)",
    ),
]


def manifest() -> list[dict[str, str]]:
    with (SHARED_FACES / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_verdict(entry: dict[str, str]) -> tuple[str, str]:
    persons = entry["persons"].split(";")
    if len(persons) > 1:
        return "rejected", "multiple_faces"
    if persons == ["obama"]:
        return "approved", "match"
    return "rejected", "no_match"


def test_only_the_single_person_obama_photos_survive_a_sweep(
    clean_table: DevServer, tmp_path: Path
) -> None:
    references = tmp_path / "references"
    (references / "obama").mkdir(parents=True)
    shutil.copyfile(SHARED_FACES / REFERENCE, references / "obama" / "obama.jpg")
    entries = manifest()
    uploaded: dict[int, dict[str, str]] = {}
    for entry in entries:
        path = SHARED_FACES / entry["file"]
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        row = clean_table.submit("obama", [(path.name, path.read_bytes(), mimetype)])
        uploaded[int(row["Id"])] = entry

    result = run_guard(
        clean_table, references, tmp_path / "state", "sweep", "--json",
        timeout=300, NOCODB_GUARD_WORKERS="2",
    )

    assert result.returncode == 0, result.stderr
    outcomes = by_id(sweep_json(result)["rows"], "id")
    got = {
        uploaded[row_id]["file"]: (o["verdict"], o["reason"]) for row_id, o in outcomes.items()
    }
    assert got == {entry["file"]: expected_verdict(entry) for entry in entries}
    survivors = {uploaded[int(row["Id"])]["file"] for row in clean_table.rows()}
    assert survivors == {e["file"] for e in entries if e["persons"] == "obama"}
    for row in clean_table.rows():
        assert row["Status"] == "approved"
        assert row["Reason"].startswith("1 face, distance 0.")
    other_sources = [
        o["distance"] for row_id, o in outcomes.items()
        if uploaded[row_id]["persons"] == "obama" and uploaded[row_id]["source_photo"] != "obama_A"
    ]
    assert other_sources and max(other_sources) < 0.6
