"""The face stage on real photographs: ``<repo>/../shared/faces`` (see its README.md).

Every photo is decoded, counted and encoded once for the module (about 10-25 s), exactly
as the pipeline sees an upload (:func:`nocodb_guard.faces.see.see`: coarse to fine search,
size filters in the upload's pixels, CNN second opinion on extra faces).
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from nocodb_guard.faces.engine import DlibFaceEngine, face_distances
from nocodb_guard.faces.see import PipelineConfig, see

SHARED_FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"
TOLERANCE = 0.6

pytestmark = [
    pytest.mark.shared_faces,
    pytest.mark.skipif(
        not (SHARED_FACES / "manifest.csv").is_file(),
        reason=f"real test photos absent: {SHARED_FACES} (shared/faces beside the checkout)",
    ),
]


@dataclass(frozen=True)
class Photo:
    file: str
    persons: tuple[str, ...]
    expected_faces: int
    source_photo: str
    faces: int
    encoding: npt.NDArray[np.float64] | None

    @property
    def person(self) -> str:
        return self.persons[0]


@pytest.fixture(scope="module")
def photos() -> list[Photo]:
    config = PipelineConfig()
    engine = DlibFaceEngine(config.detection_model, config.upsample, config.num_jitters)
    result = []
    with (SHARED_FACES / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            data = (SHARED_FACES / row["file"]).read_bytes()
            sight = see(data, config, engine)
            result.append(
                Photo(
                    file=row["file"],
                    persons=tuple(row["persons"].split(";")),
                    expected_faces=int(row["faces"]),
                    source_photo=row["source_photo"],
                    faces=len(sight.faces),
                    encoding=sight.encoding,
                )
            )
    return result


def singles(photos: list[Photo]) -> list[Photo]:
    return [p for p in photos if len(p.persons) == 1]


def distance(a: Photo, b: Photo) -> float:
    assert a.encoding is not None and b.encoding is not None
    return face_distances(a.encoding, b.encoding[np.newaxis, :])[0]


def test_every_single_person_photo_holds_exactly_one_face(photos: list[Photo]) -> None:
    counted = {p.file: p.faces for p in singles(photos)}
    assert len(counted) == 23
    assert counted == dict.fromkeys(counted, 1)


def test_group_photos_hold_several_faces(photos: list[Photo]) -> None:
    groups = {p.file: p.faces for p in photos if len(p.persons) > 1}
    expected = {p.file: p.expected_faces for p in photos if len(p.persons) > 1}
    assert groups == expected
    assert all(count >= 2 for count in groups.values())


def test_each_person_matches_their_photos_from_other_occasions(photos: list[Photo]) -> None:
    pairs = [
        (a, b)
        for a, b in itertools.combinations(singles(photos), 2)
        if a.person == b.person and a.source_photo != b.source_photo
    ]
    assert len(pairs) > 20
    too_far = [(a.file, b.file, round(distance(a, b), 3)) for a, b in pairs]
    assert [pair for pair in too_far if pair[2] > TOLERANCE] == []


def test_nobody_matches_someone_else(photos: list[Photo]) -> None:
    pairs = [(a, b) for a, b in itertools.combinations(singles(photos), 2) if a.person != b.person]
    close = [(a.file, b.file, round(distance(a, b), 3)) for a, b in pairs]
    assert [pair for pair in close if pair[2] <= TOLERANCE] == []
