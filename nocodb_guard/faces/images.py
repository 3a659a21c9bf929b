"""Safe decoding: bytes from a stranger -> a C-contiguous uint8 RGB array, or BadPicture.

Everything about an upload is uploader-controlled, so nothing but the bytes is trusted:
the type is sniffed from the leading bytes (never from the file name or mimetype), and
Pillow is only allowed to try the one plugin that matches. A verdict drawn here deletes a
row, so :func:`decode` raises :class:`~nocodb_guard.errors.BadPicture` for every byte
string it cannot turn into a picture, and nothing else:

- ``not_an_image``: the bytes are not one of the accepted still-image formats;
- ``unreadable``: they claim to be one, but are truncated, corrupt or absurd;
- ``too_large``: the header announces more pixels than ``max_pixels`` (JPEG) or than
  :data:`FULL_DECODE_MAX_PIXELS` (other formats), so decompression bombs are refused
  before a single pixel is decoded.

Pictures are normalised for dlib: EXIF orientation applied, alpha composited onto white,
every mode (CMYK, palette, grayscale, 1-bit, 16/32-bit, float) turned into 8-bit RGB,
downscaled to ``max_side``, returned as a C-contiguous array (dlib silently finds no face
in a strided one).
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
from PIL import Image, ImageFile, ImageOps

from nocodb_guard.errors import BadPicture
from nocodb_guard.models import Reason

#: Accepted formats, as named in :attr:`DecodedImage.format`, with the Pillow plugin
#: allowed to open each one.
PILLOW_PLUGIN = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "WEBP": "WEBP",
    "GIF": "GIF",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "HEIF": "HEIF",
}

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

_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})

#: Signatures of common non-images, only to write a clearer ``detail``.
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"8BPS", "a Photoshop document (not accepted)"),
    (b"\x00\x00\x01\x00", "an icon file (not accepted)"),
    (b"\x00\x00\x02\x00", "a cursor file (not accepted)"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
)

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
    before orientation and downscaling.
    """

    rgb: npt.NDArray[np.uint8]
    format: str
    original_size: tuple[int, int]

    @property
    def analysed_size(self) -> tuple[int, int]:
        """(width, height) of ``rgb``: the coordinate space of detected face boxes."""
        return (int(self.rgb.shape[1]), int(self.rgb.shape[0]))


def decode(data: bytes, *, max_pixels: int, max_side: int) -> DecodedImage:
    """Decode untrusted bytes; raise :class:`nocodb_guard.errors.BadPicture` on anything wrong."""
    if max_pixels < 1 or max_side < 1:
        raise ValueError("max_pixels and max_side must be positive")
    fmt = sniff(data)
    plugin = PILLOW_PLUGIN[fmt]
    if plugin == "HEIF":
        _register_heif()
    with _STRICT.loading():
        try:
            image, original_size = _open_checked(data, plugin, max_pixels)
            rgb = _normalise(image, max_side)
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
    return DecodedImage(rgb=rgb, format=fmt, original_size=original_size)


def sniff(data: bytes) -> str:
    """The accepted format the bytes start with, or ``BadPicture(Reason.NOT_AN_IMAGE)``.

    Stricter than Pillow's own ``_accept`` checks where those are weak (BMP's two bytes).
    """
    if not data:
        raise BadPicture(Reason.NOT_AN_IMAGE, "the file is empty")
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 18:
        (dib_size,) = struct.unpack("<I", head[14:18])
        if dib_size in _BMP_HEADER_SIZES:
            return "BMP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    raise BadPicture(Reason.NOT_AN_IMAGE, _describe_other(head))


def _describe_other(head: bytes) -> str:
    """A short, non-identifying description of bytes that are not an accepted picture."""
    for signature, what in _KNOWN_OTHERS:
        if head.startswith(signature):
            return f"the file is {what}"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace")
        return f"the file is an ISO media file of brand {brand!r} (video or AVIF, not accepted)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "the file is XML or SVG (vector drawings are not accepted)"
    if text.startswith((b"<!doctype", b"<html", b"<")):
        return "the file is HTML or other markup"
    if _looks_like_text(head):
        return "the file is text"
    return "the file is not a JPEG, PNG, WebP, GIF, TIFF, BMP or HEIC picture"


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in decoded)


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


def _normalise(image: Image.Image, max_side: int) -> npt.NDArray[np.uint8]:
    """Decode the first frame, turn it upright, RGB, at most ``max_side``: dlib's input."""
    if image.format in ("JPEG", "MPO"):
        # Let libjpeg decode at the smallest of 1/2, 1/4, 1/8 scale that still covers
        # max_side: an 8000 px photo decodes at 2000 px, a sixteenth of the work.
        image.draft("RGB", _fit(image.size, max_side))
    image.load()
    _turn_upright(image)
    rgb = _to_rgb(image)
    if max(rgb.size) > max_side:
        rgb = rgb.resize(_fit(rgb.size, max_side), RESAMPLE, reducing_gap=REDUCING_GAP)
    array = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if array.ndim != 3 or array.shape[2] != 3:
        raise BadPicture(Reason.UNREADABLE, f"normalised to an unexpected shape {array.shape}")
    return array


def _turn_upright(image: Image.Image) -> None:
    """Apply the EXIF orientation in place, as phones store pictures sideways.

    The pixels decoded fine, so a malformed EXIF block is not a reason to reject the
    picture: it is then judged as stored.
    """
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):
        return


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
