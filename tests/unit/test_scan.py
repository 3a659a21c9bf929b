"""Faces are judged in the upload's own pixels: coarse to fine, on pictures built here.

The faces come from the pictures shipped in installed packages (the astronaut of
scikit-image, Grace Hopper of matplotlib); the real dlib engine is loaded once.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from nocodb_guard import samples
from nocodb_guard.faces import budgets, images
from nocodb_guard.faces.engine import Detection, DlibFaceEngine
from nocodb_guard.faces.scan import finer_scale
from nocodb_guard.faces.see import PipelineConfig, analyze, see
from nocodb_guard.models import FaceBox, Ignored, PictureAnalysis, Reason, Verdict
from nocodb_guard.policy import RowEvidence, decide

CONFIG = PipelineConfig()
#: The astronaut's face box in astronaut.png (512 px), as dlib's HOG draws it.
ASTRONAUT_FACE_PX = 91


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    return DlibFaceEngine(model="hog", upsample=CONFIG.upsample)


def astronaut_scaled(face_px: float) -> Image.Image:
    photo = samples.load(samples.astronaut_png()).convert("RGB")
    factor = face_px / ASTRONAUT_FACE_PX
    size = (round(photo.width * factor), round(photo.height * factor))
    return photo.resize(size, Image.Resampling.LANCZOS)


def jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def small_face_in_a_big_photo() -> bytes:
    """3600x2400 of noise with the astronaut's face at about 130 px: 37 px once at 1024 px."""
    noise = np.random.default_rng(1).integers(90, 170, (2400, 3600, 3), dtype=np.uint8)
    canvas = Image.fromarray(noise)
    canvas.paste(astronaut_scaled(130), (1500, 900))
    return jpeg(canvas)


def group_of_small_faces() -> bytes:
    """800x800 with eight faces of about 35 px: four astronauts and four Grace Hoppers."""
    hopper = samples.load(samples.grace_hopper_jpeg()).convert("RGB")
    small_hopper = hopper.resize((82, 96), Image.Resampling.LANCZOS)  # face ~35 px
    canvas = Image.new("RGB", (800, 800), (200, 200, 200))
    for index in range(8):
        face = astronaut_scaled(35) if index % 2 == 0 else small_hopper
        canvas.paste(face, ((index % 4) * 200 + 10, (index // 4) * 400 + 10))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def verdict(picture: PictureAnalysis) -> tuple[Verdict, Reason]:
    decision = decide(
        RowEvidence(politician="astronaut", tolerance=0.6, attachment_count=1, pictures=(picture,)),
        max_attachments=1,
    )
    return decision.verdict, decision.reason


def reference(engine: DlibFaceEngine) -> npt.NDArray[np.float64]:
    encoding = see(samples.astronaut_png(), CONFIG, engine).encoding
    assert encoding is not None
    return np.stack([encoding])


def test_a_face_small_in_the_downscaled_picture_is_judged_in_the_uploads_pixels(
    engine: DlibFaceEngine,
) -> None:
    picture = analyze(small_face_in_a_big_photo(), "scene.jpg", reference(engine), CONFIG, engine)
    assert picture.analysed_size == (1024, 683)
    assert verdict(picture) == (Verdict.APPROVED, Reason.MATCH)
    (face,) = picture.faces
    assert 110 <= face.size <= 150  # in the upload's pixels, not the 37 px of the coarse picture
    judged = next(seen for seen in picture.seen if seen.ignored is None)
    assert judged.scale > 1024 / 3600  # looked at closer than the coarse picture


def test_a_group_of_small_faces_is_multiple_faces(engine: DlibFaceEngine) -> None:
    picture = analyze(group_of_small_faces(), "group.png", reference(engine), CONFIG, engine)
    assert len(picture.faces) == 8
    assert verdict(picture) == (Verdict.REJECTED, Reason.MULTIPLE_FACES)


def test_a_lone_face_below_the_minimum_in_the_uploads_pixels_is_too_small(
    engine: DlibFaceEngine,
) -> None:
    config = PipelineConfig(min_face_px=120)
    picture = analyze(samples.astronaut_png(), "a.png", reference(engine), config, engine)
    assert verdict(picture) == (Verdict.REJECTED, Reason.FACE_TOO_SMALL)
    assert Ignored.TOO_SMALL in [seen.ignored for seen in picture.seen]


def test_a_large_face_is_found_without_a_closer_look(engine: DlibFaceEngine) -> None:
    sight = see(samples.grace_hopper_jpeg(), CONFIG, engine)
    (face,) = sight.seen
    assert (face.ignored, face.scale) == (None, 1.0)


def test_a_closer_look_at_a_100_mp_photo_decodes_a_fraction_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[tuple[int, int]] = []
    check = budgets.check_decoded_size

    def record(image: Image.Image, fmt: str) -> None:
        decoded.append(image.size)
        check(image, fmt)

    monkeypatch.setattr(budgets, "check_decoded_size", record)
    region = FaceBox(top=4000, right=6000, bottom=6000, left=4000)
    huge = samples.huge_jpeg(10_000)
    crop = images.decode(huge, max_pixels=120_000_000, max_side=500, region=region)
    assert crop.rgb.shape[:2] == (500, 500)
    assert crop.scale == 0.25
    assert decoded == [(2500, 2500)]  # libjpeg's 1/4 scale, not 100 MP


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_region_is_cut_from_the_upright_picture_whatever_the_exif_orientation(
    orientation: int, fmt: str
) -> None:
    # Not square, so that a quarter turn too many or too few changes the picture's shape.
    astronaut = samples.load(samples.astronaut_png()).convert("RGB").crop((0, 0, 512, 440))
    upright = samples.encode(astronaut, "JPEG", quality=95)
    region = FaceBox(top=40, right=300, bottom=200, left=160)
    whole = images.decode(upright, max_pixels=10**8, max_side=512).rgb
    expected = whole[region.top : region.bottom, region.left : region.right].astype(int)
    turned = samples.exif_rotated(upright, orientation, fmt)
    crop = images.decode(turned, max_pixels=10**8, max_side=512, region=region)
    assert crop.upright_size == (512, 440)
    assert crop.rgb.shape == expected.shape
    assert np.abs(crop.rgb.astype(int) - expected).mean() < 6


# --- when to look closer: pure --------------------------------------------------------------


def detection(size_in_upload: int) -> Detection:
    return Detection(FaceBox(top=0, right=size_in_upload, bottom=size_in_upload, left=0), 1.0)


def test_a_large_face_in_the_coarse_picture_needs_no_closer_look() -> None:
    # 600 px in a 4000 px upload: 154 px in the 1024 px coarse picture.
    assert finer_scale([detection(600)], (4000, 3000), 0.256, CONFIG) is None


def test_a_small_face_in_the_coarse_picture_is_looked_at_closer_from_the_upload() -> None:
    # 400 px in a 4000 px upload: 102 px at 1024 px; a face 35 % of it would be 36 px there.
    scale = finer_scale([detection(400)], (4000, 3000), 0.256, CONFIG)
    assert scale is not None
    assert 0.256 * 1.9 < scale < 0.256 * 2.1  # where 35 % of that face reaches 72 px


def test_around_a_face_found_a_large_upload_is_not_enlarged_beyond_its_own_pixels() -> None:
    # 121 px in a 1200 px upload (103 px at 1024): the upload itself gains too little.
    assert finer_scale([detection(121)], (1200, 600), 1024 / 1200, CONFIG) is None


def test_around_a_face_found_a_small_upload_is_searched_as_if_it_were_max_side() -> None:
    scale = finer_scale([detection(91)], (512, 512), 1.0, CONFIG)  # the astronaut
    assert scale == 2.0


def test_nothing_found_is_looked_at_closer_within_the_pixel_budget() -> None:
    scale = finer_scale([], (12_000, 8_000), 1024 / 12_000, CONFIG)
    assert scale is not None
    assert 12_000 * 8_000 * scale**2 <= CONFIG.refine_pixels * 1.001


def test_nothing_found_in_a_small_picture_enlarges_it_for_groups_of_small_faces() -> None:
    scale = finer_scale([], (800, 800), 1.0, CONFIG)
    assert scale is not None and scale > 2
