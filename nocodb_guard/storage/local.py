"""NocoDB's local storage: files under ``<nocodb_data_dir>/nc/uploads``, thumbnails beside.

An attachment's ``path`` is ``download/<y>/<m>/<d>/<hash>/<name>``; NocoDB stores the file
at ``nc/uploads/<y>/<m>/<d>/<hash>/<name>`` and its thumbnails (``tiny.jpg``, ``small.jpg``,
``card_cover.jpg``) in the folder ``nc/thumbnails/<y>/<m>/<d>/<hash>/<name>/``.

The ``path`` is stored in the row, and a row can be edited through the API: it is input.
So every component is checked (no ``..``, no empty or absolute part) and the folders are
walked one directory file descriptor at a time with ``O_NOFOLLOW``: a symlink anywhere
below the data folder is refused, never followed. The data folder itself is the
operator's setting and may be a symlink (a mounted volume).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nocodb_guard.storage.base import StorageRefused, StorageUnavailable, StoredFile

DOWNLOAD_PREFIX = "download/"
UPLOADS = ("nc", "uploads")
THUMBNAILS = ("nc", "thumbnails")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def relative_parts(path: str) -> tuple[str, ...]:
    """The components of a stored file below ``nc/uploads``; :class:`StorageRefused` if unsafe."""
    if not path.startswith(DOWNLOAD_PREFIX):
        raise StorageRefused(f"not a local NocoDB upload path (no {DOWNLOAD_PREFIX!r} prefix)")
    parts = tuple(path[len(DOWNLOAD_PREFIX) :].split("/"))
    if len(parts) < 2:
        raise StorageRefused("path has no folder below the upload folder")
    for part in parts:
        if part in ("", ".", "..") or "\\" in part or "\x00" in part:
            raise StorageRefused(f"path component {part!r} could leave the upload folder")
    return parts


class LocalStorage:
    """:class:`~nocodb_guard.storage.base.StorageBackend` for NocoDB's data folder."""

    name = "local"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def remove(self, file: StoredFile) -> int:
        parts = _parts_of(file)
        with self._root() as root:
            removed = _unlink_file(root, (*UPLOADS, *parts))
            return removed + _remove_thumbnail_dir(root, (*THUMBNAILS, *parts))

    def exists(self, file: StoredFile) -> bool:
        parts = _parts_of(file)
        with self._root() as root:
            return _exists(root, (*UPLOADS, *parts)) or _exists(root, (*THUMBNAILS, *parts))

    def identity(self, file: StoredFile) -> str:
        # NocoDB joins the path onto its upload folder (Node's path.join), which reads
        # ``a//b``, ``./`` and ``x/../`` as one file; relative_parts still refuses an escape.
        normalised = posixpath.normpath(file.path) if file.path else None
        return "/".join(_parts_of(StoredFile(path=normalised)))

    def probe(self) -> str:
        with self._root() as root, _walk(root, UPLOADS) as uploads:
            if uploads is None:  # _root() checked it; gone meanwhile
                raise StorageUnavailable(f"{self._uploads_dir()} vanished")
            if not os.access(self._uploads_dir(), os.W_OK, effective_ids=True):
                raise StorageUnavailable(f"{self._uploads_dir()} is not writable by this user")
        return f"{self._uploads_dir()} is NocoDB's upload folder and writable"

    def _uploads_dir(self) -> Path:
        return self.data_dir.joinpath(*UPLOADS)

    @contextmanager
    def _root(self) -> Iterator[int]:
        """The data folder, open; :class:`StorageUnavailable` unless it holds ``nc/uploads``."""
        try:
            root = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise StorageUnavailable(
                f"nocodb_data_dir {self.data_dir}: {exc.strerror} (is NocoDB's storage mounted?)"
            ) from None
        try:
            with _walk(root, UPLOADS) as uploads:
                if uploads is None:
                    raise StorageUnavailable(
                        f"nocodb_data_dir {self.data_dir} holds no nc/uploads: not NocoDB's "
                        "data folder (NC_TOOL_DIR, /usr/app/data in the Docker image), or "
                        "NocoDB has stored no upload yet (it creates the folder then)"
                    )
            yield root
        finally:
            os.close(root)


def _parts_of(file: StoredFile) -> tuple[str, ...]:
    if file.path is None:
        raise StorageRefused("attachment has no local path (stored on S3? configure s3 storage)")
    return relative_parts(file.path)


@contextmanager
def _walk(root: int, parts: Sequence[str]) -> Iterator[int | None]:
    """The directory ``root/parts`` open without following symlinks; None when missing."""
    fd = os.open(".", _DIR_FLAGS, dir_fd=root)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                fd = -1
                break
            except OSError as exc:
                raise _as_storage_error(exc, part) from None
            os.close(fd)
            fd = child
        yield None if fd < 0 else fd
    finally:
        if fd >= 0:
            os.close(fd)


def _as_storage_error(exc: OSError, part: str) -> StorageRefused | StorageUnavailable:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return StorageRefused(f"{part!r} is a symlink or not a folder: not followed")
    return StorageUnavailable(f"cannot open {part!r}: {exc.strerror}")


def _lstat(directory: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageUnavailable(f"cannot inspect {name!r}: {exc.strerror}") from None


def _exists(root: int, parts: Sequence[str]) -> bool:
    with _walk(root, parts[:-1]) as parent:
        return parent is not None and _lstat(parent, parts[-1]) is not None


def _unlink_file(root: int, parts: Sequence[str]) -> int:
    """Remove one regular file; 0 when already gone."""
    with _walk(root, parts[:-1]) as parent:
        if parent is None:
            return 0
        info = _lstat(parent, parts[-1])
        if info is None:
            return 0
        if not stat.S_ISREG(info.st_mode):
            raise StorageRefused(f"{parts[-1]!r} is not a regular file (a symlink?): not removed")
        _unlink(parent, parts[-1])
        return 1


def _remove_thumbnail_dir(root: int, parts: Sequence[str]) -> int:
    """Remove the thumbnail folder's regular files, then the folder; the files removed."""
    with _walk(root, parts[:-1]) as parent:
        if parent is None:
            return 0
        with _walk(parent, parts[-1:]) as folder:
            if folder is None:
                return 0
            removed = 0
            for name in os.listdir(folder):
                info = _lstat(folder, name)
                if info is not None and not stat.S_ISREG(info.st_mode):
                    raise StorageRefused(f"thumbnail {name!r} is not a regular file: not removed")
                if info is not None:
                    _unlink(folder, name)
                    removed += 1
        try:
            os.rmdir(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageUnavailable(f"cannot remove thumbnail folder: {exc.strerror}") from None
        return removed


def _unlink(directory: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=directory)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageUnavailable(f"cannot remove {name!r}: {exc.strerror}") from None
