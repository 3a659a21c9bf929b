"""``nocodb-guard explain``: the right verdict and reason for every kind of picture.

The pictures are real photos shipped in installed packages (Grace Hopper, the astronaut
Eileen Collins, a cat) and awkward files derived from them (``nocodb_guard.samples``).
One subprocess explains them all at once (the dlib models load once, ~5-10 s); the
other tests call :func:`nocodb_guard.cli.main` in-process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nocodb_guard import cli, samples

REPO = Path(__file__).resolve().parents[2]
GRACE = "Grace Hopper (demo)"
TIMEOUT_S = 180


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any NOCODB_GUARD_* setting, plus ``extra``.

    PYTHONPATH pins the checkout under test: the venv may be shared with another checkout.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOCODB_GUARD_")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


#: file name -> (bytes factory, expected verdict, expected reason)
CASES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "matching.jpg": (samples.grace_hopper_variant, "approved", "match"),
    "wrong_person.png": (samples.astronaut_png, "rejected", "no_match"),
    "two_faces.jpg": (samples.two_faces_side_by_side, "rejected", "multiple_faces"),
    "cat.png": (samples.chelsea_png, "rejected", "no_face"),
    "notes.jpg": (samples.text_as_jpg, "rejected", "not_an_image"),
    "truncated.jpg": (
        lambda: samples.truncated(samples.grace_hopper_variant(), 0.5), "rejected", "unreadable"
    ),
    "bomb.png": (samples.decompression_bomb_png, "rejected", "too_large"),
    "phone_rotated.jpg": (
        lambda: samples.exif_rotated(samples.grace_hopper_variant(), 6), "approved", "match"
    ),
    "transparent.png": (
        lambda: samples.with_transparent_alpha(samples.grace_hopper_variant(), 0),
        "rejected",
        "no_face",
    ),
    "cmyk.jpg": (lambda: samples.as_cmyk_jpeg(samples.grace_hopper_variant()), "approved", "match"),
    "sixteen_bit.png": (
        lambda: samples.as_16bit_png(samples.grace_hopper_variant()), "approved", "match"
    ),
    "grayscale.png": (
        lambda: samples.as_grayscale(samples.grace_hopper_variant()), "approved", "match"
    ),
}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    for name, (make, _, _) in CASES.items():
        (folder / name).write_bytes(make())
    return folder


@pytest.fixture(scope="module")
def explained(pictures: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``explain --json`` of every case against grace_hopper.jpg, keyed by file name."""
    state = tmp_path_factory.mktemp("state")
    result = subprocess.run(
        [
            sys.executable, "-m", "nocodb_guard", "explain",
            *(str(pictures / name) for name in CASES),
            "--reference", str(samples.grace_hopper_path()), "--json",
        ],
        env=clean_env(NOCODB_GUARD_STATE_DIR=str(state)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {Path(item["image"]).name: item for item in json.loads(result.stdout)}


@pytest.fixture
def reference_dir(in_process: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Grace Hopper's reference folder, configured as ``reference_dir`` for :func:`cli.main`."""
    folder = tmp_path / "references" / "grace_hopper_demo"
    folder.mkdir(parents=True)
    shutil.copyfile(samples.grace_hopper_path(), folder / "grace_hopper.jpg")
    monkeypatch.setenv("NOCODB_GUARD_REFERENCE_DIR", str(folder.parent))
    return folder.parent


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A clean environment for cli.main, and the root log handlers restored afterwards."""
    for name in list(os.environ):
        if name.startswith("NOCODB_GUARD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NOCODB_GUARD_STATE_DIR", str(tmp_path / "state"))
    handlers = list(logging.getLogger().handlers)
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)


@pytest.mark.parametrize("name", list(CASES))
def test_explain_gives_the_expected_verdict_and_reason(
    explained: dict[str, Any], name: str
) -> None:
    _, verdict, reason = CASES[name]

    item = explained[name]

    assert (item["verdict"], item["reason"]) == (verdict, reason), item["explanation"]


def test_the_matching_picture_is_explained_in_plain_words(explained: dict[str, Any]) -> None:
    item = explained["matching.jpg"]

    assert item["faces"] == 1
    assert item["distance"] < 0.4
    assert item["explanation"] == (
        f"1 face, distance {item['distance']:.2f} to the reference photos (tolerance 0.60)"
    )
    assert item["distances"] == {"grace_hopper.jpg": item["distance"]}


def test_the_json_has_image_verdict_reason_faces_and_distance(explained: dict[str, Any]) -> None:
    for item in explained.values():
        assert {"image", "verdict", "reason", "faces", "distance", "explanation"} <= set(item)


def test_the_wrong_person_is_far_beyond_the_tolerance(explained: dict[str, Any]) -> None:
    item = explained["wrong_person.png"]

    assert item["faces"] == 1
    assert item["distance"] > 0.6
    assert item["explanation"].endswith("not the reference photos")


def test_two_faces_are_counted(explained: dict[str, Any]) -> None:
    assert explained["two_faces.jpg"]["faces"] == 2
    assert explained["two_faces.jpg"]["distance"] is None


def test_explain_shows_each_detection_in_the_uploads_pixels_and_its_scale(
    explained: dict[str, Any],
) -> None:
    wrong = explained["wrong_person.png"]  # the astronaut
    face = wrong["seen"][0]
    assert face["ignored"] is None
    assert set(face["box"]) == {"left", "top", "right", "bottom"}
    assert face["box"]["right"] <= 512 and 80 <= face["size"] <= 100  # astronaut.png is 512 px
    assert face["scale"] > 0
    rotated = explained["phone_rotated.jpg"]["seen"]
    stored_height = explained["phone_rotated.jpg"]["original_size"][1]
    assert rotated[0]["box"]["right"] <= stored_height  # upright: the stored height is the width


def test_an_exif_rotated_phone_photo_is_analysed_upright(explained: dict[str, Any]) -> None:
    item = explained["phone_rotated.jpg"]

    width, height = item["original_size"]
    analysed_width, analysed_height = item["analysed_size"]
    assert width > height and analysed_height > analysed_width


def test_grayscale_and_high_depth_copies_match_about_as_well_as_colour(
    explained: dict[str, Any],
) -> None:
    colour = explained["matching.jpg"]["distance"]
    # Measured: colour 0.164, 8-bit grey 0.166, 16-bit grey 0.166, CMYK 0.191.
    for name in ("grayscale.png", "sixteen_bit.png", "cmyk.jpg"):
        assert abs(explained[name]["distance"] - colour) < 0.1, name


def test_bad_files_get_a_reason_without_any_face_work(explained: dict[str, Any]) -> None:
    for name in ("notes.jpg", "truncated.jpg", "bomb.png"):
        item = explained[name]
        assert item["problem"] == item["reason"]
        assert item["faces"] == 0


def test_explain_with_a_configured_politician_uses_its_reference_folder(
    reference_dir: Path, pictures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["explain", str(pictures / "matching.jpg"), "--politician", GRACE])

    out = capsys.readouterr().out
    assert code == cli.EXIT_OK
    assert f"approved (match): 1 face, distance 0.16 to {GRACE} (tolerance 0.60)" in out
    assert re.search(r"distance to grace_hopper.jpg: 0\.1[5-7]", out)
    assert "faces: 1" in out


def test_references_and_explain_leave_the_daemons_state_dir_untouched(
    reference_dir: Path, pictures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()

    listed = cli.main(["references", GRACE])
    explained = cli.main(["explain", str(pictures / "matching.jpg"), "--politician", GRACE])
    with_photo = cli.main([
        "explain", str(pictures / "matching.jpg"),
        "--reference", str(reference_dir / "grace_hopper_demo" / "grace_hopper.jpg"),
    ])

    assert (listed, explained, with_photo) == (cli.EXIT_OK,) * 3
    assert "grace_hopper.jpg  [not cached]" in capsys.readouterr().out
    assert list(state.iterdir()) == []


def test_explain_with_a_politician_without_references_exits_2_saying_where_it_looked(
    reference_dir: Path, pictures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["explain", str(pictures / "cat.png"), "--politician", "Nobody Configured"])

    err = capsys.readouterr().err
    assert code == cli.EXIT_CONFIG == 2
    assert "no reference photos for 'Nobody Configured'" in err
    assert str(reference_dir / "nobody_configured") in err


def test_explain_with_a_missing_reference_file_exits_2(
    in_process: None, tmp_path: Path, pictures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["explain", str(pictures / "cat.png"), "--reference", str(tmp_path / "absent.jpg")]
    )

    assert code == 2
    assert "--reference: no such file" in capsys.readouterr().err


def test_explain_needs_a_politician_or_reference_photos(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["explain", "picture.jpg"])

    assert caught.value.code == 2
    assert "--politician" in capsys.readouterr().err


@pytest.mark.parametrize(
    "breakage",
    [
        "sys.modules['face_recognition_models'] = None",
        "sys.modules['pkg_resources'] = None",
        "sys.modules['dlib'] = None",
    ],
)
def test_a_broken_face_stack_is_a_clear_error_with_exit_code_2(
    breakage: str, pictures: Path, tmp_path: Path
) -> None:
    code = (
        f"import sys; {breakage}\n"
        "from nocodb_guard import cli\n"
        f"sys.exit(cli.main(['explain', {str(pictures / 'matching.jpg')!r}, '--reference', "
        f"{str(samples.grace_hopper_path())!r}, '--json']))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(NOCODB_GUARD_STATE_DIR=str(tmp_path / "state")),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "nocodb-guard: error:" in result.stderr
    assert "fix the venv" in result.stderr
    assert result.stdout == ""  # nothing half-printed where --json output belongs
