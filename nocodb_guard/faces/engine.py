"""Face detection and encoding: the only module that imports face_recognition / dlib.

Everything else talks to a :class:`FaceEngine`, so that pure logic is tested without
dlib and the heavy import (about 1 s: four models are loaded) happens once per process.

How many faces a picture holds (:func:`select_faces`)
-----------------------------------------------------
A picture must hold exactly one face, so a spurious detection is as harmful as a missed
one: it turns a legitimate one-face upload into "multiple faces", and that row is deleted.
dlib's HOG detector does produce such detections. On scikit-image's ``astronaut.png``
(512 px) at upsample 1 it reports, besides the face (91 px, score 1.16), the mission patch
on her suit as a "face" of the same size (90 px, score 0.12), so the size filters
(``min_face_px``, ``min_face_ratio``) cannot tell them apart.

The rule: detections smaller than ``min_face_px`` are too small to judge; detections
smaller than ``min_face_ratio`` times the largest one are background; of the rest, the one
the detector is most sure of is a face, and **every further one counts only when a second,
independent detector confirms it**: dlib's CNN face detector (shipped with
face_recognition_models) run on a crop around the candidate (the box plus half its width
on each side, scaled so the face is about 100 px wide). Only pictures where HOG sees
several faces pay for it: about 0.1-0.5 s per extra candidate on one core.

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
import importlib
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile

from nocodb_guard.errors import FaceStackError
from nocodb_guard.models import FaceBox

#: Half the face width added on each side of a candidate before the CNN looks at it: enough
#: context for the CNN, small enough to stay fast (measured: 0.25 and 1.0 give the same
#: verdicts, 1.0 is 2-3x slower).
CONFIRM_MARGIN = 0.5
#: Face width the crop is scaled to for the CNN, whose smallest face at upsample 0 is about
#: 80 px. At 80 px the child of obama_and_biden.jpg scored 0.53-0.84, at 100 px 0.99-1.10.
CONFIRM_FACE_PX = 100

#: face_recognition keeps its dlib models in module globals, shared by every engine of a
#: process, and dlib's encoder is not thread-safe: the reference store and an in-process
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


def select_faces(
    detections: Sequence[Detection],
    min_face_px: int,
    min_face_ratio: float,
    confirm: Callable[[FaceBox], bool] | None = None,
) -> tuple[list[FaceBox], list[FaceBox]]:
    """Split detections into (kept, ignored); see the module docstring for the rule.

    ``kept`` is ordered by score, the surest face first. ``confirm`` is asked only about
    candidates after the first (None: every candidate counts). A picture whose
    detections are all below ``min_face_px`` yields ``([], everything)``: "too small to
    judge", not "no face".
    """
    big = [d for d in detections if d.box.size >= min_face_px]
    ignored = [d.box for d in detections if d.box.size < min_face_px]
    if not big:
        return [], ignored
    largest = max(d.box.size for d in big)
    candidates: list[Detection] = []
    for detection in big:
        if detection.box.size >= min_face_ratio * largest:
            candidates.append(detection)
        else:
            ignored.append(detection.box)
    candidates.sort(key=lambda d: d.score, reverse=True)
    kept = [candidates[0].box]
    for extra in candidates[1:]:
        if confirm is None or confirm(extra.box):
            kept.append(extra.box)
        else:
            ignored.append(extra.box)
    return kept, ignored


def find_faces(
    engine: FaceEngine, rgb: npt.NDArray[np.uint8], min_face_px: int, min_face_ratio: float
) -> tuple[list[FaceBox], list[FaceBox]]:
    """Detect and select with the engine's second opinion: what every caller should use."""
    detections = engine.detect(rgb)
    return select_faces(
        detections, min_face_px, min_face_ratio, confirm=lambda box: engine.confirm(rgb, box)
    )


def face_distances(
    encoding: npt.NDArray[np.float64], references: npt.NDArray[np.float64]
) -> list[float]:
    """Euclidean distance of one encoding to each reference encoding."""
    return [float(d) for d in np.linalg.norm(references - encoding, axis=1)]


CPUINFO = Path("/proc/cpuinfo")


def require_avx(cpuinfo: Path | None = None) -> None:
    """:class:`FaceStackError` on a CPU without AVX, before dlib is imported.

    The ``dlib-bin`` wheel is built for AVX: on an older CPU (or a VM that hides the flag)
    importing it kills the process with SIGILL, with no message at all. Where
    ``/proc/cpuinfo`` cannot be read (not Linux), nothing is checked.
    """
    try:
        text = (cpuinfo or CPUINFO).read_text(encoding="ascii", errors="replace")
    except OSError:
        return
    flags = {
        flag
        for line in text.splitlines()
        if line.startswith("flags")
        for flag in line.partition(":")[2].split()
    }
    if flags and "avx" not in flags:
        raise FaceStackError(
            "this CPU has no AVX, which the installed dlib (the dlib-bin wheel) needs: it "
            "would die with SIGILL. Run on a CPU with AVX, or build dlib from source "
            "(pip install dlib) for this CPU."
        )


def import_face_recognition() -> ModuleType:
    """Import face_recognition, turning its ``quit()`` into :class:`FaceStackError`.

    face_recognition calls ``quit()`` (SystemExit with status 0!) when
    face_recognition_models, or the pkg_resources it needs (gone in setuptools 81), cannot
    be imported: a service would stop silently and "successfully". It also sets
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` for the whole process, which would let
    half-downloaded uploads decode as grey-padded pictures; that is undone here.
    """
    require_avx()
    try:
        # Its "Please install face_recognition_models" goes to stderr, never into the
        # stdout of a ``--json`` command.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # face_recognition_models imports pkg_resources, deprecated but pinned on purpose
            # (setuptools<81): the warning would print once per worker process.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            module = importlib.import_module("face_recognition")
    except SystemExit as exc:
        raise FaceStackError(
            "face_recognition cannot load its models (face_recognition_models or "
            f"pkg_resources missing): {FIX_HINT}"
        ) from exc
    except ImportError as exc:
        raise FaceStackError(f"cannot import face_recognition / dlib ({exc}): {FIX_HINT}") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    return module


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
    """face_recognition / dlib behind :class:`FaceEngine`.

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
        self._fr = import_face_recognition()
        api = self._fr.api
        self._hog = api.face_detector
        self._cnn = api.cnn_face_detector
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
        image = as_dlib_image(rgb)
        with _DLIB_LOCK:
            encodings = self._fr.face_encodings(
                image, known_face_locations=[box.as_css()], num_jitters=self.num_jitters
            )
        return np.asarray(encodings[0], dtype=np.float64)


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
    import importlib.util  # noqa: PLC0415 - dlib's landmark model serves face swaps only

    require_avx()
    import dlib  # noqa: PLC0415

    image = as_dlib_image(rgb)
    with _DLIB_LOCK:
        if not _LANDMARK_MODEL:
            spec = importlib.util.find_spec("face_recognition_models")
            if spec is None or not spec.submodule_search_locations:
                raise FaceStackError(f"face_recognition_models is not installed: {FIX_HINT}")
            folder = Path(next(iter(spec.submodule_search_locations)), "models")
            model = folder / "shape_predictor_68_face_landmarks.dat"
            _LANDMARK_MODEL.append(dlib.shape_predictor(str(model)))
        rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
        shape = _LANDMARK_MODEL[0](image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
