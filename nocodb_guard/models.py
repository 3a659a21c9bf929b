"""Frozen value objects shared by every stage of the pipeline.

Nothing here holds picture bytes or face encodings of an uploader: these objects are
what gets logged, audited and printed, so they carry only sizes, counts and distances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Verdict(StrEnum):
    """What happens to a row: approved (tagged), rejected (deleted) or deferred (untouched).

    ``review`` (only with a ``review_band``): the distance is too close to the tolerance to
    approve or delete on it; the row is tagged for an admin and never deleted.
    """

    APPROVED = "approved"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    REVIEW = "review"


class Reason(StrEnum):
    """Why a verdict was reached. Values are stable: they appear in logs, JSON and metrics."""

    # approved
    MATCH = "match"
    # rejected: definitive, drawn from the row and its pictures
    NO_ATTACHMENT = "no_attachment"
    TOO_MANY_ATTACHMENTS = "too_many_attachments"
    NO_POLITICIAN = "no_politician"
    NOT_AN_IMAGE = "not_an_image"
    UNREADABLE = "unreadable"
    TOO_LARGE = "too_large"
    ANIMATED = "animated"
    NO_FACE = "no_face"
    FACE_TOO_SMALL = "face_too_small"
    MULTIPLE_FACES = "multiple_faces"
    NO_MATCH = "no_match"
    # review: tagged for an admin, neither approved nor deleted
    NEAR_TOLERANCE = "near_tolerance"
    # deferred: the row stays untouched for a later pass
    UNKNOWN_POLITICIAN = "unknown_politician"
    URL_NOT_ALLOWED = "url_not_allowed"
    TRANSIENT_ERROR = "transient_error"


PictureProblem = Literal[
    Reason.NOT_AN_IMAGE, Reason.UNREADABLE, Reason.TOO_LARGE, Reason.ANIMATED
]
"""Reasons a single picture can fail on, before any face is compared: facts about it."""

PictureFailure = Literal[Reason.TRANSIENT_ERROR]
"""A picture that could not be analysed (its worker died or hit the time limit): no fact
about the picture, so its row is deferred."""


class Action(StrEnum):
    """What a sweep did to a row in NocoDB. Values are stable: they appear in audit and JSON."""

    APPROVED = "approved"
    """Tagged approved."""
    DELETED = "deleted"
    TAGGED_REJECTED = "tagged_rejected"
    """Tagged rejected instead of deleted (``reject_action = "tag"``)."""
    ALREADY_GONE = "already_gone"
    """Rejected, but the row had already been deleted: the goal holds."""
    NONE = "none"
    """Deferred: nothing was changed."""
    DRY_RUN = "dry_run"
    GONE = "gone"
    """The row vanished before it could be acted on."""
    CHANGED_MEANWHILE = "changed_meanwhile"
    """Not deleted: someone edited the row after it was read."""
    STILL_APPROVED = "still_approved"
    """Re-check: an approved row still passes."""
    WOULD_REJECT = "would_reject"
    """Re-check without ``apply``: an approved row now fails, left as it is."""
    TAGGED_REVIEW = "tagged_review"
    """Tagged ``status_review`` for an admin: the distance lies in the review band."""
    WOULD_REVIEW = "would_review"
    """Re-check without ``apply``: an approved row now lies in the review band, left as it is."""


@dataclass(frozen=True)
class FaceBox:
    """A face's box in pixels: of the upload as it stands upright, once analysed.

    The engine and the detectors work in the pixels of whatever picture they are given;
    :mod:`nocodb_guard.faces.scan` turns every box it reports into the upload's own
    pixels, so that sizes mean the same whatever the picture was downscaled to.
    """

    top: int
    right: int
    bottom: int
    left: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def size(self) -> int:
        """The smaller side: what decides whether a face is big enough to judge."""
        return min(self.width, self.height)

    def scaled(self, factor: float) -> FaceBox:
        """The same box in a picture ``factor`` times the size (rounded to whole pixels)."""
        return FaceBox(
            top=round(self.top * factor),
            right=round(self.right * factor),
            bottom=round(self.bottom * factor),
            left=round(self.left * factor),
        )

    def as_css(self) -> tuple[int, int, int, int]:
        """(top, right, bottom, left): the order face_recognition uses."""
        return (self.top, self.right, self.bottom, self.left)


class Ignored(StrEnum):
    """Why a detection does not count as a face of the picture."""

    TOO_SMALL = "too_small"
    """The only face is smaller than ``min_face_px`` even in the upload's own pixels."""
    BACKGROUND = "background"
    """Smaller than ``min_face_ratio`` times the largest face: a face in the background."""
    NOT_CONFIRMED = "not_confirmed"
    """A second detector found no face there (dlib's HOG sees faces in patches and prints)."""


@dataclass(frozen=True)
class SeenFace:
    """One detection as the analysis judged it, for ``explain`` and the face counts.

    ``box`` is in the upload's own pixels; ``scale`` is the size of the picture it was
    found in over the upload's (0.25: found in a picture a quarter of the upload's size;
    above 1: in an enlarged one); ``ignored`` is None for a face that counts.
    """

    box: FaceBox
    scale: float
    ignored: Ignored | None = None


def ignored_count(seen: tuple[SeenFace, ...]) -> int:
    """How many of ``seen`` do not count: the one rule both a look and an analysis use."""
    return sum(1 for face in seen if face.ignored is not None)


@dataclass(frozen=True)
class PictureAnalysis:
    """What the pipeline saw in one picture. No pixels, no encodings.

    ``problem`` is set when the bytes could not be turned into a picture (not an image,
    unreadable, too large, animated), or to ``transient_error`` when the picture could not
    be analysed at all (its worker died or hit the time limit); then ``faces`` is empty.
    ``distances`` holds the distance of the single face to each reference, and is empty
    unless exactly one face was kept. ``faces`` (boxes in the upload's pixels) are the
    faces that count; ``seen`` is every detection with its scale and why it was ignored.
    """

    name: str
    problem: PictureProblem | PictureFailure | None = None
    detail: str = ""
    format: str | None = None
    original_size: tuple[int, int] | None = None
    analysed_size: tuple[int, int] | None = None
    faces: tuple[FaceBox, ...] = ()
    seen: tuple[SeenFace, ...] = ()
    distances: tuple[float, ...] = ()
    seconds: float = 0.0

    @property
    def ignored_faces(self) -> int:
        """Detections that do not count; with no face kept, the one face was too small."""
        return ignored_count(self.seen)

    @property
    def distance(self) -> float | None:
        """Smallest distance to the references, or None when nothing was compared."""
        return min(self.distances) if self.distances else None


@dataclass(frozen=True)
class Decision:
    """The verdict for one row, with everything needed to explain it to a person."""

    verdict: Verdict
    reason: Reason
    explanation: str
    distance: float | None = None
    tolerance: float | None = None


@dataclass(frozen=True)
class Attachment:
    """One file of an attachment cell, as NocoDB describes it (uploader-controlled!)."""

    title: str
    mimetype: str | None = None
    size: int | None = None
    path: str | None = None
    signed_path: str | None = None
    thumbnail_links: tuple[str, ...] = ()
    """``signedPath`` of each thumbnail: fetched anonymously to verify a purge."""
    url: str | None = None
    signed_url: str | None = None
    id: str | None = None
    """NocoDB's id of the file entry, when present: matches an entry across re-reads."""


@dataclass(frozen=True)
class Row:
    """A pending row of the form's table, reduced to what moderation needs."""

    id: int
    politician: str | None
    attachments: tuple[Attachment, ...] = ()
    status: str | None = None
    """The status field as read; pending rows have it blank."""

    def same_upload_as(self, other: Row) -> bool:
        """True when politician and files are unchanged (an admin may edit between list and act)."""
        def files(row: Row) -> list[tuple[str | None, str]]:
            return [(a.path or a.url, a.title) for a in row.attachments]

        return self.politician == other.politician and files(self) == files(other)


@dataclass(frozen=True)
class RowWrite:
    """One row to tag or delete, with the plain-words reason written to it."""

    row_id: int
    reason_text: str


@dataclass(frozen=True)
class RowOutcome:
    """What a sweep did with one row: logged, audited and shown in the summary."""

    row_id: int
    politician: str | None
    decision: Decision
    action: Action
    pictures: tuple[PictureAnalysis, ...] = ()
    files_purged: int | None = None
    """Stored files removed from NocoDB's storage with the deleted row; None: no purge ran."""
    timings: dict[str, float] = field(default_factory=dict)
