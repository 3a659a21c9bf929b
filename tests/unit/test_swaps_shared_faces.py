"""Crude deepfakes of real politicians: strangers' faces from ``../shared/faces`` on their heads.

Obama and Biden are the politicians (the first original photo of each is both the head and
the reference: a forger starts from a published photo, maybe the very one used as a
reference); every original photo of the 4 other people is a stranger: 9 faces, 18 swaps,
each judged as an upload at the default settings (about 30-60 s in all).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from nocodb_guard import samples
from nocodb_guard.faces.engine import face_distances
from nocodb_guard.faces.see import PipelineConfig, make_engine, see
from nocodb_guard.trust import swaps

SHARED_FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"
POLITICIANS = ("obama", "biden")
CONFIG = PipelineConfig()
TOLERANCE = 0.6

pytestmark = [
    pytest.mark.shared_faces,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SHARED_FACES / "manifest.csv").is_file(),
        reason=f"real test photos absent: {SHARED_FACES} (shared/faces beside the checkout)",
    ),
]


def originals() -> dict[str, list[Path]]:
    """Per person, one single-face photo per original (whole faces only), in manifest order."""
    found: dict[str, dict[str, Path]] = {}
    with (SHARED_FACES / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["faces"] == "1" and "partial" not in row["file"]:
                person = found.setdefault(row["persons"], {})
                person.setdefault(row["source_photo"], SHARED_FACES / row["file"])
    return {person: list(photos.values()) for person, photos in found.items()}


@pytest.fixture(scope="module")
def strangers_on_politicians() -> dict[str, float | None]:
    """Distance of each stranger-on-politician swap to the politician's photo (None: no face)."""
    engine = make_engine(CONFIG)
    photos = originals()
    faces = [
        swaps.portrait(path.name, path.read_bytes(), CONFIG, engine)
        for person, paths in photos.items()
        if person not in POLITICIANS
        for path in paths
    ]
    distances: dict[str, float | None] = {}
    for politician in POLITICIANS:
        path = photos[politician][0]
        head = swaps.portrait(path.name, path.read_bytes(), CONFIG, engine)
        reference = see(path.read_bytes(), CONFIG, engine).encoding
        assert head is not None and reference is not None
        for face in faces:
            assert face is not None
            swapped = samples.encode(Image.fromarray(swaps.swap(face, head)), "PNG")
            encoding = see(swapped, CONFIG, engine).encoding
            distance = None if encoding is None else face_distances(encoding, reference[None])[0]
            distances[f"{face.name} on {head.name}"] = distance
    return distances


def test_every_strangers_swap_is_judged_as_one_face(
    strangers_on_politicians: dict[str, float | None],
) -> None:
    assert len(strangers_on_politicians) == 2 * 9
    assert [name for name, d in strangers_on_politicians.items() if d is None] == []


@pytest.mark.xfail(
    strict=True,
    reason="issue 12: measured, some crude swaps of a stranger's face onto Obama's photo land "
    "under 0.6 from it (docs/trust.md): approved at the default tolerance",
)
def test_no_strangers_face_on_a_politicians_head_is_approved_at_the_default_tolerance(
    strangers_on_politicians: dict[str, float | None],
) -> None:
    approved = {
        name: distance
        for name, distance in strangers_on_politicians.items()
        if distance is not None and distance <= TOLERANCE
    }
    assert approved == {}
