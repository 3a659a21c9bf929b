"""What decoding one picture may cost, decided from its structure before a pixel is decoded.

A hostile upload can be small and still cost minutes of CPU or gigabytes of memory to
decode. Limits that depend on the machine's load (a timer) would make the verdict depend
on it too, so everything that *can* be decided from the file's structure is decided here,
the same way on every machine, as ``too_large`` (a fact about the file: it deletes):

- a JPEG may have at most :data:`MAX_JPEG_SCANS` scans. Every progressive scan is a full
  pass over the coefficients: one AC scan repeated 20,000 times (3.8 MB) cost 118 s of
  CPU. Real encoders write 1 (baseline) to about 12 (progressive) scans;
- a TIFF tile may have at most :data:`MAX_TIFF_TILE_PIXELS` pixels: libtiff allocates a
  whole tile at once, so one 16,384 px tile is a gigabyte whatever the picture's size;
- the decoded picture, before any conversion, may take at most :data:`MAX_DECODED_BYTES`
  (a 16-bit, float or 64-bit sample is counted at its width);
- animation is refused as ``animated`` (its own reason): see :func:`refuse_animation`.

What is left is bounded by ``max_pixels`` and these caps; the wall-clock limit per picture
in the face workers (``picture_timeout``) is only the safety net for what this misses.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from PIL import Image

from nocodb_guard.errors import BadPicture
from nocodb_guard.models import Reason

#: Scans in one JPEG. libjpeg's progressive default writes 10 (colour) or 6 (gray);
#: mozjpeg's optimised scripts stay under 20. 100 leaves room for any honest encoder.
MAX_JPEG_SCANS = 100
#: Pixels in one TIFF tile (4 MP, e.g. 2048 x 2048). Usual tiles are 256 or 512 px a side.
MAX_TIFF_TILE_PIXELS = 2048 * 2048
#: Bytes of the decoded picture before conversion: a 50 MP RGBA picture (200 MB) fits.
MAX_DECODED_BYTES = 256 * 1024 * 1024
#: Formats that can be animated, and browsers animate.
ANIMATABLE = frozenset({"GIF", "WEBP", "PNG", "AVIF"})

#: PNG chunks dropped before decoding: colour profiles and text are never used, and Pillow
#: refuses one that decompresses beyond 1 MB (a phone's 2 MB ICC profile is legitimate).
_PNG_UNUSED_CHUNKS = frozenset({b"iCCP", b"tEXt", b"zTXt", b"iTXt"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 322, 323
_TIFF_BITS_PER_SAMPLE, _TIFF_SAMPLES_PER_PIXEL = 258, 277


def check_jpeg_scans(data: bytes) -> None:
    """``too_large`` for a JPEG whose first picture has more than :data:`MAX_JPEG_SCANS` scans."""
    scans = count_jpeg_scans(data, stop_after=MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        raise BadPicture(
            Reason.TOO_LARGE,
            f"a JPEG with more than {MAX_JPEG_SCANS} scans (decoding cost grows with each)",
        )


def count_jpeg_scans(data: bytes, *, stop_after: int) -> int:
    """Start-of-scan markers of the first picture (up to its EOI), or ``stop_after + 1``.

    Segments are walked by their lengths, so a JPEG inside an EXIF thumbnail is not counted;
    entropy-coded data is skipped to the next real marker (``FF00`` stuffing, ``RSTn`` and fill
    bytes are not markers). A malformed structure ends the count: the decoder judges it.
    """
    pos, scans, end = 2, 0, len(data)
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:
            scans += 1
            if scans > stop_after:
                break
            pos = _next_marker(data, pos)
    return scans


def _next_marker(data: bytes, pos: int) -> int:
    """Position of the first marker after entropy-coded data starting at ``pos``."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        elif following == 0xFF:
            pos += 1
        else:
            return pos


def prepare_png(data: bytes) -> bytes:
    """The PNG without unused chunks (see :data:`_PNG_UNUSED_CHUNKS`); ``animated`` for an APNG.

    An ``acTL`` chunk before the image data makes it an APNG: browsers show its frames, which
    need not include the default image Pillow would decode. A malformed chunk structure is
    passed on unchanged, for the decoder to judge.
    """
    kept = [_PNG_SIGNATURE]
    seen_image_data = False
    for kind, chunk in _png_chunks(data):
        if kind is None:
            return data
        if kind == b"acTL" and not seen_image_data:
            raise BadPicture(
                Reason.ANIMATED, "an animated PNG (APNG): only still pictures are judged"
            )
        seen_image_data = seen_image_data or kind == b"IDAT"
        if kind not in _PNG_UNUSED_CHUNKS:
            kept.append(chunk)
    return b"".join(kept)


def _png_chunks(data: bytes) -> Iterator[tuple[bytes | None, bytes]]:
    """(type, whole chunk) up to ``IEND``; ``(None, b"")`` when the structure is broken."""
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if end > len(data):
            break
        kind = data[pos + 4 : pos + 8]
        yield kind, data[pos:end]
        if kind == b"IEND":
            return
        pos = end
    yield None, b""


def refuse_animation(image: Image.Image, fmt: str) -> None:
    """``animated`` for a picture with more than one frame in a format browsers animate.

    Why refuse rather than judge every frame: a browser shows frames composited by its own
    rules (timing, disposal, blending, a 0 ms frame stretched to 100 ms), so a verdict on
    the frames as Pillow composes them could still differ from what visitors see; judging
    each frame would also multiply the face work per upload. A photo form needs no
    animation, so it gets a clear reason of its own instead. (Multi-page TIFF and HEIC
    image collections are not animated: viewers show their first or primary image.)
    """
    if fmt in ANIMATABLE and getattr(image, "is_animated", False):
        raise BadPicture(Reason.ANIMATED, f"an animated {fmt}: only still pictures are judged")


def check_decoded_size(image: Image.Image, fmt: str) -> None:
    """``too_large`` for a TIFF tile over the cap, or a decoded picture over the byte cap."""
    width, height = image.size
    if fmt == "TIFF":
        tags = getattr(image, "tag_v2", {})
        tile = int(tags.get(_TIFF_TILE_WIDTH, 0) or 0) * int(tags.get(_TIFF_TILE_LENGTH, 0) or 0)
        if tile > MAX_TIFF_TILE_PIXELS:
            raise BadPicture(
                Reason.TOO_LARGE,
                f"a TIFF tile of {tile} pixels, over the {MAX_TIFF_TILE_PIXELS} cap",
            )
    decoded = width * height * _bytes_per_pixel(image, fmt)
    if decoded > MAX_DECODED_BYTES:
        raise BadPicture(
            Reason.TOO_LARGE, f"{decoded} bytes once decoded, over the {MAX_DECODED_BYTES} cap"
        )


def _bytes_per_pixel(image: Image.Image, fmt: str) -> int:
    """Decoded bytes per pixel: the file's sample width for TIFF, the mode's otherwise."""
    mode_bytes = {"I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "I": 4, "F": 4}
    per_pixel = mode_bytes.get(image.mode, len(image.getbands()))
    if fmt == "TIFF":
        tags = getattr(image, "tag_v2", {})
        bits = tags.get(_TIFF_BITS_PER_SAMPLE, 8)
        bits = max(bits) if isinstance(bits, tuple) and bits else bits
        samples = int(tags.get(_TIFF_SAMPLES_PER_PIXEL, 1) or 1)
        per_pixel = max(per_pixel, samples * -(-int(bits) // 8))
    return per_pixel
