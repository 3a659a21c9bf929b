"""The verdict for one row: pure, no I/O, no logging, so it can be tested as a table.

Deleting is irreversible, so the order of the rules matters:

1. row-level facts the uploader controls (no file, too many files, no politician chosen)
   are definitive rejections;
2. a politician without references is the operator's mistake: defer, never delete;
3. a picture that is definitively bad (not an image, unreadable, too large, no face,
   a face too small, several faces) rejects the row, even if another attachment of the
   same row could not be fetched: that verdict is drawn from a picture we did see;
4. any other failure to see every picture (transient download error, URL not allowed,
   a face worker that died or hit the time limit per picture) defers the row;
5. only then are distances compared: every picture must match. With a review band, a
   worst distance inside ``[low, high]`` is neither approved nor rejected: ``review``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nocodb_guard.models import Decision, PictureAnalysis, PictureProblem, Reason, Verdict


@dataclass(frozen=True)
class RowEvidence:
    """Everything :func:`decide` may look at for one row."""

    politician: str | None
    tolerance: float | None
    """The tolerance of the politician's reference set; None when there is no usable set."""
    attachment_count: int
    pictures: tuple[PictureAnalysis, ...] = ()
    failure: Reason | None = None
    """Why some picture could not be seen (``transient_error`` or ``url_not_allowed``)."""
    failure_detail: str = ""
    review_band: tuple[float, float] | None = None
    """The politician's review band (``[low, high]``, around the tolerance); None: no band."""


def decide(evidence: RowEvidence, *, max_attachments: int) -> Decision:
    """Apply the rules above, first match wins."""
    return (
        _row_rules(evidence, max_attachments)
        or _picture_rules(evidence)
        or _failure_rule(evidence)
        or _match_rule(evidence)
    )


def _reject(reason: Reason, explanation: str, **extra: float | None) -> Decision:
    return Decision(Verdict.REJECTED, reason, explanation, **extra)


def _defer(reason: Reason, explanation: str) -> Decision:
    return Decision(Verdict.DEFERRED, reason, f"{explanation}; left for a later pass")


def _row_rules(evidence: RowEvidence, max_attachments: int) -> Decision | None:
    if evidence.attachment_count == 0:
        return _reject(Reason.NO_ATTACHMENT, "no picture attached")
    if evidence.attachment_count > max_attachments:
        return _reject(
            Reason.TOO_MANY_ATTACHMENTS,
            f"{evidence.attachment_count} files attached (at most {max_attachments})",
        )
    if not (evidence.politician or "").strip():
        return _reject(Reason.NO_POLITICIAN, "no politician chosen")
    if evidence.tolerance is None:
        return _defer(
            Reason.UNKNOWN_POLITICIAN,
            f"no reference photos configured for {evidence.politician!r}",
        )
    return None


def _picture_rules(evidence: RowEvidence) -> Decision | None:
    for index, picture in enumerate(evidence.pictures, start=1):
        found = _picture_problem(picture, _label(index, evidence))
        if found is not None:
            return found
    return None


def _label(index: int, evidence: RowEvidence) -> str:
    return "picture" if evidence.attachment_count == 1 else f"picture {index}"


def _picture_problem(picture: PictureAnalysis, label: str) -> Decision | None:
    if picture.problem is Reason.TRANSIENT_ERROR:
        return None  # not a fact about the picture (its worker died): _failure_rule defers
    if picture.problem is not None:
        detail = f": {picture.detail}" if picture.detail else ""
        return _reject(picture.problem, f"{label} {_PROBLEM_WORDS[picture.problem]}{detail}")
    faces = len(picture.faces)
    if faces == 0 and picture.ignored_faces:
        return _reject(Reason.FACE_TOO_SMALL, f"{label}: the only face found is too small to judge")
    if faces == 0:
        return _reject(Reason.NO_FACE, f"{label}: no face found")
    if faces > 1:
        return _reject(Reason.MULTIPLE_FACES, f"{label}: {faces} faces found, exactly one required")
    return None


_PROBLEM_WORDS: dict[PictureProblem, str] = {
    Reason.NOT_AN_IMAGE: "is not an image",
    Reason.UNREADABLE: "is corrupt or truncated",
    Reason.TOO_LARGE: "is too large",
    Reason.ANIMATED: "is animated",
}


def _failure_rule(evidence: RowEvidence) -> Decision | None:
    if evidence.failure is not None:
        detail = f": {evidence.failure_detail}" if evidence.failure_detail else ""
        return _defer(evidence.failure, f"could not fetch every picture{detail}")
    for index, picture in enumerate(evidence.pictures, start=1):
        if picture.problem is Reason.TRANSIENT_ERROR:
            label = _label(index, evidence)
            return _defer(picture.problem, f"{label} could not be analysed: {picture.detail}")
    if len(evidence.pictures) != evidence.attachment_count:
        return _defer(Reason.TRANSIENT_ERROR, "not every picture was analysed")
    return None


def _match_rule(evidence: RowEvidence) -> Decision:
    tolerance = evidence.tolerance
    assert tolerance is not None  # _row_rules deferred the row otherwise
    distances = [picture.distance for picture in evidence.pictures]
    if any(distance is None for distance in distances):
        # One face but no distance: the references were empty. Never delete on that.
        return _defer(Reason.UNKNOWN_POLITICIAN, "the face could not be compared")
    worst = max(d for d in distances if d is not None)
    who = evidence.politician
    words = f"distance {worst:.2f} to {who} (tolerance {tolerance:.2f})"
    band = evidence.review_band
    if band is not None and band[0] <= worst <= band[1]:
        return Decision(
            Verdict.REVIEW,
            Reason.NEAR_TOLERANCE,
            f"{words}: inside the review band {band[0]:.2f}-{band[1]:.2f}, left for an admin",
            worst,
            tolerance,
        )
    if worst <= tolerance:
        count = len(distances)
        prefix = "1 face," if count == 1 else f"{count} pictures, 1 face each, largest"
        return Decision(Verdict.APPROVED, Reason.MATCH, f"{prefix} {words}", worst, tolerance)
    # Name the picture that failed: the admin reading the reason can then look at it.
    label = _label(distances.index(worst) + 1, evidence)
    prefix = "1 face" if label == "picture" else f"{label}: 1 face"
    return _reject(
        Reason.NO_MATCH,
        f"{prefix}, {words}: not {who}",
        distance=worst,
        tolerance=tolerance,
    )
