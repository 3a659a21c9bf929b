"""Reference diagnosis: reference photos that are probably the wrong person, look-alike politicians.

Pure functions on encodings, no I/O: ``evaluate`` passes the encodings of the photos that
served as references.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from nocodb_guard.trust.evaluate.calibration import SAME_PERSON_DISTANCE


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
