"""EXIF orientation: phones store pictures sideways or mirrored and say so in EXIF.

Faces are judged in the upload's pixels as a person sees them (upright), but pixels are
mostly decoded as stored: these helpers map between the two, for the whole picture and for
a box of it (a closer look at one face), without ever turning the whole picture.

Pillow itself turns some formats upright while decoding (TIFF in Pillow 13; libheif a
HEIF already while opening) and then deletes the tag. So the orientation still to apply is
read from the *loaded* picture, never assumed from its format: a list of the formats Pillow
turns would silently turn a picture twice, or not at all, the day a Pillow release changes
what it does for one of them, whereas a deleted tag is what Pillow's own ``exif_transpose``
leaves behind whenever it turns a picture.
"""

from __future__ import annotations

import struct

from PIL import Image

from nocodb_guard.models import FaceBox

#: EXIF tag number of Orientation.
ORIENTATION_TAG = 0x0112

#: EXIF orientation -> the transpose that turns the stored pixels upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def read_orientation(image: Image.Image) -> int:
    """The EXIF orientation phones store pictures with (1: as stored).

    Read from the opened file, as a resized copy has no EXIF. The pixels may still decode
    fine when the EXIF block is malformed: the picture is then judged as stored.
    """
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1))
    except (SyntaxError, ValueError, TypeError, KeyError, IndexError, OSError, struct.error):
        return 1


def upright_size(stored: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(width, height) once upright: orientations 5 to 8 turn the picture a quarter."""
    return (stored[1], stored[0]) if orientation in (5, 6, 7, 8) else stored


def reported_upright(
    reported: tuple[int, int], loaded: tuple[int, int], left: int
) -> tuple[int, int]:
    """The upload's upright (width, height), from the size Pillow ``reported`` before decoding.

    Pillow reports a JPEG's size as stored, a TIFF's as upright (it turns a TIFF on load):
    ``reported`` is taken in the orientation of the ``loaded`` pixels once turned by the
    ``left`` orientation. Only a strict disagreement swaps it, as a drafted JPEG's sides are
    rounded up (799x800 may decode as 100x100).
    """
    width, height = upright_size(loaded, left)
    if (width - height) * (reported[0] - reported[1]) < 0:
        return reported[1], reported[0]
    return reported


def stored_box(
    region: FaceBox, orientation: int, upright: tuple[int, int], factor: float
) -> tuple[int, int, int, int]:
    """``region`` (upright pixels) as a (left, top, right, bottom) crop of the stored pixels.

    The stored picture may be mirrored or turned (EXIF orientation) and drafted to
    ``factor`` of its size: both corners are mapped back, then scaled.
    """
    width, height = upright
    corners = [_to_stored(x, y, orientation, width, height) for x, y in (
        (region.left, region.top), (region.right, region.bottom))]  # fmt: skip
    xs, ys = sorted(c[0] for c in corners), sorted(c[1] for c in corners)
    return (
        round(xs[0] * factor), round(ys[0] * factor), round(xs[1] * factor), round(ys[1] * factor)
    )


def _to_stored(x: int, y: int, orientation: int, width: int, height: int) -> tuple[int, int]:
    """A corner of the upright picture (``width`` x ``height``) in the stored picture."""
    mapping = {
        2: (width - x, y),
        3: (width - x, height - y),
        4: (x, height - y),
        5: (y, x),
        6: (y, width - x),
        7: (height - y, width - x),
        8: (height - y, x),
    }
    return mapping.get(orientation, (x, y))


def upright(image: Image.Image, orientation: int) -> Image.Image:
    method = _UPRIGHT.get(orientation)
    return image if method is None else image.transpose(method)
