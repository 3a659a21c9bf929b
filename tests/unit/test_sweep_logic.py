"""The sweep's own logic with a fake NocoDB client and a fake face analyser.

Fakes are fine here: these tests are about what :class:`Sweeper` does with rows and
errors (re-read before delete, deferral, one bad row not stopping the pass, stop flag,
limit), not about NocoDB or dlib, which the integration tests exercise for real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nocodb_guard.errors import DownloadFailed, DownloadTooLarge, RowGone, UrlNotAllowed
from nocodb_guard.faces.references import ReferenceSet
from nocodb_guard.faces.workers import References
from nocodb_guard.models import (
    Action,
    Attachment,
    FaceBox,
    PictureAnalysis,
    Reason,
    Row,
    RowOutcome,
    RowWrite,
    Verdict,
)
from nocodb_guard.sweep import Sweeper, SweepOptions

GRACE = "Grace Hopper (demo)"
FACE = FaceBox(top=10, right=110, bottom=110, left=10)
REFERENCES = ReferenceSet(
    label=GRACE,
    folder=Path("refs/grace_hopper_demo"),
    files=("grace_hopper.jpg",),
    encodings=np.zeros((1, 128)),
    tolerance=0.6,
)


def picture(data: bytes, name: str) -> PictureAnalysis:
    """What the fake face stage "sees": the bytes name the content."""
    if data == b"match":
        return PictureAnalysis(name=name, faces=(FACE,), distances=(0.3,))
    if data == b"close":
        return PictureAnalysis(name=name, faces=(FACE,), distances=(0.62,))
    if data == b"stranger":
        return PictureAnalysis(name=name, faces=(FACE,), distances=(0.9,))
    if data == b"two":
        return PictureAnalysis(name=name, faces=(FACE, FACE))
    if data == b"crash":
        raise RuntimeError("worker crashed")
    return PictureAnalysis(name=name, problem=Reason.NOT_AN_IMAGE, detail="text")


class FakeAnalyzer:
    """Analyses synchronously; an exception lands in the future, as with a real pool."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]:
        self.seen.append(data)
        future: Future[PictureAnalysis] = Future()
        try:
            future.set_result(picture(data, name))
        except RuntimeError as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class FakeClient:
    """An in-memory table. ``content`` maps an attachment title to its bytes, or an error."""

    rows: dict[int, Row] = field(default_factory=dict)
    content: dict[str, bytes | Exception] = field(default_factory=dict)
    edit_before_reread: Callable[[Row], Row | None] | None = None
    """Simulates an admin editing (or deleting: None) the row between listing and acting."""
    deleted: list[int] = field(default_factory=list)
    approved: dict[int, str] = field(default_factory=dict)
    reviewed: dict[int, str] = field(default_factory=dict)
    rereads: list[list[int]] = field(default_factory=list)
    """Ids of each batched re-read, in order."""
    writes: list[tuple[str, list[int]]] = field(default_factory=list)
    """Each bulk write: ("approve" or "reject", its Ids)."""

    def add(self, row_id: int, *titles: str, politician: str | None = GRACE) -> None:
        self.rows[row_id] = Row(
            id=row_id,
            politician=politician,
            attachments=tuple(Attachment(title=t, path=f"download/{t}") for t in titles),
        )

    def iter_pending(self, limit: int | None = None) -> Iterator[Row]:
        pending = [r for _, r in sorted(self.rows.items()) if r.status is None]
        return iter(pending[:limit] if limit is not None else pending)

    def iter_approved(self, limit: int | None = None) -> Iterator[Row]:
        return iter([r for _, r in sorted(self.rows.items()) if r.status == "approved"][:limit])

    def get_rows(self, row_ids: Sequence[int]) -> dict[int, Row]:
        self.rereads.append(list(row_ids))
        for row_id in row_ids:
            if self.edit_before_reread is not None and row_id in self.rows:
                edited = self.edit_before_reread(self.rows[row_id])
                if edited is None:
                    del self.rows[row_id]
                else:
                    self.rows[row_id] = edited
        return {row_id: self.rows[row_id] for row_id in row_ids if row_id in self.rows}

    def download(self, attachment: Attachment, row_id: int) -> bytes:
        value = self.content[attachment.title]
        if isinstance(value, Exception):
            raise value
        return value

    def approve_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        if writes:
            self.writes.append(("approve", [w.row_id for w in writes]))
        for write in writes:
            self.approved[write.row_id] = write.reason_text
            self.rows[write.row_id] = replace(self.rows[write.row_id], status="approved")
        return {write.row_id: Action.APPROVED for write in writes}

    def review_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        for write in writes:
            self.reviewed[write.row_id] = write.reason_text
            self.rows[write.row_id] = replace(self.rows[write.row_id], status="review")
        return {write.row_id: Action.TAGGED_REVIEW for write in writes}

    def reject_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        if writes:
            self.writes.append(("reject", [w.row_id for w in writes]))
        for write in writes:
            self.deleted.append(write.row_id)
            self.rows.pop(write.row_id, None)
        return {write.row_id: Action.DELETED for write in writes}


class FakeReferences:
    def __init__(self, known: dict[str, ReferenceSet]) -> None:
        self.known = known

    def load(self, label: str) -> ReferenceSet | None:
        return self.known.get(label)


def sweeper(client: FakeClient, **options: object) -> Sweeper:
    return Sweeper(
        client,
        FakeReferences({GRACE: REFERENCES}),
        FakeAnalyzer(),
        SweepOptions(**options),  # type: ignore[arg-type]
    )


def by_id(outcomes: list[RowOutcome]) -> dict[int, RowOutcome]:
    return {o.row_id: o for o in outcomes}


def standard_client() -> FakeClient:
    client = FakeClient(
        content={"match.jpg": b"match", "stranger.jpg": b"stranger", "two.jpg": b"two"}
    )
    client.add(1, "match.jpg")
    client.add(2, "stranger.jpg")
    client.add(3, "two.jpg")
    return client


# --- the ordinary pass ----------------------------------------------------------------------


def test_a_pass_approves_the_match_and_deletes_the_others_with_their_reasons() -> None:
    client = standard_client()

    result = sweeper(client).run()

    outcomes = by_id(result.outcomes)
    assert outcomes[1].decision.verdict is Verdict.APPROVED
    assert outcomes[1].action is Action.APPROVED
    assert client.approved[1] == "1 face, distance 0.30 to Grace Hopper (demo) (tolerance 0.60)"
    assert outcomes[2].decision.reason is Reason.NO_MATCH
    assert outcomes[3].decision.reason is Reason.MULTIPLE_FACES
    assert client.deleted == [2, 3]
    assert result.summary()["approved"] == 1
    assert result.summary()["rejected_by_reason"] == {"no_match": 1, "multiple_faces": 1}


def test_each_politician_is_judged_at_the_tolerance_of_its_own_reference_set() -> None:
    strict = replace(REFERENCES, label="Ada Lovelace", tolerance=0.25)
    client = FakeClient(content={"match.jpg": b"match"})
    client.add(1, "match.jpg")
    client.add(2, "match.jpg", politician="Ada Lovelace")
    references = FakeReferences({GRACE: REFERENCES, "Ada Lovelace": strict})

    result = Sweeper(client, references, FakeAnalyzer(), SweepOptions()).run()

    grace, ada = by_id(result.outcomes)[1].decision, by_id(result.outcomes)[2].decision
    assert (grace.verdict, grace.tolerance) == (Verdict.APPROVED, 0.6)
    assert (ada.reason, ada.tolerance) == (Reason.NO_MATCH, 0.25)


def test_outcomes_come_in_row_order_even_with_prefetching() -> None:
    client = FakeClient(content={"match.jpg": b"match"})
    for row_id in range(1, 13):
        client.add(row_id, "match.jpg")

    result = sweeper(client, prefetch=4, download_threads=4).run()

    assert [o.row_id for o in result.outcomes] == list(range(1, 13))


def test_dry_run_decides_everything_and_changes_nothing() -> None:
    client = standard_client()

    result = sweeper(client, dry_run=True).run()

    assert {o.action for o in result.outcomes} == {Action.DRY_RUN}
    assert [o.decision.verdict for o in result.outcomes] == [
        Verdict.APPROVED, Verdict.REJECTED, Verdict.REJECTED,
    ]
    assert client.deleted == [] and client.approved == {}


def test_the_reason_names_the_picture_by_its_place_in_the_upload() -> None:
    """A file refused while downloading (too large) keeps its place among the analysed ones."""
    client = FakeClient(
        content={"big.jpg": DownloadTooLarge("over the 20 MB cap"), "match.jpg": b"match"}
    )
    client.add(1, "big.jpg", "match.jpg")

    [outcome] = sweeper(client).run().outcomes

    assert outcome.decision.reason is Reason.TOO_LARGE
    assert outcome.decision.explanation == "picture 1 is too large: over the 20 MB cap"
    assert [p.name for p in outcome.pictures] == ["picture 1", "picture 2"]
    assert [p.problem for p in outcome.pictures] == [Reason.TOO_LARGE, None]


# --- never delete what changed or what we could not see --------------------------------------


def test_a_row_edited_by_an_admin_between_listing_and_acting_is_not_deleted() -> None:
    client = standard_client()
    client.content["other.jpg"] = b"match"
    client.edit_before_reread = lambda row: replace(
        row, attachments=(Attachment(title="other.jpg", path="download/other.jpg"),)
    )

    result = sweeper(client).run()

    outcomes = by_id(result.outcomes)
    assert outcomes[2].decision.verdict is Verdict.REJECTED
    assert outcomes[2].action is Action.CHANGED_MEANWHILE
    assert outcomes[3].action is Action.CHANGED_MEANWHILE
    assert client.deleted == []
    assert set(client.rows) == {1, 2, 3}


def test_a_row_whose_status_an_admin_set_meanwhile_is_not_deleted() -> None:
    client = standard_client()
    client.edit_before_reread = lambda row: replace(row, status="approved")

    result = sweeper(client).run()

    assert by_id(result.outcomes)[2].action is Action.CHANGED_MEANWHILE
    assert client.deleted == []


def test_an_approval_is_re_read_too_and_a_row_changed_meanwhile_is_not_approved() -> None:
    client = standard_client()
    client.edit_before_reread = lambda row: replace(row, politician="Someone Else")

    result = sweeper(client).run()

    assert by_id(result.outcomes)[1].decision.verdict is Verdict.APPROVED
    assert by_id(result.outcomes)[1].action is Action.CHANGED_MEANWHILE
    assert client.approved == {} and client.deleted == []


def test_a_page_of_rows_costs_one_re_read_one_bulk_delete_and_one_bulk_update() -> None:
    client = FakeClient(content={"match.jpg": b"match", "two.jpg": b"two"})
    for row_id in range(1, 13):
        client.add(row_id, "match.jpg" if row_id % 3 else "two.jpg")

    result = sweeper(client, act_batch=5).run()

    assert [o.row_id for o in result.outcomes] == list(range(1, 13))
    assert client.rereads == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert client.writes == [
        ("reject", [3]), ("approve", [1, 2, 4, 5]),
        ("reject", [6, 9]), ("approve", [7, 8, 10]),
        ("reject", [12]), ("approve", [11]),
    ]  # fmt: skip
    assert client.deleted == [3, 6, 9, 12]


def test_a_row_deleted_by_an_admin_before_acting_counts_as_gone() -> None:
    client = standard_client()
    client.edit_before_reread = lambda row: None

    result = sweeper(client).run()

    assert by_id(result.outcomes)[2].action is Action.GONE
    assert client.deleted == []


def test_a_transient_download_failure_defers_the_row_untouched() -> None:
    client = standard_client()
    client.content["stranger.jpg"] = DownloadFailed("connection reset after 10 kB")

    result = sweeper(client).run()

    outcome = by_id(result.outcomes)[2]
    assert outcome.decision.verdict is Verdict.DEFERRED
    assert outcome.decision.reason is Reason.TRANSIENT_ERROR
    assert "connection reset" in outcome.decision.explanation
    assert outcome.action is Action.NONE
    assert 2 in client.rows and 2 not in client.deleted
    assert result.deferred == 1


def test_an_attachment_on_a_foreign_host_defers_the_row_with_url_not_allowed() -> None:
    client = standard_client()
    client.content["stranger.jpg"] = UrlNotAllowed("host 127.0.0.2 is not allowed")

    result = sweeper(client).run()

    outcome = by_id(result.outcomes)[2]
    assert outcome.decision.verdict is Verdict.DEFERRED
    assert outcome.decision.reason is Reason.URL_NOT_ALLOWED
    assert 2 in client.rows


def test_a_row_that_vanished_while_downloading_is_deferred_not_acted_on() -> None:
    client = standard_client()
    client.content["stranger.jpg"] = RowGone("row 2 no longer exists")

    result = sweeper(client).run()

    outcome = by_id(result.outcomes)[2]
    assert outcome.decision.verdict is Verdict.DEFERRED
    assert outcome.action is Action.GONE
    assert client.deleted == [3]


def test_a_politician_without_references_defers_its_rows() -> None:
    client = standard_client()
    client.add(4, "stranger.jpg", politician="Nobody Configured")

    result = sweeper(client).run()

    outcome = by_id(result.outcomes)[4]
    assert outcome.decision.reason is Reason.UNKNOWN_POLITICIAN
    assert outcome.action is Action.NONE
    assert 4 in client.rows


# --- robustness of the pass -----------------------------------------------------------------------


def test_one_row_raising_an_unexpected_error_does_not_stop_the_pass() -> None:
    client = standard_client()
    client.content["crash.jpg"] = b"crash"
    client.add(0, "crash.jpg")

    result = sweeper(client).run()

    outcomes = by_id(result.outcomes)
    assert outcomes[0].decision.verdict is Verdict.DEFERRED
    assert "internal error: RuntimeError" in outcomes[0].decision.explanation
    assert 0 in client.rows
    assert [o.row_id for o in result.outcomes] == [0, 1, 2, 3]
    assert client.deleted == [2, 3]


def test_should_stop_ends_the_pass_between_rows_and_writes_what_is_decided() -> None:
    client = standard_client()
    checks = iter([False, True])

    result = sweeper(client).run(should_stop=lambda: next(checks))

    assert result.stopped_early
    assert [o.row_id for o in result.outcomes] == [1]
    assert by_id(result.outcomes)[1].action is Action.APPROVED
    assert client.deleted == []
    assert set(client.rows) == {1, 2, 3}


def test_limit_caps_the_rows_of_one_pass() -> None:
    client = standard_client()

    result = sweeper(client, limit=2).run()

    assert [o.row_id for o in result.outcomes] == [1, 2]
    assert 3 in client.rows


# --- the review band ------------------------------------------------------------------------

BANDED = replace(REFERENCES, review_band=(0.55, 0.65))


def banded_sweeper(client: FakeClient, **options: object) -> Sweeper:
    references = FakeReferences({GRACE: BANDED})
    return Sweeper(client, references, FakeAnalyzer(), SweepOptions(**options))  # type: ignore[arg-type]


def test_a_row_in_the_review_band_is_tagged_review_never_deleted_or_approved() -> None:
    client = FakeClient(content={"close.jpg": b"close", "match.jpg": b"match"})
    client.add(1, "close.jpg")
    client.add(2, "match.jpg")

    result = banded_sweeper(client).run()

    close = by_id(result.outcomes)[1]
    assert (close.decision.verdict, close.action) == (Verdict.REVIEW, Action.TAGGED_REVIEW)
    assert "distance 0.62" in client.reviewed[1]
    assert client.deleted == [] and list(client.approved) == [2]
    assert result.summary()["review"] == 1
    assert "1 for review" in result.status_line()


def test_a_recheck_reports_an_approved_row_now_in_the_band_and_tags_it_only_with_apply() -> None:
    client = FakeClient(content={"close.jpg": b"close"})
    client.add(1, "close.jpg")
    client.rows[1] = replace(client.rows[1], status="approved")

    report = banded_sweeper(client, recheck_approved=True).run()
    assert report.outcomes[0].action is Action.WOULD_REVIEW
    assert client.rows[1].status == "approved"

    applied = banded_sweeper(client, recheck_approved=True, apply=True).run()
    assert applied.outcomes[0].action is Action.TAGGED_REVIEW
    assert client.reviewed[1].startswith("re-check: distance 0.62")
    assert client.deleted == []
