"""Calibration statistics: how well a tolerance separates genuine faces from impostors.

Pure functions, no I/O: :mod:`nocodb_guard.trust.evaluate` feeds them distances measured on an
admin's labelled photos, and its reports print what they return.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
