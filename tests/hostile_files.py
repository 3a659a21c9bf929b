"""Hostile and awkward picture files, built at test time from the real sample photos.

Each builder returns bytes; nothing is written to disk. Used by the unit tests of decoding
and by the end-to-end hostile-upload tests.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

from nocodb_guard import samples


def _frames(count: int) -> list[Image.Image]:
    """The politician (Grace Hopper) first, then the cat ``count - 1`` times."""
    grace = samples.load(samples.grace_hopper_jpeg()).convert("RGB")
    cat = samples.load(samples.chelsea_png()).convert("RGB").resize(grace.size)
    return [grace] + [cat] * (count - 1)


def politician_then_cat(fmt: str, frames: int = 3) -> bytes:
    """An animation whose first (default) frame is the politician and the rest a cat.

    ``fmt`` is GIF, WEBP, PNG (an APNG) or AVIF. A browser plays the animation.
    """
    first, *rest = _frames(frames)
    params: dict[str, object] = {"save_all": True, "append_images": rest, "duration": 500}
    if fmt != "AVIF":
        params["loop"] = 0
    return samples.encode(first, fmt, **params)


def apng_hiding_the_default_image() -> bytes:
    """An APNG whose default image (the politician) is not part of the animation (one cat frame)."""
    grace, cat = _frames(2)
    return samples.encode(grace, "PNG", save_all=True, append_images=[cat], default_image=True)


def progressive_scan_bomb(repeats: int) -> bytes:
    """A progressive JPEG of the politician with its smallest AC scan repeated ``repeats`` times.

    libjpeg only warns about the repeated scan and decodes every copy: the decoding cost
    grows with ``repeats`` while the file stays a few MB.
    """
    jpeg = samples.encode(samples.load(samples.grace_hopper_jpeg()), "JPEG", progressive=True)
    scans = jpeg_scans(jpeg)
    start, end = min(scans[1:], key=lambda span: span[1] - span[0])
    return jpeg[:end] + jpeg[start:end] * repeats + jpeg[end:]


def jpeg_scans(jpeg: bytes) -> list[tuple[int, int]]:
    """(start, end) of every scan (SOS segment and its entropy-coded data) of a clean JPEG."""
    spans: list[tuple[int, int]] = []
    pos = 2
    while pos < len(jpeg):
        marker = jpeg[pos + 1]
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        start, pos = pos, pos + 2 + length
        if marker == 0xDA:
            while not (jpeg[pos] == 0xFF and jpeg[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1
            spans.append((start, pos))
    return spans


def png_with_icc_profile(profile_bytes: int) -> bytes:
    """The politician as a PNG carrying an ICC profile of about ``profile_bytes``."""
    from PIL import ImageCms  # noqa: PLC0415 - only this builder needs it

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    padding = bytes(np.random.default_rng(7).integers(0, 256, profile_bytes, dtype=np.uint8))
    profile = srgb + padding
    image = samples.load(samples.grace_hopper_jpeg())
    return samples.encode(image, "PNG", icc_profile=profile)


def avif(major_brand: bytes = b"avif") -> bytes:
    """The politician as AVIF; ``major_brand`` rewritten (e.g. the generic ``mif1``)."""
    data = samples.encode(samples.load(samples.grace_hopper_jpeg()), "AVIF", quality=80)
    assert data[4:8] == b"ftyp"
    return data[:8] + major_brand + data[12:]


def big_16bit_png(side: int = 7000) -> bytes:
    """A ``side`` x ``side`` 16-bit grayscale PNG (49 MP): small file, large once decoded."""
    row = np.linspace(0, 65535, side, dtype=np.uint16)
    image = Image.frombytes("I;16", (side, side), np.tile(row, side).tobytes())
    return samples.encode(image, "PNG", compress_level=9)


def big_float_tiff(side: int = 7000) -> bytes:
    """A ``side`` x ``side`` 32-bit float TIFF (49 MP, deflate-compressed)."""
    row = np.repeat(np.linspace(0, 1, 70, dtype=np.float32), -(-side // 70))[:side]
    image = Image.frombytes("F", (side, side), np.tile(row, side).tobytes())
    return samples.encode(image, "TIFF", compression="tiff_adobe_deflate")


def tiled_tiff(side: int, tile_side: int) -> bytes:
    """A ``side``-px black RGB TIFF stored as deflate-compressed tiles of ``tile_side`` px.

    Pillow cannot write tiles, so the file is laid out here. The tiles compress to almost
    nothing, but a decoder allocates a whole tile (``tile_side``² x 3 bytes) to read one.
    """
    across = -(-side // tile_side)
    tile = _deflated_zeros(tile_side * tile_side * 3)
    entries = [
        (256, 4, 1, side), (257, 4, 1, side), (258, 3, 3, None), (259, 3, 1, 8),
        (262, 3, 1, 2), (277, 3, 1, 3), (284, 3, 1, 1), (322, 4, 1, tile_side),
        (323, 4, 1, tile_side), (324, 4, across * across, None), (325, 4, across * across, None),
    ]
    ifd_end = 8 + 2 + 12 * len(entries) + 4
    bits_at, offsets_at = ifd_end, ifd_end + 6
    counts_at = offsets_at + 4 * across * across
    data_at = counts_at + 4 * across * across
    external = {258: bits_at, 324: offsets_at, 325: counts_at}
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        stored = external[tag] if value is None else value
        packed = struct.pack("<H", stored) + b"\x00\x00" if kind == 3 and value is not None else (
            struct.pack("<I", stored))
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8)
    out += struct.pack(f"<{across * across}I", *[data_at] * (across * across))
    out += struct.pack(f"<{across * across}I", *[len(tile)] * (across * across))
    return bytes(out + tile)


def _deflated_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9)
    chunk = bytes(16 * 1024 * 1024)
    parts = [compressor.compress(chunk[: min(len(chunk), size - done)])
             for done in range(0, size, len(chunk))]
    return b"".join(parts) + compressor.flush()
