"""Reference folders: loading, refusing bad photos, and the on-disk encoding cache.

Uses the real dlib engine (shared by the module) on pictures that ship with matplotlib and
scikit-image, written into tmp folders as an operator would.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from nocodb_guard.errors import ReferenceSetError
from nocodb_guard.faces import see
from nocodb_guard.faces.engine import Detection, DlibFaceEngine, FaceEngine
from nocodb_guard.faces.references import ReferenceStore
from nocodb_guard.faces.see import PipelineConfig
from nocodb_guard.models import FaceBox
from nocodb_guard.settings import Politician, Settings

LABEL = "Grace Hopper"


def grace_hopper() -> Image.Image:
    import matplotlib  # noqa: PLC0415

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as image:
        return image.convert("RGB")


def skimage_picture(name: str) -> Image.Image:
    import skimage  # noqa: PLC0415

    with Image.open(Path(os.path.dirname(skimage.__file__)) / "data" / name) as image:
        return image.convert("RGB")


def two_faces() -> Image.Image:
    parts = [
        p.resize((round(p.width * 400 / p.height), 400))
        for p in (grace_hopper(), skimage_picture("astronaut.png"))
    ]
    canvas = Image.new("RGB", (parts[0].width + parts[1].width, 400))
    canvas.paste(parts[0], (0, 0))
    canvas.paste(parts[1], (parts[0].width, 0))
    return canvas


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


class CountingFactory:
    """Hands out the shared real engine and counts how often the store asked for one."""

    def __init__(self, engine: FaceEngine | None) -> None:
        self.engine = engine
        self.calls = 0

    def __call__(self) -> FaceEngine:
        self.calls += 1
        if self.engine is None:
            raise AssertionError("the face engine was created although everything was cached")
        return self.engine


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    return DlibFaceEngine()


@pytest.fixture
def reference_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "reference_faces" / "grace_hopper"
    save(grace_hopper(), folder / "hopper.jpg")
    small = grace_hopper()
    small.thumbnail((300, 300))
    save(small, folder / "hopper_small.png")
    return tmp_path / "reference_faces"


def make_store(
    reference_dir: Path,
    engine: FaceEngine | None,
    *,
    config: PipelineConfig | None = None,
    cache: bool = True,
    cache_writable: bool = True,
) -> tuple[ReferenceStore, CountingFactory]:
    factory = CountingFactory(engine)
    store = ReferenceStore(
        folder_for=lambda label: reference_dir / label.lower().replace(" ", "_"),
        tolerance_for=lambda label: 0.55,
        config=config or PipelineConfig(),
        cache_dir=reference_dir.parent / "state" / "reference-cache" if cache else None,
        engine_factory=factory,
        cache_writable=cache_writable,
    )
    return store, factory


# --- loading -----------------------------------------------------------------------------------


def test_a_politicians_photos_give_one_encoding_each(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    store, _ = make_store(reference_dir, engine)
    refs = store.load(LABEL)
    assert refs is not None
    assert refs.files == ("hopper.jpg", "hopper_small.png")
    assert refs.encodings.shape == (2, 128)
    assert refs.tolerance == 0.55
    assert refs.folder == reference_dir / "grace_hopper"
    assert np.linalg.norm(refs.encodings[0] - refs.encodings[1]) < 0.3


def test_a_missing_folder_means_an_unknown_politician(tmp_path: Path) -> None:
    store, factory = make_store(tmp_path / "reference_faces", None)
    assert store.load("Nobody Known") is None
    assert factory.calls == 0


def test_a_folder_without_pictures_means_an_unknown_politician(tmp_path: Path) -> None:
    folder = tmp_path / "reference_faces" / "grace_hopper"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("photos go here\n")
    (folder / "notes.txt").write_text("ask the press office\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x01junk")
    store, factory = make_store(tmp_path / "reference_faces", None)
    assert store.load(LABEL) is None
    assert factory.calls == 0


def test_a_reference_photo_with_two_faces_stops_with_an_error_naming_the_file(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    save(two_faces(), reference_dir / "grace_hopper" / "team.png")
    store, _ = make_store(reference_dir, engine)
    with pytest.raises(ReferenceSetError, match=r"team\.png.*holds 2 faces"):
        store.load(LABEL)


def test_a_reference_photo_without_a_face_stops_with_an_error_naming_the_file(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    save(skimage_picture("chelsea.png"), reference_dir / "grace_hopper" / "cat.png")
    store, _ = make_store(reference_dir, engine)
    with pytest.raises(ReferenceSetError, match=r"cat\.png.*no face"):
        store.load(LABEL)


def test_an_unreadable_reference_photo_stops_with_an_error_naming_the_file(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    buffer = io.BytesIO()
    grace_hopper().save(buffer, "JPEG")
    (reference_dir / "grace_hopper" / "cut.jpg").write_bytes(buffer.getvalue()[:2000])
    store, _ = make_store(reference_dir, engine)
    with pytest.raises(ReferenceSetError, match=r"cut\.jpg"):
        store.load(LABEL)


def test_a_file_named_like_a_photo_that_is_not_one_is_an_error(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    (reference_dir / "grace_hopper" / "hopper2.jpg").write_text("not a photo")
    store, _ = make_store(reference_dir, engine)
    with pytest.raises(ReferenceSetError, match=r"hopper2\.jpg.*not_an_image"):
        store.load(LABEL)


# --- memo and cache ------------------------------------------------------------------------------


def test_a_second_load_in_the_same_process_reuses_the_loaded_set(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    store, _ = make_store(reference_dir, engine, cache=False)
    first = store.load(LABEL)
    assert store.load(LABEL) is first


def test_a_photo_added_while_running_is_picked_up(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    store, _ = make_store(reference_dir, engine)
    assert store.load(LABEL) is not None
    crop = grace_hopper().crop((50, 50, 462, 550))
    save(crop, reference_dir / "grace_hopper" / "hopper_crop.jpg")
    refs = store.load(LABEL)
    assert refs is not None
    assert len(refs.files) == 3


def test_released_models_are_built_again_when_a_new_photo_must_be_encoded(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    """The daemon frees its main process's models after start-up (the workers judge)."""
    store, factory = make_store(reference_dir, engine)
    assert store.load(LABEL) is not None
    store.release_engine()
    assert not store.engine_created
    assert store.load(LABEL) is not None and factory.calls == 1  # unchanged: memo, no models
    save(grace_hopper().crop((50, 50, 462, 550)), reference_dir / "grace_hopper" / "hopper_new.jpg")
    refs = store.load(LABEL)
    assert refs is not None and len(refs.files) == 3
    assert factory.calls == 2 and store.engine_created


def test_a_restart_loads_cached_references_without_loading_dlib(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    first, factory = make_store(reference_dir, engine)
    loaded = first.load(LABEL)
    assert factory.calls == 1
    restarted, _ = make_store(reference_dir, None)  # its factory raises
    reloaded = restarted.load(LABEL)
    assert loaded is not None and reloaded is not None
    np.testing.assert_array_equal(loaded.encodings, reloaded.encodings)
    assert not restarted.engine_created
    cache_files = list((reference_dir.parent / "state" / "reference-cache").iterdir())
    assert len(cache_files) == 2
    assert all(f.suffix == ".npy" for f in cache_files)


def test_a_read_only_store_uses_the_cache_but_never_writes_it(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    cache_dir = reference_dir.parent / "state" / "reference-cache"
    looking, _ = make_store(reference_dir, engine, cache_writable=False)
    assert looking.load(LABEL) is not None
    assert not cache_dir.exists()
    service, _ = make_store(reference_dir, engine)
    assert service.load(LABEL) is not None
    written = sorted(cache_dir.iterdir())
    looking_again, _ = make_store(reference_dir, None, cache_writable=False)  # no dlib
    assert looking_again.load(LABEL) is not None
    assert not looking_again.engine_created
    assert sorted(cache_dir.iterdir()) == written


class CountingEncodes:
    """An engine that counts the faces it encodes."""

    def __init__(self, engine: FaceEngine) -> None:
        self.engine, self.encoded = engine, 0

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        return self.engine.detect(rgb)

    def confirm(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> bool:
        return self.engine.confirm(rgb, box)

    def encode(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        self.encoded += 1
        return self.engine.encode(rgb, box)


def test_a_read_only_store_describes_what_it_loaded_without_encoding_again(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    counting = CountingEncodes(engine)
    looking, _ = make_store(reference_dir, counting, cache_writable=False)
    loaded = looking.load(LABEL)
    report = looking.describe(LABEL)
    assert loaded is not None and counting.encoded == len(loaded.files) == 2
    assert [(f.name, f.cached, f.faces) for f in report.files] == [
        (name, False, 1) for name in loaded.files
    ]


def test_a_changed_photo_is_encoded_again(reference_dir: Path, engine: DlibFaceEngine) -> None:
    first, _ = make_store(reference_dir, engine)
    before = first.load(LABEL)
    crop = grace_hopper().crop((50, 50, 462, 550))
    save(crop, reference_dir / "grace_hopper" / "hopper.jpg")
    restarted, factory = make_store(reference_dir, engine)
    after = restarted.load(LABEL)
    assert factory.calls == 1
    assert before is not None and after is not None
    assert not np.array_equal(before.encodings[0], after.encodings[0])
    np.testing.assert_array_equal(before.encodings[1], after.encodings[1])


def test_a_different_pipeline_configuration_does_not_reuse_the_cache(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    first, _ = make_store(reference_dir, engine)
    first.load(LABEL)
    other, factory = make_store(reference_dir, engine, config=PipelineConfig(max_side=800))
    assert other.load(LABEL) is not None
    assert factory.calls == 1
    assert len(list((reference_dir.parent / "state" / "reference-cache").iterdir())) == 4


def test_a_corrupt_cache_entry_is_ignored_and_rebuilt(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    first, _ = make_store(reference_dir, engine)
    loaded = first.load(LABEL)
    cache_dir = reference_dir.parent / "state" / "reference-cache"
    entries = sorted(cache_dir.iterdir())
    entries[0].write_bytes(b"\x93NUMPY garbage")
    np.save(entries[1], np.zeros(5))
    restarted, factory = make_store(reference_dir, engine)
    reloaded = restarted.load(LABEL)
    assert factory.calls == 1
    assert loaded is not None and reloaded is not None
    np.testing.assert_allclose(loaded.encodings, reloaded.encodings)
    again, _ = make_store(reference_dir, None)
    assert again.load(LABEL) is not None


def test_a_failed_reference_is_not_cached(reference_dir: Path, engine: DlibFaceEngine) -> None:
    save(two_faces(), reference_dir / "grace_hopper" / "team.png")
    store, _ = make_store(reference_dir, engine)
    with pytest.raises(ReferenceSetError):
        store.load(LABEL)
    assert len(list((reference_dir.parent / "state" / "reference-cache").iterdir())) == 2


# --- describe and settings ---------------------------------------------------------------------


def test_describe_reports_each_file_with_its_cache_state_and_problems(
    reference_dir: Path, engine: DlibFaceEngine
) -> None:
    first, _ = make_store(reference_dir, engine)
    first.load(LABEL)
    folder = reference_dir / "grace_hopper"
    save(two_faces(), folder / "team.png")
    (folder / "notes.txt").write_text("from the press kit\n")
    (folder / "README.md").write_text("x\n")
    store, _ = make_store(reference_dir, engine)
    report = store.describe(LABEL)
    by_name = {f.name: f for f in report.files}
    assert sorted(by_name) == ["hopper.jpg", "hopper_small.png", "notes.txt", "team.png"]
    assert by_name["hopper.jpg"].cached and by_name["hopper.jpg"].ok
    assert by_name["notes.txt"].skipped and by_name["notes.txt"].ok
    team = by_name["team.png"]
    assert (team.cached, team.faces, team.ok) == (False, 2, False)
    assert (report.exists, report.ok, report.tolerance) == (True, False, 0.55)


def test_describe_a_missing_folder(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path / "reference_faces", None)
    report = store.describe("Nobody")
    assert (report.exists, report.files, report.ok) == (False, (), False)


def test_the_store_from_settings_uses_the_configured_folder_and_state_dir(
    reference_dir: Path, engine: DlibFaceEngine, tmp_path: Path
) -> None:
    settings = Settings(
        reference_dir=reference_dir,
        state_dir=tmp_path / "state-dir",
        politicians={"Rear Admiral Hopper": Politician(folder="grace_hopper", tolerance=0.5)},
    )
    store = ReferenceStore.from_settings(settings, engine_factory=lambda: engine)
    refs = store.load("Rear Admiral Hopper")
    assert refs is not None
    assert refs.tolerance == 0.5
    assert len(list((tmp_path / "state-dir" / "reference-cache").iterdir())) == 2


CHANGED_SETTINGS: list[dict[str, object]] = [
    {"detection_model": "cnn"},
    {"upsample": 2},
    {"max_side": 800},
    {"num_jitters": 5},
    {"min_face_px": 60},
    {"min_face_ratio": 0.5},
    {"max_pixels": 50_000_000},
    {"refine_pixels": 4_000_000},
    {"encode_face_px": 150},
]


@pytest.mark.parametrize(
    "change",
    CHANGED_SETTINGS,
    ids=lambda change: next(iter(change)),
)
def test_changing_any_pipeline_setting_changes_the_reference_cache_key(
    change: dict[str, object],
) -> None:
    assert PipelineConfig(**change).cache_key() != PipelineConfig().cache_key()  # type: ignore[arg-type]


def test_every_pipeline_setting_but_the_worker_limits_is_in_the_cache_key() -> None:
    """A new setting of the face pipeline cannot be forgotten in the key (a stale encoding)."""
    limits = {"picture_timeout", "worker_memory_mb"}
    fields = {f.name for f in dataclasses.fields(PipelineConfig)} - limits
    changes = {name for change in CHANGED_SETTINGS for name in change}
    assert changes == fields


def test_the_worker_limits_keep_the_reference_cache() -> None:
    unchanged = PipelineConfig().cache_key()
    assert PipelineConfig(picture_timeout=5).cache_key() == unchanged
    assert PipelineConfig(worker_memory_mb=1024).cache_key() == unchanged


@pytest.mark.parametrize(
    "upgraded",
    [
        ("face_recognition", "9.9.9"),
        ("dlib", "99.0"),
        ("face_recognition_models", "0.4"),
        ("shape_predictor_5_face_landmarks.dat", "1"),
        ("dlib_face_recognition_resnet_model_v1.dat", "2"),
    ],
    ids=lambda pair: pair[0],
)
def test_an_upgraded_face_library_or_model_file_changes_the_reference_cache_key(
    monkeypatch: pytest.MonkeyPatch, upgraded: tuple[str, str]
) -> None:
    before = PipelineConfig().cache_key()
    identity = dict(see.library_identity())
    assert upgraded[0] in identity, identity  # the real stack names this package or file
    changed = tuple({**identity, upgraded[0]: upgraded[1]}.items())
    monkeypatch.setattr(see, "library_identity", lambda: changed)
    assert PipelineConfig().cache_key() != before
