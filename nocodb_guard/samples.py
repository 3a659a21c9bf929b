"""Real sample pictures for tests, the demo and benchmarks, and the awkward files derived from them.

The photos come from packages that are installed with the ``dev`` extra (matplotlib ships
Grace Hopper's portrait, scikit-image the astronaut Eileen Collins and a cat),
so they exist on a fresh machine without any download. Those packages are only
located, never imported, and :class:`SampleMissing` says clearly which one is absent.

Every function returns bytes (or the path of a file inside an installed package):
nothing here writes anywhere.
"""

from __future__ import annotations

import importlib.util
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: EXIF tag number of Orientation.
ORIENTATION_TAG = 0x0112

#: For each EXIF orientation, how to store upright pixels so that
#: ``ImageOps.exif_transpose`` turns them upright again (the inverse of its transpose).
_STORE_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


class SampleMissing(LookupError):
    """A sample picture's package is not installed (install the ``dev`` extra)."""


# --- real photos --------------------------------------------------------------------------


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SampleMissing(f"{package} is not installed; `pip install -e .[dev]` brings it")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise SampleMissing(f"{package} is installed but has no {'/'.join(parts)}")
    return path


def grace_hopper_path() -> Path:
    """Grace Hopper's portrait, 512x600 JPEG: one large frontal face (matplotlib)."""
    return _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")


def grace_hopper_jpeg() -> bytes:
    """The bytes of :func:`grace_hopper_path`."""
    return grace_hopper_path().read_bytes()


def astronaut_path() -> Path:
    """Eileen Collins in a spacesuit, 512x512 RGB PNG: one face (scikit-image)."""
    return _package_file("skimage", "data", "astronaut.png")


def astronaut_png() -> bytes:
    """The bytes of :func:`astronaut_path`."""
    return astronaut_path().read_bytes()


def chelsea_png() -> bytes:
    """Chelsea the cat, 451x300 RGB PNG: no human face (scikit-image)."""
    return _package_file("skimage", "data", "chelsea.png").read_bytes()


# --- re-encodings ---------------------------------------------------------------------------


def load(data: bytes) -> Image.Image:
    """Decode trusted sample bytes fully (for building derived samples and expectations)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """``image`` saved as ``fmt`` into bytes."""
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def as_format(data: bytes, fmt: str, **params: object) -> bytes:
    """The picture re-encoded as ``fmt`` (``WEBP``, ``GIF``, ``TIFF``, ``BMP``...), in RGB."""
    image = load(data).convert("RGB")
    if fmt.upper() == "GIF":
        return encode(image.quantize(256), "GIF", **params)
    return encode(image, fmt, **params)


def as_jpeg(data: bytes, quality: int = 90) -> bytes:
    """The picture as an RGB JPEG."""
    return as_format(data, "JPEG", quality=quality)


def grace_hopper_variant() -> bytes:
    """Another photo of Grace Hopper: mirrored, cropped, shrunk and re-encoded as a JPEG.

    What an uploader's picture of a politician is like: not the reference file itself, so
    matching it proves the comparison, not byte equality.
    """
    image = load(grace_hopper_jpeg()).convert("RGB")
    image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.crop((20, 10, image.width - 10, image.height - 40))
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    return encode(image, "JPEG", quality=85)


def two_faces_side_by_side() -> bytes:
    """Grace Hopper and the astronaut pasted side by side, both faces large, as one JPEG."""
    left = load(grace_hopper_jpeg()).convert("RGB")
    right = load(astronaut_png()).convert("RGB")
    right = right.resize((right.width * left.height // right.height, left.height))
    canvas = Image.new("RGB", (left.width + right.width, left.height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return encode(canvas, "JPEG", quality=90)


def exif_rotated(data: bytes, orientation: int, fmt: str = "JPEG") -> bytes:
    """A picture stored turned, with the EXIF Orientation that turns it back (JPEG by default).

    What a phone writes: ``ImageOps.exif_transpose`` of the result is the upright input.
    ``fmt`` matters because Pillow turns some formats (TIFF) upright on load, others not.
    """
    if orientation not in _STORE_FOR_ORIENTATION:
        raise ValueError(f"EXIF orientation is 1..8, not {orientation}")
    upright = load(data).convert("RGB")
    method = _STORE_FOR_ORIENTATION[orientation]
    stored = upright if method is None else upright.transpose(method)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return encode(stored, fmt, quality=95, exif=exif.tobytes())


def with_transparent_alpha(data: bytes, alpha: int = 0) -> bytes:
    """The picture as an RGBA PNG whose alpha is ``alpha`` everywhere (0: fully transparent)."""
    image = load(data).convert("RGBA")
    image.putalpha(alpha)
    return encode(image, "PNG")


def as_cmyk_jpeg(data: bytes) -> bytes:
    """The picture as a CMYK JPEG, as print workflows export them."""
    return encode(load(data).convert("CMYK"), "JPEG", quality=90)


def as_grayscale(data: bytes, fmt: str = "PNG") -> bytes:
    """The picture as an 8-bit grayscale (``L``) file."""
    return encode(load(data).convert("L"), fmt)


def as_bilevel_png(data: bytes) -> bytes:
    """The picture as a 1-bit (dithered black and white) PNG."""
    return encode(load(data).convert("1"), "PNG")


def as_16bit_png(data: bytes) -> bytes:
    """The picture's grayscale as a 16-bit PNG using the full 0..65535 range.

    A naive ``convert("RGB")`` of it clips every value above 255: the picture turns white.
    """
    gray = np.asarray(load(data).convert("L"), dtype=np.uint16) * np.uint16(257)
    return encode(Image.fromarray(np.ascontiguousarray(gray)), "PNG")


def as_float_tiff(data: bytes) -> bytes:
    """The picture's grayscale as a 32-bit float TIFF with values in 0..1."""
    gray = np.asarray(load(data).convert("L"), dtype=np.float32) / np.float32(255)
    return encode(Image.fromarray(np.ascontiguousarray(gray), "F"), "TIFF")


def as_palette_png(data: bytes, transparent_corner: bool = False) -> bytes:
    """The picture as a palette (``P``) PNG.

    With ``transparent_corner``, the palette entry of the top-left pixel is transparent,
    as in GIF-style cut-outs.
    """
    image = load(data).convert("RGB").quantize(64)
    if transparent_corner:
        corner = image.getpixel((0, 0))
        assert isinstance(corner, int)
        return encode(image, "PNG", transparency=corner)
    return encode(image, "PNG")


def heic(data: bytes, quality: int = 80) -> bytes:
    """The picture as HEIC, as iPhones store photos (needs pillow-heif with an encoder)."""
    import pillow_heif  # noqa: PLC0415 - optional codec, loaded on demand

    if not pillow_heif.libheif_info().get("HEIF"):
        raise SampleMissing("pillow-heif has no HEVC encoder here")
    heif_file = pillow_heif.from_pillow(load(data).convert("RGB"))
    out = io.BytesIO()
    heif_file.save(out, quality=quality)
    return out.getvalue()


def solid(size: tuple[int, int], color: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    """A plain RGB picture of one colour."""
    return encode(Image.new("RGB", size, color), fmt)


def animated_gif() -> bytes:
    """A two-frame GIF: a red first frame, then a blue one."""
    frames = [Image.new("RGB", (64, 48), color) for color in ((255, 0, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def multipage_tiff() -> bytes:
    """A two-page TIFF: a green first page, then a blue one."""
    pages = [Image.new("RGB", (64, 48), color) for color in ((0, 255, 0), (0, 0, 255))]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def huge_jpeg(side: int = 8000) -> bytes:
    """A ``side`` x ``side`` JPEG photo (the astronaut blown up): a phone camera's worth."""
    photo = load(astronaut_png()).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    return encode(photo, "JPEG", quality=85)


# --- broken and hostile files --------------------------------------------------------------


def truncated(data: bytes, fraction: float) -> bytes:
    """The first ``fraction`` of the bytes, as a half-finished upload leaves them."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction is 0..1, not {fraction}")
    return data[: int(len(data) * fraction)]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def decompression_bomb_png(side: int = 30_000) -> bytes:
    """A valid, all-black 1-bit PNG of ``side`` x ``side``: about 110 kB that decodes to 900 MP.

    Streamed row by row through zlib, so building it never holds the raw pixels.
    """
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the packed bits, all zero
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def text_as_jpg() -> bytes:
    """What a visitor uploads as ``photo.jpg`` when it is really a text file."""
    return b"This is not a picture, it is a note saved with a .jpg name.\n" * 4


def html_bytes() -> bytes:
    """An HTML page (e.g. an error page saved instead of the image)."""
    return b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>\n"


def svg_bytes() -> bytes:
    """A vector drawing of a smiley: never rendered, always refused."""
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        b'<circle cx="50" cy="50" r="40" fill="yellow"/><circle cx="35" cy="40" r="5"/>'
        b'<circle cx="65" cy="40" r="5"/></svg>\n'
    )


def zip_bytes() -> bytes:
    """A ZIP archive holding a perfectly good JPEG: the archive itself is not a picture."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("portrait.jpg", grace_hopper_jpeg())
    return out.getvalue()


def pdf_bytes() -> bytes:
    """A minimal one-page PDF document."""
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
