"""Opening the files the guard writes: never through a symlink, always with our modes.

The state dir may be shared with other local users or restored from a backup, so a
``sweep.lock`` or an audit file could already exist as a symlink to something valuable
(``/etc/passwd``, another service's data): following it would truncate or append to the
target. Every file the guard writes is therefore opened with ``O_NOFOLLOW`` (a symlink is
refused with ``ELOOP``), must be a regular file, and gets the mode we intend even when it
already existed with a looser one. Directories we own get 0700 the same way.

A FIFO planted in their place would do worse: opening one waits for its other end, so the
daemon would hang forever on its next write (or read). Every open is therefore
``O_NONBLOCK`` until the file is known to be a regular one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def open_private(path: Path, flags: int) -> int:
    """``os.open`` for writing our own file: no symlink, regular file, mode 0600.

    ``flags`` says how (``O_WRONLY | O_APPEND | O_CREAT``...); raises OSError (``ELOOP``
    for a symlink) instead of touching anything that is not ours to write.
    """
    fd = _open_regular(path, flags)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_to_read(path: Path) -> int:
    """``os.open`` for reading a file the guard wrote: no symlink, regular file, never waiting.

    The mode is left as it is: a reader (``history`` run by another user) may not own it.
    """
    return _open_regular(path, os.O_RDONLY)


def _open_regular(path: Path, flags: int) -> int:
    """Open without following a symlink or waiting on a FIFO; refuse all but a regular file.

    A FIFO opened for writing with no reader fails at once with ``ENXIO`` (a socket too):
    that is reported as what it is, not a regular file.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise IsADirectoryError(f"{path} is not a regular file") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as needed; the last level must be a real dir, mode 0700."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is a symlink or not a directory")
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR, follow_symlinks=False)
    return path
