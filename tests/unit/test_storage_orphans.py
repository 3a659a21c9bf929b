"""Orphans: only files the guard saw in this table, used by no row, old enough, still stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nocodb_guard.models import Attachment
from nocodb_guard.nocodb.records import UNREADABLE_ENTRY_TITLE
from nocodb_guard.settings import Settings
from nocodb_guard.storage.ledger import LEDGER_FILE, FileLedger
from nocodb_guard.storage.local import LocalStorage
from nocodb_guard.storage.orphans import find_orphans, purge_orphans
from nocodb_guard.storage.table import TableFiles
from tests.unit.test_storage_local import FOLDER, lay_out

DAY = 86400.0


def key(name: str) -> str:
    return f"download/{FOLDER}/{name}"


class Cells:
    def __init__(self, *names: str) -> None:
        self.names = names

    def iter_attachment_cells(self) -> Iterator[tuple[Attachment, ...]]:
        for name in self.names:
            yield (Attachment(title=name, path=key(name)),)


def test_ledger_remembers_per_table_and_survives_a_torn_line(tmp_path: Path) -> None:
    FileLedger(tmp_path, "mA").record([key("a.jpg")], now=100.0)
    FileLedger(tmp_path, "mB").record([key("b.jpg")], now=200.0)
    FileLedger(tmp_path, "mA").record([key("a.jpg")], now=300.0)
    with (tmp_path / LEDGER_FILE).open("a") as handle:
        handle.write('{"table": "mA", "key": "download/x/tor')
    assert FileLedger(tmp_path, "mA").known() == {key("a.jpg"): 100.0}


def test_a_scan_records_what_the_table_uses(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path, "mA")
    files = TableFiles(Cells("a.jpg", "b.jpg"), ledger)
    assert files.referenced_files() == {key("a.jpg"), key("b.jpg")}
    files.referenced_files()
    assert set(ledger.known()) == {key("a.jpg"), key("b.jpg")}
    assert len((tmp_path / LEDGER_FILE).read_text().splitlines()) == 2


class CellsWithoutLocation(Cells):
    """Entries naming no stored file: a blank path (NocoDB keeps it), an unreadable entry."""

    def iter_attachment_cells(self) -> Iterator[tuple[Attachment, ...]]:
        yield (Attachment(title="hand-written.jpg"),)
        yield (Attachment(title=UNREADABLE_ENTRY_TITLE),)
        yield from super().iter_attachment_cells()


def test_entries_naming_no_stored_file_do_not_hold_the_purge_back(tmp_path: Path) -> None:
    files = TableFiles(CellsWithoutLocation("a.jpg"), FileLedger(tmp_path, "mA"))
    assert files.referenced_files() == {key("a.jpg")}


def test_orphans_are_recorded_unreferenced_old_and_present(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("used.jpg", "gone-row.jpg", "fresh.jpg", "other-table.jpg"):
        lay_out(data, name)
    ledger = FileLedger(tmp_path, "mA")
    ledger.record([key("used.jpg"), key("gone-row.jpg"), key("already-purged.jpg")], now=0.0)
    ledger.record([key("fresh.jpg")], now=10 * DAY)
    FileLedger(tmp_path, "mB").record([key("other-table.jpg")], now=0.0)

    orphans = find_orphans(
        ledger,
        frozenset({key("used.jpg")}),
        LocalStorage(data),
        older_than=DAY,
        now=10 * DAY + 60,
    )

    assert [o.file.path for o in orphans] == [key("gone-row.jpg")]


def test_a_dry_run_of_the_orphan_purge_writes_nothing_to_the_state_folder(tmp_path: Path) -> None:
    """An admin's ``sudo ... --dry-run`` must not leave a root-owned ledger for the daemon."""
    data, state = tmp_path / "data", tmp_path / "state"
    lay_out(data, "a.jpg")
    settings = Settings(
        nocodb_url="http://127.0.0.1:9",
        nocodb_token="t",
        table_id="mA",
        state_dir=state,
        nocodb_data_dir=data,
    )
    report = purge_orphans(settings, Cells("a.jpg"), older_than=DAY, dry_run=True)
    assert report.orphans == () and not state.exists()
    purge_orphans(settings, Cells("a.jpg"), older_than=DAY, dry_run=False)
    assert (state / LEDGER_FILE).is_file()
