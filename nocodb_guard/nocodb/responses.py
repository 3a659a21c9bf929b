"""What NocoDB's answer means: the parsed body of a 2xx, else the error the caller must see.

Pure, no I/O: :class:`~nocodb_guard.nocodb.transport.Transport` hands it the final response
(after retries). Messages carry method, path, status and NocoDB's error code and message
(cleaned, shortened), never the query or headers.
"""

from __future__ import annotations

from typing import Any

import requests

from nocodb_guard.errors import (
    AttachmentRefused,
    DownloadFailed,
    FileNotOnNocoDB,
    NocoDBAuthError,
    NocoDBRequestError,
    NocoDBUnavailable,
    RowGone,
    SchemaError,
)


def interpret(
    method: str, path: str, response: requests.Response, table: str, *, gone_on_404: bool
) -> Any:
    """The parsed body of a 2xx; every other status becomes the error the caller must see."""
    status = response.status_code
    if 200 <= status < 300:
        return _json_body(method, path, response)
    code, message = _error_info(response)
    where = f"{method} {path}: HTTP {status}" + (f" {code}" if code else "")
    if status in (401, 403):
        raise NocoDBAuthError(f"{where}: NocoDB rejected the API token (check nocodb_token)")
    if status == 404:
        _raise_not_found(where, code, message, table, gone_on_404)
    if 300 <= status < 400:
        raise NocoDBRequestError(f"{where}: unexpected redirect (check nocodb_url)")
    raise NocoDBRequestError(f"{where}: {message}" if message else where)


def _raise_not_found(where: str, code: str, message: str, table: str, gone_on_404: bool) -> None:
    upper = code.upper()
    if "TABLE" in upper or "BASE" in upper:
        raise NocoDBAuthError(
            f"{where}: table {table!r} not found (check table_id, and that the token's "
            "user can see its base)"
        )
    if not code:
        # Not NocoDB's own answer: it is still starting (its API routes are mounted after
        # the socket opens) or a proxy in front answered. Transient: try again later, even
        # on the re-read before acting (``gone_on_404``): a row is gone only if NocoDB says.
        raise NocoDBUnavailable(f"{where}: not found, without a NocoDB error (starting up?)")
    if "RECORD" in upper or "ROW" in upper or gone_on_404:
        raise RowGone(f"{where}: the row no longer exists")
    if "FIELD" in upper or "COLUMN" in upper:
        raise SchemaError(f"{where}: {message or 'a configured field is missing'}")
    raise NocoDBRequestError(f"{where}: {message}" if message else where)


def _json_body(method: str, path: str, response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise NocoDBUnavailable(f"{method} {path}: answer is not JSON (a proxy page?)") from None


def _error_info(response: requests.Response) -> tuple[str, str]:
    """(error code, message) from NocoDB's error JSON, cleaned and shortened; may be empty."""
    try:
        data = response.json()
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    code = data.get("error")
    message = data.get("message") or data.get("msg")
    return _clean(code if isinstance(code, str) else ""), _clean(
        message if isinstance(message, str) else ""
    )


def _clean(text: str, limit: int = 300) -> str:
    printable = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return printable[:limit]


def refreshed_link_failure(row_id: int, status: int) -> DownloadFailed:
    """What a file answering ``status`` even with a freshly signed link means.

    401/403 is access refused (a proxy or a storage policy: the file may well exist); any
    other answer is a file missing on NocoDB's side. Neither is the uploader's doing.
    """
    where = f"row {row_id}: a file answers HTTP {status} even with a freshly signed link"
    if status in (401, 403):
        return AttachmentRefused(
            f"{where}: access refused (by a proxy or a storage policy?), not a missing file"
        )
    return FileNotOnNocoDB(
        f"{where}: it is missing on NocoDB's side (check NocoDB's upload storage)"
    )
