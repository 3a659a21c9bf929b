"""The CLI's exit codes and its admin reports (``check``, ``references``) against the real NocoDB.

Exit codes: 0 done, 1 some rows deferred / check found problems, 2 bad settings or
references, 3 NocoDB unreachable or the token refused, 4 another sweep holds the lock.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from nocodb_guard import samples
from nocodb_guard.service.locking import sweep_lock
from tests.demo_references import install_demo_references
from tests.integration.conftest import POLITICIANS, DevServer, free_port
from tests.integration.test_sweep import run_guard

GRACE = "Grace Hopper (demo)"


@pytest.fixture(scope="module")
def complete_references(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A usable photo for every option of the form (any single face will do for `check`)."""
    target = install_demo_references(tmp_path_factory.mktemp("complete-references"))
    for folder in ("obama", "nobody_configured"):
        (target / folder).mkdir()
        shutil.copyfile(samples.grace_hopper_path(), target / folder / "stand_in.jpg")
    return target


# --- exit codes -------------------------------------------------------------------------------


def test_sweep_with_nothing_pending_exits_0(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    result = run_guard(clean_table, references, state, "sweep")

    assert result.returncode == 0, result.stderr
    assert "0 rows: 0 approved, 0 rejected, 0 deferred" in result.stdout


def test_a_bad_setting_exits_2_naming_it(
    nocodb: DevServer, references: Path, state: Path
) -> None:
    result = run_guard(nocodb, references, state, "sweep", NOCODB_GUARD_TOLERANCE="7")

    assert result.returncode == 2
    assert "tolerance (NOCODB_GUARD_TOLERANCE)" in result.stderr
    assert nocodb.token not in result.stderr


def test_a_wrong_token_exits_3_as_unauthorised_without_printing_it(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    clean_table.submit(GRACE, [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")])
    wrong = "wrong-token-0123456789abcdef"

    result = run_guard(
        clean_table, references, state, "sweep", NOCODB_GUARD_NOCODB_TOKEN=wrong
    )

    assert result.returncode == 3, result.stderr
    assert "rejected the API token" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert [row["Status"] for row in clean_table.rows()] == [None]


def test_nocodb_unreachable_exits_3_within_the_retry_budget(
    nocodb: DevServer, references: Path, state: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    result = run_guard(
        nocodb, references, state, "sweep",
        NOCODB_GUARD_NOCODB_URL=closed, NOCODB_GUARD_RETRY_SECONDS="1",
    )

    assert result.returncode == 3, result.stderr
    assert "NocoDB unavailable" in result.stderr
    assert "refused" in result.stderr.lower()
    assert time.monotonic() - started < 60


def test_a_sweep_while_another_holds_the_lock_exits_4(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    clean_table.submit(GRACE, [("chelsea.png", samples.chelsea_png(), "image/png")])

    with sweep_lock(state):
        result = run_guard(clean_table, references, state, "sweep")

    assert result.returncode == 4, result.stderr
    assert "another sweep is running" in result.stderr
    assert len(clean_table.rows()) == 1


# --- check ------------------------------------------------------------------------------------


def test_check_passes_when_nocodb_the_schema_and_every_options_references_are_good(
    nocodb: DevServer, complete_references: Path, state: Path
) -> None:
    # As after NocoDB's first upload (it creates the folder then), whichever tests ran before.
    (nocodb.dir / "nc" / "uploads").mkdir(parents=True, exist_ok=True)
    result = run_guard(nocodb, complete_references, state, "check")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[ok] settings: valid"
    assert lines[1].startswith(f"[ok] nocodb: {nocodb.url} answered in ")
    assert lines[2] == "[ok] schema: table 'Uploads' ok"
    for label in POLITICIANS:
        assert f"[ok] references {label!r}: 1 reference photo(s)" in lines


def test_check_fails_readably_when_an_option_has_no_references(
    nocodb: DevServer, references: Path, state: Path
) -> None:
    result = run_guard(nocodb, references, state, "check")

    assert result.returncode == 1
    assert f"[ok] references {GRACE!r}: 1 reference photo(s)" in result.stdout
    assert (
        "[FAIL] references 'Nobody Configured': no reference photos: its uploads stay pending"
        in result.stdout
    )
    assert "[FAIL] references 'obama'" in result.stdout


def test_check_with_a_wrong_token_fails_with_exit_3(
    nocodb: DevServer, references: Path, state: Path
) -> None:
    result = run_guard(
        nocodb, references, state, "check", "--json", NOCODB_GUARD_NOCODB_TOKEN="wrong-token"
    )

    report = {item["name"]: item for item in json.loads(result.stdout)}
    assert result.returncode == 3
    assert report["nocodb"]["ok"] is False
    assert "rejected the API token" in report["nocodb"]["message"]


# --- references -------------------------------------------------------------------------------


def test_references_lists_politicians_files_and_the_daemons_cache_state(
    nocodb: DevServer, references: Path, state: Path
) -> None:
    first = run_guard(nocodb, references, state, "references", GRACE, "Eileen Collins (demo)")
    second = run_guard(nocodb, references, state, "references", "--json", GRACE)

    assert first.returncode == 0, first.stderr
    assert (
        f"{GRACE}  ->  {references / 'grace_hopper_demo'}  (tolerance 0.6): 1 reference photo(s)"
        in first.stdout
    )
    assert "    grace_hopper.jpg  [not cached]" in first.stdout
    assert "    astronaut.png  [not cached]" in first.stdout
    assert not (state / "reference-cache").exists(), "a read-only command wrote the cache"
    [entry] = json.loads(second.stdout)
    assert second.returncode == 0
    assert entry["politician"] == GRACE and entry["ok"] is True
    assert entry["files"] == [
        {"name": "grace_hopper.jpg", "cached": False, "faces": 1, "error": None}
    ]


def test_references_without_labels_lists_every_option_of_the_form(
    nocodb: DevServer, references: Path, state: Path
) -> None:
    result = run_guard(nocodb, references, state, "references", "--json")

    listed = [entry["politician"] for entry in json.loads(result.stdout)]
    assert listed[: len(POLITICIANS)] == list(POLITICIANS)
    assert result.returncode == 2  # obama and Nobody Configured have no references


def test_references_fails_on_a_reference_photo_with_two_faces(
    nocodb: DevServer, tmp_path: Path, state: Path
) -> None:
    folder = tmp_path / "references" / "grace_hopper_demo"
    folder.mkdir(parents=True)
    (folder / "group.jpg").write_bytes(samples.two_faces_side_by_side())

    result = run_guard(nocodb, folder.parent, state, "references", GRACE)

    assert result.returncode == 2
    assert f"{GRACE}  ->  {folder}  (tolerance 0.6): unusable:" in result.stdout
    assert "group.jpg" in result.stdout
    assert "2 faces" in result.stdout


def test_references_without_nocodb_lists_the_reference_folders_instead(
    nocodb: DevServer, references: Path, state: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    result = run_guard(
        nocodb, references, state, "references", "--json", NOCODB_GUARD_NOCODB_URL=closed
    )

    listed = [entry["politician"] for entry in json.loads(result.stdout)]
    assert result.returncode == 0, result.stderr
    assert listed == ["eileen_collins_demo", "grace_hopper_demo"]
    assert "references_without_nocodb" in result.stderr
