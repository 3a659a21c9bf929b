"""Landmark face swaps (crude deepfakes) built at run time, and how the verdict treats them.

The politician is Grace Hopper (matplotlib's portrait) or the astronaut (scikit-image's), the
stranger the other one; mirror images make two poses of each. A swap is judged exactly as an
upload: :func:`see` at the default settings, distance to the politician's reference photo,
approved at most at 0.6.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nocodb_guard import samples
from nocodb_guard.faces.engine import DlibFaceEngine, face_distances
from nocodb_guard.faces.see import PipelineConfig, make_engine, see
from nocodb_guard.trust import swaps
from nocodb_guard.trust.evaluate import (
    evaluate_dir,
    make_photo_encoder,
    make_swap_encoder,
    render_text,
)
from nocodb_guard.trust.evaluate.report import SwapDirection

CONFIG = PipelineConfig()
TOLERANCE = 0.6


def mirror(data: bytes) -> bytes:
    image = samples.load(data).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return samples.encode(image, "PNG")


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    made = make_engine(CONFIG)
    assert isinstance(made, DlibFaceEngine)
    return made


@pytest.fixture(scope="module")
def portraits(engine: DlibFaceEngine) -> dict[str, list[swaps.Portrait]]:
    """Two poses (the photo and its mirror image) of each person."""
    photos = {"grace_hopper": samples.grace_hopper_jpeg(), "astronaut": samples.astronaut_png()}
    found: dict[str, list[swaps.Portrait]] = {}
    for person, data in photos.items():
        poses = [swaps.portrait(person, data, CONFIG, engine)]
        poses.append(swaps.portrait(f"{person} mirrored", mirror(data), CONFIG, engine))
        found[person] = [p for p in poses if p is not None]
        assert len(found[person]) == 2, f"{person}: one face expected in both poses"
    return found


def judge(picture: np.ndarray, reference: np.ndarray, engine: DlibFaceEngine) -> float | None:
    """The distance an upload of ``picture`` gets (None: not exactly one face)."""
    sight = see(samples.encode(Image.fromarray(picture), "PNG"), CONFIG, engine)
    if sight.encoding is None:
        return None
    return face_distances(sight.encoding, reference[None, :])[0]


def swap_distances(
    portraits: dict[str, list[swaps.Portrait]], engine: DlibFaceEngine, politician_face: bool
) -> dict[str, float | None]:
    """Every swap between the two people, judged against the politician's reference photo."""
    distances: dict[str, float | None] = {}
    for politician, stranger in itertools.permutations(portraits):
        reference = portraits[politician][0]
        encoding = see(samples.encode(Image.fromarray(reference.rgb), "PNG"), CONFIG, engine)
        assert encoding.encoding is not None
        for own, other in itertools.product(portraits[politician], portraits[stranger]):
            face, head = (own, other) if politician_face else (other, own)
            name = f"{face.name} on {head.name}'s head"
            distances[name] = judge(swaps.swap(face, head), encoding.encoding, engine)
    return distances


@pytest.fixture(scope="module")
def strangers_on_politicians(
    portraits: dict[str, list[swaps.Portrait]], engine: DlibFaceEngine
) -> dict[str, float | None]:
    return swap_distances(portraits, engine, politician_face=False)


def test_a_portrait_swapped_onto_itself_is_almost_unchanged(
    portraits: dict[str, list[swaps.Portrait]],
) -> None:
    grace = portraits["grace_hopper"][0]
    swapped = swaps.swap(grace, grace)
    difference = np.abs(swapped.astype(int) - grace.rgb.astype(int))
    assert difference.mean() < 1.0
    assert np.percentile(difference, 99) <= 12


def test_a_swap_changes_only_the_face_of_the_head(
    portraits: dict[str, list[swaps.Portrait]],
) -> None:
    face, head = portraits["astronaut"][0], portraits["grace_hopper"][0]
    swapped = swaps.swap(face, head)
    changed = np.any(swapped != head.rgb, axis=2)
    rows, cols = np.nonzero(changed)
    left, top = head.landmarks.min(axis=0)
    right, bottom = head.landmarks.max(axis=0)
    margin = 0.15 * (right - left)
    assert cols.min() >= left - margin and cols.max() <= right + margin
    assert rows.min() >= top - margin and rows.max() <= bottom + margin
    assert changed.sum() > 0.5 * (right - left) * (bottom - top)


def test_every_swap_is_judged_as_one_face(
    portraits: dict[str, list[swaps.Portrait]],
    engine: DlibFaceEngine,
    strangers_on_politicians: dict[str, float | None],
) -> None:
    politicians_elsewhere = swap_distances(portraits, engine, politician_face=True)
    unseen = [
        n for n, d in {**strangers_on_politicians, **politicians_elsewhere}.items() if d is None
    ]
    assert unseen == []


def test_a_strangers_face_on_the_politicians_head_is_farther_than_the_politician(
    engine: DlibFaceEngine, strangers_on_politicians: dict[str, float | None]
) -> None:
    reference = see(samples.grace_hopper_jpeg(), CONFIG, engine).encoding
    genuine = see(samples.grace_hopper_variant(), CONFIG, engine).encoding
    assert reference is not None and genuine is not None
    genuine_distance = face_distances(genuine, reference[None, :])[0]
    assert all(
        d is not None and d > genuine_distance + 0.2 for d in strangers_on_politicians.values()
    )


@pytest.mark.xfail(
    strict=True,
    reason="issue 12: measured, crude swaps of a stranger's face onto the politician's own "
    "reference photo land at 0.57-0.64 here (docs/trust.md): 4 of 8 are approved at 0.6",
)
def test_no_strangers_face_on_the_politicians_head_is_approved_at_the_default_tolerance(
    strangers_on_politicians: dict[str, float | None],
) -> None:
    approved = {
        n: d for n, d in strangers_on_politicians.items() if d is not None and d <= TOLERANCE
    }
    assert approved == {}


def test_evaluate_swaps_judges_real_swaps_both_ways_and_labels_them_synthetic(
    engine: DlibFaceEngine, tmp_path: Path
) -> None:
    (tmp_path / "grace_hopper").mkdir()
    (tmp_path / "grace_hopper" / "portrait.jpg").write_bytes(samples.grace_hopper_jpeg())
    (tmp_path / "astronaut").mkdir()
    (tmp_path / "astronaut" / "portrait.png").write_bytes(samples.astronaut_png())
    report = evaluate_dir(
        tmp_path,
        encode_photo=make_photo_encoder(CONFIG, engine),
        mode="self",
        encode_swap=make_swap_encoder(CONFIG, engine),
    )
    for politician in report.politicians:
        for direction in SwapDirection:
            [swap] = politician.swaps_of(direction)
            assert swap.distance is not None and swap.distance > 0.3
    assert "synthetic face swaps" in render_text(report)
