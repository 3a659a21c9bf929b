"""Where NocoDB on SQLite and on PostgreSQL differ, and why the guard's client does not care.

`scripts/test` runs these (like every integration test) on both databases (NOCODB_DEV_DB).
Each test pins one measured difference next to the client behaviour that makes it harmless.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nocodb_guard.models import Action, RowWrite
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.settings import load_settings
from tests import nocodb_admin
from tests.integration.conftest import DevServer

GRACE = "Grace Hopper (demo)"


@pytest.fixture
def client(clean_table: DevServer) -> Iterator[NocoDBClient]:
    """The guard's own client on the dev server, with pages of 2 rows to exercise paging."""
    with NocoDBClient(load_settings(env_file=clean_table.env_file, page_size=2)) as made:
        yield made


def test_pending_rows_come_by_ascending_id_even_after_edits_reorder_the_table(
    clean_table: DevServer, client: NocoDBClient
) -> None:
    ids = clean_table.insert([{"Politician": GRACE} for _ in range(5)])
    # PostgreSQL writes an updated row anew: an unsorted list would now return these last.
    edits = [{"Id": row_id, "Title": "edited"} for row_id in ids[:3]]
    nocodb_admin.update_rows(clean_table.url, clean_table.token, clean_table.table_id, edits)

    assert [row.id for row in client.iter_pending()] == ids


def test_a_status_cleared_by_an_admin_is_pending_again(
    clean_table: DevServer, client: NocoDBClient
) -> None:
    cleared, emptied, kept = clean_table.insert([{"Politician": GRACE, "Status": "approved"}] * 3)
    nocodb_admin.update_rows(
        clean_table.url,
        clean_table.token,
        clean_table.table_id,
        [{"Id": cleared, "Status": None}, {"Id": emptied, "Status": ""}],
    )

    assert [row.id for row in client.iter_pending()] == [cleared, emptied]
    assert client.count_pending() == 2
    assert [row.id for row in client.iter_approved()] == [kept]


def test_a_new_row_may_take_a_deleted_rows_id_only_on_sqlite_and_is_pending_either_way(
    clean_table: DevServer, client: NocoDBClient
) -> None:
    first, newest = clean_table.insert([{"Politician": GRACE}, {"Politician": GRACE}])
    assert client.reject(newest, "test") is Action.DELETED

    [again] = clean_table.insert([{"Politician": GRACE}])

    assert (again == newest) == (clean_table.db == "sqlite")
    assert [row.id for row in client.iter_pending()] == [first, again]


def test_like_ignores_case_on_both_databases_as_nocodb_turns_it_into_ilike_on_postgresql(
    clean_table: DevServer,
) -> None:
    """PostgreSQL's own LIKE is case-sensitive, but NocoDB's `like` is not, on either database
    (measured on 0.301.3): a filter written for one behaves the same on the other."""
    clean_table.insert([{"Politician": GRACE, "Title": "Grace"}])

    assert len(clean_table.rows("(Title,like,%grace%)")) == 1


def test_a_page_is_re_read_by_id_and_written_in_bulk_alike_on_both_databases(
    clean_table: DevServer, client: NocoDBClient
) -> None:
    """``(Id,in,...)`` and the bulk writes of acting by pages; a missing Id is simply absent."""
    keep, drop, gone = clean_table.insert([{"Politician": GRACE}] * 3)
    nocodb_admin.delete_rows(clean_table.url, clean_table.token, clean_table.table_id, [gone])

    assert sorted(client.get_rows([keep, drop, gone])) == [keep, drop]
    assert client.reject_many([RowWrite(drop, "x"), RowWrite(gone, "y")]) == {
        drop: Action.DELETED, gone: Action.ALREADY_GONE}  # fmt: skip
    assert client.approve_many([RowWrite(keep, "z")]) == {keep: Action.APPROVED}
    assert [row.id for row in client.iter_approved()] == [keep]
    assert client.get_rows([drop]) == {}
