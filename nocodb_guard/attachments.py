"""Safe download of attachment URLs, which strangers can influence.

An attachment cell is written by NocoDB from an anonymous upload, so every URL in it is
treated as hostile until proven otherwise:

- only ``http``/``https``; no credentials in the URL; no whitespace, control characters or
  backslashes (the classic tricks that make two URL parsers disagree about the host); no
  host ending with a dot: ``127.0.0.1.`` is not the address 127.0.0.1 but a DNS name that
  the resolver may answer as it likes (here it does not resolve at all), so counting it as
  the origin would compare one host and connect to another. Refusing is the one rule that
  stays consistent (``nocodb_url`` refuses it too);
- the origin (scheme, host, port) must be the configured NocoDB origin (or the S3 endpoint
  configured as NocoDB's storage, ``s3.endpoint``), or the host must be in the operator's
  explicit allow-list (S3-like storage the guard does not purge). Allow-listed hosts are reached
  over ``https`` only (the bytes we judge must not be swappable on the way) unless the
  entry itself spells ``http://host:port``, and they must resolve to public addresses only
  (:mod:`nocodb_guard.addresses`, which also looks inside IPv6 forms carrying an IPv4 address):
  an allow-listed name pointing at 127.0.0.1 or 10.x would turn the daemon into a probe of
  the local network. The NocoDB origin itself is exempt: it usually *is* 127.0.0.1;
- redirects are never followed (a 3xx is refused): a redirect is how an allowed host
  would send us somewhere that is not;
- the body is streamed under a byte cap, a read timeout per socket read and a wall-clock
  deadline for the whole body (a server dripping one byte per read timeout would otherwise
  hold a worker for hours);
- no token is sent: downloads carry no ``xc-token`` (signed links need none), so an
  allow-listed storage host never sees NocoDB's credentials;
- a verdict is drawn only from bytes that are verifiably the upload. A proxy or CDN in
  front of NocoDB may answer ``200`` with its own HTML or JSON error page; judged as a
  picture, that page would delete the row as ``not_an_image``. So the byte count must
  equal the cell's ``size`` (NocoDB records the stored file's size), and when the cell has
  no size, a body served as (or looking like) HTML or JSON is not taken for the upload.
  Either failure is :class:`DownloadFailed`: the row is deferred, never deleted. An
  uploader who lies about the size only gets their own row deferred.

URLs with a signed part are never logged or put into messages as such: :func:`url_ref`
gives a stable, harmless reference (origin plus a short hash of the path). Every other
piece of a cell copied into a message (a host, a scheme) goes through :func:`shown`:
a 200 kB host name would otherwise be copied into every audit record, every pass.

What is left open: the allow-list check resolves the host, then requests resolves it again
to connect (a DNS-rebinding window). Exploiting it needs control over the DNS of a host the
operator chose to trust.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

import requests
import structlog
import urllib3.exceptions
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from nocodb_guard.addresses import is_public_address
from nocodb_guard.errors import (
    AttachmentNotFound,
    DownloadFailed,
    DownloadTooLarge,
    UrlNotAllowed,
)

log = structlog.get_logger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
CHUNK_BYTES = 64 * 1024
#: Statuses that mean "this link does not lead to the file (any more)": S3 answers 403 for an
#: expired signature where NocoDB answers 404. The caller may refresh the link once.
LINK_GONE_STATUSES = frozenset({401, 403, 404, 410})

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port, normalised: what two URLs must share to be "the same server"."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_origin(url: str) -> Origin:
    """The origin of ``url``; :class:`UrlNotAllowed` for anything but a plain http(s) URL."""
    if any(ch <= " " or ch in "\\\x7f" for ch in url):
        raise UrlNotAllowed("URL contains whitespace, control characters or a backslash")
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise UrlNotAllowed("URL cannot be parsed") from None
    scheme = (parsed.scheme or "").lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlNotAllowed(f"scheme {shown(scheme) or '(none)'!r} is not http or https")
    if parsed.auth is not None:
        raise UrlNotAllowed("URL carries credentials")
    host = (parsed.host or "").lower()
    if not host:
        raise UrlNotAllowed("URL has no host")
    if host.endswith("."):
        raise UrlNotAllowed("the host ends with a dot (a DNS name, not the origin's host)")
    return Origin(scheme, host, parsed.port or DEFAULT_PORTS[scheme])


#: Longest piece of an uploader's cell (host, scheme) copied into a message.
MAX_SHOWN_CHARS = 80


def shown(text: str) -> str:
    """``text`` cut to :data:`MAX_SHOWN_CHARS`, saying how much was left out."""
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return f"{text[:MAX_SHOWN_CHARS]}…(+{len(text) - MAX_SHOWN_CHARS} chars)"


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, the form :func:`fetch` compares ``allowed_origins`` in."""
    return str(parse_origin(url))


def url_ref(url: str) -> str:
    """A loggable stand-in for a URL: its origin and a short hash of path and query.

    Signed paths and signed URLs are bearer tokens for a file; the hash still lets two log
    lines about the same link be matched.
    """
    try:
        origin = str(parse_origin(url))
    except UrlNotAllowed:
        origin = "(invalid)"
    digest = hashlib.sha256(url.encode("utf-8", "replace")).hexdigest()[:12]
    return f"{shown(origin)}/…#{digest}"


def _allowed_host_origins(allowed_hosts: Collection[str]) -> set[Origin]:
    """Allow-list entries as origins: ``host``, ``host:port`` mean https; ``http://h:p`` opts in."""
    origins: set[Origin] = set()
    for entry in allowed_hosts:
        text = entry.strip()
        if not text:
            continue
        if "://" not in text:
            text = f"https://{text}"
        try:
            origins.add(parse_origin(text))
        except UrlNotAllowed:
            log.warning("attachments.bad_allowed_host", entry=entry)
    return origins


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to; a resolution failure is transient."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        detail = f"cannot resolve {shown(host)!r}: {exc.__class__.__name__}"
    else:
        return [str(info[4][0]) for info in infos]
    raise DownloadFailed(detail)


def check_origin(
    url: str, *, allowed_origins: Collection[str], allowed_hosts: Collection[str] = ()
) -> Origin:
    """The cheap half of :func:`check_url`: syntax and origin, no DNS."""
    origin = parse_origin(url)
    if origin in {parse_origin(o) for o in allowed_origins}:
        return origin
    if origin not in _allowed_host_origins(allowed_hosts):
        raise UrlNotAllowed(
            f"{shown(str(origin))} is neither the NocoDB origin nor an allowed host"
        )
    return origin


def check_url(
    url: str,
    *,
    allowed_origins: Collection[str],
    allowed_hosts: Collection[str] = (),
    resolver: Resolver | None = None,
) -> Origin:
    """Raise :class:`UrlNotAllowed` unless ``url`` may be fetched; return its origin.

    ``allowed_origins`` are trusted as they are (the NocoDB origin, even on 127.0.0.1);
    ``allowed_hosts`` must also resolve to public addresses only (``resolver`` is for tests).
    """
    origin = check_origin(url, allowed_origins=allowed_origins, allowed_hosts=allowed_hosts)
    if origin in {parse_origin(o) for o in allowed_origins}:
        return origin
    addresses = (resolver or resolve_addresses)(origin.host, origin.port)
    if not addresses:
        raise DownloadFailed(f"{shown(origin.host)!r} resolved to no address")
    private = [a for a in addresses if not is_public_address(a)]
    if private:
        raise UrlNotAllowed(
            f"allowed host {shown(origin.host)!r} resolves to a non-public address ({private[0]})"
        )
    return origin


def fetch(
    session: requests.Session,
    url: str,
    *,
    allowed_origins: Collection[str],
    max_bytes: int,
    connect_timeout: float,
    read_timeout: float,
    expected_size: int | None = None,
    allowed_hosts: Collection[str] = (),
    deadline_seconds: float | None = None,
    resolver: Resolver | None = None,
) -> bytes:
    """Download ``url`` into memory under every rule of this module.

    Raises :class:`UrlNotAllowed` (refused before or at a redirect), :class:`AttachmentNotFound`
    (401/403/404/410: refresh the link), :class:`DownloadTooLarge` (over ``max_bytes``: a fact
    about the upload), :class:`DownloadFailed` (anything transient: 5xx, 429, timeouts, a body
    cut short, the deadline, bytes that are not verifiably the upload: see
    :func:`verify_upload`). ``deadline_seconds`` bounds the whole download; default
    ``connect_timeout + 2 * read_timeout``. ``expected_size`` is the cell's ``size``.
    """
    check_url(url, allowed_origins=allowed_origins, allowed_hosts=allowed_hosts, resolver=resolver)
    ref = url_ref(url)
    if deadline_seconds is None:
        deadline_seconds = default_deadline(connect_timeout, read_timeout)
    started = time.monotonic()
    response = _open(session, url, ref, connect_timeout, read_timeout)
    with closing(response), _not_the_upload_when_over(expected_size, max_bytes):
        _check_status(response, ref)
        declared = _declared_length(response)
        if declared is not None and declared > max_bytes:
            raise DownloadTooLarge(f"{ref}: {declared} bytes announced, cap is {max_bytes}")
        data = _read_capped(response, ref, max_bytes, started + deadline_seconds)
    if declared is not None and len(data) < declared:
        raise DownloadFailed(f"{ref}: body cut short ({len(data)} of {declared} bytes)")
    verify_upload(data, response.headers.get("Content-Type", ""), expected_size, ref)
    log.debug(
        "attachment.fetched", ref=ref, bytes=len(data), seconds=round(time.monotonic() - started, 3)
    )
    return data


@contextmanager
def _not_the_upload_when_over(expected_size: int | None, max_bytes: int) -> Iterator[None]:
    """Over the cap is a fact about the upload only when the upload may be that large.

    When the cell says the file is within the cap, more bytes (announced or sent) are not
    the upload: a proxy's page, a CDN's wrong object. Nothing may be decided from them, so
    :class:`DownloadTooLarge` becomes :class:`DownloadFailed` and the row waits.
    """
    try:
        yield
    except DownloadTooLarge as exc:
        if expected_size is None or expected_size > max_bytes:
            raise
        raise DownloadFailed(f"{exc}; the cell says {expected_size}: not the upload") from None


#: Content types an error page is served as (HTML, JSON, XML, plain text), never a picture.
_ERROR_PAGE_TYPES = ("text/", "application/json", "application/problem+json", "application/xml")
#: How an HTML or JSON error body starts (lower case, leading whitespace and BOM removed).
_ERROR_PAGE_STARTS = (b"<!doctype html", b"<html", b"{")


def verify_upload(data: bytes, content_type: str, expected_size: int | None, ref: str) -> None:
    """Raise :class:`DownloadFailed` unless ``data`` is verifiably the uploaded file.

    With a ``size`` in the cell, the byte count decides: an error page from a proxy does
    not happen to have the upload's exact length. Without one (a cell written through the
    API), a body served as text/JSON, or starting like HTML or JSON, is taken for an error
    page: it proves nothing about the upload, so nothing is decided from it.
    """
    if expected_size is not None:
        if len(data) != expected_size:
            raise DownloadFailed(
                f"{ref}: {len(data)} bytes arrived where the cell says {expected_size}: "
                "not the uploaded file (an error page from a proxy in front of NocoDB?)"
            )
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if media_type.startswith(_ERROR_PAGE_TYPES) or head.startswith(_ERROR_PAGE_STARTS):
        raise DownloadFailed(
            f"{ref}: the answer is {media_type or 'untyped'} text, not a picture, and the "
            "cell gives no size to prove it is the upload (an error page?)"
        )


def _open(
    session: requests.Session, url: str, ref: str, connect_timeout: float, read_timeout: float
) -> requests.Response:
    """Send the GET; request errors become :class:`DownloadFailed` without the URL in them."""
    try:
        return session.get(
            url,
            stream=True,
            allow_redirects=False,
            timeout=(connect_timeout, read_timeout),
            headers={"Accept-Encoding": "identity", "Accept": "*/*"},
        )
    except requests.RequestException as exc:
        # Not raised here: the requests exception embeds the signed URL, and chaining it as
        # __context__ would put it into any logged traceback.
        detail = f"{ref}: {describe_request_error(exc)}"
    raise DownloadFailed(detail)


def _check_status(response: requests.Response, ref: str) -> None:
    status = response.status_code
    if 300 <= status < 400:
        raise UrlNotAllowed(f"{ref}: redirect ({status}) refused")
    if status in LINK_GONE_STATUSES:
        raise AttachmentNotFound(f"{ref}: HTTP {status}", status)
    if status != 200:
        raise DownloadFailed(f"{ref}: HTTP {status}")


def _declared_length(response: requests.Response) -> int | None:
    """Content-Length when it describes the bytes we will count (no content encoding)."""
    if response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        return None
    raw = response.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def default_deadline(connect_timeout: float, read_timeout: float) -> float:
    """The whole-download deadline of :func:`fetch`: a connection, then two reads' worth.

    A fetch can outlast it by one read (the one in progress when it passes): the daemon's
    stall bound counts that too.
    """
    return connect_timeout + 2 * read_timeout


def _read_capped(response: requests.Response, ref: str, max_bytes: int, deadline: float) -> bytes:
    """Read the body, stopping as soon as it passes ``max_bytes`` or the deadline."""
    buffer = bytearray()
    failure: str | None = None
    try:
        # read1, not iter_content: read(amt) loops until amt bytes arrived, so a server
        # dripping a byte per read timeout would never give the deadline check a turn.
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            buffer += chunk
            if len(buffer) > max_bytes:
                raise DownloadTooLarge(f"{ref}: more than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise DownloadFailed(f"{ref}: download too slow (deadline passed)")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        failure = f"{ref}: {describe_request_error(exc)} after {len(buffer)} bytes"
    if failure is not None:
        raise DownloadFailed(failure)
    return bytes(buffer)


def describe_request_error(exc: BaseException) -> str:
    """A short, URL-free description of a requests/urllib3 failure.

    ``str()`` of these exceptions embeds the full URL (signed tokens included), so only
    the kind of failure is kept.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, socket.gaierror):
            return "host name not resolved"
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return "read timeout"
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError):
        return "connection dropped mid-body"
    if isinstance(exc, urllib3.exceptions.DecodeError | requests.exceptions.ContentDecodingError):
        return "body cannot be decoded"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc).lower()
        return "read timeout" if "read timed out" in text else "connection error"
    return exc.__class__.__name__
