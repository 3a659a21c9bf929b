"""Calibration statistics: how well a tolerance separates genuine faces from impostors.

Pure functions, no I/O: :mod:`nocodb_guard.trust.evaluate` feeds them distances measured on an
admin's labelled photos, and the CLI prints what they return.

Convention (the same as :func:`nocodb_guard.policy.decide` and face_recognition's
``compare_faces``): a face *matches* when ``distance <= tolerance``. So

- a **false approval** is an impostor distance ``<= tolerance`` (the wrong person accepted);
- a **false rejection** is a genuine distance ``> tolerance`` (the right person deleted).

False approvals are the worse error here: they put a stranger's face on the campaign site,
while a false rejection only costs one visitor a retry. :func:`suggest_tolerance` weighs them
accordingly when the two distributions overlap.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

#: Tolerances shown in the "tolerance vs errors" table by default.
DEFAULT_TABLE_TOLERANCES: tuple[float, ...] = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)

#: How much worse one false approval is than one false rejection, when errors are unavoidable.
FALSE_APPROVAL_WEIGHT = 10.0

#: Two faces further apart than this are different people (face_recognition's own default).
SAME_PERSON_DISTANCE = 0.6


@dataclass(frozen=True)
class ToleranceRow:
    """Errors one tolerance would make on the measured distances."""

    tolerance: float
    false_approvals: int
    false_rejections: int


@dataclass(frozen=True)
class Suggestion:
    """A tolerance drawn from the measurements, and how much room it leaves.

    ``margin`` is half the gap between the largest genuine and the smallest impostor
    distance: how far either distribution may drift before the suggestion errs. It is
    negative when they overlap (``separable`` is False), and None when one side is empty.
    """

    tolerance: float | None
    margin: float | None
    max_genuine: float | None
    min_impostor: float | None
    separable: bool
    note: str


def false_approvals(impostor: Iterable[float], tolerance: float) -> int:
    """Impostor distances the tolerance would accept."""
    return sum(1 for distance in impostor if distance <= tolerance)


def false_rejections(genuine: Iterable[float], tolerance: float) -> int:
    """Genuine distances the tolerance would reject."""
    return sum(1 for distance in genuine if distance > tolerance)


def tolerance_table(
    genuine: Sequence[float],
    impostor: Sequence[float],
    tolerances: Iterable[float] = DEFAULT_TABLE_TOLERANCES,
) -> list[ToleranceRow]:
    """One row per tolerance, in the order given."""
    return [
        ToleranceRow(t, false_approvals(impostor, t), false_rejections(genuine, t))
        for t in tolerances
    ]


def suggest_tolerance(
    genuine: Sequence[float],
    impostor: Sequence[float],
    *,
    false_approval_weight: float = FALSE_APPROVAL_WEIGHT,
) -> Suggestion:
    """The midpoint of the gap when there is one; else the least costly tolerance, said so."""
    max_genuine = max(genuine) if genuine else None
    min_impostor = min(impostor) if impostor else None
    if max_genuine is None or min_impostor is None:
        return _one_sided(max_genuine, min_impostor)
    margin = (min_impostor - max_genuine) / 2
    if max_genuine < min_impostor:
        return Suggestion(
            tolerance=max_genuine + margin,
            margin=margin,
            max_genuine=max_genuine,
            min_impostor=min_impostor,
            separable=True,
            note=(
                f"separable: largest genuine distance {max_genuine:.3f}, smallest impostor "
                f"distance {min_impostor:.3f}; the midpoint leaves a margin of {margin:.3f}"
            ),
        )
    tolerance = _least_costly(genuine, impostor, false_approval_weight)
    fa, fr = false_approvals(impostor, tolerance), false_rejections(genuine, tolerance)
    return Suggestion(
        tolerance=tolerance,
        margin=margin,
        max_genuine=max_genuine,
        min_impostor=min_impostor,
        separable=False,
        note=(
            f"NOT separable: genuine distances reach {max_genuine:.3f} but an impostor is at "
            f"{min_impostor:.3f}; no tolerance is error-free. The least costly one (a false "
            f"approval weighs {false_approval_weight:g} false rejections) makes {fa} false "
            f"approval(s) and {fr} false rejection(s)"
        ),
    )


def _one_sided(max_genuine: float | None, min_impostor: float | None) -> Suggestion:
    """Without both distributions there is no gap to split: report the bound we have."""
    if max_genuine is None and min_impostor is None:
        note = "no comparisons: nothing to suggest"
    elif max_genuine is None:
        note = (
            f"no genuine comparisons (one source photo only?): a tolerance below "
            f"{min_impostor:.3f} makes no false approval, but nothing says how high genuine "
            f"distances go"
        )
    else:
        note = (
            f"no impostor comparisons: a tolerance of at least {max_genuine:.3f} makes no "
            f"false rejection, but nothing says how close impostors come"
        )
    return Suggestion(None, None, max_genuine, min_impostor, separable=False, note=note)


def _least_costly(
    genuine: Sequence[float], impostor: Sequence[float], false_approval_weight: float
) -> float:
    """Try a tolerance between every two neighbouring distances; ties go to the stricter one."""
    values = sorted(set(genuine) | set(impostor))
    candidates = [values[0] / 2, *((a + b) / 2 for a, b in itertools.pairwise(values))]
    candidates.append(values[-1] + 0.01)

    def cost(tolerance: float) -> tuple[float, float]:
        fa = false_approvals(impostor, tolerance)
        fr = false_rejections(genuine, tolerance)
        return (false_approval_weight * fa + fr, tolerance)

    return min(candidates, key=cost)


# --- reference diagnosis ---------------------------------------------------------------------


class FindingKind(StrEnum):
    """What looks wrong with the reference photos. Values appear in JSON output."""

    OUTLIER_REFERENCE = "outlier_reference"
    INCONSISTENT_REFERENCES = "inconsistent_references"
    POLITICIANS_TOO_CLOSE = "politicians_too_close"


@dataclass(frozen=True)
class Finding:
    """One problem with the reference sets, in words an admin can act on."""

    kind: FindingKind
    politicians: tuple[str, ...]
    files: tuple[str, ...]
    distance: float
    message: str


Encoding = npt.NDArray[np.float64]
LabelledEncodings = Sequence[tuple[str, Encoding]]


def diagnose_references(
    encodings_by_politician: Mapping[str, LabelledEncodings],
    *,
    outlier_distance: float = SAME_PERSON_DISTANCE,
    close_distance: float = SAME_PERSON_DISTANCE,
) -> list[Finding]:
    """Find references that are probably the wrong person, and look-alike politicians.

    A reference is an *outlier* when it is further than ``outlier_distance`` from more than
    half of the other references of the same politician: with three photos of Obama and one
    of Biden, only the Biden photo is. When every reference is an outlier (two photos that
    disagree), we cannot tell which one is wrong and say so once. Two politicians are *too
    close* when any reference of one is within ``close_distance`` of a reference of the
    other: a picture of one could then be approved for the other.
    """
    findings: list[Finding] = []
    for politician, labelled in encodings_by_politician.items():
        findings.extend(_outliers(politician, labelled, outlier_distance))
    findings.extend(_close_pairs(encodings_by_politician, close_distance))
    return findings


def _distance_matrix(encodings: Sequence[Encoding]) -> npt.NDArray[np.float64]:
    stacked = np.asarray(encodings, dtype=np.float64)
    diff = stacked[:, None, :] - stacked[None, :, :]
    return np.asarray(np.linalg.norm(diff, axis=2), dtype=np.float64)


def _outliers(politician: str, labelled: LabelledEncodings, threshold: float) -> list[Finding]:
    if len(labelled) < 2:
        return []
    files = [file for file, _ in labelled]
    matrix = _distance_matrix([encoding for _, encoding in labelled])
    outliers: list[tuple[str, float]] = []
    for i, file in enumerate(files):
        others = [float(matrix[i, j]) for j in range(len(files)) if j != i]
        if sum(1 for d in others if d > threshold) * 2 > len(others):
            outliers.append((file, statistics.median(others)))
    if not outliers:
        return []
    if len(outliers) == len(files):
        worst = float(matrix.max())
        return [
            Finding(
                FindingKind.INCONSISTENT_REFERENCES,
                (politician,),
                tuple(files),
                worst,
                f"{politician}: the {len(files)} reference photos disagree with each other "
                f"(up to {worst:.2f} apart, threshold {threshold:.2f}); at least one is "
                f"probably the wrong person",
            )
        ]
    return [
        Finding(
            FindingKind.OUTLIER_REFERENCE,
            (politician,),
            (file,),
            median,
            f"{politician}: reference {file} is at median distance {median:.2f} from the other "
            f"{len(files) - 1} reference(s) (threshold {threshold:.2f}): probably the wrong "
            f"person",
        )
        for file, median in outliers
    ]


def _close_pairs(
    encodings_by_politician: Mapping[str, LabelledEncodings], threshold: float
) -> list[Finding]:
    findings = []
    usable = {name: labelled for name, labelled in encodings_by_politician.items() if labelled}
    for (a, refs_a), (b, refs_b) in itertools.combinations(usable.items(), 2):
        distance, file_a, file_b = min(
            (float(np.linalg.norm(ea - eb)), fa, fb) for fa, ea in refs_a for fb, eb in refs_b
        )
        if distance < threshold:
            findings.append(
                Finding(
                    FindingKind.POLITICIANS_TOO_CLOSE,
                    (a, b),
                    (file_a, file_b),
                    distance,
                    f"{a} and {b} are dangerously close: {file_a} and {file_b} are "
                    f"{distance:.2f} apart (threshold {threshold:.2f}); a picture of one "
                    f"could be approved for the other",
                )
            )
    return findings


# --- text histogram -------------------------------------------------------------------------


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin ``[edges[i], edges[i+1])``; values outside go to the first/last bin."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        index = int(np.searchsorted(edges, value, side="right")) - 1
        counts[min(max(index, 0), len(counts) - 1)] += 1
    return counts


def text_histogram(
    genuine: Sequence[float],
    impostor: Sequence[float],
    *,
    start: float = 0.0,
    stop: float = 1.2,
    step: float = 0.05,
    width: int = 30,
    tolerance: float | None = None,
) -> list[str]:
    """Side-by-side bars, ``G`` for genuine and ``I`` for impostor, one line per bin.

    The bin holding ``tolerance`` is marked with ``<- tolerance``.
    """
    count = round((stop - start) / step)
    edges = [round(start + i * step, 9) for i in range(count + 1)]
    g_counts, i_counts = histogram(genuine, edges), histogram(impostor, edges)
    peak = max([*g_counts, *i_counts, 1])
    lines = [f"  {'distance':9s} {'G':>4s} {'I':>4s}  (G genuine, I impostor)"]
    for low, high, g, i in zip(edges, edges[1:], g_counts, i_counts, strict=False):
        if not g and not i and not (tolerance is not None and low <= tolerance < high):
            continue
        bars = f"{'G' * _bar(g, peak, width):<{width}} {'I' * _bar(i, peak, width):<{width}}"
        mark = "  <- tolerance" if tolerance is not None and low <= tolerance < high else ""
        lines.append(f"  {low:4.2f}-{high:4.2f} {g:4d} {i:4d}  {bars.rstrip()}{mark}")
    return lines


def _bar(value: int, peak: int, width: int) -> int:
    """Bar length; any non-zero count shows at least one character."""
    return 0 if value == 0 else max(1, round(value * width / peak))
