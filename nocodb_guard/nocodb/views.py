"""The table's views and whether a shared one can publish rows that are not approved.

A view is shared (public, no login) when it has a ``uuid``. The upload form is meant to be
shared; any other shared view (grid, gallery, kanban...) shows every row its filters let
through, so one without a top-level ``<status> = approved`` filter publishes unmoderated
uploads. Pure parsing, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class ViewKind(IntEnum):
    """NocoDB's view ``type`` numbers (``ViewTypes`` in nocodb-sdk)."""

    FORM = 1
    GALLERY = 2
    GRID = 3
    KANBAN = 4
    MAP = 5
    CALENDAR = 6

    @classmethod
    def of(cls, value: Any) -> ViewKind | None:
        try:
            return cls(int(value))
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class View:
    id: str
    title: str
    kind: ViewKind | None
    """None for a type this code does not know (treated like a grid: it shows rows)."""
    shared: bool
    only_approved: bool = False
    """Filtered to approved rows (filled in by the client for shared views only)."""

    @property
    def label(self) -> str:
        kind = self.kind.name.lower() if self.kind is not None else "view"
        return f"{kind} {self.title!r}"


def parse_views(data: Any) -> list[View]:
    """``GET /api/v2/meta/tables/{id}/views`` as :class:`View` values."""
    items = data.get("list") if isinstance(data, Mapping) else None
    views = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        title = item.get("title")
        views.append(
            View(
                id=item["id"],
                title=title if isinstance(title, str) else item["id"],
                kind=ViewKind.of(item.get("type")),
                shared=bool(item.get("uuid")),
            )
        )
    return views


def column_id(table_meta: Any, title: str) -> str | None:
    """The id of the column titled ``title`` in ``GET /api/v2/meta/tables/{id}``."""
    columns = table_meta.get("columns") if isinstance(table_meta, Mapping) else None
    for column in columns if isinstance(columns, list) else []:
        if isinstance(column, Mapping) and column.get("title") == title:
            found = column.get("id")
            return found if isinstance(found, str) else None
    return None


def shows_only(filters: Any, status_column: str, value: str) -> bool:
    """True when the view's filters keep every row but those with ``status = value``.

    Only a top-level, enabled ``eq`` filter on the status column counts, and only when no
    top-level filter is joined with ``or``/``not`` (which could let other rows through).
    """
    items = filters.get("list") if isinstance(filters, Mapping) else None
    if not isinstance(items, list):
        return False
    top = [f for f in items if isinstance(f, Mapping) and not f.get("fk_parent_id")]
    if any(f.get("logical_op") not in (None, "", "and") for f in top):
        return False
    return any(
        f.get("fk_column_id") == status_column
        and f.get("comparison_op") == "eq"
        and f.get("value") == value
        and f.get("enabled", 1) not in (0, False)
        and not f.get("is_group")
        for f in top
    )
