"""Safe decoding: bytes from a stranger -> a C-contiguous uint8 RGB array, or BadPicture.

(Stub: interface only; implementation pending.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class DecodedImage:
    """A picture ready for dlib: ``rgb`` is HxWx3 uint8, C-contiguous, downscaled to ``max_side``."""

    rgb: npt.NDArray[np.uint8]
    format: str
    original_size: tuple[int, int]


def decode(data: bytes, *, max_pixels: int, max_side: int) -> DecodedImage:
    """Decode untrusted bytes; raise :class:`nocodb_guard.errors.BadPicture` on anything wrong."""
    raise NotImplementedError
