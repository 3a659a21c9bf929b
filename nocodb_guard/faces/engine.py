"""Face detection and encoding: the only module that imports dlib and its models.

Everything else talks to a :class:`FaceEngine`, so that pure logic is tested without
dlib and the heavy loading (about 1 s: the models of :class:`Models`) happens once per process.

How many faces a picture holds (:func:`select_faces`)
-----------------------------------------------------
A picture must hold exactly one face, so a spurious detection is as harmful as a missed
one: it turns a legitimate one-face upload into "multiple faces", and that row is deleted.
dlib's HOG detector does produce such detections. On scikit-image's ``astronaut.png``
(512 px) at upsample 1 it reports, besides the face (91 px, score 1.16), the mission patch
on her suit as a "face" of the same size (90 px, score 0.12), so the size filters
(``min_face_px``, ``min_face_ratio``) cannot tell them apart.

The rule (sizes in the upload's own pixels, see :mod:`~nocodb_guard.faces.scan`):
detections smaller than ``min_face_ratio`` times the largest one are background; of the
rest, the one the detector is most sure of is a face, and **every further one counts only
when a second, independent detector confirms it**: dlib's CNN face detector (shipped with
face_recognition_models) run on a crop around the candidate (the box plus half its width
on each side, scaled so the face is about 100 px wide). Only pictures where HOG sees
several faces pay for it: about 0.1-0.5 s per extra candidate on one core. Then, and only
then, size: two or more confirmed faces are several faces whatever their size (eight
faces of 35 px are a group photo, not "a face too small"); a lone face smaller than
``min_face_px`` is too small to judge. (Before, detections under ``min_face_px`` were
dropped first, which turned a group of small faces into "the only face is too small".)
The measurements below were made at upsample 1 on pictures of at most 1024 px.

Measured at 1024 px longest side (pictures smaller than that as they are), HOG upsample 1,
face_recognition 1.3.0, dlib 20.0, and again with each picture rescaled to 400-1024 px:

- The CNN on the crop confirms every real face HOG finds: all faces of the 23 single-person
  photos of ``shared/faces`` (partial faces at the edge included), of ``groups/`` including
  the child in the background of ``obama_and_biden.jpg`` (HOG score 0.32), grace_hopper,
  astronaut and the grace_hopper+astronaut pair, with confidence 1.03 to 1.12 where
  recorded (groups, pair, astronaut, at every size). It finds nothing on any spurious HOG
  detection (the astronaut's patch at every size, the patch in the pair, low-scoring boxes
  on clothing and backgrounds), and it also finds the cameraman of ``camera.png`` (1.11)
  that HOG misses.
  That margin is why this rule was chosen.
- Rejected alternatives, by measurement:

  * a threshold on the HOG score: spurious up to 0.15 (astronaut at 400 px), the real child
    in ``obama_and_biden.jpg`` down to 0.32 (1024 px); a 0.1 margin on each side, too thin
    for faces in the background of uploads.
  * requiring an extra face found at upsample 1 to be found at upsample 0 too: the child
    scores 0.15 (1024 px) and 0.01 (800 px) at upsample 0, and the astronaut's patch at
    400 px is found at both (0.08 and 0.03).
  * landmark plausibility: the 68-point predictor draws a face-shaped layout on anything;
    the inter-ocular distance over box width is 0.31-0.50 on real faces and 0.32-0.49 on
    spurious ones.

Result with the rule: grace_hopper 1, astronaut 1, chelsea (cat) 0, every single-person
photo of ``shared/faces`` 1, ``groups/`` 2, 3 and 2, grace_hopper+astronaut side by side 2.

Timing (one core of a 2-core machine, the 26 photos of ``shared/faces`` at <= 1024 px,
median / max per photo): detection with selection at upsample 0: 0.06 / 0.55 s, at
upsample 1: 0.25 / 0.82 s (the max is a group photo paying for CNN second opinions);
encoding one known face: 0.10 s; detect+encode: 0.16 / 0.66 s at upsample 0, 0.35 / 0.93 s
at upsample 1; all 26: 5.1 s vs 9.6 s (twice that when the machine is busy). Both upsample
0 and 1 count every picture above right; 1 is the default because it also finds faces of
40-80 px. Loading the models: about 1 s. The CNN detector on a whole 1024 px picture takes
3-8 s at upsample 0 and 13-48 s at upsample 1, so ``model="cnn"`` is only for operators who
accept that.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from nocodb_guard.errors import FaceStackError
from nocodb_guard.faces.cpu import require_avx
from nocodb_guard.models import FaceBox, Ignored

#: The smallest face box dlib's HOG detector reports without upsampling, in pixels of the
#: picture it searches (its boxes step by 1.2: 72, 86, 103, 124, ... measured on
#: ``shared/faces``); each upsampling pass halves it. Smaller faces are not found, so
#: :mod:`~nocodb_guard.faces.scan` enlarges the picture where they matter.
REACH_PX = 72

#: Half the face width added on each side of a candidate before the CNN looks at it: enough
#: context for the CNN, small enough to stay fast (measured: 0.25 and 1.0 give the same
#: verdicts, 1.0 is 2-3x slower).
CONFIRM_MARGIN = 0.5
#: Face width the crop is scaled to for the CNN, whose smallest face at upsample 0 is about
#: 80 px. At 80 px the child of obama_and_biden.jpg scored 0.53-0.84, at 100 px 0.99-1.10.
CONFIRM_FACE_PX = 100

#: The dlib models are loaded once per process (:func:`load_models`) and shared by every
#: engine, and dlib's encoder is not thread-safe: the reference store and an in-process
#: analyser may run at the same time, so every dlib call of this module holds this lock.
#: (Worker processes each have their own models; the lock costs them nothing.)
_DLIB_LOCK = threading.Lock()

FIX_HINT = (
    "fix the venv: pip install 'setuptools<81' dlib-bin face_recognition_models "
    "&& pip install --no-deps face_recognition==1.3.0 (or run scripts/bootstrap)"
)


@dataclass(frozen=True)
class Detection:
    """A face candidate: its box and how sure the detector is.

    ``score`` is HOG's SVM margin (0 is the detection threshold; real faces score about
    0.3 to 3) or the CNN's confidence (about 1 for a face). Only the order matters here.
    """

    box: FaceBox
    score: float


class FaceEngine(Protocol):
    """What the pipeline needs from a face library."""

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        """Every face candidate, in the coordinates of ``rgb``."""
        ...

    def confirm(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> bool:
        """A second opinion: is there really a face at ``box``?"""
        ...

    def encode(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        """The 128-d encoding of the face at ``box`` (never re-detects)."""
        ...


def unload_models() -> None:
    """Forget the loaded models; they are freed once no engine holds them any more."""
    load_models.cache_clear()


def select_faces(
    detections: Sequence[Detection],
    min_face_px: int,
    min_face_ratio: float,
    confirm: Callable[[FaceBox], bool] | None = None,
) -> tuple[list[FaceBox], list[tuple[FaceBox, Ignored]]]:
    """Split detections into (kept, ignored with why); see the module docstring for the rule.

    Boxes are in the upload's own pixels, so ``min_face_px`` means the same at every
    scale. ``kept`` is ordered by score, the surest face first. ``confirm`` is asked only
    about candidates after the first (None: every candidate counts). Size decides which
    detections are background (``min_face_ratio`` of the largest), never whether there
    are several faces: a group of small faces is a group. Only a lone face below
    ``min_face_px`` is "too small to judge" (``([], [(box, TOO_SMALL), ...])``).
    """
    if not detections:
        return [], []
    largest = max(d.box.size for d in detections)
    ignored = [
        (d.box, Ignored.BACKGROUND) for d in detections if d.box.size < min_face_ratio * largest
    ]
    candidates = sorted(
        (d for d in detections if d.box.size >= min_face_ratio * largest),
        key=lambda d: d.score,
        reverse=True,
    )
    kept = [candidates[0].box]
    for extra in candidates[1:]:
        if confirm is None or confirm(extra.box):
            kept.append(extra.box)
        else:
            ignored.append((extra.box, Ignored.NOT_CONFIRMED))
    if len(kept) == 1 and kept[0].size < min_face_px:
        return [], [(kept[0], Ignored.TOO_SMALL), *ignored]
    return kept, ignored


def face_distances(
    encoding: npt.NDArray[np.float64], references: npt.NDArray[np.float64]
) -> list[float]:
    """Euclidean distance of one encoding to each reference encoding."""
    return [float(d) for d in np.linalg.norm(references - encoding, axis=1)]


@dataclass(frozen=True)
class Models:
    """The dlib models a verdict needs, and nothing else.

    face_recognition's ``api`` module loads five models when it is imported, among them the
    68-point landmark predictor (a 100 MB file, about 85 MiB resident) that no verdict uses:
    face_recognition encodes with the 5-point one. Every face worker paid for it. These are
    loaded from face_recognition_models' files directly: 155 MiB -> 70 MiB per process
    (measured with /proc/self/status after loading, dlib 20.0).
    """

    dlib: ModuleType
    hog: Any
    cnn: Any
    landmarks_5: Any
    encoder: Any


@functools.cache
def load_models() -> Models:
    """Load the models, turning a broken face stack into :class:`FaceStackError`.

    face_recognition_models needs pkg_resources (gone in setuptools 81); dlib needs AVX.
    """
    require_avx()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # face_recognition_models imports pkg_resources, deprecated but pinned on purpose
            # (setuptools<81): the warning would print once per worker process.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            dlib = importlib.import_module("dlib")
            files = importlib.import_module("face_recognition_models")
    except ImportError as exc:
        raise FaceStackError(f"cannot import dlib / its models ({exc}): {FIX_HINT}") from exc
    try:
        return Models(
            dlib=dlib,
            hog=dlib.get_frontal_face_detector(),
            cnn=dlib.cnn_face_detection_model_v1(files.cnn_face_detector_model_location()),
            landmarks_5=dlib.shape_predictor(files.pose_predictor_five_point_model_location()),
            encoder=dlib.face_recognition_model_v1(files.face_recognition_model_location()),
        )
    except RuntimeError as exc:  # dlib's "Unable to open ..." for a missing model file
        raise FaceStackError(f"cannot load dlib's models ({exc}): {FIX_HINT}") from exc


def as_dlib_image(rgb: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """dlib only accepts C-contiguous uint8 HxWx3 arrays (else a cryptic TypeError)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _box_from_rect(rect: Any, height: int, width: int) -> FaceBox:
    """dlib rectangle -> FaceBox, clipped to the picture (faces cut by the edge)."""
    return FaceBox(
        top=max(int(rect.top()), 0),
        right=min(int(rect.right()), width),
        bottom=min(int(rect.bottom()), height),
        left=max(int(rect.left()), 0),
    )


class DlibFaceEngine:
    """dlib (face_recognition's models and recipe) behind :class:`FaceEngine`.

    ``model``: ``hog`` (default; fast, frontal faces) or ``cnn`` (dlib's MMOD CNN: more
    poses, but 10-100x slower on a CPU). ``upsample``: how many times the picture is
    doubled before detection; at 1 HOG finds faces down to about 40 px. ``num_jitters``:
    re-sampling passes of the encoder (higher is slower and slightly more stable).
    Calls are serialised per process (see ``_DLIB_LOCK``): threads may share engines but
    gain no parallelism; use worker processes for that.
    """

    def __init__(
        self, model: Literal["hog", "cnn"] | str = "hog", upsample: int = 1, num_jitters: int = 1
    ) -> None:
        if model not in ("hog", "cnn"):
            raise ValueError(f"model must be 'hog' or 'cnn', not {model!r}")
        if upsample < 0 or num_jitters < 1:
            raise ValueError("upsample must be >= 0 and num_jitters >= 1")
        self._models = load_models()
        self._hog = self._models.hog
        self._cnn = self._models.cnn
        self.model = model
        self.upsample = upsample
        self.num_jitters = num_jitters

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        image = as_dlib_image(rgb)
        height, width = image.shape[:2]
        if self.model == "cnn":
            with _DLIB_LOCK:
                found = self._cnn(image, self.upsample)
            return [
                Detection(_box_from_rect(d.rect, height, width), float(d.confidence)) for d in found
            ]
        with _DLIB_LOCK:
            rects, scores, _kinds = self._hog.run(image, self.upsample, 0.0)
        return [
            Detection(_box_from_rect(rect, height, width), float(score))
            for rect, score in zip(rects, scores, strict=True)
        ]

    def confirm(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> bool:
        """Ask the CNN about a crop around ``box``; with ``model="cnn"`` it already did."""
        if self.model == "cnn":
            return True
        crop, (center_x, center_y) = _crop_for_confirmation(as_dlib_image(rgb), box)
        with _DLIB_LOCK:
            found = self._cnn(crop, 0)
        return any(
            d.rect.left() <= center_x <= d.rect.right()
            and d.rect.top() <= center_y <= d.rect.bottom()
            for d in found
        )

    def encode(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        """face_recognition's ``face_encodings`` for one known box, without its api module."""
        image = as_dlib_image(rgb)
        models = self._models
        rect = models.dlib.rectangle(box.left, box.top, box.right, box.bottom)
        with _DLIB_LOCK:
            shape = models.landmarks_5(image, rect)
            encoding = models.encoder.compute_face_descriptor(image, shape, self.num_jitters)
        return np.asarray(encoding, dtype=np.float64)


def _crop_for_confirmation(
    image: npt.NDArray[np.uint8], box: FaceBox
) -> tuple[npt.NDArray[np.uint8], tuple[float, float]]:
    """The box plus a margin, scaled to a ~100 px face; and the box centre in the crop."""
    height, width = image.shape[:2]
    side = max(box.size, 1)
    margin = int(side * CONFIRM_MARGIN)
    left, top = max(box.left - margin, 0), max(box.top - margin, 0)
    right, bottom = min(box.right + margin, width), min(box.bottom + margin, height)
    scale = CONFIRM_FACE_PX / side
    crop = Image.fromarray(image[top:bottom, left:right])
    size = (max(round(crop.width * scale), 1), max(round(crop.height * scale), 1))
    resized = np.ascontiguousarray(np.asarray(crop.resize(size, Image.Resampling.LANCZOS)))
    center = (
        ((box.left + box.right) / 2 - left) * scale,
        ((box.top + box.bottom) / 2 - top) * scale,
    )
    return resized, center


#: dlib's 68-point landmark model once :func:`landmarks_68` has loaded it (about 100 MB).
_LANDMARK_MODEL: list[Any] = []


def landmarks_68(rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
    """The 68 (x, y) landmarks (iBUG 300-W order) of the face at ``box``, as a 68x2 array.

    Only the synthetic face swaps (:mod:`nocodb_guard.trust.swaps`: tests and
    ``evaluate --swaps``) need them, never a verdict: the model is loaded here, on the first
    call, so that the daemon and its workers never load it.
    """
    models = load_models()
    image = as_dlib_image(rgb)
    with _DLIB_LOCK:
        if not _LANDMARK_MODEL:
            files = importlib.import_module("face_recognition_models")
            location = files.pose_predictor_model_location()
            _LANDMARK_MODEL.append(models.dlib.shape_predictor(location))
        rect = models.dlib.rectangle(box.left, box.top, box.right, box.bottom)
        shape = _LANDMARK_MODEL[0](image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
