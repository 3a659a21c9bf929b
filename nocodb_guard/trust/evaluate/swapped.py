"""``evaluate --swaps``: crude deepfakes of each politician, built from the photos at hand.

For each politician, every one of their photos (the reference photos in ``configured`` mode,
one photo per original in ``self`` mode) is swapped with one photo per original of every
other person, both ways (:class:`~.report.SwapDirection`), and each swap is judged as an
upload against the politician's references. The politician's own photos serve as the heads
on purpose: a forger starts from a published photo, maybe the very one used as a reference,
the worst case for the verdict. The swaps are synthetic (:mod:`nocodb_guard.trust.swaps`
says how crude) and are reported apart from the genuine and impostor photos.

Cost: one detection and encoding per swap, about 0.3-2 s each; N photos of the politician
and M originals of other people make 2 x N x M swaps per politician.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from nocodb_guard.errors import BadPicture
from nocodb_guard.faces.engine import FaceEngine
from nocodb_guard.faces.see import PipelineConfig, see
from nocodb_guard.trust import swaps
from nocodb_guard.trust.evaluate.diagnosis import Encoding
from nocodb_guard.trust.evaluate.photos import LabelledPhoto
from nocodb_guard.trust.evaluate.report import PoliticianResult, SwapComparison, SwapDirection

SwapEncoder = Callable[[Path, Path], Encoding | None]
"""(face photo, head photo) -> the encoding of the swap as an upload of it is seen; None
unless exactly one face is seen (or either photo holds no single usable face)."""


def make_swap_encoder(config: PipelineConfig, engine: FaceEngine) -> SwapEncoder:
    """A :data:`SwapEncoder` on the real face stack; each photo's landmarks found once."""
    portraits: dict[Path, swaps.Portrait | None] = {}

    def portrait_of(path: Path) -> swaps.Portrait | None:
        if path not in portraits:
            try:
                portraits[path] = swaps.portrait(path.name, path.read_bytes(), config, engine)
            except (OSError, BadPicture):
                portraits[path] = None
        return portraits[path]

    def encode(face: Path, head: Path) -> Encoding | None:
        face_portrait, head_portrait = portrait_of(face), portrait_of(head)
        if face_portrait is None or head_portrait is None:
            return None
        png = io.BytesIO()
        Image.fromarray(swaps.swap(face_portrait, head_portrait)).save(png, "PNG")
        try:
            return see(png.getvalue(), config, engine).encoding
        except BadPicture:
            return None

    return encode


def originals(photos: Sequence[LabelledPhoto], directory: Path) -> list[Path]:
    """One photo per source photo: copies of one original make no new swap."""
    seen: dict[str, LabelledPhoto] = {}
    for photo in photos:
        seen.setdefault(photo.source, photo)
    return [directory / photo.file for photo in seen.values()]


def add_swaps(
    result: PoliticianResult,
    own: Sequence[Path],
    strangers: Sequence[Path],
    references: Sequence[Encoding],
    encode_swap: SwapEncoder,
) -> None:
    """Swap each of ``own`` with each of ``strangers`` both ways, judged against ``references``."""
    if not own or not strangers or not references:
        result.notes.append("no synthetic swaps: no usable photo of the politician or of others")
        return
    refs = np.asarray(references)
    for mine in own:
        for other in strangers:
            for direction, face, head in (
                (SwapDirection.POLITICIAN_FACE, mine, other),
                (SwapDirection.STRANGER_FACE, other, mine),
            ):
                encoding = encode_swap(face, head)
                distance = None
                if encoding is not None:
                    distance = float(np.min(np.linalg.norm(refs - encoding, axis=1)))
                result.swaps.append(SwapComparison(direction, _name(face), _name(head), distance))


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
