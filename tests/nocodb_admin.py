"""Act like the site's visitors and admins against a real NocoDB (integration tests, demo).

Deliberately independent of `nocodb_guard.nocodb`: the tests must not check the daemon's
client with itself. `submit_form` does exactly what the embedded iframe does; the other
functions are what an admin would click in NocoDB's UI, done over its REST API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

TIMEOUT_S = 30.0
PAGE_SIZE = 1000  # NocoDB caps `limit` at 1000 silently
DELETE_BATCH = 100

FileTuple = tuple[str, bytes, str]  # (filename, content, mimetype)


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of the guard.env that ``scripts/nocodb-dev up`` writes."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


class NocoAdminError(RuntimeError):
    """NocoDB answered an unexpected status; carries the status and the body, never the token."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:500]}")
        self.status = status
        self.body = body


def _checked(response: requests.Response) -> Any:
    if response.status_code >= 300:
        request = response.request
        raise NocoAdminError(
            str(request.method), str(request.url), response.status_code, response.text
        )
    return response.json()


def _headers(token: str) -> dict[str, str]:
    return {"xc-token": token}


def _records_url(base_url: str, table_id: str) -> str:
    return f"{base_url.rstrip('/')}/api/v2/tables/{table_id}/records"


def submit_form(
    base_url: str,
    form_uuid: str,
    politician: str | None,
    files: Sequence[FileTuple],
    title: str | None = None,
    *,
    extra_fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Submit the public shared form anonymously, as the iframe does; return the new row.

    Multipart: a `data` part holding the row as JSON, and one `Photo` part per file (NocoDB
    groups repeated parts by field title). `extra_fields` lets a test send fields the form
    hides (NocoDB must drop them).
    """
    row: dict[str, Any] = dict(extra_fields or {})
    if politician is not None:
        row["Politician"] = politician
    if title is not None:
        row["Title"] = title
    parts = [("Photo", (name, content, mimetype)) for name, content, mimetype in files]
    url = f"{base_url.rstrip('/')}/api/v2/public/shared-view/{form_uuid}/rows"
    response = requests.post(
        url, data={"data": json.dumps(row)}, files=parts or None, timeout=TIMEOUT_S
    )
    result: dict[str, Any] = _checked(response)
    return result


def shared_view_rows(base_url: str, view_uuid: str) -> list[dict[str, Any]]:
    """The rows an anonymous visitor of a shared (public) view sees: its first page."""
    url = f"{base_url.rstrip('/')}/api/v2/public/shared-view/{view_uuid}/rows"
    response = requests.get(url, params={"limit": PAGE_SIZE}, timeout=TIMEOUT_S)
    rows: list[dict[str, Any]] = _checked(response)["list"]
    return rows


def list_rows(
    base_url: str,
    token: str,
    table_id: str,
    where: str | None = None,
    fields: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """All rows matching `where`, sorted by Id; pages by `Id > last seen` (offsets can 422)."""
    rows: list[dict[str, Any]] = []
    last_id = 0
    while True:
        page_filter = f"(Id,gt,{last_id})"
        params: dict[str, str | int] = {
            "where": f"({where})~and{page_filter}" if where else page_filter,
            "sort": "Id",
            "limit": PAGE_SIZE,
        }
        if fields:
            params["fields"] = ",".join(dict.fromkeys(["Id", *fields]))
        response = requests.get(
            _records_url(base_url, table_id),
            headers=_headers(token),
            params=params,
            timeout=TIMEOUT_S,
        )
        page: list[dict[str, Any]] = _checked(response)["list"]
        rows.extend(page)
        if len(page) < PAGE_SIZE:
            return rows
        last_id = int(page[-1]["Id"])


def get_row(base_url: str, token: str, table_id: str, row_id: int) -> dict[str, Any] | None:
    """One row, or None when it does not exist (deleted by the daemon, for instance)."""
    response = requests.get(
        f"{_records_url(base_url, table_id)}/{row_id}", headers=_headers(token), timeout=TIMEOUT_S
    )
    if response.status_code == 404:
        return None
    row: dict[str, Any] = _checked(response)
    # NocoDB answers 200 with an empty object for some missing ids.
    return row or None


def upload_attachments(base_url: str, token: str, files: Sequence[FileTuple]) -> list[Any]:
    """Store files through NocoDB's storage API; the result is an Attachment cell value."""
    parts = [("files", (name, content, mimetype)) for name, content, mimetype in files]
    response = requests.post(
        f"{base_url.rstrip('/')}/api/v2/storage/upload",
        headers=_headers(token),
        files=parts,
        timeout=TIMEOUT_S,
    )
    uploaded: list[Any] = _checked(response)
    return uploaded


def insert_rows_via_api(
    base_url: str, token: str, table_id: str, rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Bulk insert as an admin or an import would (not through the form); returns new Ids."""
    response = requests.post(
        _records_url(base_url, table_id),
        headers=_headers(token),
        json=[dict(row) for row in rows],
        timeout=TIMEOUT_S,
    )
    return [int(item["Id"]) for item in _checked(response)]


def update_rows(
    base_url: str, token: str, table_id: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Patch rows (each mapping carries its `Id`), like a moderator editing cells."""
    response = requests.patch(
        _records_url(base_url, table_id),
        headers=_headers(token),
        json=[dict(row) for row in rows],
        timeout=TIMEOUT_S,
    )
    _checked(response)


def delete_rows(base_url: str, token: str, table_id: str, row_ids: Iterable[int]) -> None:
    ids = list(row_ids)
    for start in range(0, len(ids), DELETE_BATCH):
        batch = [{"Id": row_id} for row_id in ids[start : start + DELETE_BATCH]]
        response = requests.delete(
            _records_url(base_url, table_id),
            headers=_headers(token),
            json=batch,
            timeout=TIMEOUT_S,
        )
        _checked(response)


def delete_all_rows(base_url: str, token: str, table_id: str) -> int:
    """Empty the table (between tests); returns how many rows were deleted."""
    ids = [int(row["Id"]) for row in list_rows(base_url, token, table_id, fields=["Id"])]
    delete_rows(base_url, token, table_id, ids)
    return len(ids)


def _column(base_url: str, token: str, table_id: str, title: str) -> dict[str, Any]:
    response = requests.get(
        f"{base_url.rstrip('/')}/api/v2/meta/tables/{table_id}",
        headers=_headers(token),
        timeout=TIMEOUT_S,
    )
    for column in _checked(response)["columns"]:
        if column["title"] == title:
            return dict(column)
    raise KeyError(f"table {table_id} has no column {title!r}")


def get_select_options(base_url: str, token: str, table_id: str, column_title: str) -> list[str]:
    column = _column(base_url, token, table_id, column_title)
    return [str(option["title"]) for option in column["colOptions"]["options"]]


def set_select_options(
    base_url: str, token: str, table_id: str, column_title: str, options: Sequence[str]
) -> None:
    """Make a select field offer exactly `options`, in that order (what an admin edits).

    Options that stay keep their ids and colours, so rows referencing them are unaffected.
    """
    column = _column(base_url, token, table_id, column_title)
    existing = {option["title"]: option for option in column["colOptions"]["options"]}
    column["colOptions"] = {
        "options": [
            {**existing.get(title, {"title": title}), "order": position}
            for position, title in enumerate(options, start=1)
        ]
    }
    response = requests.patch(
        f"{base_url.rstrip('/')}/api/v2/meta/columns/{column['id']}",
        headers=_headers(token),
        json=column,
        timeout=TIMEOUT_S,
    )
    _checked(response)
