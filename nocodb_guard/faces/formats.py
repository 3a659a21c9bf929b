"""Which accepted format bytes are, from their leading bytes only (never a name or mimetype).

Accepted: what phones and browsers produce and Pillow decodes here (JPEG, PNG, WebP, GIF,
TIFF, BMP, HEIC, AVIF). Every other format Pillow could open (PSD, JPEG 2000, ICO, TGA,
EPS...) is refused as ``not_an_image`` with a detail naming it: their decoders are rarely
exercised, some call out to other programs (EPS runs Ghostscript), and a visitor's browser
or phone does not produce them for a photo form.

ISO media files (HEIC, AVIF) are told apart by their brands: a file whose major brand is
the generic ``mif1``/``msf1`` is AVIF when its compatible brands say ``avif``/``avis``,
HEIC otherwise. Pillow decodes AVIF itself (libavif); ``pillow_heif`` here cannot decode
AV1, so sending an AVIF to it would call a readable picture corrupt.
"""

from __future__ import annotations

import struct

from nocodb_guard.errors import BadPicture
from nocodb_guard.models import Reason

#: Accepted formats, as named in ``DecodedImage.format``, with the Pillow plugin allowed
#: to open each one.
PILLOW_PLUGIN = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "WEBP": "WEBP",
    "GIF": "GIF",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "HEIF": "HEIF",
    "AVIF": "AVIF",
}

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
#: An ``ftyp`` box longer than this is not read for brands (real ones are under 100 bytes).
_MAX_FTYP_BYTES = 4096

#: Signatures of common non-images, only to write a clearer ``detail``.
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"8BPS", "a Photoshop document (not accepted)"),
    (b"\x00\x00\x01\x00", "an icon file (not accepted)"),
    (b"\x00\x00\x02\x00", "a cursor file (not accepted)"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 picture (not accepted)"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream (not accepted)"),
    (b"qoif", "a QOI picture (not accepted)"),
    (b"%!PS", "a PostScript document (not accepted)"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
)


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
    if head[4:8] == b"ftyp":
        fmt = _iso_media_format(data)
        if fmt is not None:
            return fmt
    raise BadPicture(Reason.NOT_AN_IMAGE, _describe_other(head))


def _iso_media_format(data: bytes) -> str | None:
    """``AVIF``, ``HEIF`` or None (video, or a brand we do not know) from the ``ftyp`` box."""
    (box_size,) = struct.unpack(">I", data[:4])
    box = data[8 : min(box_size, _MAX_FTYP_BYTES)]
    major = box[:4]
    compatible = {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    if major in _AVIF_BRANDS:
        return "AVIF"
    if major in _HEIF_BRANDS:
        return "HEIF"
    if major in _GENERIC_BRANDS:
        if compatible & _AVIF_BRANDS:
            return "AVIF"
        if compatible & _HEIF_BRANDS or not compatible:
            return "HEIF"
    return None


def _describe_other(head: bytes) -> str:
    """A short, non-identifying description of bytes that are not an accepted picture."""
    for signature, what in _KNOWN_OTHERS:
        if head.startswith(signature):
            return f"the file is {what}"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace")
        return f"the file is an ISO media file of brand {brand!r} (a video, not a picture)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "the file is XML or SVG (vector drawings are not accepted)"
    if text.startswith((b"<!doctype", b"<html", b"<")):
        return "the file is HTML or other markup"
    if _looks_like_text(head):
        return "the file is text"
    return "the file is not a JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC or AVIF picture"


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in decoded)
