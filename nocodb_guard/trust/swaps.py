"""Landmark face swaps: crude deepfake stand-ins for the accuracy tests and ``evaluate --swaps``.

The form exists for deepfakes of the politicians, and the verdict rests on one face distance:
how close a swapped face lands to the politician's references decides what is published and
what is deleted. No deepfake corpus can be shipped (licences, size), so swaps are built at run
time from photos already at hand, in both directions: the politician's face on someone else's
head (what the form is for), and a stranger's face on the politician's head (what must never
be approved: a stranger's face published under the politician's name).

The recipe is the classic landmark swap: the 68 dlib landmarks of both faces; the face's
pixels warped into the head's geometry by a thin-plate spline through the 68 point pairs (the
smooth version of the per-triangle affine warp of the OpenCV recipe, chosen because it needs
numpy only, no triangulation); the colours of the face matched to the head's (mean and spread
per channel inside the mask); a feathered mask on the convex hull of the head's landmarks
(jaw line to eyebrows); an alpha blend.

Limits: a crude stand-in. Real deepfakes (GAN or diffusion face swaps, re-enactment) blend
skin, light and pose far better and may keep more of the swapped-in identity; published work
(Korshunov & Marcel 2018) found recognisers accepting good swaps as the swapped-in person
85-95% of the time. Distances measured on these swaps show where the verdict's margins are,
not how a determined forger fares. Pixels stay in memory: nothing here writes anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from nocodb_guard.faces import images
from nocodb_guard.faces.engine import FaceEngine, landmarks_68, select_faces
from nocodb_guard.faces.see import PipelineConfig

Points = npt.NDArray[np.float64]
RGB = npt.NDArray[np.uint8]

#: Feathering of the mask's edge, as a fraction of the face's width: wide enough to hide the
#: seam, narrow enough that the blend keeps the swapped-in face's features.
FEATHER = 0.04


@dataclass(frozen=True)
class Portrait:
    """A picture holding one face, with that face's 68 landmarks: the raw material of a swap."""

    name: str
    rgb: RGB
    landmarks: Points


def portrait(name: str, data: bytes, config: PipelineConfig, engine: FaceEngine) -> Portrait | None:
    """The picture as the pipeline sees it, with its face's landmarks; None unless one face."""
    rgb = images.decode(data, max_pixels=config.max_pixels, max_side=config.max_side).rgb
    kept, _ = select_faces(
        engine.detect(rgb),
        config.min_face_px,
        config.min_face_ratio,
        lambda box: engine.confirm(rgb, box),
    )
    if len(kept) != 1:
        return None
    return Portrait(name, rgb, landmarks_68(rgb, kept[0]))


def swap(face: Portrait, head: Portrait) -> RGB:
    """``head``'s picture with ``face``'s face warped onto it, colour-matched and blended."""
    height, width = head.rgb.shape[:2]
    mask = _feathered_hull(head.landmarks, (width, height))
    rows, cols = np.nonzero(mask > 0)
    if not len(rows):  # landmarks entirely outside the picture: nothing to paste onto
        return head.rgb.copy()
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    ys, xs = np.mgrid[top:bottom, left:right]
    grid = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    source_xy = _thin_plate_spline(head.landmarks, face.landmarks, grid)
    warped = _bilinear(face.rgb, source_xy).reshape(bottom - top, right - left, 3)
    alpha = mask[top:bottom, left:right, None]
    region = head.rgb[top:bottom, left:right].astype(np.float64)
    warped = _match_colours(warped, region, alpha[..., 0] > 0.5)
    out = head.rgb.copy()
    blended = region * (1 - alpha) + warped * alpha
    out[top:bottom, left:right] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def _feathered_hull(points: Points, size: tuple[int, int]) -> npt.NDArray[np.float64]:
    """0..1 mask: the landmarks' convex hull, blurred so that its edge fades out."""
    hull = _convex_hull(points)
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon([(float(x), float(y)) for x, y in hull], fill=255)
    radius = max(1, round(FEATHER * float(np.ptp(points[:, 0]))))
    mask = mask.filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(mask, dtype=np.float64) / 255.0


def _convex_hull(points: Points) -> list[tuple[float, float]]:
    """Andrew's monotone chain: the hull's corners, counter-clockwise."""
    ordered = sorted({(float(x), float(y)) for x, y in points})

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(chain_points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        chain: list[tuple[float, float]] = []
        for point in chain_points:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], point) <= 0:
                chain.pop()
            chain.append(point)
        return chain[:-1]

    return half(ordered) + half(ordered[::-1])


def _thin_plate_spline(control: Points, target: Points, at: Points) -> Points:
    """The smooth map sending each ``control`` point to its ``target``, evaluated ``at``."""
    count = len(control)
    kernel = _tps_kernel(control, control) + 1e-6 * np.eye(count)
    affine = np.column_stack([np.ones(count), control])
    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = kernel
    system[:count, count:] = affine
    system[count:, :count] = affine.T
    values = np.vstack([target, np.zeros((3, 2))])
    weights = np.linalg.solve(system, values)
    basis = np.column_stack([_tps_kernel(at, control), np.ones(len(at)), at])
    mapped: Points = basis @ weights
    return mapped


def _tps_kernel(a: Points, b: Points) -> npt.NDArray[np.float64]:
    """The spline's radial basis r² log r² between every point of ``a`` and of ``b`` (0 at r=0)."""
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    values: npt.NDArray[np.float64] = squared * np.log(np.maximum(squared, 1e-12))
    return values


def _bilinear(rgb: RGB, xy: Points) -> npt.NDArray[np.float64]:
    """``rgb`` sampled at the (x, y) points (clamped to the picture), one RGB row per point."""
    height, width = rgb.shape[:2]
    x = np.clip(xy[:, 0], 0, width - 1.001)
    y = np.clip(xy[:, 1], 0, height - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    pixels = rgb.astype(np.float64)
    top = pixels[y0, x0] * (1 - fx) + pixels[y0, x0 + 1] * fx
    bottom = pixels[y0 + 1, x0] * (1 - fx) + pixels[y0 + 1, x0 + 1] * fx
    sampled: npt.NDArray[np.float64] = top * (1 - fy) + bottom * fy
    return sampled


def _match_colours(
    warped: npt.NDArray[np.float64], region: npt.NDArray[np.float64], inside: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """The warped face with the head's mean and spread per channel inside the mask."""
    if not inside.any():
        return warped
    face, skin = warped[inside], region[inside]
    scale = skin.std(axis=0) / np.maximum(face.std(axis=0), 1.0)
    matched: npt.NDArray[np.float64] = (warped - face.mean(axis=0)) * scale + skin.mean(axis=0)
    return matched
