"""A failure in any stage of one row defers that row, and the rows after it are decided.

Issue 14: an exception while preparing a row ended the whole pass (and every later pass,
the row being first in line); approvals were not re-read, so a photo an admin replaced
after the download was approved with the old photo's reason.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import pytest

from nocodb_guard.backoff import FIRST_WAIT, Backoff
from nocodb_guard.errors import NocoDBUnavailable
from nocodb_guard.faces.references import ReferenceSet
from nocodb_guard.faces.workers import References
from nocodb_guard.models import (
    Action,
    Attachment,
    PictureAnalysis,
    Reason,
    Row,
    RowOutcome,
    RowWrite,
    Verdict,
)
from nocodb_guard.sweep import UNRECORDED, Sweeper, SweepOptions
from nocodb_guard.trust.audit import AuditLog
from tests.unit.test_sweep_logic import (
    GRACE,
    REFERENCES,
    FakeAnalyzer,
    FakeClient,
    FakeReferences,
    by_id,
    sweeper,
)

POISON = "Poison Politician"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PoisonClient(FakeClient):
    """Raises a surprise (not one of our errors) where the test says, for row 2 only."""

    stage: str = ""

    def download(self, attachment: Attachment, row_id: int) -> bytes:
        if row_id == 2 and self.stage == "download":
            raise RuntimeError("surprise in the download")
        return super().download(attachment, row_id)


class PoisonReferences(FakeReferences):
    def load(self, label: str) -> ReferenceSet | None:
        if label == POISON:
            raise RuntimeError("surprise loading references")
        return super().load(label)


class PoisonAnalyzer(FakeAnalyzer):
    """``submit`` raises for b"poison-submit"; b"killed" fails as a killed worker does."""

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]:
        if data == b"poison-submit":
            raise RuntimeError("surprise submitting")
        if data == b"killed":
            future: Future[PictureAnalysis] = Future()
            future.set_exception(BrokenProcessPool("a worker was killed mid-picture"))
            return future
        return super().submit(data, name, references)


STAGES = ["references", "download", "submit", "analysis", "worker_killed"]


@pytest.mark.parametrize("stage", STAGES)
def test_a_poison_row_is_deferred_and_the_rows_after_it_are_decided_in_the_same_pass(
    stage: str,
) -> None:
    client = PoisonClient(content={
        "match.jpg": b"match", "stranger.jpg": b"stranger", "poison-submit.jpg": b"poison-submit",
        "crash.jpg": b"crash", "killed.jpg": b"killed",
    })
    client.stage = stage
    client.add(1, "match.jpg")
    poison_file = {"submit": "poison-submit.jpg", "analysis": "crash.jpg",
                   "worker_killed": "killed.jpg"}.get(stage, "match.jpg")
    client.add(2, poison_file, politician=POISON if stage == "references" else GRACE)
    client.add(3, "stranger.jpg")
    client.add(4, "match.jpg")
    sweep = Sweeper(
        client, PoisonReferences({GRACE: REFERENCES}), PoisonAnalyzer(), SweepOptions(prefetch=4)
    )

    result = sweep.run()

    outcomes = by_id(result.outcomes)
    assert result.error is None
    assert [o.row_id for o in result.outcomes] == [1, 2, 3, 4]
    assert outcomes[2].decision.verdict is Verdict.DEFERRED
    assert outcomes[2].decision.reason in (Reason.TRANSIENT_ERROR, Reason.UNKNOWN_POLITICIAN)
    assert 2 in client.rows and 2 not in client.approved
    assert client.deleted == [3]
    assert set(client.approved) == {1, 4}


def test_a_surprise_while_acting_defers_that_page_and_the_pages_after_it_are_decided() -> None:
    class ActingPoison(FakeClient):
        def approve_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
            if any(w.row_id == 2 for w in writes):
                raise RuntimeError("surprise in the bulk write")
            return super().approve_many(writes)

    client = ActingPoison(content={"match.jpg": b"match", "stranger.jpg": b"stranger"})
    for row_id, name in ((1, "match.jpg"), (2, "match.jpg"), (3, "stranger.jpg"), (4, "match.jpg")):
        client.add(row_id, name)
    sweep = Sweeper(client, FakeReferences({GRACE: REFERENCES}), FakeAnalyzer(),
                    SweepOptions(prefetch=4, act_batch=1))

    result = sweep.run()

    outcomes = by_id(result.outcomes)
    assert result.error is None
    assert [o.row_id for o in result.outcomes] == [1, 2, 3, 4]
    assert (outcomes[2].decision.verdict, outcomes[2].action) == (Verdict.DEFERRED, Action.NONE)
    assert "internal error while acting: RuntimeError" in outcomes[2].decision.explanation
    assert client.deleted == [3]
    assert set(client.approved) == {1, 4}


class DownAfterDelete(FakeClient):
    """NocoDB goes down between the page's DELETE and its PATCH."""

    def approve_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
        if writes:
            raise NocoDBUnavailable("PATCH records: connection refused (gave up)")
        return super().approve_many(writes)


def test_a_row_deleted_before_nocodb_went_down_mid_page_is_reported_as_deleted() -> None:
    """Its deletion is logged and audited as done; the row to approve waits for a later pass."""
    client = DownAfterDelete(content={"match.jpg": b"match", "stranger.jpg": b"stranger"})
    client.add(1, "match.jpg")
    client.add(2, "stranger.jpg")
    sweep = Sweeper(client, FakeReferences({GRACE: REFERENCES}), FakeAnalyzer(),
                    SweepOptions(prefetch=4, act_batch=2))

    result = sweep.run()

    assert result.error is not None and "connection refused" in result.error
    assert [(o.row_id, o.action) for o in result.outcomes] == [(2, Action.DELETED)]
    assert (client.deleted, list(client.approved)) == ([2], [])
    assert 1 in client.rows


class TimingOutAnalyzer(FakeAnalyzer):
    """b"bomb" comes back as a picture whose worker hit the time limit (see workers)."""

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]:
        if data != b"bomb":
            return super().submit(data, name, references)
        self.seen.append(data)
        future: Future[PictureAnalysis] = Future()
        future.set_result(PictureAnalysis(name=name, problem=Reason.TRANSIENT_ERROR,
                                          detail="over the 60 s limit per picture"))
        return future


def test_a_picture_that_timed_out_holds_its_row_back_with_a_growing_wait_not_the_pool() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock)
    client = FakeClient(content={"bomb.jpg": b"bomb", "match.jpg": b"match"})
    client.add(1, "bomb.jpg")
    client.add(2, "match.jpg")
    analyzer = TimingOutAnalyzer()

    def one_pass() -> list[int]:
        result = Sweeper(client, FakeReferences({GRACE: REFERENCES}), analyzer,
                         SweepOptions(), backoff=backoff).run()
        return [o.row_id for o in result.outcomes]

    assert one_pass() == [1, 2]  # deferred, and the row after it decided
    client.add(3, "match.jpg")
    assert one_pass() == [3], "the held row must not take a worker again at once"
    clock.now += FIRST_WAIT
    assert one_pass() == [1]
    clock.now += FIRST_WAIT  # the second wait is twice as long
    assert one_pass() == []
    clock.now += FIRST_WAIT
    assert one_pass() == [1]
    assert analyzer.seen.count(b"bomb") == 3
    assert 1 in client.rows and 1 not in client.approved


def test_a_photo_replaced_between_download_and_approval_is_not_approved() -> None:
    client = FakeClient(content={"match.jpg": b"match", "cat.jpg": b"stranger"})
    client.add(1, "match.jpg")
    client.edit_before_reread = lambda row: replace(
        row, attachments=(Attachment(title="match.jpg", path="download/new/cat.jpg"),)
    )

    result = sweeper(client).run()

    [outcome] = result.outcomes
    assert outcome.decision.verdict is Verdict.APPROVED  # what was judged: the old photo
    assert outcome.action is Action.CHANGED_MEANWHILE
    assert client.approved == {}
    assert client.rereads == [[1]]


def test_a_re_read_that_fails_before_a_delete_leaves_the_row_untouched() -> None:
    """5xx or a timeout on the GET before a DELETE: nothing is deleted, the pass ends."""

    class DownForReads(FakeClient):
        def get_rows(self, row_ids: Sequence[int]) -> dict[int, Row]:
            raise NocoDBUnavailable(f"GET rows {list(row_ids)}: HTTP 503 (gave up)")

    client = DownForReads(content={"stranger.jpg": b"stranger"})
    client.add(1, "stranger.jpg")

    result = sweeper(client).run()

    assert client.deleted == []
    assert 1 in client.rows
    assert result.error is not None and "503" in result.error


class ApprovedRows(FakeClient):
    def iter_approved(self, limit: int | None = None) -> Iterator[Row]:
        return iter([r for _, r in sorted(self.rows.items()) if r.status == "approved"])


def test_recheck_apply_reads_an_approved_row_again_before_deleting_it() -> None:
    client = ApprovedRows(content={"stranger.jpg": b"stranger", "new.jpg": b"match"})
    client.add(1, "stranger.jpg")
    client.add(2, "stranger.jpg")
    for row_id in (1, 2):
        client.rows[row_id] = replace(client.rows[row_id], status="approved")
    client.edit_before_reread = lambda row: (
        replace(row, attachments=(Attachment(title="new.jpg", path="download/new.jpg"),))
        if row.id == 2 else row
    )

    result = sweeper(client, recheck_approved=True, apply=True).run()

    outcomes = by_id(result.outcomes)
    assert client.rereads == [[1, 2]]
    assert outcomes[1].action is Action.DELETED
    assert outcomes[2].action is Action.CHANGED_MEANWHILE
    assert client.deleted == [1]


# --------------------------------------------------------------------------- audit first
class FullDisk:
    """An audit trail on a full disk: every write fails as ``os.write`` does then."""

    def __init__(self) -> None:
        self.intents = 0

    def intend(self, outcome: RowOutcome) -> None:
        self.intents += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    def record(self, outcome: RowOutcome) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_with_an_unwritable_audit_trail_nothing_is_deleted_or_approved_and_the_pass_goes_on(
) -> None:
    client = FakeClient(content={"match.jpg": b"match", "stranger.jpg": b"stranger"})
    client.add(1, "match.jpg")
    client.add(2, "stranger.jpg")
    client.add(3, "stranger.jpg")
    full = FullDisk()
    sweep = Sweeper(
        client, FakeReferences({GRACE: REFERENCES}), FakeAnalyzer(), SweepOptions(),
        recorders=(full,), journal=full,
    )

    result = sweep.run()

    assert [o.row_id for o in result.outcomes] == [1, 2, 3]
    assert all(o.decision.verdict is Verdict.DEFERRED for o in result.outcomes)
    assert all(o.decision.explanation == UNRECORDED for o in result.outcomes)
    assert client.deleted == [] and client.approved == {}
    assert full.intents == 3
    assert result.audit_error is not None and "No space left" in result.audit_error
    assert "audit trail cannot be written" in result.status_line()


def test_the_intent_is_on_disk_before_the_row_is_changed(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path, 30, "v", fsync=False)

    class Witness(FakeClient):
        def reject_many(self, writes: Sequence[RowWrite]) -> dict[int, Action]:
            for write in writes:
                [record] = [r for r in audit.query(row_id=write.row_id)]
                assert record["intent"] is True and record["verdict"] == "rejected"
            return super().reject_many(writes)

    client = Witness(content={"stranger.jpg": b"stranger"})
    client.add(1, "stranger.jpg")
    sweep = Sweeper(
        client, FakeReferences({GRACE: REFERENCES}), FakeAnalyzer(), SweepOptions(),
        recorders=(audit,), journal=audit,
    )

    sweep.run()

    lines = [json.loads(line) for _, day in audit.files() for line in day.read_text().splitlines()]
    assert [(r["intent"], r["action"]) for r in lines] == [(True, "none"), (False, "deleted")]
    assert client.deleted == [1]
