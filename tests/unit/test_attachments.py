"""Safe downloads, against a real local HTTP server (pytest-httpserver), requests unpatched."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from nocodb_guard import attachments
from nocodb_guard.attachments import check_url, fetch, origin_of, url_ref
from nocodb_guard.errors import (
    AttachmentNotFound,
    DownloadFailed,
    DownloadTooLarge,
    RetryLater,
    UrlNotAllowed,
)

SIGNED_TOKEN = "SIGNED-aa11bb22cc33"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        yield s


def get(
    session: requests.Session,
    url: str,
    origin: str,
    *,
    max_bytes: int = 1_000_000,
    read_timeout: float = 2.0,
    **kwargs: object,
) -> bytes:
    return fetch(
        session,
        url,
        allowed_origins={origin},
        max_bytes=max_bytes,
        connect_timeout=1.0,
        read_timeout=read_timeout,
        **kwargs,  # type: ignore[arg-type]
    )


def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- what may be fetched -----------------------------------------------------------------


def test_a_file_on_the_nocodb_origin_is_downloaded_even_on_loopback(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/dltemp/x/1/face.jpg").respond_with_data(
        b"\xff\xd8picture", content_type="image/jpeg"
    )
    url = httpserver.url_for("/dltemp/x/1/face.jpg")
    assert get(session, url, origin_of(httpserver.url_for("/"))) == b"\xff\xd8picture"


def test_a_url_on_another_port_of_the_same_host_is_not_allowed(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    other = f"http://{httpserver.host}:{free_port()}/secret"
    with pytest.raises(UrlNotAllowed, match="neither the NocoDB origin"):
        get(session, other, origin_of(httpserver.url_for("/")))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/face.jpg",
        "data:image/jpeg;base64,AAAA",
        "gopher://127.0.0.1:70/_x",
        "javascript:alert(1)",
        "face.jpg",
    ],
)
def test_non_http_urls_are_not_allowed(url: str, session: requests.Session) -> None:
    with pytest.raises(UrlNotAllowed):
        get(session, url, "http://127.0.0.1:8080")


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@127.0.0.1:8080/x",
        "http://127.0.0.1:8080\\@evil.example/x",
        "http://127.0.0.1:8080/x y",
        "http://127.0.0.1:8080/x\r\nHost: evil",
    ],
)
def test_credentials_and_parser_tricks_are_not_allowed(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(url, allowed_origins={"http://127.0.0.1:8080"})


def test_the_origin_comparison_normalises_case_and_default_port() -> None:
    origin = check_url("HTTP://LocalHost:80/x", allowed_origins={"http://localhost"})
    assert str(origin) == "http://localhost:80"


@pytest.mark.parametrize("url", ["http://127.0.0.1.:8080/x", "http://LocalHost.:8080/x"])
def test_a_trailing_dot_host_is_not_the_origin(url: str) -> None:
    # "127.0.0.1." is a DNS name, not the address: the resolver decides where it leads.
    with pytest.raises(UrlNotAllowed, match="ends with a dot"):
        check_url(url, allowed_origins={"http://127.0.0.1:8080", "http://localhost:8080"})


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254"])
def test_an_allowed_host_resolving_to_a_non_public_address_is_not_allowed(address: str) -> None:
    with pytest.raises(UrlNotAllowed, match="non-public"):
        check_url(
            "https://files.example.com/face.jpg",
            allowed_origins={"http://127.0.0.1:8080"},
            allowed_hosts=["files.example.com"],
            resolver=lambda host, port: ["93.184.216.34", address],
        )


def test_an_allowed_host_that_really_resolves_to_loopback_is_not_allowed(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/face.jpg").respond_with_data(b"never served")
    with pytest.raises(UrlNotAllowed, match="non-public"):
        get(
            session,
            f"http://localhost:{httpserver.port}/face.jpg",
            "http://nocodb.invalid:8080",
            allowed_hosts=[f"http://localhost:{httpserver.port}"],
        )
    assert not httpserver.log


def test_an_allowed_host_is_fetched(httpserver: HTTPServer, session: requests.Session) -> None:
    httpserver.expect_request("/bucket/face.jpg").respond_with_data(
        b"from storage", content_type="image/jpeg"
    )
    data = get(
        session,
        f"http://localhost:{httpserver.port}/bucket/face.jpg",
        "http://nocodb.invalid:8080",
        allowed_hosts=[f"http://localhost:{httpserver.port}"],
        resolver=public_resolver,
    )
    assert data == b"from storage"


def test_an_allowed_host_without_scheme_is_https_only() -> None:
    allowed = {"allowed_origins": {"http://127.0.0.1:8080"}, "allowed_hosts": ["files.example.com"]}
    check_url("https://files.example.com/a.jpg", resolver=public_resolver, **allowed)
    with pytest.raises(UrlNotAllowed):
        check_url("http://files.example.com/a.jpg", resolver=public_resolver, **allowed)
    with pytest.raises(UrlNotAllowed):
        check_url("https://files.example.com:8443/a.jpg", resolver=public_resolver, **allowed)


# --- redirects and statuses ---------------------------------------------------------------


def test_a_redirect_is_refused_and_not_followed(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/dltemp/a").respond_with_response(
        Response(status=302, headers={"Location": httpserver.url_for("/elsewhere")})
    )
    httpserver.expect_request("/elsewhere").respond_with_data(b"should not be fetched")
    with pytest.raises(UrlNotAllowed, match="redirect"):
        get(session, httpserver.url_for("/dltemp/a"), origin_of(httpserver.url_for("/")))
    assert [req.path for req, _ in httpserver.log] == ["/dltemp/a"]


@pytest.mark.parametrize("status", [404, 410, 403])
def test_a_dead_link_is_attachment_not_found_so_it_can_be_refreshed(
    status: int, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/dltemp/old").respond_with_data(b"", status=status)
    with pytest.raises(AttachmentNotFound) as raised:
        get(session, httpserver.url_for("/dltemp/old"), origin_of(httpserver.url_for("/")))
    assert raised.value.status == status
    assert isinstance(raised.value, DownloadFailed)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_trouble_is_a_transient_download_failure(
    status: int, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/f").respond_with_data(b"busy", status=status)
    with pytest.raises(DownloadFailed, match=f"HTTP {status}") as raised:
        get(session, httpserver.url_for("/f"), origin_of(httpserver.url_for("/")))
    assert isinstance(raised.value, RetryLater)
    assert not isinstance(raised.value, AttachmentNotFound)


# --- size caps -------------------------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_too_large(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)
    with pytest.raises(DownloadTooLarge, match="5000 bytes announced"):
        get(session, httpserver.url_for("/big"), origin_of(httpserver.url_for("/")), max_bytes=1024)


@pytest.mark.parametrize("announced", [True, False])
def test_more_bytes_than_the_cell_says_over_the_cap_are_not_the_upload_so_the_row_waits(
    announced: bool, httpserver: HTTPServer, session: requests.Session
) -> None:
    """A proxy or CDN sending a large page for a small upload: never a ``too_large`` deletion."""

    def large(request: Request) -> Response:
        body = b"x" * 5000
        return Response(body if announced else iter([body]), mimetype="image/jpeg")

    httpserver.expect_request("/small").respond_with_handler(large)
    url, origin = httpserver.url_for("/small"), origin_of(httpserver.url_for("/"))
    with pytest.raises(DownloadFailed, match="; the cell says 600: not the upload") as raised:
        get(session, url, origin, max_bytes=1024, expected_size=600)
    assert not isinstance(raised.value, DownloadTooLarge)
    with pytest.raises(DownloadTooLarge):  # the cell itself says over the cap: a fact
        get(session, url, origin, max_bytes=1024, expected_size=5000)


def test_a_streamed_body_over_the_cap_stops_while_streaming(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    sent = {"chunks": 0}

    def endless(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(2000):  # 128 MiB if nobody stopped reading
                sent["chunks"] += 1
                yield b"y" * 65536

        return Response(body(), mimetype="image/jpeg")  # no Content-Length: chunked

    httpserver.expect_request("/endless").respond_with_handler(endless)
    started = time.monotonic()
    with pytest.raises(DownloadTooLarge, match="more than 100000 bytes"):
        get(
            session,
            httpserver.url_for("/endless"),
            origin_of(httpserver.url_for("/")),
            max_bytes=100_000,
        )
    assert time.monotonic() - started < 5
    assert sent["chunks"] < 2000


def test_a_body_shorter_than_its_content_length_is_a_transient_failure(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    def truncated(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b"only ten b"

        response = Response(body(), mimetype="image/jpeg")
        response.headers["Content-Length"] = "1000"
        response.headers["Connection"] = "close"
        return response

    httpserver.expect_request("/cut").respond_with_handler(truncated)
    with pytest.raises(DownloadFailed, match=r"dropped mid-body|cut short"):
        get(session, httpserver.url_for("/cut"), origin_of(httpserver.url_for("/")), read_timeout=1)


def test_bytes_matching_the_cells_size_are_the_upload_whatever_they_look_like(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    page = b"<html><body>an uploaded HTML file</body></html>"
    httpserver.expect_request("/f").respond_with_data(page, content_type="text/html")
    url = httpserver.url_for("/f")
    assert get(session, url, origin_of(url), expected_size=len(page)) == page


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "text/html"),
        (b'{"error": "upstream timed out"}', "application/json"),
        (b"\xff\xd8\xff\xe0 the first bytes of a jpeg only", "image/jpeg"),
    ],
)
def test_a_body_whose_size_differs_from_the_cell_is_a_transient_failure(
    body: bytes, content_type: str, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/f").respond_with_data(body, content_type=content_type)
    url = httpserver.url_for("/f")
    with pytest.raises(DownloadFailed, match="where the cell says 38015: not the uploaded file"):
        get(session, url, origin_of(url), expected_size=38015)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Service unavailable</body></html>", "application/octet-stream"),
        (b"  {\"message\": \"rate limited\"}", ""),
        (b"\xff\xd8\xff\xe0 served as text", "text/plain; charset=utf-8"),
        (b"GIF89a served as an error", "application/problem+json"),
    ],
)
def test_without_a_size_in_the_cell_an_html_or_json_answer_is_a_transient_failure(
    body: bytes, content_type: str, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/f").respond_with_data(body, content_type=content_type)
    url = httpserver.url_for("/f")
    with pytest.raises(DownloadFailed, match="not a picture, and the cell gives no size"):
        get(session, url, origin_of(url))


def test_without_a_size_in_the_cell_other_bytes_are_judged(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/f").respond_with_data(b"%PDF-1.4", content_type="image/jpeg")
    url = httpserver.url_for("/f")
    assert get(session, url, origin_of(url)) == b"%PDF-1.4"


# --- time limits -------------------------------------------------------------------------------


def test_a_server_slower_than_the_read_timeout_is_a_transient_failure(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    def sleepy(request: Request) -> Response:
        time.sleep(0.6)
        return Response(b"late")

    httpserver.expect_request("/slow").respond_with_handler(sleepy)
    started = time.monotonic()
    with pytest.raises(DownloadFailed, match="timeout"):
        get(
            session,
            httpserver.url_for("/slow"),
            origin_of(httpserver.url_for("/")),
            read_timeout=0.2,
        )
    assert time.monotonic() - started < 0.55
    time.sleep(0.5)  # let the single-threaded server finish before the next test


def test_a_slow_drip_body_hits_the_overall_deadline(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    def drip(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(12):
                time.sleep(0.05)
                yield b"z" * 10

        return Response(body())

    httpserver.expect_request("/drip").respond_with_handler(drip)
    started = time.monotonic()
    with pytest.raises(DownloadFailed, match="deadline"):
        get(
            session,
            httpserver.url_for("/drip"),
            origin_of(httpserver.url_for("/")),
            read_timeout=1.0,
            deadline_seconds=0.2,
        )
    assert time.monotonic() - started < 0.5


def test_connection_refused_is_a_transient_failure() -> None:
    origin = f"http://127.0.0.1:{free_port()}"
    with requests.Session() as session, pytest.raises(DownloadFailed, match="connection refused"):
        get(session, f"{origin}/dltemp/{SIGNED_TOKEN}/1/f.jpg", origin)


# --- secrets -------------------------------------------------------------------------------------


def test_url_ref_hides_the_signed_part_but_stays_stable() -> None:
    url = f"http://127.0.0.1:8080/dltemp/{SIGNED_TOKEN}/1700000000000/2026/face.jpg"
    ref = url_ref(url)
    assert SIGNED_TOKEN not in ref
    assert ref.startswith("http://127.0.0.1:8080/")
    assert ref == url_ref(url)
    assert ref != url_ref(url.replace("face", "other"))


def test_download_errors_never_carry_the_signed_path(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    httpserver.expect_request(f"/dltemp/{SIGNED_TOKEN}/x").respond_with_data(b"", status=503)
    urls = [
        (f"{closed}/dltemp/{SIGNED_TOKEN}/x", closed),
        (httpserver.url_for(f"/dltemp/{SIGNED_TOKEN}/x"), origin_of(httpserver.url_for("/"))),
    ]
    for url, origin in urls:
        with pytest.raises(DownloadFailed) as raised:
            get(session, url, origin)
        assert SIGNED_TOKEN not in str(raised.value)
        assert raised.value.__context__ is None  # the requests error (URL inside) is dropped


def test_describe_request_error_names_the_failure_not_the_url() -> None:
    error = requests.ConnectionError(f"Max retries exceeded with url: /dltemp/{SIGNED_TOKEN}")
    assert attachments.describe_request_error(error) == "connection error"


@pytest.mark.parametrize(
    "url",
    [
        f"http://{'a' * 200_000}.example/x.jpg",
        f"{'x' * 200_000}://127.0.0.1/x.jpg",
    ],
)
def test_a_200_kb_host_or_scheme_is_cut_short_in_every_message(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        check_url(url, allowed_origins={"http://127.0.0.1:8080"})

    assert len(str(caught.value)) < 300
    assert "chars)" in str(caught.value)
    assert len(url_ref(url)) < 200
