"""``nocodb-guard sweep`` against the real NocoDB, with uploads sent through the public form.

The console script runs as a subprocess (``python -m nocodb_guard``), exactly as an
operator or cron runs it, with the dev server's env file, a reference folder holding
Grace Hopper's and Eileen Collins' photos, and one face worker process.

The main scenario (five uploads, a dry run, a real pass, a second pass, listing two rows
per page) runs once for the module; the tests below read what it recorded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nocodb_guard import samples
from tests.integration.conftest import DevServer

REPO = Path(__file__).resolve().parents[2]
GRACE = "Grace Hopper (demo)"
EILEEN = "Eileen Collins (demo)"
NOBODY = "Nobody Configured"
CLI_TIMEOUT_S = 240


def guard_env(references: Path, state: Path, **extra: str) -> dict[str, str]:
    """The environment of one CLI run: no inherited NOCODB_GUARD_*, one face worker.

    PYTHONPATH pins this checkout (the venv may be shared with another one).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOCODB_GUARD_")}
    env.update(
        PYTHONPATH=str(REPO),
        NOCODB_GUARD_REFERENCE_DIR=str(references),
        NOCODB_GUARD_STATE_DIR=str(state),
        NOCODB_GUARD_WORKERS="1",
        NOCODB_GUARD_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def run_guard(
    server: DevServer,
    references: Path,
    state: Path,
    *args: str,
    timeout: float = CLI_TIMEOUT_S,
    **extra_env: str,
) -> subprocess.CompletedProcess[str]:
    """``nocodb-guard --env-file <dev server's> ARGS``; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "nocodb_guard", "--env-file", str(server.env_file), *args],
        env=guard_env(references, state, **extra_env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sweep_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"not JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return data


def by_id(items: Sequence[dict[str, Any]], key: str = "Id") -> dict[int, dict[str, Any]]:
    return {int(item[key]): item for item in items}


def stored(server: DevServer) -> dict[int, Any]:
    """The table's rows by Id as stored: without the signed links NocoDB makes on each read
    (their expiry moves to the next 10-minute step between two reads)."""

    def unsigned(value: Any) -> Any:
        if isinstance(value, dict):
            signed = ("signedPath", "signedUrl")
            return {k: unsigned(v) for k, v in value.items() if k not in signed}
        if isinstance(value, list):
            return [unsigned(v) for v in value]
        return value

    return {row_id: unsigned(row) for row_id, row in by_id(server.rows()).items()}


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the module's sweeps: the reference cache is encoded once."""
    return tmp_path_factory.mktemp("state")


# --- the main scenario ---------------------------------------------------------------------

#: label -> (politician, file name, bytes factory, mimetype)
UPLOADS: dict[str, tuple[str, str, Callable[[], bytes], str]] = {
    "match": (GRACE, "grace.jpg", samples.grace_hopper_variant, "image/jpeg"),
    "wrong_person": (GRACE, "astronaut.png", samples.astronaut_png, "image/png"),
    "two_faces": (EILEEN, "two.jpg", samples.two_faces_side_by_side, "image/jpeg"),
    "cat": (EILEEN, "chelsea.png", samples.chelsea_png, "image/png"),
    "not_an_image": (GRACE, "notes.jpg", samples.text_as_jpg, "image/jpeg"),
}


@dataclass(frozen=True)
class Scenario:
    ids: dict[str, int]
    before: dict[int, dict[str, Any]]
    dry_run: subprocess.CompletedProcess[str]
    after_dry_run: dict[int, dict[str, Any]]
    sweep: subprocess.CompletedProcess[str]
    after_sweep: dict[int, dict[str, Any]]
    second: subprocess.CompletedProcess[str]

    def outcome(self, label: str) -> dict[str, Any]:
        return by_id(sweep_json(self.sweep)["rows"], "id")[self.ids[label]]


@pytest.fixture(scope="module")
def scenario(nocodb: DevServer, references: Path, state: Path) -> Iterator[Scenario]:
    """Five uploads; dry run; sweep; sweep again. Two rows per listing page throughout."""
    if nocodb.pid() is None:
        nocodb.start()
    nocodb.clear()
    ids = {
        label: int(nocodb.submit(politician, [(name, make(), mimetype)])["Id"])
        for label, (politician, name, make, mimetype) in UPLOADS.items()
    }
    paging = {"NOCODB_GUARD_PAGE_SIZE": "2"}
    before = stored(nocodb)
    dry_run = run_guard(nocodb, references, state, "sweep", "--dry-run", "--json", **paging)
    after_dry_run = stored(nocodb)
    sweep = run_guard(nocodb, references, state, "sweep", "--json", **paging)
    after_sweep = by_id(nocodb.rows())
    second = run_guard(nocodb, references, state, "sweep", "--json", **paging)
    yield Scenario(ids, before, dry_run, after_dry_run, sweep, after_sweep, second)
    nocodb.clear()


def test_a_dry_run_decides_every_row_and_changes_nothing(scenario: Scenario) -> None:
    data = sweep_json(scenario.dry_run)

    assert scenario.dry_run.returncode == 0, scenario.dry_run.stderr
    assert scenario.after_dry_run == scenario.before
    assert {row["action"] for row in data["rows"]} == {"dry_run"}
    assert data["summary"]["approved"] == 1
    assert data["summary"]["rejected"] == 4


def test_the_matching_picture_is_approved_with_a_plain_words_reason(scenario: Scenario) -> None:
    row = scenario.after_sweep[scenario.ids["match"]]
    outcome = scenario.outcome("match")

    assert row["Status"] == "approved"
    assert row["Reason"] == (
        f"1 face, distance {outcome['distance']:.2f} to Grace Hopper (demo) (tolerance 0.60)"
    )
    assert outcome["distance"] < 0.4
    assert outcome["verdict"] == "approved" and outcome["reason"] == "match"


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("wrong_person", "no_match"),
        ("two_faces", "multiple_faces"),
        ("cat", "no_face"),
        ("not_an_image", "not_an_image"),
    ],
)
def test_every_other_upload_is_deleted_with_its_reason(
    scenario: Scenario, label: str, reason: str
) -> None:
    outcome = scenario.outcome(label)

    assert scenario.ids[label] not in scenario.after_sweep
    assert (outcome["verdict"], outcome["reason"], outcome["action"]) == (
        "rejected", reason, "deleted"
    )


def test_a_sweep_pages_through_every_row_with_a_small_page_size(scenario: Scenario) -> None:
    # NOCODB_GUARD_PAGE_SIZE=2 and five rows: three listing pages.
    assert sorted(o["id"] for o in sweep_json(scenario.sweep)["rows"]) == sorted(
        scenario.ids.values()
    )
    assert list(scenario.after_sweep) == [scenario.ids["match"]]


def test_sweep_json_prints_rows_and_a_summary(scenario: Scenario) -> None:
    data = sweep_json(scenario.sweep)

    assert scenario.sweep.returncode == 0, scenario.sweep.stderr
    assert set(data) == {"rows", "summary"}
    for row in data["rows"]:
        assert {"id", "politician", "verdict", "reason", "distance", "action"} <= set(row)
    summary = data["summary"]
    assert (summary["rows"], summary["approved"], summary["rejected"], summary["deferred"]) == (
        5, 1, 4, 0
    )
    assert summary["rejected_by_reason"] == {
        "no_match": 1, "multiple_faces": 1, "no_face": 1, "not_an_image": 1,
    }
    assert scenario.outcome("two_faces")["politician"] == EILEEN
    assert scenario.outcome("cat")["distance"] is None


def test_a_second_sweep_finds_nothing_to_do(scenario: Scenario) -> None:
    data = sweep_json(scenario.second)

    assert scenario.second.returncode == 0, scenario.second.stderr
    assert data["rows"] == []
    assert data["summary"]["rows"] == 0


def test_logs_go_to_stderr_and_never_carry_the_token(
    scenario: Scenario, nocodb: DevServer
) -> None:
    assert "row_decided" in scenario.sweep.stderr
    for result in (scenario.dry_run, scenario.sweep, scenario.second):
        assert nocodb.token not in result.stdout + result.stderr


# --- rows that must stay untouched -----------------------------------------------------------


class Listener:
    """A TCP port on another loopback address that records whether anyone connected."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self._socket = socket.create_server((host, 0))
        self._socket.settimeout(0.2)
        self.url = f"http://{host}:{self._socket.getsockname()[1]}/x.jpg"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def foreign_host() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


def test_rows_the_guard_cannot_judge_are_left_untouched_and_the_exit_code_is_1(
    clean_table: DevServer, references: Path, state: Path, foreign_host: Listener
) -> None:
    picture = [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")]
    nobody = int(clean_table.submit(NOBODY, picture)["Id"])
    [foreign] = clean_table.insert(
        [{"Politician": GRACE, "Photo": [{"url": foreign_host.url, "title": "x.jpg",
                                           "mimetype": "image/jpeg"}]}]
    )
    before = stored(clean_table)

    result = run_guard(clean_table, references, state, "sweep", "--json")

    data = sweep_json(result)
    outcomes = by_id(data["rows"], "id")
    assert result.returncode == 1, result.stderr
    assert stored(clean_table) == before
    assert (outcomes[nobody]["verdict"], outcomes[nobody]["reason"]) == (
        "deferred", "unknown_politician"
    )
    assert (outcomes[foreign]["verdict"], outcomes[foreign]["reason"]) == (
        "deferred", "url_not_allowed"
    )
    assert foreign_host.connections == 0
    assert foreign_host.url.split("/")[2] in outcomes[foreign]["explanation"]
    assert data["summary"]["deferred_by_reason"] == {
        "unknown_politician": 1, "url_not_allowed": 1
    }


def test_reject_action_tag_marks_the_row_rejected_instead_of_deleting_it(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    cat = int(clean_table.submit(EILEEN, [("chelsea.png", samples.chelsea_png(), "image/png")])[
        "Id"
    ])

    result = run_guard(
        clean_table, references, state, "sweep", "--json", NOCODB_GUARD_REJECT_ACTION="tag"
    )

    assert result.returncode == 0, result.stderr
    row = clean_table.row(cat)
    assert row is not None
    assert row["Status"] == "rejected"
    assert row["Reason"] == "picture: no face found"
    assert by_id(sweep_json(result)["rows"], "id")[cat]["action"] == "tagged_rejected"


def test_a_visitor_made_row_naming_no_real_file_is_rejected_once_confirmed_an_hour_apart(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    """Issue 14 #9: NocoDB accepts an attachment cell whose ``path`` names no file. Deferred
    at first (it could be a storage outage), then final: ``no_attachment``, row deleted."""
    bogus_cell = [{"path": "download/2026/01/01/nothing-here/x.jpg", "title": "x.jpg",
                   "mimetype": "image/jpeg", "size": 1000}]
    [bogus] = clean_table.insert([{"Politician": GRACE, "Photo": bogus_cell}])
    good = [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")]
    first_good = int(clean_table.submit(GRACE, good)["Id"])

    first = by_id(sweep_json(run_guard(clean_table, references, state, "sweep", "--json"))["rows"],
                  "id")
    memory = state / "missing-files.json"
    seen = json.loads(memory.read_text(encoding="utf-8"))
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    backdated = {row: two_hours_ago for row in seen}
    memory.write_text(json.dumps(backdated), encoding="utf-8")
    second_good = int(clean_table.submit(GRACE, good)["Id"])  # other files still download
    second = by_id(sweep_json(run_guard(clean_table, references, state, "sweep", "--json"))["rows"],
                   "id")

    assert (first[bogus]["verdict"], first[bogus]["reason"]) == ("deferred", "transient_error")
    assert first[first_good]["verdict"] == "approved"
    assert str(bogus) in seen
    assert (second[bogus]["verdict"], second[bogus]["reason"]) == ("rejected", "no_attachment")
    assert "NocoDB has no such file" in second[bogus]["explanation"]
    assert second[second_good]["verdict"] == "approved"
    assert clean_table.row(bogus) is None
