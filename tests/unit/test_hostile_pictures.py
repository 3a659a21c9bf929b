"""Hostile pictures, built at test time: bounded cost, what a browser shows, every still format.

Cost bombs are refused from the file's structure (``too_large``), the same way on every
machine; animation has its own reason; pictures Pillow reads are never called corrupt; and
decoding the largest accepted pictures stays within a bounded amount of memory, measured
in a fresh subprocess (``ru_maxrss``).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nocodb_guard import samples
from nocodb_guard.errors import BadPicture
from nocodb_guard.faces import budgets
from nocodb_guard.faces.images import DecodedImage, decode
from tests import hostile_files

REPO = Path(__file__).resolve().parents[2]
MAX_PIXELS = 120_000_000
MAX_SIDE = 1024


def decoded(data: bytes) -> DecodedImage:
    return decode(data, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)


def refusal(data: bytes) -> BadPicture:
    with pytest.raises(BadPicture) as caught:
        decoded(data)
    return caught.value


def grace_rgb() -> np.ndarray:
    return np.asarray(samples.load(samples.grace_hopper_jpeg()).convert("RGB"), dtype=np.float64)


def similar_to_grace(image: DecodedImage) -> float:
    reference = grace_rgb()
    return float(np.corrcoef(image.rgb.astype(np.float64).ravel(), reference.ravel())[0, 1])


# --- what a browser shows -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "AVIF"])
def test_an_animation_starting_with_the_politician_then_a_cat_is_refused_as_animated(
    fmt: str,
) -> None:
    refused = refusal(hostile_files.politician_then_cat(fmt))

    assert refused.reason == "animated"
    assert "only still pictures are judged" in refused.detail


def test_an_apng_whose_default_image_is_not_shown_is_refused_as_animated() -> None:
    assert refusal(hostile_files.apng_hiding_the_default_image()).reason == "animated"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "AVIF"])
def test_a_one_frame_picture_in_an_animatable_format_is_judged(fmt: str) -> None:
    still = samples.encode(samples.load(samples.grace_hopper_jpeg()), fmt)

    assert decoded(still).format == fmt


# --- every still format Pillow decodes here ---------------------------------------------------


@pytest.mark.parametrize("brand", [b"avif", b"mif1"])
def test_avif_is_read_whatever_its_major_brand(brand: bytes) -> None:
    picture = decoded(hostile_files.avif(brand))

    assert picture.format == "AVIF"
    assert similar_to_grace(picture) > 0.95


def test_a_png_with_a_2_mb_icc_profile_is_read_not_called_corrupt() -> None:
    picture = decoded(hostile_files.png_with_icc_profile(2_000_000))

    assert picture.format == "PNG"
    assert similar_to_grace(picture) > 0.99


def test_a_png_with_a_large_compressed_text_chunk_is_read() -> None:
    image = samples.load(samples.grace_hopper_jpeg())
    from PIL import PngImagePlugin  # noqa: PLC0415

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 3_000_000, zip=True)
    assert decoded(samples.encode(image, "PNG", pnginfo=info)).format == "PNG"


# --- cost bombs, refused from the structure ------------------------------------------------------


def test_a_progressive_jpeg_with_one_scan_repeated_20000_times_is_too_large_at_once() -> None:
    bomb = hostile_files.progressive_scan_bomb(20_000)

    started = time.perf_counter()
    refused = refusal(bomb)

    assert refused.reason == "too_large"
    assert f"more than {budgets.MAX_JPEG_SCANS} scans" in refused.detail
    assert time.perf_counter() - started < 2.0


def test_an_honest_progressive_jpeg_is_judged_and_its_scans_are_counted() -> None:
    progressive = samples.encode(samples.load(samples.grace_hopper_jpeg()), "JPEG",
                                 progressive=True)
    scans = len(hostile_files.jpeg_scans(progressive))

    assert 2 < scans <= budgets.MAX_JPEG_SCANS
    assert budgets.count_jpeg_scans(progressive, stop_after=1000) == scans
    assert similar_to_grace(decoded(progressive)) > 0.99


def test_a_jpeg_in_the_exif_thumbnail_does_not_count_as_scans() -> None:
    thumbnail = hostile_files.progressive_scan_bomb(5)  # 5 extra scans inside APP1
    exif = Image.Exif()
    exif[0x010F] = "camera"
    plain = samples.encode(samples.load(samples.grace_hopper_jpeg()), "JPEG")
    app1 = b"\xff\xe1" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail
    with_thumbnail = plain[:2] + app1 + plain[2:]

    assert budgets.count_jpeg_scans(with_thumbnail, stop_after=1000) == 1


def test_a_tiff_with_16384_px_tiles_is_too_large_before_decoding() -> None:
    refused = refusal(tiled_tiff_16k())

    assert refused.reason == "too_large"
    assert "TIFF tile" in refused.detail


def test_a_tiff_with_ordinary_tiles_is_judged() -> None:
    picture = decoded(hostile_files.tiled_tiff(1024, 256))

    assert picture.original_size == (1024, 1024)


@functools.cache
def tiled_tiff_16k() -> bytes:
    return hostile_files.tiled_tiff(4096, 16384)


# --- memory per picture, measured ---------------------------------------------------------------

#: Peak memory a decode may add to the process, whatever the accepted picture. The 49 MP
#: 16-bit PNG needs its 98 MB of samples and a 196 MB 32-bit copy to resample; it took
#: 1.7-1.9 GB before pictures were downscaled before any change of depth.
MAX_DECODE_GROWTH_MB = 450

MEASURE = """
import resource, sys
from nocodb_guard.faces.images import decode
from nocodb_guard.errors import BadPicture
data = sys.stdin.buffer.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    outcome = decode(data, max_pixels=120_000_000, max_side=1024).format
except BadPicture as bad:
    outcome = bad.reason
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome, (after - before) // 1024)
"""


def decode_in_subprocess(data: bytes) -> tuple[str, int]:
    """(format or refusal reason, peak memory growth in MB) of decoding ``data`` afresh."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE], input=data, capture_output=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120, check=True,
    )
    outcome, growth = result.stdout.decode().split()
    return outcome, int(growth)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (hostile_files.big_16bit_png, "PNG"),
        (hostile_files.big_float_tiff, "TIFF"),
        (tiled_tiff_16k, "too_large"),
    ],
    ids=["16-bit 49 MP PNG", "float 49 MP TIFF", "16384 px TIFF tiles"],
)
def test_decoding_the_largest_pictures_stays_within_a_memory_bound(
    build: object, expected: str
) -> None:
    assert callable(build)
    outcome, growth_mb = decode_in_subprocess(build())

    assert outcome == expected
    assert growth_mb < MAX_DECODE_GROWTH_MB
