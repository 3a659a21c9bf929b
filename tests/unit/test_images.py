"""Safe decoding of uploads: pixel-level behaviour of ``images.decode`` (no face detection)."""

from __future__ import annotations

import functools
import random
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from nocodb_guard import samples
from nocodb_guard.errors import BadPicture
from nocodb_guard.faces import formats, images
from nocodb_guard.faces.images import DecodedImage, decode
from nocodb_guard.models import Reason

MAX_PIXELS = 50_000_000
MAX_SIDE = 1024


def decode_default(data: bytes, max_side: int = MAX_SIDE) -> DecodedImage:
    return decode(data, max_pixels=MAX_PIXELS, max_side=max_side)


def rejection(data: bytes, max_pixels: int = MAX_PIXELS) -> BadPicture:
    with pytest.raises(BadPicture) as caught:
        decode(data, max_pixels=max_pixels, max_side=MAX_SIDE)
    return caught.value


def correlation(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def mean_abs_diff(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def rgb_of(data: bytes) -> npt.NDArray[np.uint8]:
    """Reference pixels, decoded by Pillow directly (trusted sample)."""
    return np.asarray(samples.load(data).convert("RGB"), dtype=np.uint8)


def png_with_header(width: int, height: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A syntactically valid PNG whose IHDR says ``width`` x ``height`` (one zero row of data)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(1 + 3 * max(width, 1))))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def astronaut() -> bytes:
    return samples.astronaut_png()


@pytest.fixture(scope="module")
def grace() -> bytes:
    return samples.grace_hopper_jpeg()


@pytest.fixture(scope="module")
def small_jpeg(grace: bytes) -> bytes:
    return samples.encode(samples.load(grace).resize((128, 150)), "JPEG", quality=90)


@pytest.fixture(scope="module")
def huge_jpeg() -> bytes:
    return samples.huge_jpeg(8000)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return samples.decompression_bomb_png(30_000)


@pytest.fixture
def lenient_pillow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process-wide state face_recognition leaves behind: truncated images 'load'."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    yield
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True, "decode must restore the caller's flag"


# --- what counts as a picture ------------------------------------------------------------------


ACCEPTED: dict[str, Callable[[bytes], bytes]] = {
    "JPEG": samples.as_jpeg,
    "PNG": lambda data: samples.as_format(data, "PNG"),
    "WEBP": lambda data: samples.as_format(data, "WEBP", quality=95),
    "GIF": lambda data: samples.as_format(data, "GIF"),
    "TIFF": lambda data: samples.as_format(data, "TIFF"),
    "BMP": lambda data: samples.as_format(data, "BMP"),
    "HEIF": samples.heic,
}


@functools.cache
def astronaut_as(fmt: str) -> bytes:
    """The astronaut in each accepted format, encoded once per test run (HEIC takes a second)."""
    return ACCEPTED[fmt](samples.astronaut_png())


@pytest.mark.parametrize("fmt", sorted(ACCEPTED))
def test_every_accepted_still_format_decodes_to_the_same_picture(
    fmt: str, astronaut: bytes
) -> None:
    decoded = decode_default(astronaut_as(fmt))

    assert decoded.format == fmt
    assert decoded.original_size == (512, 512)
    assert decoded.rgb.shape == (512, 512, 3)
    assert correlation(decoded.rgb, rgb_of(astronaut)) > 0.97


def test_output_is_c_contiguous_uint8_rgb(grace: bytes) -> None:
    sources = [
        grace,
        samples.exif_rotated(grace, 6),
        samples.as_grayscale(grace),
        samples.as_16bit_png(grace),
        samples.with_transparent_alpha(grace, 128),
    ]
    for data in sources:
        rgb = decode_default(data, max_side=300).rgb
        assert rgb.dtype == np.uint8
        assert rgb.ndim == 3
        assert rgb.shape[2] == 3
        assert rgb.flags["C_CONTIGUOUS"], "dlib silently finds no face in a strided array"


def test_the_format_comes_from_the_bytes_not_the_name(astronaut: bytes) -> None:
    # decode() takes no name or mimetype at all: a PNG uploaded as "photo.jpg" is a PNG.
    assert decode_default(astronaut).format == "PNG"
    assert formats.sniff(astronaut) == "PNG"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (samples.text_as_jpg, "text"),
        (samples.html_bytes, "HTML"),
        (samples.svg_bytes, "SVG"),
        (samples.zip_bytes, "ZIP"),
        (samples.pdf_bytes, "PDF"),
        (lambda: b"", "empty"),
        (lambda: b"\x00" * 1000, "not a JPEG"),
    ],
    ids=["text", "html", "svg", "zip", "pdf", "empty", "zeros"],
)
def test_a_non_image_is_not_an_image_with_a_clear_detail(
    make: Callable[[], bytes], said: str
) -> None:
    bad = rejection(make())

    assert bad.reason is Reason.NOT_AN_IMAGE
    assert said in bad.detail


def test_a_text_file_named_jpg_is_not_an_image() -> None:
    assert rejection(samples.text_as_jpg()).reason is Reason.NOT_AN_IMAGE


def test_an_svg_is_never_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_open(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Pillow must not even be asked to open an SVG")

    monkeypatch.setattr(Image, "open", no_open)

    assert rejection(samples.svg_bytes()).reason is Reason.NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "TGA"])
def test_formats_outside_the_accepted_list_are_not_images_even_if_pillow_reads_them(
    fmt: str, astronaut: bytes
) -> None:
    data = samples.encode(samples.load(astronaut).convert("RGB").resize((64, 64)), fmt)

    assert rejection(data).reason is Reason.NOT_AN_IMAGE


def test_text_that_starts_like_a_bitmap_is_not_an_image() -> None:
    assert rejection(b"BMW and Audi are cars, not pictures." * 3).reason is Reason.NOT_AN_IMAGE


def test_a_1x1_picture_is_still_a_picture() -> None:
    decoded = decode_default(samples.solid((1, 1), (10, 20, 30)))

    assert decoded.rgb.shape == (1, 1, 3)
    assert decoded.rgb[0, 0].tolist() == [10, 20, 30]


def test_a_picture_with_a_zero_side_is_unreadable() -> None:
    assert rejection(png_with_header(0, 10)).reason is Reason.UNREADABLE


def test_an_absurdly_thin_strip_is_unreadable() -> None:
    bad = rejection(samples.solid((2000, 10), (0, 0, 0)))

    assert bad.reason is Reason.UNREADABLE
    assert "2000x10" in bad.detail


def test_a_wide_panorama_is_still_a_picture() -> None:
    assert decode_default(samples.solid((4000, 500), (0, 0, 0))).rgb.shape == (128, 1024, 3)


# --- strictness about truncated and corrupt files -----------------------------------------


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8, 0.95, 0.99])
def test_a_truncated_jpeg_is_unreadable_even_after_face_recognition_is_imported(
    fraction: float, grace: bytes
) -> None:
    pytest.importorskip("face_recognition")  # sets LOAD_TRUNCATED_IMAGES = True on import
    bad = rejection(samples.truncated(grace, fraction))

    assert bad.reason is Reason.UNREADABLE


@pytest.mark.usefixtures("lenient_pillow")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF"])
@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.97])
def test_a_truncated_file_is_unreadable_even_when_pillow_is_told_to_accept_it(
    fmt: str, fraction: float, astronaut: bytes
) -> None:
    assert rejection(samples.truncated(astronaut_as(fmt), fraction)).reason is Reason.UNREADABLE


def test_decode_leaves_the_truncated_images_flag_as_it_found_it(grace: bytes) -> None:
    for value in (True, False):
        ImageFile.LOAD_TRUNCATED_IMAGES = value
        try:
            decode_default(grace)
            rejection(samples.truncated(grace, 0.5))
            assert ImageFile.LOAD_TRUNCATED_IMAGES is value
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = False


@pytest.mark.usefixtures("lenient_pillow")
def test_concurrent_decodes_stay_strict_and_restore_the_flag(grace: bytes) -> None:
    broken = samples.truncated(grace, 0.6)
    outcomes: list[str] = []

    def work() -> None:
        for data in (grace, broken, grace, broken):
            try:
                decode_default(data, max_side=256)
                outcomes.append("ok")
            except BadPicture as bad:
                outcomes.append(bad.reason)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["ok"] * 8 + ["unreadable"] * 8


def test_an_unexpected_decoder_exception_becomes_unreadable(
    monkeypatch: pytest.MonkeyPatch, grace: bytes
) -> None:
    class WeirdPluginError(Exception):
        pass

    def exploding_load(self: Image.Image) -> None:
        raise WeirdPluginError("boom")

    monkeypatch.setattr(ImageFile.ImageFile, "load", exploding_load)
    bad = rejection(grace)

    assert bad.reason is Reason.UNREADABLE
    assert "WeirdPluginError" in bad.detail


def test_running_out_of_memory_is_not_blamed_on_the_picture(
    monkeypatch: pytest.MonkeyPatch, grace: bytes
) -> None:
    def exhausted(self: Image.Image) -> None:
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", exhausted)

    with pytest.raises(MemoryError):
        decode_default(grace)


def test_a_malformed_exif_block_does_not_reject_a_decodable_picture(
    monkeypatch: pytest.MonkeyPatch, grace: bytes
) -> None:
    def broken_exif(image: Image.Image) -> Image.Exif:
        raise SyntaxError("not a TIFF IFD")

    monkeypatch.setattr(Image.Image, "getexif", broken_exif)

    assert decode_default(grace).rgb.shape == (600, 512, 3)


# --- size limits ---------------------------------------------------------------------------


def test_a_decompression_bomb_is_too_large_before_decoding(
    monkeypatch: pytest.MonkeyPatch, bomb: bytes
) -> None:
    assert len(bomb) < 200_000, "a small file..."
    assert struct.unpack(">II", bomb[16:24]) == (30_000, 30_000)  # ...announcing 900 MP

    def no_pixels(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_pixels)
    started = time.perf_counter()
    bad = rejection(bomb)

    assert bad.reason is Reason.TOO_LARGE
    assert time.perf_counter() - started < 0.5


def test_a_picture_over_the_pixel_cap_is_too_large_from_its_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bomb = samples.decompression_bomb_png(5_000)  # 25 MP, under Pillow's own limits

    def no_pixels(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_pixels)
    bad = rejection(bomb, max_pixels=10_000_000)

    assert bad.reason is Reason.TOO_LARGE
    assert "5000x5000" in bad.detail


def test_an_8000px_jpeg_is_too_large_under_the_default_cap(huge_jpeg: bytes) -> None:
    assert rejection(huge_jpeg, max_pixels=MAX_PIXELS).reason is Reason.TOO_LARGE


def test_the_pixel_cap_is_inclusive() -> None:
    data = samples.solid((100, 100), (1, 2, 3))

    assert decode(data, max_pixels=10_000, max_side=MAX_SIDE).original_size == (100, 100)
    assert rejection(data, max_pixels=9_999).reason is Reason.TOO_LARGE


def test_max_pixels_not_pillows_warning_threshold_is_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 108 MP phone JPEG is above Pillow's ~89 MP warning threshold: it must be judged.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    data = samples.solid((1200, 1200), (0, 0, 0), "JPEG")  # between the warning and the error

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert decode(data, max_pixels=10**9, max_side=MAX_SIDE).original_size == (1200, 1200)
        assert rejection(data, max_pixels=1_000_000).reason is Reason.TOO_LARGE


def test_formats_decoded_at_full_size_stay_capped_at_50_megapixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "FULL_DECODE_MAX_PIXELS", 1_000_000)
    png = samples.solid((1200, 1200), (0, 0, 0), "PNG")
    jpeg = samples.solid((1200, 1200), (0, 0, 0), "JPEG")

    assert rejection(png, max_pixels=10**9).reason is Reason.TOO_LARGE
    assert decode(jpeg, max_pixels=10**9, max_side=MAX_SIDE).original_size == (1200, 1200)


def test_pillows_decompression_bomb_error_means_too_large(bomb: bytes) -> None:
    # 900 MP: Pillow itself refuses it in Image.open, even with our cap set sky-high.
    bad = rejection(bomb, max_pixels=10**10)

    assert bad.reason is Reason.TOO_LARGE


# --- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_exif_rotated_photo_is_turned_upright_exactly_once(
    orientation: int, fmt: str, grace: bytes
) -> None:
    # Pillow turns a TIFF upright itself while loading, a JPEG, PNG or WebP not.
    upright = decode_default(grace).rgb

    decoded = decode_default(samples.exif_rotated(grace, orientation, fmt))

    assert decoded.rgb.shape == upright.shape == (600, 512, 3)
    assert decoded.upright_size == (512, 600)
    assert correlation(decoded.rgb, upright) > 0.98


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_rotated_tiff_reports_the_same_sizes_as_the_same_rotated_jpeg(
    orientation: int, grace: bytes
) -> None:
    jpeg = decode_default(samples.exif_rotated(grace, orientation))

    tiff = decode_default(samples.exif_rotated(grace, orientation, "TIFF"))

    assert (tiff.original_size, tiff.upright_size) == (jpeg.original_size, jpeg.upright_size)


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7])
def test_the_upright_check_would_notice_a_photo_left_as_stored(
    orientation: int, grace: bytes
) -> None:
    # Guards the test above: a stored-but-not-turned picture fails its correlation bar.
    stored = samples.load(samples.exif_rotated(grace, orientation)).convert("RGB")
    upright = rgb_of(grace)
    if stored.size != (512, 600):
        assert np.asarray(stored).shape != upright.shape
    else:
        assert correlation(np.asarray(stored, dtype=np.uint8), upright) < 0.98


def test_a_fully_transparent_png_becomes_blank(astronaut: bytes) -> None:
    decoded = decode_default(samples.with_transparent_alpha(astronaut, 0))

    assert (decoded.rgb == 255).all()


def test_a_half_transparent_png_is_blended_onto_white(astronaut: bytes) -> None:
    decoded = decode_default(samples.with_transparent_alpha(astronaut, 128))
    expected = (rgb_of(astronaut).astype(np.float64) * 128 + 255 * 127) / 255

    assert np.abs(decoded.rgb - expected).max() <= 2


def test_a_transparent_grayscale_with_alpha_becomes_blank(astronaut: bytes) -> None:
    image = samples.load(astronaut).convert("LA")
    image.putalpha(0)

    assert (decode_default(samples.encode(image, "PNG")).rgb == 255).all()


def test_a_palette_png_with_a_transparent_colour_shows_white_there(astronaut: bytes) -> None:
    data = samples.as_palette_png(astronaut, transparent_corner=True)

    decoded = decode_default(data)

    assert decoded.rgb[0, 0].tolist() == [255, 255, 255]
    assert correlation(decoded.rgb, rgb_of(astronaut)) > 0.9


def test_a_palette_png_keeps_its_colours(astronaut: bytes) -> None:
    decoded = decode_default(samples.as_palette_png(astronaut))

    assert mean_abs_diff(decoded.rgb, rgb_of(astronaut)) < 12


def test_a_cmyk_jpeg_keeps_its_colours(astronaut: bytes) -> None:
    decoded = decode_default(samples.as_cmyk_jpeg(astronaut))

    assert mean_abs_diff(decoded.rgb, rgb_of(astronaut)) < 12


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_a_grayscale_picture_becomes_three_equal_channels(fmt: str, astronaut: bytes) -> None:
    rgb = decode_default(samples.as_grayscale(astronaut, fmt)).rgb

    assert (rgb[..., 0] == rgb[..., 1]).all()
    assert (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb.std() > 30


def test_a_1bit_picture_becomes_black_and_white(astronaut: bytes) -> None:
    rgb = decode_default(samples.as_bilevel_png(astronaut)).rgb

    assert set(np.unique(rgb).tolist()) == {0, 255}


def test_16bit_png_keeps_its_contrast(astronaut: bytes) -> None:
    data = samples.as_16bit_png(astronaut)
    assert samples.load(data).mode.startswith("I"), "the sample really is high-depth"
    gray = np.asarray(samples.load(astronaut).convert("L"), dtype=np.uint8)

    rgb = decode_default(data).rgb

    assert rgb.std() > 30, "a naive convert('RGB') turns a 16-bit picture white"
    assert mean_abs_diff(rgb[..., 0], gray) < 1


def test_a_float_tiff_keeps_its_contrast(astronaut: bytes) -> None:
    gray = np.asarray(samples.load(astronaut).convert("L"), dtype=np.uint8)

    rgb = decode_default(samples.as_float_tiff(astronaut)).rgb

    assert mean_abs_diff(rgb[..., 0], gray) < 1


def test_a_32bit_integer_tiff_of_arbitrary_range_is_stretched(astronaut: bytes) -> None:
    gray = np.asarray(samples.load(astronaut).convert("L"), dtype=np.int32)
    wide = Image.fromarray(np.ascontiguousarray(gray * 1000 - 100_000), "I")

    rgb = decode_default(samples.encode(wide, "TIFF")).rgb

    assert rgb.min() == 0
    assert rgb.max() == 255
    assert correlation(rgb[..., 0], gray.astype(np.uint8)) > 0.99


def test_a_large_picture_is_downscaled_to_max_side_keeping_its_shape(grace: bytes) -> None:
    decoded = decode_default(grace, max_side=300)

    assert decoded.original_size == (512, 600)
    assert decoded.analysed_size == (256, 300)
    assert decoded.rgb.shape == (300, 256, 3)
    smaller = np.asarray(samples.load(grace).convert("RGB").resize((256, 300)), dtype=np.uint8)
    assert correlation(decoded.rgb, smaller) > 0.98


def test_a_small_picture_is_not_upscaled(small_jpeg: bytes) -> None:
    assert decode_default(small_jpeg).analysed_size == (128, 150)


def test_an_8000px_jpeg_decodes_in_under_a_second_via_draft(
    monkeypatch: pytest.MonkeyPatch, huge_jpeg: bytes
) -> None:
    drafted: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(
        self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None
    ) -> tuple[str, tuple[int, int, float, float]] | None:
        result = real_draft(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    started = time.perf_counter()
    decoded = decode(huge_jpeg, max_pixels=100_000_000, max_side=MAX_SIDE)  # 64 MP > default cap
    elapsed = time.perf_counter() - started

    assert decoded.original_size == (8000, 8000)
    assert decoded.analysed_size == (1024, 1024)
    assert elapsed < 1.0, f"{elapsed:.2f} s: the JPEG was decoded at full size"
    assert drafted == [(2000, 2000)], "libjpeg should decode at 1/4 scale, then resize"
    expected = samples.load(samples.astronaut_png()).convert("RGB").resize((1024, 1024))
    assert correlation(decoded.rgb, np.asarray(expected, dtype=np.uint8)) > 0.97


def test_a_100mp_jpeg_is_judged_because_its_decoded_bytes_are_counted_after_the_draft() -> None:
    # 300 MB at full size, over the decoded-bytes budget; libjpeg decodes it at 1/8 scale.
    decoded = decode(samples.huge_jpeg(10_000), max_pixels=120_000_000, max_side=MAX_SIDE)

    assert decoded.original_size == (10_000, 10_000)
    assert decoded.analysed_size == (1024, 1024)


def test_an_animated_gif_is_refused_as_animated_not_judged_on_its_first_frame() -> None:
    assert rejection(samples.animated_gif()).reason == "animated"


def test_a_multipage_tiff_is_judged_on_its_first_page() -> None:
    rgb = decode_default(samples.multipage_tiff()).rgb

    assert rgb.reshape(-1, 3).mean(axis=0).round().tolist() == [0, 255, 0]


def test_heic_support_is_registered_lazily_not_at_import() -> None:
    code = (
        "from PIL import Image\n"
        "import nocodb_guard.faces.images\n"
        "assert 'HEIF' not in Image.OPEN, 'registered at import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- fuzzing: only BadPicture, ever -----------------------------------------------------------


def fuzz_cases(seed: int, originals: dict[str, bytes]) -> Iterator[bytes]:
    rng = random.Random(seed)
    for data in originals.values():
        size = len(data)
        for offset in sorted({rng.randrange(size) for _ in range(25)} | set(range(0, 40, 3))):
            yield data[:offset]
        for _ in range(40):
            mutated = bytearray(data)
            window = rng.choice([64, 512, size])
            for _ in range(rng.randint(1, 6)):
                mutated[rng.randrange(min(size, window))] = rng.randrange(256)
            yield bytes(mutated)
    for _ in range(100):
        yield rng.randbytes(rng.randint(0, 3000))


@pytest.mark.usefixtures("lenient_pillow")
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "Corrupt EXIF data" etc.
def test_no_byte_string_raises_anything_but_bad_picture(small_jpeg: bytes) -> None:
    tiny = samples.load(small_jpeg)
    originals = {fmt: make(samples.encode(tiny, "PNG")) for fmt, make in ACCEPTED.items()}
    originals["TIFF_LZW"] = samples.encode(tiny, "TIFF", compression="tiff_lzw")
    originals["TIFF_JPEG"] = samples.encode(tiny, "TIFF", compression="jpeg")
    originals["PNG16"] = samples.as_16bit_png(small_jpeg)
    originals["EXIF"] = samples.exif_rotated(small_jpeg, 6)
    originals["ANIMATED"] = samples.animated_gif()
    reasons: set[str] = set()

    for data in fuzz_cases(seed=20240611, originals=originals):
        try:
            decoded = decode_default(data)
        except BadPicture as bad:
            reasons.add(bad.reason)
        else:
            assert decoded.rgb.flags["C_CONTIGUOUS"]
            assert decoded.rgb.dtype == np.uint8

    assert {"not_an_image", "unreadable"} <= reasons


# --- the samples themselves -------------------------------------------------------------------


def test_exif_rotated_sets_the_orientation_tag(grace: bytes) -> None:
    rotated = samples.load(samples.exif_rotated(grace, 6))

    assert rotated.getexif()[samples.ORIENTATION_TAG] == 6
    assert rotated.size == (600, 512)
    with pytest.raises(ValueError, match=r"1\.\.8"):
        samples.exif_rotated(grace, 9)


def test_two_faces_side_by_side_is_one_wide_jpeg() -> None:
    image = samples.load(samples.two_faces_side_by_side())

    assert image.format == "JPEG"
    assert image.size == (1112, 600)


def test_a_missing_sample_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda _name: None)

    with pytest.raises(samples.SampleMissing, match="skimage"):
        samples.astronaut_png()
