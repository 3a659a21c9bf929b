"""The purge queue survives a crash; a purge keeps shared files and never forgets a failure."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from nocodb_guard.errors import NocoDBUnavailable
from nocodb_guard.models import Action, Attachment, Row
from nocodb_guard.storage.base import PurgeStatus, StoredFile
from nocodb_guard.storage.local import LocalStorage
from nocodb_guard.storage.purge import Purger
from nocodb_guard.storage.queue import QUEUE_FILE, PurgeQueue
from tests.unit.test_storage_local import FOLDER, lay_out


class Table:
    """The table's rows as the purge sees them: the storage keys they still use."""

    def __init__(self, *keys: str) -> None:
        self.keys = frozenset(keys)
        self.down = False

    def seen(self, attachments: Iterable[Attachment]) -> None:
        """Not needed here: the ledger has its own tests."""

    def referenced_files(self) -> frozenset[str]:
        if self.down:
            raise NocoDBUnavailable("NocoDB is down")
        return self.keys


class Probe:
    def __init__(self, status: int | None = 404) -> None:
        self.answer = status
        self.asked: list[str] = []

    def status(self, path: str) -> int | None:
        self.asked.append(path)
        return self.answer

    def close(self) -> None:
        """Nothing to close."""


def attachment(name: str) -> Attachment:
    return Attachment(title=name, path=f"download/{FOLDER}/{name}", signed_path="dltemp/x/1/y")


def row(*attachments: Attachment, row_id: int = 7) -> Row:
    return Row(id=row_id, politician="Jane", attachments=attachments)


class Statuses:
    """The purger's observer (metrics in the daemon): how each file's purge ended."""

    def __init__(self) -> None:
        self.seen: list[PurgeStatus] = []

    def record_purge(self, status: PurgeStatus) -> None:
        self.seen.append(status)


def delete(purger: Purger, deleted: Row, action: Action = Action.DELETED) -> list[PurgeStatus]:
    """What acting does around one row's deletion; how each of its files' purge ended."""
    statuses = Statuses()
    purger.observer = statuses
    purger.remember([deleted])
    counts = purger.after_delete([deleted], {deleted.id: action})
    assert counts.get(deleted.id, 0) == statuses.seen.count(PurgeStatus.PURGED)
    return statuses.seen


def test_queue_is_written_atomically_with_mode_0600(tmp_path: Path) -> None:
    queue = PurgeQueue(tmp_path)
    queue.add([StoredFile(path="download/a/b.jpg"), StoredFile(url="https://s3.example/k")])
    queue.add([StoredFile(path="download/a/b.jpg")])
    assert stat.S_IMODE((tmp_path / QUEUE_FILE).stat().st_mode) == 0o600
    assert PurgeQueue(tmp_path).pending() == [
        StoredFile(path="download/a/b.jpg"),
        StoredFile(url="https://s3.example/k"),
    ]
    assert [p.name for p in tmp_path.iterdir()] == [QUEUE_FILE]
    queue.discard([StoredFile(path="download/a/b.jpg")])
    assert PurgeQueue(tmp_path).pending() == [StoredFile(url="https://s3.example/k")]


def test_queue_holds_storage_paths_only(tmp_path: Path) -> None:
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), Table())
    purger.remember([row(attachment("face.jpg"))])
    text = (tmp_path / QUEUE_FILE).read_text()
    assert "dltemp" not in text and "title" not in text and "face.jpg" in text


def test_a_symlink_planted_as_the_queue_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("[]")
    os.symlink(victim, tmp_path / QUEUE_FILE)
    with pytest.raises(OSError):
        PurgeQueue(tmp_path).pending()


def test_a_killed_process_leaves_its_queue_behind(tmp_path: Path) -> None:
    """SIGKILL right after queuing (before any purge): the next process finds the file."""
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from nocodb_guard.storage.base import StoredFile\n"
        "from nocodb_guard.storage.queue import PurgeQueue\n"
        "PurgeQueue(Path(sys.argv[1])).add([StoredFile(path='download/a/b/c.jpg')])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert done.returncode == -9
    assert PurgeQueue(tmp_path).pending() == [StoredFile(path="download/a/b/c.jpg")]


def test_purge_removes_verifies_and_forgets(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    probe = Probe(404)
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), Table(), probe)

    assert delete(purger, row(attachment("face.jpg"))) == [PurgeStatus.PURGED]
    assert not (tmp_path / "nc/thumbnails" / FOLDER / "face.jpg").exists()
    assert probe.asked == [f"download/{FOLDER}/face.jpg", "dltemp/x/1/y"]
    assert PurgeQueue(tmp_path).pending() == []


def test_a_file_another_row_uses_is_kept(tmp_path: Path) -> None:
    lay_out(tmp_path, "shared.jpg")
    table = Table(f"download/{FOLDER}/shared.jpg")
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), table, Probe())

    assert delete(purger, row(attachment("shared.jpg"))) == [PurgeStatus.KEPT_REFERENCED]
    assert (tmp_path / "nc/uploads" / FOLDER / "shared.jpg").is_file()
    assert PurgeQueue(tmp_path).pending() == []


@pytest.mark.parametrize(
    "spelling",
    [
        f"download/{FOLDER}//shared.jpg",
        f"download/./{FOLDER}/shared.jpg",
        f"download/{FOLDER}/../{FOLDER.rsplit('/', 1)[1]}/./shared.jpg",
    ],
)
def test_a_file_another_row_spells_differently_is_kept(tmp_path: Path, spelling: str) -> None:
    lay_out(tmp_path, "shared.jpg")
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), Table(spelling), Probe())

    assert delete(purger, row(attachment("shared.jpg"))) == [PurgeStatus.KEPT_REFERENCED]
    assert (tmp_path / "nc/uploads" / FOLDER / "shared.jpg").is_file()


def test_an_odd_spelling_of_another_file_does_not_keep_this_one(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    table = Table(f"download/{FOLDER}//other.jpg", "download/../face.jpg", "face.jpg")
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), table, Probe())

    assert delete(purger, row(attachment("face.jpg"))) == [PurgeStatus.PURGED]


def test_nocodb_down_keeps_the_file_queued_and_the_next_pass_purges_it(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    table = Table()
    table.down = True
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), table, Probe())

    assert delete(purger, row(attachment("face.jpg"))) == [PurgeStatus.QUEUED]
    assert (tmp_path / "nc/uploads" / FOLDER / "face.jpg").is_file()

    table.down = False
    assert purger.retry().purged == 1
    assert not (tmp_path / "nc/uploads" / FOLDER / "face.jpg").exists()
    assert purger.retry().results == ()


def test_missing_storage_keeps_the_file_queued(tmp_path: Path) -> None:
    purger = Purger(LocalStorage(tmp_path / "unmounted"), PurgeQueue(tmp_path), Table())
    purger.remember([row(attachment("face.jpg"))])
    assert purger.retry().count(PurgeStatus.QUEUED) == 1
    assert len(PurgeQueue(tmp_path).pending()) == 1


def test_still_served_after_removal_stays_queued(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), Table(), Probe(200))
    purger.remember([row(attachment("face.jpg"))])
    result = purger.retry().results[0]
    assert result.status is PurgeStatus.QUEUED and "200" in result.detail


def test_a_crafted_path_is_refused_and_dropped(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    crafted = Attachment(title="x", path="download/../../../../etc/passwd")
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), Table(), Probe())
    purger.remember([row(crafted)])
    assert purger.retry().count(PurgeStatus.REFUSED) == 1
    assert PurgeQueue(tmp_path).pending() == []


def test_a_row_tagged_rejected_keeps_its_files_and_leaves_no_queue(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    purger = Purger(LocalStorage(tmp_path), PurgeQueue(tmp_path), Table(), Probe())

    assert delete(purger, row(attachment("face.jpg")), Action.TAGGED_REJECTED) == []
    assert (tmp_path / "nc/uploads" / FOLDER / "face.jpg").is_file()
    assert PurgeQueue(tmp_path).pending() == []
