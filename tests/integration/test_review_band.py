"""The review band against the real NocoDB: a picture inside it is tagged, never deleted.

Grace Hopper's own variant photo sits well under the tolerance; a band of [0.05, 0.65] puts it
inside, so the row must come out ``review`` (Status ``review``, the distance in Reason), while a
cat in the same pass is still deleted: the band touches only distances.
"""

from __future__ import annotations

import re
from pathlib import Path

from nocodb_guard import samples
from tests.demo_references import install_demo_references
from tests.integration.conftest import DevServer
from tests.integration.test_sweep import run_guard, sweep_json

GRACE = "Grace Hopper (demo)"
BAND = {"NOCODB_GUARD_TOLERANCE": "0.6", "NOCODB_GUARD_REVIEW_BAND": "[0.05, 0.65]"}


def test_a_row_inside_the_review_band_is_tagged_review_and_left_for_an_admin(
    clean_table: DevServer, tmp_path: Path
) -> None:
    references = install_demo_references(tmp_path / "references")
    me = [("me.jpg", samples.grace_hopper_variant(), "image/jpeg")]
    close = int(clean_table.submit(GRACE, me)["Id"])
    cat = int(clean_table.submit(GRACE, [("cat.png", samples.chelsea_png(), "image/png")])["Id"])

    result = run_guard(clean_table, references, tmp_path / "state", "sweep", "--json", **BAND)

    report = sweep_json(result)
    decided = {int(entry["id"]): entry for entry in report["rows"]}
    assert (decided[close]["verdict"], decided[close]["action"]) == ("review", "tagged_review")
    assert decided[cat]["action"] == "deleted"
    assert report["summary"]["review"] == 1
    row = clean_table.row(close)
    assert row is not None, "a row in the review band must never be deleted"
    assert row["Status"] == "review"
    assert re.match(r"^distance 0\.\d\d to Grace Hopper \(demo\) \(tolerance 0\.60\): inside "
                    r"the review band 0\.05-0\.65, left for an admin$", row["Reason"])
    assert clean_table.row(cat) is None


def test_a_row_tagged_review_is_not_judged_again_on_the_next_pass(
    clean_table: DevServer, tmp_path: Path
) -> None:
    references = install_demo_references(tmp_path / "references")
    clean_table.submit(GRACE, [("me.jpg", samples.grace_hopper_variant(), "image/jpeg")])
    state = tmp_path / "state"
    run_guard(clean_table, references, state, "sweep", "--json", **BAND)

    again = sweep_json(run_guard(clean_table, references, state, "sweep", "--json", **BAND))

    assert again["rows"] == []


def test_with_a_band_sweep_refuses_to_start_when_the_status_field_lacks_the_review_option(
    clean_table: DevServer, tmp_path: Path
) -> None:
    references = install_demo_references(tmp_path / "references")
    result = run_guard(clean_table, references, tmp_path / "state", "sweep", "--json",
                       **BAND, NOCODB_GUARD_STATUS_REVIEW="no-such-option")
    assert result.returncode != 0
    assert "no option 'no-such-option' (status_review)" in result.stdout + result.stderr
