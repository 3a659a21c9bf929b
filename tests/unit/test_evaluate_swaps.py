"""``evaluate --swaps``: synthetic face swaps per politician, both ways, reported apart.

The swaps here are fakes (an encoding blended from the face's and the head's photos), so the
pairing, counting and reporting are tested without dlib; ``test_swaps.py`` builds real ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from nocodb_guard.trust.evaluate import (
    EvaluationReport,
    PhotoEncoding,
    SwapEncoder,
    Target,
    evaluate_dir,
    render_text,
    to_json,
)
from nocodb_guard.trust.evaluate.report import SwapDirection

ADA = np.random.default_rng(1).normal(0, 1 / np.sqrt(2 * 128), 128)
GRACE = np.random.default_rng(2).normal(0, 1 / np.sqrt(2 * 128), 128)
PHOTOS = {
    "ada/a1.jpg": ADA,
    "ada/a1-small.jpg": ADA + 0.001,
    "ada/a2.jpg": ADA + 0.02,
    "grace/g1.jpg": GRACE,
}
MANIFEST = (
    "file,persons,faces,source_photo\n"
    "ada/a1.jpg,ada,1,A1\nada/a1-small.jpg,ada,1,A1\nada/a2.jpg,ada,1,A2\n"
    "grace/g1.jpg,grace,1,G1\n"
)


class FakeSwaps:
    """A swap's encoding: the head's, moved ``face_share`` of the way to the face's."""

    def __init__(self, encodings: Mapping[str, np.ndarray], face_share: float) -> None:
        self.encodings = encodings
        self.face_share = face_share
        self.calls: list[tuple[str, str]] = []

    def __call__(self, face: Path, head: Path) -> np.ndarray | None:
        self.calls.append((f"{face.parent.name}/{face.name}", f"{head.parent.name}/{head.name}"))
        face_encoding, head_encoding = self.encodings[face.name], self.encodings[head.name]
        return head_encoding + self.face_share * (face_encoding - head_encoding)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    directory = tmp_path / "photos"
    for file in PHOTOS:
        (directory / file).parent.mkdir(parents=True, exist_ok=True)
        (directory / file).write_bytes(file.encode())
    (directory / "manifest.csv").write_text(MANIFEST, encoding="utf-8")
    return directory


def encode_photo(path: Path) -> PhotoEncoding:
    return PhotoEncoding(1, PHOTOS[f"{path.parent.name}/{path.name}"])


def by_name() -> dict[str, np.ndarray]:
    return {Path(file).name: encoding for file, encoding in PHOTOS.items()}


def self_report(directory: Path, swaps: SwapEncoder | None) -> EvaluationReport:
    return evaluate_dir(directory, encode_photo=encode_photo, mode="self", encode_swap=swaps)


def test_each_politician_gets_swaps_both_ways_with_one_photo_per_original(labelled: Path) -> None:
    swaps = FakeSwaps(by_name(), face_share=0.8)
    report = self_report(labelled, swaps)
    ada = next(p for p in report.politicians if p.label == "ada")
    # a1 and its resized copy a1-small are one original: one of them is swapped, with a2
    own_faces = [s.face for s in ada.swaps_of(SwapDirection.POLITICIAN_FACE)]
    own_heads = [s.head for s in ada.swaps_of(SwapDirection.STRANGER_FACE)]
    assert own_faces == own_heads == ["ada/a1-small.jpg", "ada/a2.jpg"]
    assert {s.head for s in ada.swaps_of(SwapDirection.POLITICIAN_FACE)} == {"grace/g1.jpg"}
    assert {s.face for s in ada.swaps_of(SwapDirection.STRANGER_FACE)} == {"grace/g1.jpg"}
    assert len(swaps.calls) == 2 * 2 * 2


def test_swaps_are_kept_apart_from_genuine_and_impostor_photos(labelled: Path) -> None:
    without = self_report(labelled, None)
    with_swaps = self_report(labelled, FakeSwaps(by_name(), face_share=0.8))
    for plain, swapped in zip(without.politicians, with_swaps.politicians, strict=True):
        assert plain.genuine == swapped.genuine and plain.impostor == swapped.impostor
        assert plain.swaps == [] and len(swapped.swaps) > 0
    assert "synthetic" not in render_text(without)


def test_a_swap_that_keeps_the_heads_identity_is_an_approved_stranger_and_fails_the_run(
    labelled: Path,
) -> None:
    report = self_report(labelled, FakeSwaps(by_name(), face_share=0.2))
    assert report.swap_approvals == 4  # Grace's face on Ada's 2 photos, Ada's 2 on Grace's
    assert (report.false_approvals, report.false_rejections, report.passed) == (0, 0, False)
    text = render_text(report)
    assert "synthetic swaps of a stranger's face approved: 4" in text
    assert "! APPROVED: grace/g1.jpg's face on ada/a2.jpg's head" in text
    document = to_json(report)
    assert document["swap_approvals"] == 4
    grace = next(p for p in document["politicians"] if p["label"] == "grace")
    assert all(s["approved"] for s in grace["swaps"]["stranger_face_on_politician_head"])


def test_a_swap_that_carries_the_faces_identity_is_rejected(labelled: Path) -> None:
    report = self_report(labelled, FakeSwaps(by_name(), face_share=0.8))
    assert (report.swap_approvals, report.passed) == (0, True)
    ada = next(p for p in report.politicians if p.label == "ada")
    # the politician's face elsewhere: 0.2 of the way from Ada to Grace, still Ada
    assert all(s.approved(0.6) for s in ada.swaps_of(SwapDirection.POLITICIAN_FACE))


def test_a_swap_not_seen_as_one_face_is_rejected(labelled: Path) -> None:
    report = self_report(labelled, lambda face, head: None)
    assert report.swap_approvals == 0
    assert all(s.distance is None for p in report.politicians for s in p.swaps)
    assert "(2 not seen as one face)" in render_text(report)


def test_in_configured_mode_the_reference_photos_are_the_politicians_photos(
    labelled: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "refs" / "ada" / "r1.jpg"
    reference.parent.mkdir(parents=True)
    reference.write_bytes(b"r1")
    encodings = {**by_name(), "r1.jpg": ADA + 0.01}

    def encode(path: Path) -> PhotoEncoding:
        return PhotoEncoding(1, encodings[path.name])

    swaps = FakeSwaps(encodings, face_share=0.8)
    target = Target("Ada Lovelace", "ada", 0.6, (reference,))
    evaluate_dir(labelled, encode_photo=encode, targets=[target], encode_swap=swaps)
    assert sorted(swaps.calls) == [("ada/r1.jpg", "grace/g1.jpg"), ("grace/g1.jpg", "ada/r1.jpg")]
