"""Bytes in, :class:`PictureAnalysis` out: decode, detect, filter, encode, compare.

This is the unit of work a face worker runs. The uploader's pixels and face encoding
live only inside :func:`analyze` and are dropped when it returns: only sizes, counts
and distances leave it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nocodb_guard.errors import BadPicture
from nocodb_guard.faces import images
from nocodb_guard.faces.engine import FaceEngine, face_distances, find_faces
from nocodb_guard.models import PictureAnalysis, Reason
from nocodb_guard.settings import Settings


@dataclass(frozen=True)
class PipelineConfig:
    """The picklable subset of settings a worker process needs."""

    max_pixels: int = 120_000_000
    max_side: int = 1024
    detection_model: str = "hog"
    upsample: int = 1
    min_face_px: int = 40
    min_face_ratio: float = 0.35
    num_jitters: int = 1
    picture_timeout: float = 60.0

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
            picture_timeout=settings.picture_timeout,
        )

    def cache_key(self) -> str:
        """What changes reference encodings: the cache is keyed by it."""
        return f"{self.detection_model}-u{self.upsample}-s{self.max_side}-j{self.num_jitters}"


def make_engine(config: PipelineConfig) -> FaceEngine:
    """The real dlib engine for these settings (dlib's models load on construction)."""
    from nocodb_guard.faces.engine import DlibFaceEngine  # noqa: PLC0415 - keeps dlib out of imports

    return DlibFaceEngine(
        model=config.detection_model, upsample=config.upsample, num_jitters=config.num_jitters
    )


def analyze(
    data: bytes,
    name: str,
    references: npt.NDArray[np.float64] | None,
    config: PipelineConfig,
    engine: FaceEngine,
) -> PictureAnalysis:
    """Analyse one picture; never raises for bad input (it becomes ``problem``).

    Faces are counted by :func:`nocodb_guard.faces.engine.find_faces` (size filters, then a
    second opinion on every face after the first). Pictures whose every detection is
    below ``min_face_px`` come back with ``faces=()`` and ``ignored_faces > 0``.
    """
    started = time.perf_counter()
    try:
        decoded = images.decode(data, max_pixels=config.max_pixels, max_side=config.max_side)
    except BadPicture as bad:
        return PictureAnalysis(
            name=name,
            problem=Reason(bad.reason),
            detail=bad.detail,
            seconds=time.perf_counter() - started,
        )
    rgb = decoded.rgb
    kept, ignored = find_faces(engine, rgb, config.min_face_px, config.min_face_ratio)
    distances: tuple[float, ...] = ()
    if len(kept) == 1 and references is not None and len(references):
        encoding = engine.encode(rgb, kept[0])
        distances = tuple(face_distances(encoding, references))
    return PictureAnalysis(
        name=name,
        format=decoded.format,
        original_size=decoded.original_size,
        analysed_size=(decoded.rgb.shape[1], decoded.rgb.shape[0]),
        faces=tuple(kept),
        ignored_faces=len(ignored),
        distances=distances,
        seconds=time.perf_counter() - started,
    )
