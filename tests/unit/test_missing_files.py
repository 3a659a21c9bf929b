"""Rows whose file NocoDB does not have get a final state instead of clogging every pass.

Issue 14 #9: visitors can submit attachment JSON naming no file; every pass deferred them
all again and wrote about 1 kB of audit and log per row per pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from nocodb_guard.errors import FileNotOnNocoDB
from nocodb_guard.missing_files import CONFIRM_AFTER, MissingFiles
from nocodb_guard.models import Action, Decision, Reason, RowOutcome, Verdict
from nocodb_guard.sweep import Sweeper, SweepOptions
from nocodb_guard.trust.audit import AuditLog
from tests.unit.test_sweep_logic import (
    GRACE,
    REFERENCES,
    FakeAnalyzer,
    FakeClient,
    FakeReferences,
    by_id,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
GONE_FILE = FileNotOnNocoDB("row 2: a file answers HTTP 404 even with a freshly signed link")


def test_a_missing_file_is_confirmed_only_an_hour_after_it_was_first_seen(tmp_path: Path) -> None:
    memory = MissingFiles(tmp_path)
    assert not memory.confirmed(2, now=NOW)
    assert not memory.confirmed(2, now=NOW + CONFIRM_AFTER - timedelta(minutes=1))
    assert MissingFiles(tmp_path).confirmed(2, now=NOW + CONFIRM_AFTER), "kept across restarts"


def test_a_forgotten_row_starts_afresh_and_only_ids_and_times_are_stored(tmp_path: Path) -> None:
    memory = MissingFiles(tmp_path)
    memory.confirmed(2, now=NOW)
    memory.forget(2)
    assert not memory.confirmed(2, now=NOW + 2 * CONFIRM_AFTER)
    assert (tmp_path / "missing-files.json").read_text() == (
        '{"2": "' + (NOW + 2 * CONFIRM_AFTER).isoformat() + '"}'
    )


def run_pass(client: FakeClient, memory: MissingFiles) -> dict[int, RowOutcome]:
    sweep = Sweeper(
        client, FakeReferences({GRACE: REFERENCES}), FakeAnalyzer(), SweepOptions(),
        missing=memory,
    )
    return by_id(sweep.run().outcomes)


def client_with_a_missing_file(*, others_download: bool) -> FakeClient:
    client = FakeClient(content={"bogus.jpg": GONE_FILE, "match.jpg": b"match"})
    if others_download:
        client.add(1, "match.jpg")
    client.add(2, "bogus.jpg")
    return client


def test_a_file_missing_for_an_hour_while_others_download_is_rejected_as_no_attachment(
    tmp_path: Path,
) -> None:
    memory = MissingFiles(tmp_path)
    memory.confirmed(2, now=datetime.now(UTC) - CONFIRM_AFTER - timedelta(minutes=5))
    client = client_with_a_missing_file(others_download=True)

    outcomes = run_pass(client, memory)

    assert outcomes[2].decision.verdict is Verdict.REJECTED
    assert outcomes[2].decision.reason is Reason.NO_ATTACHMENT
    assert "picture 1: NocoDB has no such file" in outcomes[2].decision.explanation
    assert client.deleted == [2]


def test_the_first_time_a_file_is_missing_the_row_is_only_deferred(tmp_path: Path) -> None:
    client = client_with_a_missing_file(others_download=True)
    outcomes = run_pass(client, MissingFiles(tmp_path))
    assert outcomes[2].decision.verdict is Verdict.DEFERRED
    assert client.deleted == []


def test_when_nothing_downloads_a_missing_file_is_never_final(tmp_path: Path) -> None:
    """A storage outage makes every file "missing": never a reason to delete."""
    memory = MissingFiles(tmp_path)
    memory.confirmed(2, now=datetime.now(UTC) - 3 * CONFIRM_AFTER)
    client = client_with_a_missing_file(others_download=False)

    outcomes = run_pass(client, memory)

    assert outcomes[2].decision.verdict is Verdict.DEFERRED
    assert client.deleted == []


def test_the_rows_own_other_file_downloading_does_not_make_a_missing_file_final(
    tmp_path: Path,
) -> None:
    """Only another row's file proves the storage works, not one beside the missing file."""
    memory = MissingFiles(tmp_path)
    memory.confirmed(2, now=datetime.now(UTC) - 3 * CONFIRM_AFTER)
    client = FakeClient(content={"bogus.jpg": GONE_FILE, "match.jpg": b"match"})
    client.add(2, "match.jpg", "bogus.jpg")

    outcomes = run_pass(client, memory)

    assert outcomes[2].decision.verdict is Verdict.DEFERRED
    assert client.deleted == []


def test_a_deferral_that_did_not_change_is_not_recorded_again(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path, 30, "v", fsync=False)
    waiting = Decision(Verdict.DEFERRED, Reason.TRANSIENT_ERROR, "file missing; left for later")
    for _ in range(3):
        audit.record(RowOutcome(2, GRACE, waiting, Action.NONE))
    rejected = Decision(Verdict.REJECTED, Reason.NO_ATTACHMENT, "no such file")
    audit.record(RowOutcome(2, GRACE, rejected, Action.DELETED))
    audit.record(RowOutcome(2, GRACE, waiting, Action.NONE))
    assert [r["verdict"] for r in audit.query(row_id=2)] == ["deferred", "rejected", "deferred"]
