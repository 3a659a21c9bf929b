"""A NocoDB record's JSON as a :class:`Row`, and its attachment cell as :class:`Attachment` values.

Pure parsing, no I/O. Tolerant by design: an odd cell must never turn a row into "no
attachment" (a deletion) over a format this code does not know.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from nocodb_guard.models import Attachment, Row
from nocodb_guard.settings import Settings

#: The primary key column; a renamed primary key is not supported.
ID_FIELD = "Id"
UNREADABLE_ENTRY_TITLE = "(unreadable attachment entry)"


def parse_row(item: Any, settings: Settings) -> Row | None:
    """A listed/read record as a :class:`Row`; None when it has no usable integer Id."""
    if not isinstance(item, dict):
        return None
    row_id = _int_or_none(item.get(ID_FIELD))
    if row_id is None:
        return None
    return Row(
        id=row_id,
        politician=_politician(item.get(settings.field_politician)),
        attachments=parse_attachments(item.get(settings.field_photo)),
        status=_text_or_none(item.get(settings.field_status)),
    )


def parse_attachments(cell: Any) -> tuple[Attachment, ...]:
    """An attachment cell as :class:`Attachment` values.

    Tolerates what versions and edits produce: null or empty (no files), a JSON string
    instead of a list, a single object. An entry that cannot be read is kept as a
    placeholder without any link rather than dropped: dropping it could turn a row into
    "no attachment", a deletion, over a format this code does not know. A placeholder
    cannot be downloaded (``UrlNotAllowed``), so such a row is deferred instead.
    """
    if cell is None or cell == "":
        return ()
    if isinstance(cell, str):
        try:
            cell = json.loads(cell)
        except ValueError:
            return (Attachment(title=UNREADABLE_ENTRY_TITLE),)
        if cell is None:
            return ()
    if isinstance(cell, dict):
        cell = [cell]
    if not isinstance(cell, list):
        return (Attachment(title=UNREADABLE_ENTRY_TITLE),)
    return tuple(parse_attachment_entry(entry) for entry in cell)


def parse_attachment_entry(entry: Any) -> Attachment:
    """One entry of the cell; anything unexpected yields a link-less placeholder."""
    if not isinstance(entry, dict):
        return Attachment(title=UNREADABLE_ENTRY_TITLE)
    path = _text_or_none(entry.get("path"))
    title = _text_or_none(entry.get("title")) or (path.rsplit("/", 1)[-1] if path else None)
    entry_id = entry.get("id")
    return Attachment(
        title=title or UNREADABLE_ENTRY_TITLE,
        mimetype=_text_or_none(entry.get("mimetype")),
        size=_int_or_none(entry.get("size")),
        path=path,
        signed_path=_text_or_none(entry.get("signedPath")),
        thumbnail_links=_thumbnail_links(entry.get("thumbnails")),
        url=_text_or_none(entry.get("url")),
        signed_url=_text_or_none(entry.get("signedUrl")),
        id=str(entry_id) if isinstance(entry_id, str | int) and entry_id != "" else None,
    )


def find_same_attachment(att: Attachment, candidates: tuple[Attachment, ...]) -> Attachment | None:
    """The entry of a re-read row that is ``att`` (by id, then path, then title and size)."""
    keys: list[Callable[[Attachment], object]] = [
        lambda a: a.id,
        lambda a: a.path,
        lambda a: (a.title, a.size) if a.title != UNREADABLE_ENTRY_TITLE else None,
    ]
    for key in keys:
        wanted = key(att)
        if wanted is None:
            continue
        for candidate in candidates:
            if key(candidate) == wanted:
                return candidate
    return None


def linked_url(att: Attachment) -> str | None:
    """The URL a URL-type cell (S3, or written over the API) is fetched from: its own.

    NocoDB's ``signedUrl`` is used only when it signs that same file (same host, port and
    path; S3 adds its signature as a query). NocoDB 0.301.3 signs URL cells
    through a cache keyed by the URL's *path*: cells with different hosts and the same
    path all got the first one's ``signedUrl``, so trusting it would judge another cell's
    bytes (or fetch a host the cell never named).
    """
    if att.url and att.signed_url and _same_file(att.url, att.signed_url):
        return att.signed_url
    return att.url or att.signed_url


def _same_file(first: str, second: str) -> bool:
    """Same host, port and (percent-decoded) path; scheme and query may differ.

    NocoDB's S3 cells carry ``url`` as https with the raw key (a space stays a space) and
    sign it on the configured endpoint, http or https: the same object. The link that is
    fetched still passes the origin check, scheme included.
    """
    try:
        a, b = urlsplit(first), urlsplit(second)
    except ValueError:
        return False
    return (a.netloc.lower(), unquote(a.path)) == (b.netloc.lower(), unquote(b.path))


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _politician(value: Any) -> str | None:
    """The chosen option; None only when the uploader chose none (a rejection).

    A value that is not text (a number or an object: the column was changed to another type
    while the daemon runs) is no choice of the uploader's. It becomes a label that names no
    configured politician, so the row is deferred as an unknown politician, never rejected.
    """
    if value is None or isinstance(value, str):
        return _text_or_none(value)
    return f"(not text: {type(value).__name__})"


def _text_or_none(value: Any) -> str | None:
    if isinstance(value, str):
        return value if value.strip() else None
    return None


def _thumbnail_links(thumbnails: Any) -> tuple[str, ...]:
    """``{"tiny": {"signedPath": ...}, ...}`` -> the signed paths, in a stable order."""
    if not isinstance(thumbnails, dict):
        return ()
    links = (v.get("signedPath") for _, v in sorted(thumbnails.items()) if isinstance(v, dict))
    return tuple(link for link in links if isinstance(link, str) and link)
