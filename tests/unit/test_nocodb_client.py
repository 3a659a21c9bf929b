"""The NocoDB client against a real local HTTP server (pytest-httpserver); requests unpatched.

The server plays NocoDB 0.301.3 as measured in ../shared/NOCODB.md: listing JSON, error
codes, attachment cells with expiring signed paths.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from pytest_httpserver import HTTPServer
from structlog.testing import capture_logs
from structlog.tracebacks import ExceptionDictTransformer
from werkzeug import Request, Response

from nocodb_guard.errors import (
    AttachmentMissing,
    ConfigError,
    DownloadFailed,
    NocoDBAuthError,
    NocoDBRequestError,
    NocoDBUnavailable,
    RetryLater,
    RowGone,
    UrlNotAllowed,
)
from nocodb_guard.models import Action, Attachment, Reason, RowWrite, Verdict
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.nocodb.records import parse_attachments, parse_row
from nocodb_guard.nocodb.schema import (
    TableSchema,
    check_schema,
    parse_schema,
    politician_options,
)
from nocodb_guard.nocodb.transport import USER_AGENT, parse_retry_after
from nocodb_guard.policy import RowEvidence, decide
from nocodb_guard.settings import Settings

TOKEN = "tok-SECRET-5f1e2d9c"
TABLE = "mtbl0001"
RECORDS = f"/api/v2/tables/{TABLE}/records"


def make_settings(base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nocodb_url": base_url,
        "nocodb_token": TOKEN,
        "table_id": TABLE,
        "retry_seconds": 0.5,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


def base_of(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


@pytest.fixture
def client_for(httpserver: HTTPServer) -> Iterator[Any]:
    clients: list[NocoDBClient] = []

    def build(**overrides: Any) -> NocoDBClient:
        client = NocoDBClient(make_settings(base_of(httpserver), **overrides))
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


#: A file of the size :func:`record` gives its attachment (678 bytes).
FRESH = b"\xff\xd8fresh" + b"." * 671


def record(row_id: int, signed: str | None = None, politician: str = "Jane Doe") -> dict[str, Any]:
    photo = None
    if signed is not None:
        photo = [
            {
                "path": f"download/2026/11/26/h{row_id}/face_{row_id}.jpg",
                "title": "face.jpg",
                "mimetype": "image/jpeg",
                "size": 678,
                "id": f"att{row_id}",
                "signedPath": signed,
            }
        ]
    return {"Id": row_id, "Politician": politician, "Photo": photo, "Status": None}


# --- listing --------------------------------------------------------------------------------


def test_pending_rows_are_listed_page_by_page_by_id_never_by_offset(
    httpserver: HTTPServer, client_for: Any
) -> None:
    ids = [1, 2, 3, 5, 8]
    seen: list[dict[str, str]] = []

    def listing(request: Request) -> Response:
        args = dict(request.args)
        seen.append(args)
        after = int(args["where"].rsplit(",", 1)[1].rstrip(")"))
        limit = int(args["limit"])
        page = [record(i) for i in ids if i > after][:limit]
        return Response(json.dumps({"list": page, "pageInfo": {}}), mimetype="application/json")

    httpserver.expect_request(RECORDS, method="GET").respond_with_handler(listing)
    rows = list(client_for(page_size=2).iter_pending())

    assert [row.id for row in rows] == ids
    assert rows[0].politician == "Jane Doe"
    assert [args["where"] for args in seen] == [
        "(Status,blank)~and(Id,gt,0)",
        "(Status,blank)~and(Id,gt,2)",
        "(Status,blank)~and(Id,gt,5)",
    ]
    assert all(args["sort"] == "Id" and args["limit"] == "2" for args in seen)
    assert all(args.get("offset", "0") == "0" for args in seen)
    assert seen[0]["fields"] == "Id,Politician,Photo,Status"
    first_request = httpserver.log[0][0]
    assert first_request.headers["xc-token"] == TOKEN
    assert first_request.headers["User-Agent"] == USER_AGENT


def test_iter_pending_stops_at_its_limit(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(RECORDS).respond_with_json({"list": [record(1), record(2)]})
    rows = list(client_for(page_size=50).iter_pending(limit=2))
    assert [row.id for row in rows] == [1, 2]
    assert httpserver.log[0][0].args["limit"] == "2"


def test_field_titles_with_spaces_are_used_as_configured(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(RECORDS).respond_with_json(
        {"list": [{"Id": 4, "Chosen politician": "Jane Doe", "Moderation status": ""}]}
    )
    client = client_for(field_status="Moderation status", field_politician="Chosen politician")
    rows = list(client.iter_pending())
    assert rows[0].politician == "Jane Doe"
    assert rows[0].status is None
    args = httpserver.log[0][0].args
    assert args["where"] == "(Moderation status,blank)~and(Id,gt,0)"
    assert args["fields"] == "Id,Chosen politician,Photo,Moderation status"


@pytest.mark.parametrize("bad", ["Status (mod)", "A,B", "x~y"])
def test_a_field_title_the_where_syntax_cannot_carry_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="field_status"):
        NocoDBClient(make_settings("http://127.0.0.1:9", field_status=bad))


def test_rows_without_an_integer_id_are_skipped_not_fatal(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(RECORDS).respond_with_json(
        {"list": [{"Politician": "x"}, "junk", record(9)]}
    )
    assert [row.id for row in client_for().iter_pending()] == [9]


def test_pending_rows_are_counted(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(
        f"{RECORDS}/count", query_string={"where": "(Status,blank)"}
    ).respond_with_json({"count": 17})
    assert client_for().count_pending() == 17


# --- retries and errors -----------------------------------------------------------------


def test_a_500_is_retried_and_the_next_answer_used(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_ordered_request(RECORDS).respond_with_data("boom", status=500)
    httpserver.expect_ordered_request(RECORDS).respond_with_json({"list": [record(1)]})
    rows = list(client_for(retry_seconds=5).iter_pending())
    assert [row.id for row in rows] == [1]
    assert len(httpserver.log) == 2


def test_a_429_waits_as_long_as_retry_after_says(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_ordered_request(RECORDS).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_ordered_request(RECORDS).respond_with_json({"list": []})
    started = time.monotonic()
    assert list(client_for(retry_seconds=5).iter_pending()) == []
    assert 0.9 <= time.monotonic() - started < 3


def test_a_retry_after_beyond_the_budget_gives_up_at_once(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(RECORDS).respond_with_data(
        "blocked", status=429, headers={"Retry-After": "30"}
    )
    started = time.monotonic()
    with pytest.raises(NocoDBUnavailable, match="HTTP 429, Retry-After 30 s"):
        list(client_for(retry_seconds=2).iter_pending())
    assert time.monotonic() - started < 1
    assert len(httpserver.log) == 1


def test_retry_after_may_be_an_http_date_and_is_capped() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    in_ten = (now + timedelta(seconds=10)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(in_ten, now=now) == pytest.approx(10)
    assert parse_retry_after("3", now=now) == 3
    assert parse_retry_after("100000", now=now) == 120
    assert parse_retry_after("-5", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_retries_are_bounded_by_retry_seconds(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(RECORDS).respond_with_data("down", status=503)
    started = time.monotonic()
    with pytest.raises(NocoDBUnavailable, match=f"GET {RECORDS}: HTTP 503") as raised:
        list(client_for(retry_seconds=0.6).iter_pending())
    assert time.monotonic() - started < 1.5
    assert len(httpserver.log) >= 2
    assert isinstance(raised.value, RetryLater)


def test_connection_refused_is_unavailable_quickly() -> None:
    client = NocoDBClient(make_settings(closed_port_url(), retry_seconds=0.3))
    started = time.monotonic()
    with pytest.raises(NocoDBUnavailable, match="connection refused"):
        list(client.iter_pending())
    assert time.monotonic() - started < 1.5


def test_a_rejected_token_is_an_auth_error_without_retry(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(RECORDS).respond_with_json(
        {"error": "ERR_AUTHENTICATION_REQUIRED", "message": "Authentication required"}, status=401
    )
    with pytest.raises(NocoDBAuthError, match="rejected the API token"):
        list(client_for(retry_seconds=5).iter_pending())
    assert len(httpserver.log) == 1


def test_an_unknown_table_is_reported_as_not_found(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(RECORDS).respond_with_json(
        {"error": "ERR_TABLE_NOT_FOUND", "message": f"Table '{TABLE}' not found"}, status=404
    )
    with pytest.raises(NocoDBAuthError, match="table 'mtbl0001' not found"):
        client_for().ping()


def test_a_404_that_is_not_nocodbs_own_answer_is_transient(
    httpserver: HTTPServer, client_for: Any
) -> None:
    # NocoDB mounts its API after the socket opens: while it restarts, express answers 404.
    httpserver.expect_request(RECORDS).respond_with_data(
        "<pre>Cannot GET /api/v2/tables</pre>", status=404, content_type="text/html"
    )
    with pytest.raises(NocoDBUnavailable, match="starting up"):
        list(client_for().iter_pending())


def test_a_bad_request_is_a_clear_error_not_retried(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(RECORDS).respond_with_json(
        {"error": "ERR_INVALID_FILTER", "message": "Invalid filter expression"}, status=422
    )
    with pytest.raises(NocoDBRequestError, match="HTTP 422 ERR_INVALID_FILTER: Invalid filter"):
        list(client_for(retry_seconds=5).iter_pending())
    assert len(httpserver.log) == 1


def test_a_redirect_from_the_api_is_not_followed(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(RECORDS).respond_with_response(
        Response(status=302, headers={"Location": "http://elsewhere.invalid/"})
    )
    with pytest.raises(NocoDBRequestError, match="redirect"):
        list(client_for().iter_pending())


# --- acting -------------------------------------------------------------------------------------


def test_approve_sends_status_and_reason_in_one_patch(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(
        RECORDS,
        method="PATCH",
        json=[{"Id": 7, "Status": "approved", "Reason": "one face, matches Jane Doe"}],
    ).respond_with_json([{"Id": 7}])
    assert client_for().approve(7, "one face, matches Jane Doe") == "approved"
    httpserver.check_assertions()


def test_approve_leaves_out_the_reason_when_no_reason_field_is_configured(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(
        RECORDS, method="PATCH", json=[{"Id": 7, "Status": "ok"}]
    ).respond_with_json([{"Id": 7}])
    assert client_for(field_reason="", status_approved="ok").approve(7, "why") == "approved"


def test_approving_a_vanished_row_raises_row_gone(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(RECORDS, method="PATCH").respond_with_json(
        {"error": "ERR_RECORD_NOT_FOUND", "message": "Record '7' not found"}, status=404
    )
    with pytest.raises(RowGone):
        client_for().approve(7, "why")


def test_a_404_without_nocodbs_error_code_on_the_re_read_is_transient_not_a_vanished_row(
    httpserver: HTTPServer, client_for: Any
) -> None:
    """A proxy's (or a starting NocoDB's) 404 says nothing about the row."""
    httpserver.expect_request(f"{RECORDS}/7").respond_with_data("Not Found", status=404)
    with pytest.raises(NocoDBUnavailable, match="without a NocoDB error"):
        client_for().get_row(7)


def test_reject_deletes_the_row(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(RECORDS, method="DELETE", json=[{"Id": 3}]).respond_with_json(
        [{"Id": 3}]
    )
    assert client_for().reject(3, "two faces") == "deleted"
    httpserver.check_assertions()


def test_deleting_an_already_deleted_row_is_fine(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(RECORDS, method="DELETE").respond_with_json(
        {"error": "ERR_RECORD_NOT_FOUND", "message": "Record '3' not found"}, status=404
    )
    assert client_for().reject(3, "two faces") == "already_gone"


def test_reject_action_tag_patches_the_rejected_status_instead_of_deleting(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(
        RECORDS,
        method="PATCH",
        json=[{"Id": 3, "Status": "rejected", "Reason": "no face"}],
    ).respond_with_json([{"Id": 3}])
    assert client_for(reject_action="tag").reject(3, "no face") == "tagged_rejected"
    assert [req.method for req, _ in httpserver.log] == ["PATCH"]


# --- rows and attachments ------------------------------------------------------------------------


def test_get_row_of_a_missing_record_raises_row_gone(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(f"{RECORDS}/41").respond_with_json(
        {"error": "ERR_RECORD_NOT_FOUND"}, status=404
    )
    httpserver.expect_request(f"{RECORDS}/42").respond_with_json({})
    client = client_for()
    with pytest.raises(RowGone):
        client.get_row(41)
    with pytest.raises(RowGone):
        client.get_row(42)


def test_an_expired_signed_path_is_refreshed_by_rereading_the_row(
    httpserver: HTTPServer, client_for: Any
) -> None:
    old, new = "dltemp/OLDTOKEN/1/2026/face_7.jpg", "dltemp/NEWTOKEN/2/2026/face_7.jpg"
    httpserver.expect_request(f"/{old}").respond_with_data("", status=404)
    httpserver.expect_request(f"{RECORDS}/7").respond_with_json(record(7, signed=new))
    httpserver.expect_request(f"/{new}").respond_with_data(FRESH)
    listed = parse_attachments(record(7, signed=old)["Photo"])
    assert client_for().download(listed[0], 7) == FRESH
    paths = [req.path for req, _ in httpserver.log]
    assert paths == [f"/{old}", f"{RECORDS}/7", f"/{new}"]


def test_a_file_missing_even_with_a_fresh_link_is_deferred_not_rejected(
    httpserver: HTTPServer, client_for: Any
) -> None:
    signed = "dltemp/T/1/2026/face_7.jpg"
    httpserver.expect_request(f"/{signed}").respond_with_data("", status=404)
    httpserver.expect_request(f"{RECORDS}/7").respond_with_json(record(7, signed=signed))
    att = parse_attachments(record(7, signed=signed)["Photo"])[0]
    with pytest.raises(AttachmentMissing, match="missing on NocoDB's side") as raised:
        client_for().download(att, 7)
    assert isinstance(raised.value, DownloadFailed)


def test_a_row_deleted_before_the_refresh_is_row_gone(
    httpserver: HTTPServer, client_for: Any
) -> None:
    signed = "dltemp/T/1/2026/face_7.jpg"
    httpserver.expect_request(f"/{signed}").respond_with_data("", status=404)
    httpserver.expect_request(f"{RECORDS}/7").respond_with_json(
        {"error": "ERR_RECORD_NOT_FOUND"}, status=404
    )
    att = parse_attachments(record(7, signed=signed)["Photo"])[0]
    with pytest.raises(RowGone):
        client_for().download(att, 7)


def test_downloads_never_carry_the_token(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request("/dltemp/a/1/f.jpg").respond_with_data(
        b"bytes", content_type="image/jpeg"
    )
    att = Attachment(title="f.jpg", signed_path="dltemp/a/1/f.jpg")
    assert client_for().download(att, 1) == b"bytes"
    request = httpserver.log[0][0]
    assert "xc-token" not in request.headers
    assert request.headers["User-Agent"] == USER_AGENT


def test_the_attachment_url_prefers_the_signed_path_on_the_nocodb_origin(
    httpserver: HTTPServer, client_for: Any
) -> None:
    client = client_for()
    att = Attachment(
        title="f.jpg",
        path="download/x/f.jpg",
        signed_path="dltemp/t/1/x/f.jpg",
        url="https://s3.example.com/f.jpg",
    )
    assert client.attachment_url(att).endswith("/dltemp/t/1/x/f.jpg")
    assert client.attachment_url(att).startswith(base_of(httpserver) + "/")


def test_an_attachment_with_only_a_path_is_not_fetched(client_for: Any) -> None:
    with pytest.raises(UrlNotAllowed, match="NC_SECURE_ATTACHMENTS"):
        client_for().attachment_url(Attachment(title="f.jpg", path="download/x/f.jpg"))


def test_a_storage_url_must_be_on_an_allowed_host(client_for: Any) -> None:
    att = Attachment(title="f.jpg", signed_url="https://bucket.s3.example.com/f.jpg?X-Amz=sig")
    with pytest.raises(UrlNotAllowed):
        client_for().attachment_url(att)
    allowed = client_for(allowed_hosts="bucket.s3.example.com")
    assert allowed.attachment_url(att) == att.signed_url
    other = Attachment(title="f.jpg", url="http://127.0.0.1:22/f.jpg")
    with pytest.raises(UrlNotAllowed):
        allowed.attachment_url(other)


def test_a_signed_url_is_used_only_when_it_signs_the_cells_own_file(client_for: Any) -> None:
    allowed = client_for(allowed_hosts="bucket.s3.example.com")
    s3 = Attachment(
        title="f.jpg",
        url="https://bucket.s3.example.com/nc/uploads/f%20a.jpg",
        signed_url="https://bucket.s3.example.com/nc/uploads/f%20a.jpg?X-Amz-Signature=sig",
    )
    assert allowed.attachment_url(s3) == s3.signed_url
    # NocoDB's S3 cells: ``url`` is always https and keeps a space raw; the link signs it.
    endpoint = Attachment(
        title="f a.jpg",
        url="https://bucket.s3.example.com/nc/uploads/f a.jpg",
        signed_url="http://bucket.s3.example.com/nc/uploads/f%20a.jpg?X-Amz-Signature=sig",
    )
    assert client_for(allowed_hosts="http://bucket.s3.example.com").attachment_url(
        endpoint
    ) == endpoint.signed_url
    # NocoDB 0.301.3 hands cells with the same path another cell's signedUrl:
    crossed = Attachment(
        title="x.jpg",
        url="http://10.1.2.3/x.jpg",
        signed_url="https://bucket.s3.example.com/x.jpg?X-Amz-Signature=sig",
    )
    with pytest.raises(UrlNotAllowed, match=r"10\.1\.2\.3"):
        allowed.attachment_url(crossed)


def test_the_s3_endpoint_configured_as_nocodbs_storage_is_a_download_origin(
    client_for: Any,
) -> None:
    # Like nocodb_url, the operator named it: trusted even on 127.0.0.1 (MinIO next door).
    storage = {
        "endpoint": "http://127.0.0.1:9000",
        "bucket": "nocodb-uploads",
        "access_key_file": "/run/secrets/a",
        "secret_key_file": "/run/secrets/b",
    }
    client = client_for(s3=storage)
    signed = "http://127.0.0.1:9000/nocodb-uploads/nc/uploads/x/f.jpg?X-Amz-Signature=s"
    assert client.attachment_url(Attachment(title="f.jpg", signed_url=signed)) == signed
    for elsewhere in ("http://127.0.0.1:9001/f.jpg", "https://127.0.0.1:9000/f.jpg"):
        with pytest.raises(UrlNotAllowed):
            client.attachment_url(Attachment(title="f.jpg", signed_url=elsewhere))


def test_attachment_cells_in_every_shape_are_read_without_crashing() -> None:
    entry = {"title": "a.jpg", "signedPath": "dltemp/x", "size": 5, "id": "att1"}
    assert parse_attachments(None) == ()
    assert parse_attachments([]) == ()
    assert parse_attachments("") == ()
    assert parse_attachments(json.dumps([entry]))[0].signed_path == "dltemp/x"
    assert parse_attachments(entry)[0].id == "att1"
    s3 = parse_attachments([{"title": "b.jpg", "url": "https://s", "signedUrl": "https://t"}])
    assert s3[0].signed_url == "https://t"
    assert parse_attachments([{"title": "c.jpg", "size": "big"}])[0].size is None


def test_junk_attachment_entries_become_placeholders_that_defer_the_row(client_for: Any) -> None:
    cell = [42, "nonsense", None, {"title": "ok.jpg", "signedPath": "dltemp/x"}]
    parsed = parse_attachments(cell)
    assert len(parsed) == 4  # never "fewer files than uploaded": that could mean a deletion
    assert parsed[3].signed_path == "dltemp/x"
    with pytest.raises(UrlNotAllowed):
        client_for().attachment_url(parsed[0])
    assert len(parse_attachments("{not json")) == 1


@pytest.mark.parametrize("value", [7, True, {"id": 1, "title": "Jane Doe"}, ["Jane Doe"]])
def test_a_politician_value_that_is_not_text_defers_the_row_never_rejects_it(value: Any) -> None:
    """The column was changed to another type under the daemon: not "no politician chosen"."""
    item = record(1, signed="dltemp/x") | {"Politician": value}
    row = parse_row(item, make_settings("http://127.0.0.1:9"))
    assert row is not None
    decision = decide(RowEvidence(row.politician, None, 1), max_attachments=3)
    assert (decision.verdict, decision.reason) == (Verdict.DEFERRED, Reason.UNKNOWN_POLITICIAN)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_politician_chosen_is_still_a_rejection(value: Any) -> None:
    row = parse_row(record(1) | {"Politician": value}, make_settings("http://127.0.0.1:9"))
    assert row is not None
    decision = decide(RowEvidence(row.politician, None, 1), max_attachments=3)
    assert (decision.verdict, decision.reason) == (Verdict.REJECTED, Reason.NO_POLITICIAN)


# --- schema and ping ---------------------------------------------------------------------------


def meta_table(status_options: list[str], reason_type: str = "LongText") -> dict[str, Any]:
    return {
        "id": TABLE,
        "title": "Uploads",
        "columns": [
            {"title": "Id", "uidt": "ID", "system": False},
            {
                "title": "Politician",
                "uidt": "SingleSelect",
                "colOptions": {"options": [{"title": "Jane Doe"}, {"title": "John Roe"}]},
            },
            {"title": "Photo", "uidt": "Attachment"},
            {
                "title": "Status",
                "uidt": "SingleSelect",
                "colOptions": {"options": [{"title": t} for t in status_options]},
            },
            {"title": "Reason", "uidt": reason_type},
            "junk",
        ],
    }


def test_the_schema_is_read_and_a_good_table_has_no_problems(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(f"/api/v2/meta/tables/{TABLE}").respond_with_json(
        meta_table(["approved", "rejected"])
    )
    client = client_for()
    schema = client.table_schema()
    assert schema.columns["Photo"] == "Attachment"
    assert politician_options(schema, "Politician") == ["Jane Doe", "John Roe"]
    assert check_schema(schema, make_settings("http://127.0.0.1:9", reject_action="tag")) == []


def test_schema_problems_are_listed_in_plain_words() -> None:
    schema = TableSchema(
        table_id=TABLE,
        title="Uploads",
        columns={"Id": "ID", "Politician": "SingleLineText", "Status": "SingleSelect"},
        options={"Status": ("approved",)},
    )
    problems = check_schema(schema, make_settings("http://127.0.0.1:9", reject_action="tag"))
    text = "\n".join(problems)
    assert "'Politician' (field_politician) is a SingleLineText, expected SingleSelect" in text
    assert "'Photo' (field_photo) is missing" in text
    assert "'Reason' (field_reason) is missing" in text
    assert "no option 'rejected' (status_rejected)" in text
    assert len(problems) == 4


def test_ping_proves_reachability_and_token(httpserver: HTTPServer, client_for: Any) -> None:
    httpserver.expect_request(
        RECORDS, query_string={"limit": "1", "fields": "Id"}
    ).respond_with_json({"list": []})
    assert client_for().ping() >= 0


def test_ping_does_not_retry() -> None:
    client = NocoDBClient(make_settings(closed_port_url(), retry_seconds=30))
    started = time.monotonic()
    with pytest.raises(NocoDBUnavailable):
        client.ping()
    assert time.monotonic() - started < 1.5


def test_a_missing_token_is_a_config_error_at_construction() -> None:
    with pytest.raises(ConfigError, match="nocodb_token"):
        NocoDBClient(make_settings("http://127.0.0.1:9", nocodb_token=None))


# --- secrets --------------------------------------------------------------------------------------


def test_the_token_never_reaches_logs_messages_or_rendered_tracebacks(
    httpserver: HTTPServer, client_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(RECORDS).respond_with_json(
        {"error": "ERR_AUTHENTICATION_REQUIRED"}, status=401
    )
    httpserver.expect_request(f"{RECORDS}/count").respond_with_data("down", status=503)
    refused = NocoDBClient(make_settings(closed_port_url(), retry_seconds=0.2))
    client = client_for(retry_seconds=0.3)
    errors: list[BaseException] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        calls = (
            lambda: list(client.iter_pending()),
            client.count_pending,
            lambda: list(refused.iter_pending()),
        )
        for call in calls:
            with pytest.raises((NocoDBAuthError, NocoDBUnavailable)) as raised:
                call()
            errors.append(raised.value)
            structlog.get_logger("test").exception("failed", exc_info=raised.value)

    assert events, "the client logs its requests at debug level"
    assert TOKEN not in repr(events)
    assert TOKEN not in caplog.text
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in "".join(traceback.format_exception(error))
        rendered = ExceptionDictTransformer(show_locals=True)(
            (type(error), error, error.__traceback__)
        )
        assert TOKEN not in json.dumps(rendered, default=str)
    assert TOKEN not in repr(client)


def test_with_a_review_band_the_status_field_must_offer_the_review_option() -> None:
    schema = parse_schema(TABLE, meta_table(["approved", "rejected"]))
    plain = make_settings("http://127.0.0.1:9")
    banded = make_settings("http://127.0.0.1:9", review_band=(0.55, 0.65))

    assert check_schema(schema, plain) == []
    assert check_schema(schema, banded) == [
        "field 'Status' has no option 'review' (status_review); options: approved, rejected"
    ]
    with_option = parse_schema(TABLE, meta_table(["approved", "rejected", "review"]))
    assert check_schema(with_option, banded) == []


# --- acting by pages ------------------------------------------------------------------------


def test_a_page_of_rows_is_re_read_in_one_request_by_id(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(
        RECORDS, query_string={"where": "(Id,in,3,5,8)", "limit": "3", "offset": "0",
                               "fields": "Id,Politician,Photo,Status"},
    ).respond_with_json({"list": [record(3), record(8)]})  # fmt: skip

    rows = client_for().get_rows([3, 5, 8])

    assert sorted(rows) == [3, 8]  # 5 is gone
    assert len(httpserver.log) == 1


def test_a_page_is_approved_with_one_patch_and_rejected_with_one_delete(
    httpserver: HTTPServer, client_for: Any
) -> None:
    httpserver.expect_request(
        RECORDS, method="PATCH",
        json=[{"Id": 1, "Status": "approved", "Reason": "a"},
              {"Id": 2, "Status": "approved", "Reason": "b"}],
    ).respond_with_json([{"Id": 1}, {"Id": 2}])  # fmt: skip
    httpserver.expect_request(
        RECORDS, method="DELETE", json=[{"Id": 3}, {"Id": 4}]
    ).respond_with_json([{"Id": 3}, {"Id": 4}])
    client = client_for()

    approved = client.approve_many([RowWrite(1, "a"), RowWrite(2, "b")])
    rejected = client.reject_many([RowWrite(3, "c"), RowWrite(4, "d")])

    assert approved == {1: Action.APPROVED, 2: Action.APPROVED}
    assert rejected == {3: Action.DELETED, 4: Action.DELETED}
    assert len(httpserver.log) == 2
    assert client.approve_many([]) == {} and len(httpserver.log) == 2


def test_a_bulk_delete_refused_for_one_missing_row_is_done_row_by_row(
    httpserver: HTTPServer, client_for: Any
) -> None:
    """NocoDB refuses the whole list (404, nothing deleted) when one Id is missing."""
    missing = {"error": "ERR_RECORD_NOT_FOUND", "message": "Record '4' not found"}
    httpserver.expect_request(
        RECORDS, method="DELETE", json=[{"Id": 3}, {"Id": 4}]
    ).respond_with_json(missing, status=404)
    httpserver.expect_request(RECORDS, method="DELETE", json=[{"Id": 3}]).respond_with_json(
        [{"Id": 3}]
    )
    httpserver.expect_request(RECORDS, method="DELETE", json=[{"Id": 4}]).respond_with_json(
        missing, status=404
    )

    actions = client_for().reject_many([RowWrite(3, "c"), RowWrite(4, "d")])

    assert actions == {3: Action.DELETED, 4: Action.ALREADY_GONE}
    assert len(httpserver.log) == 3
