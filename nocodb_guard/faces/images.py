"""Safe decoding: bytes from a stranger -> a C-contiguous uint8 RGB array, or BadPicture.

Everything about an upload is uploader-controlled, so nothing but the bytes is trusted:
the type is sniffed from the leading bytes (never from the file name or mimetype), and
Pillow is only allowed to try the one plugin that matches. A verdict drawn here deletes a
row, so :func:`decode` raises :class:`~nocodb_guard.errors.BadPicture` for every byte
string it cannot turn into a picture, and nothing else:

- ``not_an_image``: the bytes are not one of the accepted still-image formats;
- ``unreadable``: they claim to be one, but are truncated, corrupt or absurd;
- ``too_large``: the header announces more pixels than ``max_pixels`` (JPEG) or than
  :data:`FULL_DECODE_MAX_PIXELS` (other formats), or the file's structure would make
  decoding too costly (:mod:`~nocodb_guard.faces.budgets`: JPEG scans, TIFF tiles,
  decoded bytes), so cost bombs are refused before a single pixel is decoded;
- ``animated``: a GIF, WebP, APNG or AVIF with several frames. What a browser shows is
  the animation, not the first frame: judging only that frame let a politician's face
  in frame 1 approve a cat. Why animation is refused rather than judged frame by frame
  is in :func:`~nocodb_guard.faces.budgets.refuse_animation`.

A picture Pillow reads is never called ``unreadable``: metadata it refuses but we do not
need (a 2 MB ICC profile in a PNG) is dropped before decoding.

Pictures are normalised for dlib: downscaled to ``max_side`` first (memory stays small
whatever the depth), EXIF orientation applied, alpha composited onto white, every mode
(CMYK, palette, grayscale, 1-bit, 16/32-bit, float) turned into 8-bit RGB, returned as a
C-contiguous array (dlib silently finds no face in a strided one).
"""

from __future__ import annotations

import functools
import io
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile

from nocodb_guard.errors import BadPicture
from nocodb_guard.faces import budgets, orientation
from nocodb_guard.faces.formats import PILLOW_PLUGIN, sniff
from nocodb_guard.models import FaceBox, Reason

#: Longest side over shortest side beyond which a picture cannot be a photo of a face
#: (phone panoramas stay well under it). Such strips would also shrink to a 0-px side.
MAX_ASPECT_RATIO = 50

#: Pixel cap for formats decoded at full size (all but JPEG, which libjpeg decodes at
#: 1/2, 1/4 or 1/8 scale): about 150 MB of RGB, then the resize. A JPEG is capped by
#: ``max_pixels`` alone (default 120 MP: a 108 MP phone photo is judged, not deleted).
FULL_DECODE_MAX_PIXELS = 50_000_000

#: Resampling used for downscaling. Pillow first shrinks by an integer factor with a box
#: filter (``reducing_gap``), then finishes with an antialiased triangle filter. Measured
#: on a 6000x4000 RGB picture to 1024 px: BILINEAR+gap 2.0 60 ms, LANCZOS+gap 2.0 160 ms,
#: LANCZOS alone 280 ms; for face detection the sharper kernels buy nothing visible.
RESAMPLE = Image.Resampling.BILINEAR
REDUCING_GAP = 2.0

#: What Pillow and its plugins raise on hostile or broken input in practice.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # "image file is truncated", "cannot identify image file", decoder errors
    SyntaxError,  # Pillow's plugins raise it for malformed headers
    ValueError,  # bad modes, bad sizes, pillow_heif's libheif errors
    TypeError,
    IndexError,
    KeyError,
    struct.error,
    EOFError,
    zlib.error,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,  # pillow_heif
    NotImplementedError,
)


@dataclass(frozen=True)
class DecodedImage:
    """A picture ready for dlib: ``rgb`` is HxWx3 uint8, C-contiguous, downscaled to ``max_side``.

    ``format`` is the sniffed format (``JPEG``, ``PNG``, ``WEBP``, ``GIF``, ``TIFF``,
    ``BMP``, ``HEIF``); ``original_size`` is the source's (width, height) as stored,
    before orientation and downscaling; ``upright_size`` the same once upright (the
    upload's own pixels, in which face sizes are judged). ``region`` is the part of the
    upright picture ``rgb`` shows (None: all of it).
    """

    rgb: npt.NDArray[np.uint8]
    format: str
    original_size: tuple[int, int]
    upright_size: tuple[int, int]
    region: FaceBox | None = None

    @property
    def scale(self) -> float:
        """Pixels of ``rgb`` per pixel of the upload: 0.25 for a picture shrunk to a quarter."""
        width = self.region.width if self.region is not None else self.upright_size[0]
        return float(self.rgb.shape[1]) / max(width, 1)

    @property
    def analysed_size(self) -> tuple[int, int]:
        """(width, height) of ``rgb``: the coordinate space of detected face boxes."""
        return (int(self.rgb.shape[1]), int(self.rgb.shape[0]))


def decode(
    data: bytes, *, max_pixels: int, max_side: int, region: FaceBox | None = None
) -> DecodedImage:
    """Decode untrusted bytes; raise :class:`nocodb_guard.errors.BadPicture` on anything wrong.

    With ``region`` (a box in the upright picture's pixels) only that part is returned, its
    longest side at most ``max_side``: a closer look at one face. A JPEG is then decoded
    at the smallest libjpeg scale that keeps the region's detail, never larger, and every
    budget is counted on what is really decoded, exactly as for the whole picture.
    """
    if max_pixels < 1 or max_side < 1:
        raise ValueError("max_pixels and max_side must be positive")
    fmt = sniff(data)
    plugin = PILLOW_PLUGIN[fmt]
    if plugin == "HEIF":
        _register_heif()
    if fmt == "JPEG":
        budgets.check_jpeg_scans(data)
    elif fmt == "PNG":
        data = budgets.prepare_png(data)
    with _STRICT.loading():
        try:
            image, reported = _open_checked(data, plugin, max_pixels)
            budgets.refuse_animation(image, fmt)
            rgb, original_size, upright = _pixels(image, fmt, reported, max_side, region)
        except BadPicture:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadPicture(Reason.TOO_LARGE, f"{fmt}: {_short(exc)}") from exc
        except _DECODER_ERRORS as exc:
            raise BadPicture(
                Reason.UNREADABLE, f"{fmt} could not be decoded: {_short(exc)}"
            ) from exc
        except MemoryError:
            # Not a fact about the picture (the pixel cap keeps honest ones small):
            # let the caller defer the row rather than delete it.
            raise
        except Exception as exc:
            # Deliberately broad: hostile bytes reach C decoders and third-party plugins
            # whose exception types are not a contract (a new Pillow or libheif may raise
            # anything). The caller's contract is "a picture or BadPicture", and the bytes
            # have already proven undecodable, so the honest verdict is "unreadable".
            # Besides Pillow and numpy calls, only this module's small, tested helpers run
            # inside this try; MemoryError and BadPicture are let through above.
            raise BadPicture(
                Reason.UNREADABLE, f"{fmt} decoder failed: {type(exc).__name__}: {_short(exc)}"
            ) from exc
    return DecodedImage(
        rgb=rgb, format=fmt, original_size=original_size, upright_size=upright, region=region
    )


def _pixels(
    image: Image.Image,
    fmt: str,
    reported: tuple[int, int],
    max_side: int,
    region: FaceBox | None,
) -> tuple[npt.NDArray[np.uint8], tuple[int, int], tuple[int, int]]:
    """The opened picture (or ``region`` of it) as dlib's input, its size as stored and upright.

    The orientation is read twice: before decoding, what the file declares (the size as
    stored); after, what Pillow left to do (the one turn applied here, see
    :mod:`~nocodb_guard.faces.orientation`). Drafting needs only the longest side, the same
    in either orientation.
    """
    declared = orientation.read_orientation(image)
    _draft(image, _draft_side(max_side, reported, region))
    budgets.check_decoded_size(image, fmt)
    image.load()
    turn = orientation.read_orientation(image)
    upright = orientation.reported_upright(reported, image.size, turn)
    drafted = max(image.size) / max(upright)
    box = None if region is None else orientation.stored_box(region, turn, upright, drafted)
    stored = orientation.upright_size(upright, declared)
    return _normalise(image, max_side, turn, box), stored, upright


def _short(exc: BaseException) -> str:
    """Exception text for the audit ``detail``: sizes and codes only, bounded in length."""
    return str(exc)[:200] or type(exc).__name__


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC, once, on first need (not at import: no side effects)."""
    import pillow_heif  # noqa: PLC0415 - lazy on purpose

    # Thumbnails, depth and auxiliary images are never used: do not parse them.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _open_checked(data: bytes, plugin: str, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """Open with the one allowed plugin and vet the header's dimensions before any pixel.

    ``max_pixels`` is the cap, not Pillow's global ``MAX_IMAGE_PIXELS`` (~89 MP, below
    today's 108 MP phone sensors): Pillow's warning between its limit and twice it is
    silenced here because the check below replaces it. Pillow's hard error above twice
    its limit (~179 MP) still applies and also means ``too_large``. Formats that cannot
    be decoded at a reduced scale are capped at :data:`FULL_DECODE_MAX_PIXELS` as well.
    """
    with warnings.catch_warnings():
        # Not thread-safe in Python 3.11 (the filter list is global): the worst a race
        # can do is print Pillow's warning once, or leave this one filter in place.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data), formats=[plugin])
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadPicture(Reason.UNREADABLE, f"the picture claims a size of {width}x{height}")
    cap = max_pixels if plugin == "JPEG" else min(max_pixels, FULL_DECODE_MAX_PIXELS)
    if width * height > cap:
        raise BadPicture(
            Reason.TOO_LARGE, f"{width}x{height} is {width * height} pixels, over the {cap} cap"
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise BadPicture(Reason.UNREADABLE, f"a {width}x{height} strip is not a photo")
    return image, (width, height)


def _draft(image: Image.Image, max_side: int) -> None:
    """Let libjpeg decode at the smallest of 1/2, 1/4, 1/8 scale that still covers ``max_side``.

    An 8000 px photo decodes at 2000 px, a sixteenth of the work and memory; the decoded-size
    budget is then counted on what is really decoded (a 100 MP JPEG is judged, not refused).
    """
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", _fit(image.size, max_side))


def _normalise(
    image: Image.Image, max_side: int, turn: int, stored_box: tuple[int, int, int, int] | None
) -> npt.NDArray[np.uint8]:
    """The loaded first frame (or a box of it, in its pixels), at most ``max_side``, upright, RGB.

    ``turn`` is the orientation Pillow left to do. Cropped and downscaled *before* any change
    of depth or orientation: a 49 MP 16-bit picture is converted at 1 MP, not at full size
    in float64 (1.7 GB per worker, measured).
    """
    if stored_box is not None:
        image = image.crop(stored_box)
    rgb = _to_rgb(orientation.upright(_downscale(image, max_side), turn))
    array = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if array.ndim != 3 or array.shape[2] != 3:
        raise BadPicture(Reason.UNREADABLE, f"normalised to an unexpected shape {array.shape}")
    return array


def _downscale(image: Image.Image, max_side: int) -> Image.Image:
    """At most ``max_side``, resampled in a mode that keeps the picture's range.

    16-bit integers cannot be resampled as they are (widened to 32-bit first); bi-level
    and palette pictures would be resampled by nearest neighbour (aliasing), so they
    become 8-bit first. Every other mode, float included, is resampled as it is.
    """
    if max(image.size) <= max_side:
        return image
    mode = image.mode
    if mode.startswith("I;16"):
        image = image.convert("I")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    return image.resize(_fit(image.size, max_side), RESAMPLE, reducing_gap=REDUCING_GAP)


def _draft_side(max_side: int, size: tuple[int, int], region: FaceBox | None) -> int:
    """The longest side to decode ``size`` at so that ``region`` keeps ``max_side``."""
    if region is None:
        return max_side
    longest = max(region.width, region.height, 1)
    return max(1, round(max(size) * min(1.0, max_side / longest)))


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled so that its longest side is ``max_side`` (never below 1 px)."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, transparency composited onto white."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        # Checked first: converting these to RGBA would clip them just like to RGB.
        return Image.fromarray(_high_depth_to_8bit(image, mode), "L").convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        return _on_white(image.convert("RGBA"))
    if mode == "RGB":
        return image
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ... (ValueError if impossible)


def _on_white(rgba: Image.Image) -> Image.Image:
    """Composite onto white, so a transparent picture is blank rather than black noise."""
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _high_depth_to_8bit(image: Image.Image, mode: str) -> npt.NDArray[np.uint8]:
    """16-bit, 32-bit and float grayscale -> 8-bit, keeping the contrast.

    Runs on the downscaled picture only (float64 copies at 49 MP were 400 MB each).

    A plain ``convert`` clips these to 255 and turns most 16-bit photos white. 16-bit data
    (``I;16*``, or ``I`` holding values within 0..65535) is mapped linearly from its full
    range; floats within 0..1 are scaled by 255; anything else is stretched min..max.
    """
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    return np.ascontiguousarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


class _StrictLoading:
    """Keeps ``ImageFile.LOAD_TRUNCATED_IMAGES`` False while any decode is running.

    Importing face_recognition sets that flag True process-wide, which makes Pillow
    decode a half-uploaded JPEG as grey instead of failing. A counter lets decodes in
    several threads overlap; the last one out restores whatever the flag was before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = False

    @contextmanager
    def loading(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = ImageFile.LOAD_TRUNCATED_IMAGES
            self._depth += 1
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    ImageFile.LOAD_TRUNCATED_IMAGES = self._saved


_STRICT = _StrictLoading()
