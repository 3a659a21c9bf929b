"""How many faces a picture holds, and the face stack's failure modes.

The pictures ship inside matplotlib and scikit-image (any fresh machine has them); the
real dlib engine is loaded once for the module (about 1-2 s).
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageFile

from nocodb_guard.errors import FaceStackError
from nocodb_guard.faces import engine as engine_module
from nocodb_guard.faces import images
from nocodb_guard.faces import see as pipeline
from nocodb_guard.faces.engine import (
    Detection,
    DlibFaceEngine,
    as_dlib_image,
    face_distances,
    select_faces,
)
from nocodb_guard.models import FaceBox, Ignored

MAX_SIDE = 1024


def grace_hopper_path() -> Path:
    import matplotlib  # noqa: PLC0415

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def skimage_path(name: str) -> Path:
    import skimage  # noqa: PLC0415

    return Path(os.path.dirname(skimage.__file__)) / "data" / name


def load_rgb(path: Path, max_side: int = MAX_SIDE) -> npt.NDArray[np.uint8]:
    """The picture as the pipeline sees it: RGB, longest side at most ``max_side``."""
    return images.decode(path.read_bytes(), max_pixels=50_000_000, max_side=max_side).rgb


def png(rgb: npt.NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def side_by_side(*paths: Path, height: int = 400) -> npt.NDArray[np.uint8]:
    """Several pictures pasted next to each other, each scaled to ``height``."""
    parts = []
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        parts.append(rgb.resize((round(rgb.width * height / rgb.height), height)))
    canvas = Image.new("RGB", (sum(p.width for p in parts), height))
    x = 0
    for part in parts:
        canvas.paste(part, (x, 0))
        x += part.width
    return np.ascontiguousarray(np.asarray(canvas))


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    """The engine as the pipeline configures it by default (no upsampling)."""
    return DlibFaceEngine(model="hog", upsample=pipeline.PipelineConfig().upsample)


@pytest.fixture(scope="module")
def upsampled() -> DlibFaceEngine:
    """HOG searching the picture doubled: it then sees the astronaut's mission patch."""
    return DlibFaceEngine(model="hog", upsample=1)


def seen(engine: DlibFaceEngine, data: bytes) -> pipeline.Sight:
    return pipeline.see(data, pipeline.PipelineConfig(), engine, encode=False)


def count_faces(engine: DlibFaceEngine, data: bytes) -> int:
    return len(seen(engine, data).faces)


# --- the real engine on pictures -------------------------------------------------------------


def test_grace_hopper_holds_exactly_one_face(engine: DlibFaceEngine) -> None:
    assert count_faces(engine, grace_hopper_path().read_bytes()) == 1


def test_the_astronauts_mission_patch_is_not_counted_as_a_second_face(
    engine: DlibFaceEngine, upsampled: DlibFaceEngine
) -> None:
    # HOG alone does see two same-sized "faces": the second opinion is what rejects the patch.
    assert len(upsampled.detect(load_rgb(skimage_path("astronaut.png")))) == 2
    sight = seen(engine, skimage_path("astronaut.png").read_bytes())
    assert len(sight.faces) == 1
    assert [face.ignored for face in sight.seen][1:] in ([], [Ignored.NOT_CONFIRMED])


def test_a_cat_holds_no_face(engine: DlibFaceEngine) -> None:
    assert count_faces(engine, skimage_path("chelsea.png").read_bytes()) == 0


def test_two_people_side_by_side_are_two_faces(engine: DlibFaceEngine) -> None:
    rgb = side_by_side(grace_hopper_path(), skimage_path("astronaut.png"))
    kept = seen(engine, png(rgb)).faces
    assert len(kept) == 2
    centres = sorted((box.left + box.right) / 2 for box in kept)
    assert centres[0] < rgb.shape[1] / 2 < centres[1]


def test_the_cnn_model_is_selectable_and_ignores_the_patch_by_itself() -> None:
    cnn = DlibFaceEngine(model="cnn", upsample=0)  # about 3 s on one core for 512x512
    rgb = load_rgb(skimage_path("astronaut.png"))
    detections = cnn.detect(rgb)
    assert len(detections) == 1
    assert cnn.confirm(rgb, detections[0].box)
    assert cnn.encode(rgb, detections[0].box).shape == (128,)


def test_the_cnn_confirms_a_real_face_and_denies_the_patch(upsampled: DlibFaceEngine) -> None:
    rgb = load_rgb(skimage_path("astronaut.png"))
    by_score = sorted(upsampled.detect(rgb), key=lambda d: d.score, reverse=True)
    assert upsampled.confirm(rgb, by_score[0].box)
    assert not upsampled.confirm(rgb, by_score[1].box)


def encoding(engine: DlibFaceEngine, data: bytes) -> npt.NDArray[np.float64]:
    found = pipeline.see(data, pipeline.PipelineConfig(), engine).encoding
    assert found is not None
    return found


def test_the_same_person_is_closer_than_someone_else(engine: DlibFaceEngine) -> None:
    reference = encoding(engine, grace_hopper_path().read_bytes())
    smaller = png(load_rgb(grace_hopper_path(), max_side=400))
    astronaut = skimage_path("astronaut.png").read_bytes()
    same, other = face_distances(
        reference, np.stack([encoding(engine, smaller), encoding(engine, astronaut)])
    )
    assert reference.shape == (128,)
    assert same < 0.3 < 0.6 < other


def test_encoding_uses_the_known_face_location_and_never_detects_again(
    engine: DlibFaceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = load_rgb(grace_hopper_path())
    box = engine.detect(rgb)[0].box

    def no_detection(*args: object, **kwargs: object) -> None:
        raise AssertionError("encode ran the face detector again")

    monkeypatch.setattr(engine, "_hog", no_detection)
    monkeypatch.setattr(engine, "_cnn", no_detection)
    assert engine.encode(rgb, box).shape == (128,)


def test_the_encoding_is_face_recognitions_for_the_same_box(engine: DlibFaceEngine) -> None:
    """Loading dlib's models directly changes memory, not a single number of the encoding."""
    import face_recognition  # noqa: PLC0415

    rgb = load_rgb(grace_hopper_path())
    box = engine.detect(rgb)[0].box
    theirs = face_recognition.face_encodings(rgb, known_face_locations=[box.as_css()])[0]
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # face_recognition's import sets it
    assert np.allclose(engine.encode(rgb, box), theirs)


def test_an_engine_never_imports_face_recognitions_api_which_loads_every_model() -> None:
    """The api module loads the 68-point landmark model (about 85 MiB) nothing here uses."""
    code = (
        "import sys\n"
        "from nocodb_guard.faces.engine import DlibFaceEngine\n"
        "DlibFaceEngine()\n"
        "print('face_recognition.api' in sys.modules)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_a_non_contiguous_array_is_accepted(engine: DlibFaceEngine) -> None:
    rgb = load_rgb(grace_hopper_path())
    mirrored = rgb[:, ::-1]
    assert not mirrored.flags["C_CONTIGUOUS"]
    assert len(engine.detect(mirrored)) == 1


def test_an_array_that_is_not_rgb_uint8_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        as_dlib_image(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="RGB"):
        as_dlib_image(np.zeros((10, 10), dtype=np.uint8))


def test_loading_the_engine_does_not_leave_truncated_images_loadable(
    engine: DlibFaceEngine,
) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_the_pipeline_counts_one_face_in_grace_hoppers_portrait(engine: DlibFaceEngine) -> None:
    data = grace_hopper_path().read_bytes()
    config = pipeline.PipelineConfig()
    analysis = pipeline.analyze(data, "hopper.jpg", None, config, engine)
    assert (analysis.problem, len(analysis.faces), analysis.distances) == (None, 1, ())


def test_the_pipeline_compares_the_single_face_with_the_references(
    engine: DlibFaceEngine,
) -> None:
    rgb = load_rgb(grace_hopper_path())
    reference = engine.encode(rgb, engine.detect(rgb)[0].box)
    data = grace_hopper_path().read_bytes()
    analysis = pipeline.analyze(
        data, "hopper.jpg", np.stack([reference]), pipeline.PipelineConfig(), engine
    )
    assert analysis.distance is not None
    assert analysis.distance < 0.2


# --- select_faces: pure ----------------------------------------------------------------------


def det(size: int, score: float = 1.0, left: int = 0) -> Detection:
    return Detection(FaceBox(top=0, right=left + size, bottom=size, left=left), score)


def test_a_group_of_small_faces_is_a_group_whatever_their_size() -> None:
    detections = [det(30), det(35, left=100), det(32, left=200)]
    kept, ignored = select_faces(detections, 40, 0.35)
    assert (len(kept), ignored) == (3, [])


def test_a_lone_face_below_the_minimum_size_is_too_small() -> None:
    small, patch = det(30, score=2.0), det(28, score=0.1, left=100)
    kept, ignored = select_faces([small, patch], 40, 0.35, confirm=lambda box: False)
    assert kept == []
    assert ignored == [(small.box, Ignored.TOO_SMALL), (patch.box, Ignored.NOT_CONFIRMED)]


def test_faces_much_smaller_than_the_largest_are_background() -> None:
    main, background, peer = det(200), det(60, left=300), det(150, left=600)
    kept, ignored = select_faces([main, background, peer], 40, 0.35)
    assert kept == [main.box, peer.box]
    assert ignored == [(background.box, Ignored.BACKGROUND)]


def test_no_detection_means_no_face() -> None:
    assert select_faces([], 40, 0.35) == ([], [])


def test_the_surest_face_is_kept_without_asking_for_a_second_opinion() -> None:
    asked: list[FaceBox] = []

    def deny(box: FaceBox) -> bool:
        asked.append(box)
        return False

    patch, face = det(90, score=0.12), det(91, score=1.16, left=200)
    kept, ignored = select_faces([patch, face], 40, 0.35, confirm=deny)
    assert (kept, ignored, asked) == ([face.box], [(patch.box, Ignored.NOT_CONFIRMED)], [patch.box])


def test_a_confirmed_second_face_is_counted() -> None:
    first, second = det(100, score=2.0), det(90, score=0.3, left=200)
    kept, ignored = select_faces([second, first], 40, 0.35, confirm=lambda box: True)
    assert (kept, ignored) == ([first.box, second.box], [])


def test_without_a_second_opinion_every_candidate_counts() -> None:
    detections = [det(100), det(90, score=0.1, left=200)]
    assert len(select_faces(detections, 40, 0.35)[0]) == 2


def test_face_distances_are_euclidean() -> None:
    refs = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert face_distances(np.array([0.0, 0.0]), refs) == [0.0, 5.0]


# --- a broken face stack ---------------------------------------------------------------------


@pytest.fixture
def fresh_face_recognition(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Forget the imported face_recognition so the next import runs again (restored after)."""
    for name in list(sys.modules):
        if name == "face_recognition" or name.startswith("face_recognition."):
            monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    engine_module.load_models.cache_clear()
    yield monkeypatch
    engine_module.load_models.cache_clear()
    ImageFile.LOAD_TRUNCATED_IMAGES = False


@pytest.mark.parametrize("missing", ["face_recognition_models", "pkg_resources", "dlib"])
def test_a_missing_part_of_the_face_stack_is_a_face_stack_error_not_a_silent_exit(
    fresh_face_recognition: pytest.MonkeyPatch, missing: str
) -> None:
    if missing == "pkg_resources":
        fresh_face_recognition.delitem(sys.modules, "face_recognition_models", raising=False)
    fresh_face_recognition.setitem(sys.modules, missing, None)
    with pytest.raises(FaceStackError, match="setuptools<81") as caught:
        DlibFaceEngine()
    assert "--no-deps face_recognition==1.3.0" in str(caught.value)


def test_an_unknown_detection_model_is_refused() -> None:
    with pytest.raises(ValueError, match="hog"):
        DlibFaceEngine(model="mtcnn")
