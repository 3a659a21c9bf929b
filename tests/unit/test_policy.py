"""policy.decide as a table: each row of the table is one behaviour an admin relies on."""

from __future__ import annotations

import pytest

from nocodb_guard.models import (
    FaceBox,
    Ignored,
    PictureAnalysis,
    PictureFailure,
    PictureProblem,
    Reason,
    SeenFace,
    Verdict,
)
from nocodb_guard.policy import RowEvidence, decide

FACE = FaceBox(top=10, right=110, bottom=110, left=10)
OTHER_FACE = FaceBox(top=10, right=310, bottom=110, left=210)
BAND = (0.55, 0.65)


def pic(
    faces: int = 1,
    distance: float | None = 0.4,
    problem: PictureProblem | PictureFailure | None = None,
    ignored: int = 0,
) -> PictureAnalysis:
    boxes = (FACE, OTHER_FACE, OTHER_FACE)[:faces]
    distances = (distance,) if distance is not None and faces == 1 else ()
    small = tuple(SeenFace(FACE, 1.0, Ignored.TOO_SMALL) for _ in range(ignored))
    return PictureAnalysis(name="p.jpg", problem=problem, faces=boxes, seen=small,
                           distances=distances)


def evidence(*pictures: PictureAnalysis, politician: str | None = "Grace Hopper",
             refs: bool = True, count: int | None = None, failure: Reason | None = None,
             tolerance: float = 0.6, band: tuple[float, float] | None = None) -> RowEvidence:
    return RowEvidence(
        politician=politician,
        tolerance=tolerance if refs else None,
        attachment_count=len(pictures) if count is None else count,
        pictures=pictures,
        failure=failure,
        review_band=band,
    )


CASES = [
    ("a matching face is approved", evidence(pic()), Verdict.APPROVED, Reason.MATCH),
    ("a face exactly at the tolerance is approved", evidence(pic(distance=0.6)),
     Verdict.APPROVED, Reason.MATCH),
    ("a face of someone else is rejected with no_match", evidence(pic(distance=0.61)),
     Verdict.REJECTED, Reason.NO_MATCH),
    ("a row without a file is rejected with no_attachment", evidence(),
     Verdict.REJECTED, Reason.NO_ATTACHMENT),
    ("a row with too many files is rejected", evidence(*[pic()] * 6),
     Verdict.REJECTED, Reason.TOO_MANY_ATTACHMENTS),
    ("a row without a politician is rejected", evidence(pic(), politician=" "),
     Verdict.REJECTED, Reason.NO_POLITICIAN),
    ("a politician without references defers the row", evidence(pic(), refs=False),
     Verdict.DEFERRED, Reason.UNKNOWN_POLITICIAN),
    ("a text file is rejected with not_an_image",
     evidence(pic(faces=0, problem=Reason.NOT_AN_IMAGE)), Verdict.REJECTED, Reason.NOT_AN_IMAGE),
    ("a truncated file is rejected with unreadable",
     evidence(pic(faces=0, problem=Reason.UNREADABLE)), Verdict.REJECTED, Reason.UNREADABLE),
    ("a decompression bomb is rejected with too_large",
     evidence(pic(faces=0, problem=Reason.TOO_LARGE)), Verdict.REJECTED, Reason.TOO_LARGE),
    ("a cat is rejected with no_face", evidence(pic(faces=0)), Verdict.REJECTED, Reason.NO_FACE),
    ("a tiny face is rejected with face_too_small", evidence(pic(faces=0, ignored=1)),
     Verdict.REJECTED, Reason.FACE_TOO_SMALL),
    ("a picture with two faces is rejected with multiple_faces", evidence(pic(faces=2)),
     Verdict.REJECTED, Reason.MULTIPLE_FACES),
    ("every picture must pass: one bad picture rejects the row",
     evidence(pic(), pic(faces=2)), Verdict.REJECTED, Reason.MULTIPLE_FACES),
    ("every picture must match", evidence(pic(), pic(distance=0.9)),
     Verdict.REJECTED, Reason.NO_MATCH),
    ("a transient download failure defers the row",
     evidence(pic(), count=2, failure=Reason.TRANSIENT_ERROR),
     Verdict.DEFERRED, Reason.TRANSIENT_ERROR),
    ("a definitive bad picture rejects even when another download failed",
     evidence(pic(faces=0), count=2, failure=Reason.TRANSIENT_ERROR),
     Verdict.REJECTED, Reason.NO_FACE),
    ("a URL outside the allow-list defers the row, never deletes",
     evidence(count=1, failure=Reason.URL_NOT_ALLOWED), Verdict.DEFERRED, Reason.URL_NOT_ALLOWED),
    ("an animation is rejected with animated",
     evidence(pic(faces=0, problem=Reason.ANIMATED)), Verdict.REJECTED, Reason.ANIMATED),
    ("a picture whose worker died (or hit the time limit) defers the row",
     evidence(pic(faces=0, problem=Reason.TRANSIENT_ERROR)),
     Verdict.DEFERRED, Reason.TRANSIENT_ERROR),
    ("a matching picture next to one whose worker died still defers the row",
     evidence(pic(), pic(faces=0, problem=Reason.TRANSIENT_ERROR)),
     Verdict.DEFERRED, Reason.TRANSIENT_ERROR),
    ("a definitive bad picture rejects even when another one's worker died",
     evidence(pic(faces=0, problem=Reason.TRANSIENT_ERROR), pic(faces=2)),
     Verdict.REJECTED, Reason.MULTIPLE_FACES),
    ("a missing analysis defers the row", evidence(pic(), count=2),
     Verdict.DEFERRED, Reason.TRANSIENT_ERROR),
    ("one face without distances (empty references) is deferred",
     evidence(pic(distance=None)), Verdict.DEFERRED, Reason.UNKNOWN_POLITICIAN),
    ("an unknown politician is deferred before pictures are judged",
     evidence(pic(faces=2), refs=False), Verdict.DEFERRED, Reason.UNKNOWN_POLITICIAN),
    # the review band: only distances decide, and only inside [low, high]
    ("with a band, a distance inside it goes to review, never approved",
     evidence(pic(distance=0.58), band=BAND), Verdict.REVIEW, Reason.NEAR_TOLERANCE),
    ("with a band, a distance above the tolerance but inside it goes to review, never deleted",
     evidence(pic(distance=0.64), band=BAND), Verdict.REVIEW, Reason.NEAR_TOLERANCE),
    ("with a band, its edges are inside it", evidence(pic(distance=0.65), band=BAND),
     Verdict.REVIEW, Reason.NEAR_TOLERANCE),
    ("with a band, a distance below it is approved", evidence(pic(distance=0.54), band=BAND),
     Verdict.APPROVED, Reason.MATCH),
    ("with a band, a distance above it is rejected", evidence(pic(distance=0.66), band=BAND),
     Verdict.REJECTED, Reason.NO_MATCH),
    ("with a band, the worst picture decides: one in the band sends the row to review",
     evidence(pic(distance=0.3), pic(distance=0.6), band=BAND),
     Verdict.REVIEW, Reason.NEAR_TOLERANCE),
    ("with a band, one picture above it rejects the row whatever the others",
     evidence(pic(distance=0.6), pic(distance=0.9), band=BAND),
     Verdict.REJECTED, Reason.NO_MATCH),
    ("with a band, a bad picture still rejects the row",
     evidence(pic(faces=2), band=BAND), Verdict.REJECTED, Reason.MULTIPLE_FACES),
    ("with a band, a transient failure still defers the row",
     evidence(pic(distance=0.6), count=2, failure=Reason.TRANSIENT_ERROR, band=BAND),
     Verdict.DEFERRED, Reason.TRANSIENT_ERROR),
]


@pytest.mark.parametrize(("case", "row", "verdict", "reason"), CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, row: RowEvidence, verdict: Verdict, reason: Reason) -> None:
    decision = decide(row, max_attachments=5)
    assert (decision.verdict, decision.reason) == (verdict, reason), decision.explanation


def test_an_approval_explains_distance_and_tolerance_in_plain_words() -> None:
    decision = decide(evidence(pic(distance=0.412), tolerance=0.55), max_attachments=5)
    assert decision.explanation == "1 face, distance 0.41 to Grace Hopper (tolerance 0.55)"
    assert decision.distance == pytest.approx(0.412)
    assert decision.tolerance == 0.55


def test_a_mismatch_names_the_politician_and_the_numbers() -> None:
    decision = decide(evidence(pic(distance=0.8)), max_attachments=5)
    assert "distance 0.80 to Grace Hopper (tolerance 0.60)" in decision.explanation
    assert decision.distance == pytest.approx(0.8)


def test_a_review_explains_the_distance_and_the_band() -> None:
    decision = decide(evidence(pic(distance=0.612), band=BAND), max_attachments=5)
    assert decision.explanation == (
        "distance 0.61 to Grace Hopper (tolerance 0.60): inside the review band 0.55-0.65, "
        "left for an admin"
    )
    assert decision.distance == pytest.approx(0.612)
    assert decision.verdict is Verdict.REVIEW
