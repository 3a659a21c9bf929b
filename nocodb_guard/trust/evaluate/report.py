"""What ``evaluate`` found: comparisons, per-politician results and the whole report."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from nocodb_guard.trust.evaluate import calibration
from nocodb_guard.trust.evaluate.calibration import Suggestion, ToleranceRow
from nocodb_guard.trust.evaluate.diagnosis import Finding

Mode = Literal["configured", "self"]


@dataclass(frozen=True)
class Comparison:
    """One probe photo against one reference set: ``distance`` is the best over the set."""

    probe: str
    reference: str
    distance: float


class SwapDirection(StrEnum):
    """Which way a synthetic face swap (``evaluate --swaps``) goes, seen from a politician."""

    POLITICIAN_FACE = "politician_face_on_other_head"
    """The politician's face on someone else's head: a crude deepfake *of* the politician."""
    STRANGER_FACE = "stranger_face_on_politician_head"
    """Someone else's face on the politician's head: approving it publishes a stranger."""


@dataclass(frozen=True)
class SwapComparison:
    """One synthetic swap against the politician's references (``evaluate --swaps``)."""

    direction: SwapDirection
    face: str
    head: str
    distance: float | None
    """None when the swap was not seen as exactly one face (an upload of it is rejected)."""

    def approved(self, tolerance: float) -> bool:
        return self.distance is not None and self.distance <= tolerance


@dataclass(frozen=True)
class PhotoNote:
    """A photo that could not be a probe, and what the face stack found in it."""

    file: str
    detected_faces: int
    expected_faces: int | None
    problem: str | None

    @property
    def rejected(self) -> bool:
        """Would an upload of it be rejected? (Anything but exactly one face is.)"""
        return self.problem is not None or self.detected_faces != 1


@dataclass
class PoliticianResult:
    """Genuine and impostor distances of one politician (or person, in ``self`` mode)."""

    label: str
    tolerance: float
    genuine: list[Comparison] = field(default_factory=list)
    impostor: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: list[ToleranceRow] = field(default_factory=list)
    suggestion: Suggestion | None = None
    swaps: list[SwapComparison] = field(default_factory=list)
    """Synthetic, never mixed into genuine or impostor: see :mod:`.swapped`."""

    def swaps_of(self, direction: SwapDirection) -> list[SwapComparison]:
        return [s for s in self.swaps if s.direction is direction]

    @property
    def swap_approvals(self) -> int:
        """Strangers' faces on the politician's head that would be approved."""
        stranger = self.swaps_of(SwapDirection.STRANGER_FACE)
        return sum(s.approved(self.tolerance) for s in stranger)

    @property
    def genuine_distances(self) -> list[float]:
        return [c.distance for c in self.genuine]

    @property
    def impostor_distances(self) -> list[float]:
        return [c.distance for c in self.impostor]

    @property
    def false_rejections(self) -> int:
        return calibration.false_rejections(self.genuine_distances, self.tolerance)

    @property
    def false_approvals(self) -> int:
        return calibration.false_approvals(self.impostor_distances, self.tolerance)

    @property
    def genuine_accepted(self) -> int:
        return len(self.genuine) - self.false_rejections

    @property
    def impostor_rejected(self) -> int:
        return len(self.impostor) - self.false_approvals


@dataclass
class EvaluationReport:
    """Everything ``evaluate`` found; :func:`render_text` and :func:`to_json` present it."""

    mode: Mode
    directory: str
    politicians: list[PoliticianResult]
    findings: list[Finding]
    not_single_face: list[PhotoNote]
    unusable: list[PhotoNote]
    notes: list[str]
    table_tolerances: tuple[float, ...]
    overall_table: list[ToleranceRow] = field(default_factory=list)
    overall_suggestion: Suggestion | None = None

    @property
    def false_approvals(self) -> int:
        """Impostors accepted, each politician at its configured tolerance."""
        return sum(p.false_approvals for p in self.politicians)

    @property
    def false_rejections(self) -> int:
        """Genuine photos rejected, each politician at its configured tolerance."""
        return sum(p.false_rejections for p in self.politicians)

    @property
    def swap_approvals(self) -> int:
        """Synthetic swaps of a stranger's face onto a politician's head that pass."""
        return sum(p.swap_approvals for p in self.politicians)

    @property
    def passed(self) -> bool:
        """No false approval or rejection, and no stranger's swap approved (exit code 0)."""
        return not (self.false_approvals or self.false_rejections or self.swap_approvals)
