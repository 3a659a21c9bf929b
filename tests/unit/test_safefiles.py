"""Files the guard writes are never opened through a planted symlink, and keep our modes.

Nor does a FIFO planted in their place make the guard wait for ever on its other end.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from nocodb_guard.errors import ConfigError
from nocodb_guard.faces.references import ReferenceStore
from nocodb_guard.missing_files import FILE_NAME, MissingFiles
from nocodb_guard.models import Action, Decision, Reason, RowOutcome, Verdict
from nocodb_guard.safefiles import open_private, open_to_read, private_dir
from nocodb_guard.service.health import InvalidHeartbeat, heartbeat_path, read_heartbeat
from nocodb_guard.service.locking import LOCK_NAME, sweep_lock
from nocodb_guard.storage.base import StoredFile
from nocodb_guard.storage.ledger import LEDGER_FILE, FileLedger
from nocodb_guard.storage.queue import QUEUE_FILE, PurgeQueue
from nocodb_guard.trust.audit import AuditLog


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    return target


def test_a_sweep_lock_planted_as_a_symlink_is_refused_and_its_target_untouched(
    tmp_path: Path, precious: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / LOCK_NAME).symlink_to(precious)
    with pytest.raises(ConfigError, match="state_dir"), sweep_lock(state):
        pass
    assert precious.read_text() == "keep me\n"


def test_an_existing_lock_file_with_a_loose_mode_gets_0600(tmp_path: Path) -> None:
    lock = tmp_path / LOCK_NAME
    lock.write_text("")
    lock.chmod(0o666)
    with sweep_lock(tmp_path):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_open_private_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        open_private(tmp_path / "dir", os.O_RDONLY)


def test_a_private_dir_planted_as_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "audit").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NotADirectoryError):
        private_dir(tmp_path / "audit")


def test_the_reference_cache_never_writes_through_a_planted_temporary_file(
    tmp_path: Path, precious: Path
) -> None:
    cache = tmp_path / "cache" / "entry.npy"
    cache.parent.mkdir()
    planted = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    planted.symlink_to(precious)
    ReferenceStore._write_cache(cache, np.zeros(128))
    assert precious.read_text() == "keep me\n"
    assert np.load(cache).shape == (128,)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


# --- FIFOs --------------------------------------------------------------------------------------


def outcome_within_a_second(action: Callable[[], object], fifo: Path) -> BaseException | None:
    """What ``action`` raised (None: nothing), failing the test if it waits over a second.

    It runs in a thread; one stuck on the FIFO is released by opening the FIFO's other end,
    so the test itself can never hang.
    """
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
        except Exception as exc:
            raised.append(exc)
        else:
            raised.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(1.0)
    stuck = thread.is_alive()
    if stuck:
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        thread.join(5.0)
    assert not stuck, f"still waiting on the FIFO {fifo.name} after a second"
    return raised[0]


def refused(action: Callable[[], object], fifo: Path) -> None:
    raised = outcome_within_a_second(action, fifo)
    assert isinstance(raised, OSError)
    assert "not a regular file" in str(raised)


@pytest.fixture
def reader() -> Iterator[Callable[[Path], None]]:
    """Holds a FIFO open for reading, as a planter waiting for what the guard writes would."""
    fds: list[int] = []
    yield lambda fifo: fds.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    for fd in fds:
        os.close(fd)


@pytest.mark.parametrize("held", [False, True], ids=["nobody reading", "someone reading"])
def test_a_fifo_planted_as_a_file_to_write_is_refused_at_once(
    tmp_path: Path, held: bool, reader: Callable[[Path], None]
) -> None:
    fifo = tmp_path / "file"
    os.mkfifo(fifo)
    if held:
        reader(fifo)
    refused(lambda: open_private(fifo, os.O_WRONLY | os.O_APPEND | os.O_CREAT), fifo)


def test_a_fifo_planted_as_a_file_to_read_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "file"
    os.mkfifo(fifo)
    refused(lambda: open_to_read(fifo), fifo)


def test_a_file_opened_safely_is_left_blocking(tmp_path: Path) -> None:
    fd = open_private(tmp_path / "file", os.O_WRONLY | os.O_CREAT)
    try:
        assert os.get_blocking(fd)
    finally:
        os.close(fd)


def test_a_fifo_planted_as_the_audit_file_is_an_error_not_a_hang(tmp_path: Path) -> None:
    now = datetime(2024, 5, 31, 12, 0, tzinfo=UTC)
    log = AuditLog(tmp_path, 30, "v")
    log.directory.mkdir(parents=True)
    fifo = log.path_for(now.date())
    os.mkfifo(fifo)
    decision = Decision(Verdict.REJECTED, Reason.NOT_AN_IMAGE, "picture 1 is not an image")
    outcome = RowOutcome(7, "Grace Hopper", decision, Action.DELETED)

    refused(lambda: log.append(outcome, now=now), fifo)
    refused(lambda: list(log.query()), fifo)


def test_a_fifo_planted_as_the_purge_queue_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / QUEUE_FILE
    os.mkfifo(fifo)
    queue = PurgeQueue(tmp_path)

    refused(queue.pending, fifo)
    refused(lambda: queue.add([StoredFile(path="download/a/b/c.jpg")]), fifo)


def test_a_fifo_planted_as_the_queues_temporary_file_is_an_error_not_a_hang(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / f".{QUEUE_FILE}.{os.getpid()}.tmp"
    os.mkfifo(fifo)

    refused(lambda: PurgeQueue(tmp_path).add([StoredFile(path="download/a/b/c.jpg")]), fifo)


def test_a_fifo_planted_as_the_storage_ledger_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / LEDGER_FILE
    os.mkfifo(fifo)
    ledger = FileLedger(tmp_path, "table")

    refused(ledger.known, fifo)
    refused(lambda: ledger.record(["download/a/b/c.jpg"]), fifo)


def test_a_fifo_planted_as_the_missing_files_record_is_replaced_by_a_fresh_one(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / FILE_NAME
    os.mkfifo(fifo)

    assert outcome_within_a_second(lambda: MissingFiles(tmp_path).confirmed(5), fifo) is None
    assert stat.S_ISREG(os.lstat(fifo).st_mode)


def test_a_fifo_planted_as_the_heartbeat_makes_the_health_check_fail_not_hang(
    tmp_path: Path,
) -> None:
    fifo = heartbeat_path(tmp_path)
    os.mkfifo(fifo)

    raised = outcome_within_a_second(lambda: read_heartbeat(tmp_path), fifo)
    assert isinstance(raised, InvalidHeartbeat)
    assert "not a regular file" in str(raised)
