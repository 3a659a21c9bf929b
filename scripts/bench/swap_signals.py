#!/usr/bin/env python3
"""Why no second signal stops strangers' face swaps: the measurements behind docs/trust.md.

    $VENV/bin/python scripts/bench/swap_signals.py     # about 5-8 minutes on 2 cores

A stranger's face swapped onto a politician's photo can land within the tolerance of the
politician (docs/trust.md, "Crude deepfakes"). Two ideas for a second signal are measured
here, on every single-face photo of ../shared/faces and every landmark swap between two
people's original photos (both ways, as ``evaluate --self --swaps`` builds them):

1. **the inner face alone**: the 150 px chip dlib aligns and encodes, encoded again with
   everything outside an ellipse around eyes, nose and mouth replaced (by the chip's mean
   colour, with a hard or a feathered edge, or by a blur). Printed: the largest masked
   distance between genuine photos against the smallest of the strangers' swaps that the
   whole face approves at 0.6, and what a threshold just above the genuine ones would do;
2. **reusing the reference photo**: each stranger's swap judged against the politician's
   *other* photos instead of its own head photo (would refusing edited reference photos
   remove the risk?).

Each chip is taken once, exactly as an upload's face would be encoded: :class:`ChipEngine`
hands back the aligned chip in place of the encoding, so :func:`see` chooses the view and
the box as it does for an upload. Pixels and encodings stay in memory.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from benchlib import FACES, machine_line
from PIL import Image, ImageFilter

from nocodb_guard import samples
from nocodb_guard.faces.engine import DlibFaceEngine, as_dlib_image, load_models
from nocodb_guard.faces.see import PipelineConfig, see
from nocodb_guard.models import FaceBox
from nocodb_guard.trust import swaps

CONFIG = PipelineConfig()
TOLERANCE = 0.6
Chip = npt.NDArray[np.uint8]
Vectors = npt.NDArray[np.float64]


class ChipEngine(DlibFaceEngine):
    """dlib's engine whose "encoding" is the aligned 150 px chip the encoder would see."""

    def encode(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        image = as_dlib_image(rgb)
        dlib = self._models.dlib
        rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
        shape = self._models.landmarks_5(image, rect)
        chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
        return np.asarray(chip, dtype=np.float64)


@dataclass(frozen=True)
class Face:
    """One chip: a photo of ``person``, or a swap onto the head photo at index ``head``."""

    kind: str  # "photo", "stranger" (a stranger's face on the head), "politician"
    person: str
    original: str
    head: int = -1


def photo_files() -> dict[str, list[tuple[str, str]]]:
    """Per person, (original photo, file) of every single-face file (whole faces only)."""
    found: dict[str, list[tuple[str, str]]] = {}
    with (FACES / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["faces"] == "1" and "partial" not in row["file"]:
                found.setdefault(row["persons"], []).append((row["source_photo"], row["file"]))
    return found


def chips(engine: ChipEngine) -> Iterator[tuple[Face, Chip]]:
    """Every photo's chip, then every swap between two people's original photos.

    The head of a swap is the first file of an original photo, and a swap's ``head`` is
    the index of that file's chip: what ``evaluate --self --swaps`` judges it against.
    """

    def chip_of(data: bytes) -> Chip | None:
        sight = see(data, CONFIG, engine)
        return None if sight.encoding is None else sight.encoding.astype(np.uint8)

    heads: dict[tuple[str, str], tuple[int, swaps.Portrait | None]] = {}
    index = 0
    for person, files in photo_files().items():
        for original, name in files:
            data = (FACES / name).read_bytes()
            chip = chip_of(data)
            if chip is None:
                continue
            if (person, original) not in heads:
                heads[(person, original)] = (index, swaps.portrait(name, data, CONFIG, engine))
            index += 1
            yield Face("photo", person, original), chip
    for (person, original), (head_index, head) in heads.items():
        for (other, _), (_, face) in heads.items():
            if other == person or head is None or face is None:
                continue
            for kind, picture in (
                ("stranger", swaps.swap(face, head)),
                ("politician", swaps.swap(head, face)),
            ):
                chip = chip_of(samples.encode(Image.fromarray(picture), "PNG"))
                if chip is not None:
                    yield Face(kind, person, original, head_index), chip


def ellipse(feather: float) -> npt.NDArray[np.float64]:
    """0..1 weight of the inner face in a 150 px chip (eyes to chin, cheek to cheek)."""
    ys, xs = np.mgrid[0:150, 0:150]
    radius = np.sqrt(((xs - 75) / 45) ** 2 + ((ys - 80) / 55) ** 2)
    if not feather:
        return (radius <= 1).astype(np.float64)[..., None]
    return np.clip((1 + feather - radius) / feather, 0, 1)[..., None]


def masked(
    weight: npt.NDArray[np.float64], outside: Callable[[Chip], Vectors]
) -> Callable[[Chip], Chip]:
    def variant(chip: Chip) -> Chip:
        blended = chip * weight + outside(chip) * (1 - weight)
        return np.clip(blended, 0, 255).astype(np.uint8)

    return variant


def mean_colour(chip: Chip) -> Vectors:
    return np.broadcast_to(chip.reshape(-1, 3).mean(axis=0), chip.shape).astype(np.float64)


def blurred(chip: Chip) -> Vectors:
    return np.asarray(Image.fromarray(chip).filter(ImageFilter.GaussianBlur(8)), np.float64)


VARIANTS: dict[str, Callable[[Chip], Chip]] = {
    "mean colour, hard edge": masked(ellipse(0), mean_colour),
    "mean colour, feathered": masked(ellipse(0.15), mean_colour),
    "blur, feathered": masked(ellipse(0.15), blurred),
}


def encode_all(chips: list[Chip], variant: Callable[[Chip], Chip] | None = None) -> Vectors:
    encoder = load_models().encoder
    return np.array(
        [
            np.asarray(
                encoder.compute_face_descriptor(
                    np.ascontiguousarray(chip if variant is None else variant(chip))
                )
            )
            for chip in chips
        ]
    )


def genuine_pairs(faces: list[Face]) -> list[tuple[int, int]]:
    """Photos of the same person from different original photos."""
    photos = [(i, f) for i, f in enumerate(faces) if f.kind == "photo"]
    return [
        (i, j)
        for (i, a), (j, b) in itertools.combinations(photos, 2)
        if a.person == b.person and a.original != b.original
    ]


def distance(vectors: Vectors, i: int, j: int) -> float:
    return float(np.linalg.norm(vectors[i] - vectors[j]))


def inner_face(faces: list[Face], whole: Vectors, variant: Vectors, name: str) -> None:
    """Idea 1: can a masked distance tell the approved strangers' swaps from genuine photos?"""
    genuine = [distance(variant, i, j) for i, j in genuine_pairs(faces)]
    strangers = [(i, f.head) for i, f in enumerate(faces) if f.kind == "stranger"]
    approved = [distance(variant, i, h) for i, h in strangers if distance(whole, i, h) <= TOLERANCE]
    deepfakes = [(i, f.head) for i, f in enumerate(faces) if f.kind == "politician"]
    kept = [distance(variant, i, h) for i, h in deepfakes if distance(whole, i, h) <= TOLERANCE]
    threshold = max(genuine) + 0.005
    print(
        f"  {name}: genuine photos up to {max(genuine):.3f} ({len(genuine)} pairs); "
        f"approved strangers' swaps from {min(approved):.3f} ({len(approved)})"
    )
    print(
        f"    a second threshold at {threshold:.3f}: strangers' swaps still approved "
        f"{sum(d <= threshold for d in approved)} of {len(approved)}, deepfakes of the "
        f"politician still approved {sum(d <= threshold for d in kept)} of {len(kept)}"
    )


def other_photos(faces: list[Face], whole: Vectors) -> None:
    """Idea 2: judged against the politician's other photos, are strangers' swaps refused?"""
    photos = [(i, f) for i, f in enumerate(faces) if f.kind == "photo"]
    own, nearest_other = [], []
    for i, face in enumerate(faces):
        if face.kind != "stranger":
            continue
        own.append(distance(whole, i, face.head))
        others = [
            distance(whole, i, j)
            for j, p in photos
            if p.person == face.person and p.original != face.original
        ]
        if others:
            nearest_other.append(min(others))
    print(
        f"  against the head's own photo: {sum(d <= TOLERANCE for d in own)} of {len(own)} "
        f"approved (lowest {min(own):.3f})"
    )
    print(
        f"  against the nearest other photo of the politician: "
        f"{sum(d <= TOLERANCE for d in nearest_other)} of {len(nearest_other)} approved "
        f"(lowest {min(nearest_other):.3f})"
    )


def main() -> None:
    print(machine_line())
    found = list(chips(ChipEngine()))
    faces, pictures = [f for f, _ in found], [c for _, c in found]
    kinds = {k: sum(f.kind == k for f in faces) for k in ("photo", "stranger", "politician")}
    print(
        f"{kinds['photo']} photos, {kinds['stranger']} strangers' swaps, "
        f"{kinds['politician']} swaps of the politician's face (whole-face tolerance "
        f"{TOLERANCE})"
    )
    whole = encode_all(pictures)
    print("1. the inner face alone (the chip masked outside an ellipse):")
    for name, variant in VARIANTS.items():
        inner_face(faces, whole, encode_all(pictures, variant), name)
    print("2. the politician's other photos as the reference:")
    other_photos(faces, whole)


if __name__ == "__main__":
    main()
