"""A host-wide lock so that two sweeps never run at once (daemon tick vs manual sweep)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nocodb_guard.errors import AlreadyRunning, ConfigError
from nocodb_guard.safefiles import open_private

LOCK_NAME = "sweep.lock"


@contextmanager
def sweep_lock(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on ``state_dir/sweep.lock``.

    flock is released by the kernel when the process dies, so a SIGKILLed daemon never
    leaves a stale lock behind. The file is opened without following a symlink (one
    planted there would have us truncate its target) and kept at mode 0600.
    """
    fd = _open_lock(state_dir)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                f"another sweep is running on this host (lock {state_dir / LOCK_NAME})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def check_state_dir(state_dir: Path) -> None:
    """Fail at start-up, with the setting's name, when the state dir cannot be written."""
    os.close(_open_lock(state_dir))


def _open_lock(state_dir: Path) -> int:
    """The lock file's descriptor; an unusable state dir is a settings error (exit 2)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        return open_private(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise ConfigError(
            f"state_dir {state_dir}: cannot write {LOCK_NAME} ({exc.strerror or exc}); "
            f"the lock, the audit trail and the heartbeat live there"
        ) from None
