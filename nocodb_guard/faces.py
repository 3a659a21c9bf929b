"""The only module that imports face_recognition / dlib. (Stub: interface only.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from nocodb_guard.models import FaceBox


class FaceEngine(Protocol):
    """What the pipeline needs from a face library."""

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[FaceBox]: ...

    def encode(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]: ...


def select_faces(
    detections: Sequence[FaceBox], min_face_px: int, min_face_ratio: float
) -> tuple[list[FaceBox], list[FaceBox]]:
    """Split detections into (kept, ignored)."""
    raise NotImplementedError


def face_distances(
    encoding: npt.NDArray[np.float64], references: npt.NDArray[np.float64]
) -> list[float]:
    """Euclidean distance of one encoding to each reference encoding."""
    return [float(d) for d in np.linalg.norm(references - encoding, axis=1)]
