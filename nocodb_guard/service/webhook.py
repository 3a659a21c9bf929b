"""Instant moderation: NocoDB's after-insert webhook says "sweep now", nothing more.

The body of a hook is row data typed by an anonymous visitor, so it is never parsed,
trusted or logged: a valid call only triggers the same sweep the poller runs, which reads
the rows back from NocoDB's API. A wrong or missing ``X-Nocodb-Guard-Secret`` gets 401
(compared in constant time); any other path 404; bodies over :data:`MAX_BODY_BYTES` 413.

The server is :class:`~nocodb_guard.service.httpd.BoundedHTTPServer` with stdlib's request
handler: a handful of requests per upload does not justify a web framework, and its fixed
thread count and per-request deadline keep a flood of slow clients from starving valid
hooks or the daemon's ticks.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import urlsplit

import structlog

from nocodb_guard.errors import ConfigError
from nocodb_guard.service.httpd import BoundedHTTPServer, Limits

log = structlog.get_logger(__name__)

SECRET_HEADER = "X-Nocodb-Guard-Secret"  # noqa: S105 - a header name, not a secret
DEFAULT_PATH = "/hooks/nocodb"
#: NocoDB sends the inserted rows; a bulk insert of many rows stays far below this.
MAX_BODY_BYTES = 1024 * 1024
#: Seconds a client may take per socket operation while we answer.
REQUEST_TIMEOUT = 10.0
_READ_CHUNK = 64 * 1024


class _Server(BoundedHTTPServer):
    """Carries the configuration the handler needs (handlers are built per request)."""

    def __init__(
        self,
        address: tuple[str, int],
        path: str,
        secret: bytes,
        trigger: Callable[[], None],
    ) -> None:
        self.hook_path = path
        self.secret = secret
        self.trigger = trigger
        super().__init__(
            address, _Handler, "nocodb-guard-webhook", Limits(max_body_bytes=MAX_BODY_BYTES)
        )


class _Handler(BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT
    server_version = "nocodb-guard"
    sys_version = ""

    @property
    def _hook(self) -> _Server:
        return cast(_Server, self.server)

    def do_POST(self) -> None:
        if urlsplit(self.path).path != self._hook.hook_path:
            self._reply(HTTPStatus.NOT_FOUND)
        elif not self._secret_ok():
            self._reply(HTTPStatus.UNAUTHORIZED)
        elif not self._drain_body():
            return  # _drain_body has replied
        else:
            self._call_trigger()

    def do_GET(self) -> None:
        self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def _not_allowed(self) -> None:
        if urlsplit(self.path).path != self._hook.hook_path:
            self._reply(HTTPStatus.NOT_FOUND)
        else:
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "POST"})

    def _secret_ok(self) -> bool:
        provided = self.headers.get(SECRET_HEADER)
        if provided is None:
            return False
        # http.server decodes header bytes as latin-1; undo that to compare raw bytes.
        raw = provided.encode("latin-1", errors="replace")
        return hmac.compare_digest(raw, self._hook.secret)

    def _drain_body(self) -> bool:
        """Read and discard the body (keeps the client's send from failing); cap its size."""
        if self.headers.get("Transfer-Encoding"):
            self._reply(HTTPStatus.LENGTH_REQUIRED)
            return False
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reply(HTTPStatus.BAD_REQUEST)
            return False
        if length < 0:
            self._reply(HTTPStatus.BAD_REQUEST)
            return False
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return False
        while length > 0:
            chunk = self.rfile.read(min(length, _READ_CHUNK))
            if not chunk:
                break
            length -= len(chunk)
        return True

    def _call_trigger(self) -> None:
        try:
            self._hook.trigger()
        except Exception as exc:  # the trigger is the daemon's; report, keep serving
            log.error("webhook trigger failed", error_type=type(exc).__name__, error=str(exc))
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        self._reply(HTTPStatus.ACCEPTED)

    def _reply(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.close_connection = True
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One structured line per request: method, path (no query: it may hold secrets)."""
        log.debug(
            "webhook request",
            method=self.command,
            path=urlsplit(self.path or "").path[:200],
            status=int(code) if str(code).isdigit() else code,
            client=self.client_address[0],
        )

    def log_message(self, format: str, *args: Any) -> None:
        """Protocol errors from http.server (bad request lines), never bodies."""
        log.debug("webhook protocol error", detail=(format % args)[:200])


class WebhookServer:
    """``POST <path>`` with the shared secret -> 202 and ``trigger()``; see module doc."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        trigger: Callable[[], None],
        path: str = DEFAULT_PATH,
    ) -> None:
        if not secret:
            raise ConfigError(
                "webhook_secret: missing (required when webhook_port is set; "
                "NocoDB sends it in the X-Nocodb-Guard-Secret header)"
            )
        self._address = (host, port)
        self._secret = secret.encode("utf-8")
        self._trigger = trigger
        self._path = path if path.startswith("/") else "/" + path
        self._server: _Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); the configured one before :meth:`start`."""
        if self._server is None:
            return self._address[1]
        return self._server.port

    @property
    def path(self) -> str:
        return self._path

    def start(self) -> WebhookServer:
        """Bind and serve; binding errors (port taken) raise OSError."""
        if self._server is not None:
            return self
        self._server = _Server(self._address, self._path, self._secret, self._trigger).start()
        log.info("webhook listening", host=self._address[0], port=self.port, path=self._path)
        return self

    def stop(self) -> None:
        """Stop accepting and close the socket; idempotent."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
