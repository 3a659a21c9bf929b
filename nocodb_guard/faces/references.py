"""The politicians' reference encodings: loaded from ``reference_faces/<folder>/``, cached.

A politician whose folder is missing or holds no picture is *unknown*: :meth:`load`
returns None and the sweep defers the row (an operator's omission must never delete an
upload). A folder whose pictures are unusable (unreadable, no face, several faces) is a
misconfiguration that stops the service: :class:`ReferenceSetError` names the file.

Encoding a reference costs a detection and an encoding (0.3-1 s each), plus loading the
dlib models (about 1-2 s), so encodings are cached on disk in
``<state_dir>/reference-cache/``, one ``.npy`` file per photo, keyed by the sha256 of the
photo's bytes and by :meth:`PipelineConfig.cache_key` (every pipeline setting, and the
versions and model files of face_recognition and dlib). A restart with unchanged
references loads them without loading dlib at all.
Only politicians' encodings are ever cached: they are public faces chosen by the operator;
an uploader's encoding never reaches this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog

from nocodb_guard.errors import BadPicture, ReferenceSetError
from nocodb_guard.faces.engine import FaceEngine, unload_models
from nocodb_guard.faces.see import LazyEngine, PipelineConfig, make_engine, see
from nocodb_guard.models import Reason
from nocodb_guard.safefiles import open_private
from nocodb_guard.settings import Settings

log = structlog.get_logger(__name__)

#: Bumped when the cached content changes meaning (part of every cache file name); v2:
#: faces are encoded from a view of the upload where they are large enough (faces.scan).
CACHE_VERSION = "v2"
ENCODING_SIZE = 128
#: A file with one of these suffixes that does not decode is an error, not a stray file.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)

EngineFactory = Callable[[], FaceEngine]
Encoding = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReferenceSet:
    """One politician's reference encodings (N x 128), in the order of ``files``."""

    label: str
    folder: Path
    files: tuple[str, ...]
    encodings: npt.NDArray[np.float64]
    tolerance: float
    review_band: tuple[float, float] | None = None
    """Distances in ``[low, high]`` go to an admin (``review``); None: no band."""


@dataclass(frozen=True)
class ReferenceFile:
    """What the CLI shows about one file of a reference folder."""

    name: str
    cached: bool
    """The encoding came from the on-disk cache (before this call)."""
    faces: int | None = None
    """Faces counted in the photo (1 when cached); None when it could not be decoded."""
    error: str | None = None
    skipped: bool = False
    """Not a picture (notes, licences): ignored, not an error."""

    @property
    def ok(self) -> bool:
        return self.skipped or (self.error is None and self.faces == 1)


@dataclass(frozen=True)
class ReferenceReport:
    """A politician's reference folder as ``nocodb-guard references`` describes it."""

    label: str
    folder: Path
    tolerance: float
    exists: bool
    files: tuple[ReferenceFile, ...]

    @property
    def usable(self) -> tuple[ReferenceFile, ...]:
        return tuple(f for f in self.files if not f.skipped)

    @property
    def ok(self) -> bool:
        """Loadable: at least one photo, every photo with exactly one face."""
        return bool(self.usable) and all(f.ok for f in self.files)


@dataclass(frozen=True)
class _Outcome:
    """One file after reading, from the cache or from the face stack."""

    info: ReferenceFile
    encoding: Encoding | None = None


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the system (dlib frees its models into
    the heap, where RSS keeps them); a no-op where the C library has no ``malloc_trim``."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


class ReferenceStore:
    """Loads, checks, memoises and caches reference encodings. Thread-safe.

    The memo is checked against the folder listing (names, sizes, mtimes) on every
    :meth:`load`, so photos added or replaced while the service runs are picked up on
    the next pass. The face engine is created on first need only.
    """

    def __init__(
        self,
        *,
        folder_for: Callable[[str], Path],
        tolerance_for: Callable[[str], float],
        config: PipelineConfig,
        cache_dir: Path | None,
        engine_factory: EngineFactory | None = None,
        review_band_for: Callable[[str], tuple[float, float] | None] = lambda _label: None,
        cache_writable: bool = True,
    ) -> None:
        self._folder_for = folder_for
        self._tolerance_for = tolerance_for
        self._review_band_for = review_band_for
        self._config = config
        self._cache_dir = cache_dir
        self._cache_writable = cache_writable
        self._looked: dict[tuple[Path, Path], _Outcome] = {}
        """What a read-only store encoded, in this process's memory only: ``check`` then
        describes the files it has just loaded without encoding them a second time."""
        self._engine = LazyEngine(engine_factory or functools.partial(make_engine, config))
        self._memo: dict[str, tuple[tuple[tuple[str, int, int], ...], ReferenceSet]] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        engine_factory: EngineFactory | None = None,
        config: PipelineConfig | None = None,
        read_only: bool = False,
    ) -> ReferenceStore:
        """The store the service uses: cache in ``<state_dir>/reference-cache``.

        ``read_only``: the cache is read, never written. For the commands that only look
        (``check``, ``references``, ``explain``): they change nothing in the daemon's state
        dir (an admin's ``sudo nocodb-guard check`` leaves no root-owned file there), and
        ``explain --reference`` never caches the encoding of a photo that is no reference.
        """
        return cls(
            folder_for=settings.reference_folder,
            tolerance_for=settings.tolerance_for,
            config=config or PipelineConfig.from_settings(settings),
            cache_dir=settings.state_dir / "reference-cache",
            engine_factory=engine_factory,
            review_band_for=settings.review_band_for,
            cache_writable=not read_only,
        )

    def release_engine(self) -> None:
        """Free dlib's models in this process once the references are encoded.

        The daemon's main process only needs them again when a reference photo is added
        or replaced; until then the face workers hold the only copies (measured ~70 MiB
        each). A later :meth:`load` that must encode builds the engine again.
        """
        with self._lock:
            self._engine.release()
            unload_models()
        gc.collect()
        _return_freed_memory()

    @property
    def engine_created(self) -> bool:
        """Whether dlib had to be loaded (False when every reference came from the cache)."""
        return self._engine.created

    # --- loading ---------------------------------------------------------------------------

    def load(self, label: str) -> ReferenceSet | None:
        """The politician's references; None when unknown (no folder, no picture in it).

        Raises :class:`ReferenceSetError` naming the file when a photo is unreadable or
        does not hold exactly one face.
        """
        with self._lock:
            folder = self._folder_for(label)
            candidates = _candidates(folder)
            if not candidates:
                return None
            fingerprint = _fingerprint(candidates)
            memo = self._memo.get(label)
            if memo is not None and memo[0] == fingerprint:
                return memo[1]
            reference_set = self._read_set(label, folder, candidates)
            if reference_set is not None:
                self._memo[label] = (fingerprint, reference_set)
            return reference_set

    def load_files(self, label: str, paths: Sequence[Path]) -> ReferenceSet:
        """Explicit reference photos (``explain --reference``): every one must be usable."""
        with self._lock:
            reference_set = self._read_set(label, paths[0].parent, list(paths))
        if reference_set is None:
            raise ReferenceSetError(f"none of {', '.join(map(str, paths))} is a photo")
        return reference_set

    def describe(self, label: str) -> ReferenceReport:
        """Per-file state for the CLI; never raises for a bad photo (it is reported)."""
        with self._lock:
            folder = self._folder_for(label)
            files = tuple(self._read_file(path).info for path in _candidates(folder))
            return ReferenceReport(
                label=label,
                folder=folder,
                tolerance=self._tolerance_for(label),
                exists=folder.is_dir(),
                files=files,
            )

    def _read_set(self, label: str, folder: Path, candidates: list[Path]) -> ReferenceSet | None:
        names: list[str] = []
        encodings: list[Encoding] = []
        for path in candidates:
            outcome = self._read_file(path)
            if outcome.info.skipped:
                continue
            if outcome.encoding is None:
                raise ReferenceSetError(
                    f"reference photo {path} of {label!r}: {outcome.info.error} "
                    "(each reference photo must show exactly one clear face; "
                    "see reference_faces/README.md)"
                )
            names.append(path.name)
            encodings.append(outcome.encoding)
        if not encodings:
            return None
        return ReferenceSet(
            label=label,
            folder=folder,
            files=tuple(names),
            encodings=np.stack(encodings),
            tolerance=self._tolerance_for(label),
            review_band=self._review_band_for(label),
        )

    def _read_file(self, path: Path) -> _Outcome:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return _failed(path, False, None, f"unreadable: {exc.strerror or exc}")
        cache_path = self._cache_path(data)
        cached = self._read_cache(cache_path)
        if cached is not None:
            return _Outcome(ReferenceFile(path.name, cached=True, faces=1), cached)
        if cache_path is None or self._cache_writable:
            return self._encode(path, data, cache_path)
        key = (path, cache_path)  # the cache path names the bytes and the settings
        if key not in self._looked:
            self._looked[key] = self._encode(path, data, cache_path)
        return self._looked[key]

    def _encode(self, path: Path, data: bytes, cache_path: Path | None) -> _Outcome:
        try:
            sight = see(data, self._config, self._engine)
        except BadPicture as bad:
            if bad.reason is Reason.NOT_AN_IMAGE and path.suffix.lower() not in IMAGE_SUFFIXES:
                return _Outcome(ReferenceFile(path.name, cached=False, skipped=True))
            return _failed(path, False, None, f"{bad.reason}: {bad.detail}")
        if sight.encoding is None:
            kept = len(sight.faces)
            return _failed(path, False, kept, _face_count_problem(kept, sight.ignored_faces))
        encoding = np.asarray(sight.encoding, dtype=np.float64)
        if cache_path is not None and self._cache_writable:
            self._write_cache(cache_path, encoding)
        return _Outcome(ReferenceFile(path.name, cached=False, faces=1), encoding)

    # --- the on-disk cache ------------------------------------------------------------------

    def _cache_path(self, data: bytes) -> Path | None:
        if self._cache_dir is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        return self._cache_dir / f"{digest}-{self._config.cache_key()}-{CACHE_VERSION}.npy"

    @staticmethod
    def _read_cache(cache_path: Path | None) -> Encoding | None:
        """The cached encoding, or None when absent or unusable (it is then rebuilt)."""
        if cache_path is None or not cache_path.is_file():
            return None
        try:
            value = np.load(cache_path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            log.warning("reference_cache_corrupt", file=cache_path.name, error=str(exc))
            return None
        if (
            not isinstance(value, np.ndarray)
            or value.shape != (ENCODING_SIZE,)
            or value.dtype != np.float64
            or not np.all(np.isfinite(value))
        ):
            log.warning("reference_cache_corrupt", file=cache_path.name, error="bad content")
            return None
        return value

    @staticmethod
    def _write_cache(cache_path: Path, encoding: Encoding) -> None:
        """Atomic write (tmp + replace): a crash never leaves a half-written entry.

        A cache that cannot be written (read-only state dir) costs only time on the next
        start, so it is logged, not raised. The temporary file is created exclusively and
        never through a symlink; ``os.replace`` swaps a link at ``cache_path`` itself.
        """
        tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.tmp")
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)  # a leftover (or a planted symlink) from a crash
            with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as handle:
                np.save(handle, encoding, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, cache_path)
        except OSError as exc:
            log.warning("reference_cache_unwritable", dir=str(cache_path.parent), error=str(exc))
            tmp.unlink(missing_ok=True)


def _candidates(folder: Path) -> list[Path]:
    """Files of the folder that may be photos: not hidden, not a README, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        entry
        for entry in folder.iterdir()
        if entry.is_file()
        and not entry.name.startswith(".")
        and not entry.name.lower().startswith("readme")
    )


def _fingerprint(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """Cheap change detection for the memo: name, size and mtime of every file."""
    stats = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            stats.append((path.name, -1, -1))
        else:
            stats.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(stats)


def _failed(path: Path, cached: bool, faces: int | None, error: str) -> _Outcome:
    return _Outcome(ReferenceFile(path.name, cached=cached, faces=faces, error=error))


def _face_count_problem(kept: int, ignored: int) -> str:
    if kept > 1:
        return f"holds {kept} faces"
    if ignored:
        return "the face is too small (use a closer or larger photo)"
    return "no face found (use a clear frontal photo)"
