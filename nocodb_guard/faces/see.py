"""Seeing a picture: bytes in, faces (and the one face's encoding) out.

:func:`see` (decode, detect, filter, encode) is the one way the service looks at a picture:
the sweep's workers, the reference store and ``evaluate`` all call it. :func:`analyze`,
the unit of work a face worker runs, adds the comparison with the references. The
uploader's pixels and face encoding live only inside :func:`analyze` and are dropped when
it returns: only sizes, counts and distances leave it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata

import numpy as np
import numpy.typing as npt

from nocodb_guard.errors import BadPicture
from nocodb_guard.faces import images, scan
from nocodb_guard.faces.engine import Detection, FaceEngine, face_distances, select_faces
from nocodb_guard.models import FaceBox, PictureAnalysis, SeenFace, ignored_count
from nocodb_guard.settings import Settings


@dataclass(frozen=True)
class PipelineConfig:
    """The picklable subset of settings a worker process needs."""

    max_pixels: int = 120_000_000
    max_side: int = 1024
    detection_model: str = "hog"
    upsample: int = 0
    min_face_px: int = 40
    min_face_ratio: float = 0.35
    num_jitters: int = 1
    refine_pixels: int = 8_000_000
    encode_face_px: int = 200
    picture_timeout: float = 60.0
    worker_memory_mb: int = 2048

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        return cls(
            max_pixels=settings.max_pixels,
            max_side=settings.max_side,
            detection_model=settings.detection_model,
            upsample=settings.upsample,
            min_face_px=settings.min_face_px,
            min_face_ratio=settings.min_face_ratio,
            num_jitters=settings.num_jitters,
            refine_pixels=settings.refine_pixels,
            encode_face_px=settings.encode_face_px,
            picture_timeout=settings.picture_timeout,
            worker_memory_mb=settings.worker_memory_mb,
        )

    def cache_key(self) -> str:
        """Everything that changes a reference's encoding or whether it is usable at all.

        Every field (``min_face_px`` and ``min_face_ratio`` decide whether a photo has one
        face; ``max_pixels`` whether it decodes) and the face stack's identity: an upgrade of
        face_recognition, dlib or their model files must not reuse stale encodings. Not
        ``picture_timeout`` and ``worker_memory_mb``: limits on upload workers, they change
        no reference.
        """
        pipeline = asdict(self)
        del pipeline["picture_timeout"], pipeline["worker_memory_mb"]
        fields = json.dumps(
            {**pipeline, "library": library_identity()}, sort_keys=True, default=str
        )
        return hashlib.sha256(fields.encode()).hexdigest()[:16]


@functools.cache
def library_identity() -> tuple[tuple[str, str], ...]:
    """Versions of the face stack and the names and sizes of its model files (no import).

    Sizes, not hashes: hashing ~100 MB of models on every start would cost more than the
    cache saves; a model file replaced in place by one of the same size and version is not
    a case pip produces.
    """
    found: list[tuple[str, str]] = []
    for package in ("face_recognition", "dlib", "face_recognition_models"):
        try:
            found.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            found.append((package, "absent"))
    try:
        files = metadata.files("face_recognition_models") or []
    except metadata.PackageNotFoundError:
        files = []
    found.extend((f.name, str(f.size)) for f in files if f.name.endswith(".dat"))
    return tuple(found)


def make_engine(config: PipelineConfig) -> FaceEngine:
    """The real dlib engine for these settings (dlib's models load on construction)."""
    from nocodb_guard.faces.engine import DlibFaceEngine  # noqa: PLC0415 - keeps dlib out of imports

    return DlibFaceEngine(
        model=config.detection_model, upsample=config.upsample, num_jitters=config.num_jitters
    )


class LazyEngine:
    """A :class:`FaceEngine` that builds the real one on first use.

    Loading dlib's models costs 1-2 s: a caller that may never need them (references that
    all come from the cache, a file that turns out not to be a picture) pays only when a
    picture is actually looked at.
    """

    def __init__(self, factory: Callable[[], FaceEngine]) -> None:
        self._factory = factory
        self._engine: FaceEngine | None = None

    @property
    def created(self) -> bool:
        return self._engine is not None

    def _get(self) -> FaceEngine:
        if self._engine is None:
            self._engine = self._factory()
        return self._engine

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        return self._get().detect(rgb)

    def confirm(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> bool:
        return self._get().confirm(rgb, box)

    def encode(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        return self._get().encode(rgb, box)

    def release(self) -> None:
        """Drop the real engine; the next use builds it again."""
        self._engine = None


@dataclass(frozen=True)
class Sight:
    """What one look at a picture found: no pixels; the face's encoding only if asked for.

    ``faces`` (the faces that count) and every box of ``seen`` are in the upload's own
    pixels. ``encoding`` is set when exactly one face was kept and the caller asked for it.
    """

    format: str
    original_size: tuple[int, int]
    analysed_size: tuple[int, int]
    faces: tuple[FaceBox, ...]
    seen: tuple[SeenFace, ...]
    encoding: npt.NDArray[np.float64] | None = None

    @property
    def ignored_faces(self) -> int:
        return ignored_count(self.seen)


def see(data: bytes, config: PipelineConfig, engine: FaceEngine, *, encode: bool = True) -> Sight:
    """Decode, find the faces coarse to fine, encode the face when there is exactly one.

    The one way every part of the service looks at a picture (an upload in
    :func:`analyze`, a reference photo, a labelled photo in ``evaluate``), so that a
    reference or an evaluation sees a photo exactly as the sweep sees an upload. Raises
    :class:`BadPicture` when the bytes are not a usable picture: what that means is the
    caller's to say. Where to look closer and what to encode from is
    :mod:`nocodb_guard.faces.scan`; how faces are counted is
    :func:`nocodb_guard.faces.engine.select_faces` (size filters in the upload's pixels,
    then a second opinion on every face after the first).
    """
    coarse = images.decode(data, max_pixels=config.max_pixels, max_side=config.max_side)
    look = scan.Look(coarse.rgb, coarse.scale)
    detections = scan.detect(engine, look)
    finer = scan.finer_scale(detections, coarse.upright_size, look.scale, config)
    closer = None if finer is None else scan.closer_look(data, coarse, finer, config)
    if closer is not None:
        look = closer
        detections = scan.detect(engine, look)
    kept, ignored = select_faces(
        detections,
        config.min_face_px,
        config.min_face_ratio,
        confirm=lambda box: engine.confirm(look.rgb, look.from_upload(box)),
    )
    encoding, judged_at = None, look.scale
    if encode and len(kept) == 1:
        view = scan.encoding_view(data, coarse, look, kept[0], config)
        encoding, judged_at = engine.encode(view.rgb, view.from_upload(kept[0])), view.scale
    seen = [SeenFace(box, judged_at if i == 0 else look.scale) for i, box in enumerate(kept)]
    seen += [SeenFace(box, look.scale, why) for box, why in ignored]
    return Sight(
        format=coarse.format,
        original_size=coarse.original_size,
        analysed_size=coarse.analysed_size,
        faces=tuple(kept),
        seen=tuple(seen),
        encoding=encoding,
    )


def analyze(
    data: bytes,
    name: str,
    references: npt.NDArray[np.float64] | None,
    config: PipelineConfig,
    engine: FaceEngine,
) -> PictureAnalysis:
    """Analyse one upload; never raises for bad input (it becomes ``problem``).

    Pictures whose every detection is below ``min_face_px`` come back with ``faces=()``
    and ``ignored_faces > 0``. The face is encoded only when there is something to
    compare it with.
    """
    started = time.perf_counter()
    compare = references is not None and len(references) > 0
    try:
        sight = see(data, config, engine, encode=compare)
    except BadPicture as bad:
        return PictureAnalysis(
            name=name,
            problem=bad.reason,
            detail=bad.detail,
            seconds=time.perf_counter() - started,
        )
    distances: tuple[float, ...] = ()
    if sight.encoding is not None and references is not None:
        distances = tuple(face_distances(sight.encoding, references))
    return PictureAnalysis(
        name=name,
        format=sight.format,
        original_size=sight.original_size,
        analysed_size=sight.analysed_size,
        faces=sight.faces,
        seen=sight.seen,
        distances=distances,
        seconds=time.perf_counter() - started,
    )
