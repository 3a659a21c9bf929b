"""Coarse to fine: find faces in a small copy, look closer only where it matters.

Searching a picture costs in proportion to its pixels, and dlib's HOG detector only
reports faces of at least :data:`~nocodb_guard.faces.engine.REACH_PX` (72 px) in the
picture it searches. Upsampling everything (twice the side, four times the work) to find
small faces everywhere was most of the time spent per upload, and the downscale to
``max_side`` still lost faces a large upload holds plenty of pixels for. So:

1. **Coarse**: search the picture downscaled to ``max_side`` (at ``upsample``, 0 by
   default). Every box is turned into the upload's own pixels: ``min_face_px`` and
   ``min_face_ratio`` are judged there, whatever the picture was shrunk to.
2. **Finer, only where a face is small** (:func:`finer_scale`): nothing found (a small
   face, or a group of small faces, may be there), or the largest face found is small
   there (under :data:`SMALL_CANDIDATE` times the reach: a scene or a group, where a face
   ``min_face_ratio`` of its size would be below the coarse search's reach). The whole
   picture is then searched again at the scale where that face reaches 72 px: decoded
   again from the upload's bytes (JPEG at the libjpeg draft scale that covers it), at
   most at the upload's own resolution (a small upload: at ``max_side``) around a face
   found, and enlarged further only when nothing was found; always capped at
   ``refine_pixels``. Its detections replace the coarse ones.

   The price, chosen for speed (measured on ``shared/faces``, docs/performance.md): beside
   a face of 144 px or more in the coarse picture (14 % of its longest side), a second
   face under 72 px there (7 %) is not looked for; upsampling everything found it down to
   40 px (4 %). Missing it can only approve a picture that also shows a much smaller
   second person, never delete one: a picture whose main face does not match is deleted
   as ``no_match`` either way.
3. **Encode from enough pixels** (:func:`encoding_view`): the one face is encoded from a
   view where it is at least ``encode_face_px`` wide (dlib's encoder works on a 150 px
   chip of face plus margin): the picture already searched when it is big enough, else a
   crop around the face decoded from the upload, never more than ``refine_pixels``
   decoded for it (a 100 MP photo is not decoded whole to encode one face).

A closer look that cannot be decoded (it passed the same budgets once, at a smaller
scale) falls back to the coarse picture: a refinement never turns into a verdict of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

from nocodb_guard.errors import BadPicture
from nocodb_guard.faces import images
from nocodb_guard.faces.engine import REACH_PX, Detection, FaceEngine
from nocodb_guard.models import FaceBox

if TYPE_CHECKING:
    from nocodb_guard.faces.see import PipelineConfig

#: With nothing found, the closer look searches for faces down to this fraction of
#: ``min_face_px``: faces too small to judge one by one still make a group
#: (``multiple_faces``), not "no face".
GROUP_FACE_FRACTION = 0.5
#: A candidate is "small" in the coarse picture below this many times the search's reach
#: (144 px at 1024 px, upsample 0): only then is the whole picture searched again for the
#: faces ``min_face_ratio`` of its size that the coarse search cannot see.
SMALL_CANDIDATE = 2
#: A closer look that enlarges by less than one step of HOG's image pyramid (dlib scans
#: the picture at 5/6 of the size, then 5/6 of that, ...: boxes step by 1.2) finds next to
#: nothing the coarse search's first level did not, at the cost of a second search.
MIN_GAIN = 1.2
#: Margin around a face, in face widths on each side, in the crop it is encoded from:
#: dlib's chip adds a quarter on each side and its landmarks need the face's outline.
ENCODE_MARGIN = 0.5


@dataclass(frozen=True)
class Look:
    """A picture searched or encoded from: its pixels, its scale over the upload's, its origin.

    ``origin`` is the upload pixel (x, y) at the top-left of ``rgb`` (a crop's offset).
    """

    rgb: npt.NDArray[np.uint8]
    scale: float
    origin: tuple[int, int] = (0, 0)

    def to_upload(self, box: FaceBox) -> FaceBox:
        """A box of ``rgb`` in the upload's own pixels."""
        moved = box.scaled(1 / self.scale)
        x, y = self.origin
        return FaceBox(moved.top + y, moved.right + x, moved.bottom + y, moved.left + x)

    def from_upload(self, box: FaceBox) -> FaceBox:
        """A box in the upload's pixels as a box of ``rgb``."""
        x, y = self.origin
        return FaceBox(box.top - y, box.right - x, box.bottom - y, box.left - x).scaled(self.scale)


def detect(engine: FaceEngine, look: Look) -> list[Detection]:
    """The engine's detections in ``look``, boxes in the upload's own pixels."""
    return [Detection(look.to_upload(d.box), d.score) for d in engine.detect(look.rgb)]


def finer_scale(
    detections: list[Detection], upright: tuple[int, int], scale: float, config: PipelineConfig
) -> float | None:
    """The scale of a closer look at the whole picture, or None when ``scale`` was enough.

    Around a small face found, the closer look goes down to the upload's own pixels (a
    small upload: to ``max_side``, as a larger one is searched); with nothing found it may
    enlarge further, so that a group of small faces is told from no face at all.
    """
    reach = REACH_PX / 2**config.upsample
    limit = _cap(upright, config.refine_pixels)
    if detections:
        largest = max(d.box.size for d in detections)
        if largest * scale >= SMALL_CANDIDATE * reach:
            return None
        smallest = config.min_face_ratio * largest
        limit = min(limit, max(1.0, config.max_side / max(upright)))
    else:
        smallest = config.min_face_px * GROUP_FACE_FRACTION
    wanted = min(reach / max(smallest, 1.0), limit)
    return wanted if wanted > scale * MIN_GAIN else None


def closer_look(
    data: bytes, coarse: images.DecodedImage, scale: float, config: PipelineConfig
) -> Look | None:
    """The whole picture at ``scale``: decoded again where the upload has the pixels."""
    base = Look(coarse.rgb, coarse.scale)
    if coarse.scale < min(scale, 1.0) * 0.99:
        side = max(1, round(max(coarse.upright_size) * min(scale, 1.0)))
        try:
            decoded = images.decode(data, max_pixels=config.max_pixels, max_side=side)
        except BadPicture:
            return None
        base = Look(decoded.rgb, decoded.scale)
    if base.scale >= scale * 0.99:
        return base
    return _enlarged(base, scale)


def encoding_view(
    data: bytes, coarse: images.DecodedImage, look: Look, face: FaceBox, config: PipelineConfig
) -> Look:
    """Where to encode ``face`` from: ``look`` if it has the pixels, else a crop of the upload."""
    wanted = min(1.0, config.encode_face_px / max(face.size, 1))
    wanted = min(wanted, _cap(coarse.upright_size, config.refine_pixels))
    if look.scale >= wanted * 0.99:
        return look
    region = _around(face, coarse.upright_size)
    side = max(1, round(max(region.width, region.height) * wanted))
    try:
        view = images.decode(data, max_pixels=config.max_pixels, max_side=side, region=region)
    except BadPicture:
        return look
    return Look(view.rgb, view.scale, (region.left, region.top))


def _cap(upright: tuple[int, int], refine_pixels: int) -> float:
    """The largest scale at which the whole picture stays within ``refine_pixels``."""
    return math.sqrt(refine_pixels / max(upright[0] * upright[1], 1))


def _enlarged(base: Look, scale: float) -> Look:
    """``base`` resized up to ``scale``: the detector then finds faces below its reach."""
    height, width = base.rgb.shape[:2]
    factor = scale / base.scale
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resized = Image.fromarray(base.rgb).resize(size, Image.Resampling.BILINEAR)
    rgb = np.ascontiguousarray(np.asarray(resized, dtype=np.uint8))
    return Look(rgb, base.scale * size[0] / width)


def _around(face: FaceBox, upright: tuple[int, int]) -> FaceBox:
    """``face`` plus :data:`ENCODE_MARGIN` on each side, within the picture."""
    margin = round(face.size * ENCODE_MARGIN)
    return FaceBox(
        top=max(face.top - margin, 0),
        right=min(face.right + margin, upright[0]),
        bottom=min(face.bottom + margin, upright[1]),
        left=max(face.left - margin, 0),
    )
