"""The table's columns and select options, and whether they fit the settings.

Read once at start-up (``run``, ``sweep``, ``check``): a renamed field or a missing status
option stops everything with a clear message, instead of every row failing one by one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nocodb_guard.errors import ConfigError, SchemaError
from nocodb_guard.nocodb.records import ID_FIELD
from nocodb_guard.settings import Settings

REASON_FIELD_TYPES = frozenset({"LongText", "SingleLineText"})
#: Characters that would break NocoDB's ``where=(field,op,value)`` and ``fields=a,b`` syntax,
#: which has no quoting for field names (spaces are fine: requests percent-encodes them).
FORBIDDEN_FIELD_CHARS = frozenset("(),~")


@dataclass(frozen=True)
class TableSchema:
    """What the start-up check needs to know about the table: column types and select options."""

    table_id: str
    title: str
    columns: dict[str, str] = field(default_factory=dict)
    """Column title -> NocoDB ``uidt`` (``SingleSelect``, ``Attachment``, ...)."""
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Column title -> its select options, for select columns."""


def parse_schema(table_id: str, data: Mapping[str, Any]) -> TableSchema:
    """``GET /api/v2/meta/tables/{id}`` as a :class:`TableSchema`; odd columns are skipped."""
    columns: dict[str, str] = {}
    options: dict[str, tuple[str, ...]] = {}
    for column in data.get("columns") or []:
        if not isinstance(column, dict):
            continue
        title, uidt = column.get("title"), column.get("uidt")
        if not isinstance(title, str) or not isinstance(uidt, str):
            continue
        columns[title] = uidt
        col_options = column.get("colOptions")
        raw = col_options.get("options") if isinstance(col_options, dict) else None
        if isinstance(raw, list):
            options[title] = tuple(
                o["title"] for o in raw if isinstance(o, dict) and isinstance(o.get("title"), str)
            )
    title = data.get("title")
    return TableSchema(
        table_id=table_id,
        title=title if isinstance(title, str) else table_id,
        columns=columns,
        options=options,
    )


def check_schema(schema: TableSchema, settings: Settings) -> list[str]:
    """Problems with the table for these settings, in plain words; empty when all is well."""
    s = settings
    problems: list[str] = []
    if ID_FIELD not in schema.columns:
        problems.append(f"{ID_FIELD} column is missing (a renamed primary key is not supported)")
    expected = [
        ("field_politician", s.field_politician, {"SingleSelect"}),
        ("field_photo", s.field_photo, {"Attachment"}),
        ("field_status", s.field_status, {"SingleSelect"}),
    ]
    if s.field_reason:
        expected.append(("field_reason", s.field_reason, set(REASON_FIELD_TYPES)))
    for setting, title, types in expected:
        problem = _column_problem(schema, setting, title, types)
        if problem:
            problems.append(problem)
    if schema.columns.get(s.field_status) == "SingleSelect":
        needed = [("status_approved", s.status_approved)]
        if s.reject_action == "tag":
            needed.append(("status_rejected", s.status_rejected))
        if s.uses_review():
            needed.append(("status_review", s.status_review))
        have = schema.options.get(s.field_status, ())
        problems.extend(
            f"field {s.field_status!r} has no option {value!r} ({setting}); options: "
            f"{', '.join(have) or 'none'}"
            for setting, value in needed
            if value not in have
        )
    return problems


def _column_problem(schema: TableSchema, setting: str, title: str, types: set[str]) -> str | None:
    uidt = schema.columns.get(title)
    if uidt is None:
        return f"field {title!r} ({setting}) is missing from table {schema.title!r}"
    if uidt not in types:
        return f"field {title!r} ({setting}) is a {uidt}, expected {' or '.join(sorted(types))}"
    return None


def politician_options(schema: TableSchema, field_name: str = "Politician") -> list[str]:
    """The options of the politician select column, in NocoDB's order."""
    return list(schema.options.get(field_name, ()))


def require_schema(schema: TableSchema, settings: Settings) -> TableSchema:
    """``schema`` unchanged when it fits the settings, else :class:`SchemaError` listing why."""
    problems = check_schema(schema, settings)
    if problems:
        raise SchemaError("table schema: " + "; ".join(problems))
    return schema


def check_field_names(settings: Settings) -> None:
    """Refuse field names NocoDB's query syntax cannot carry (it has no quoting for them).

    ``field_reason`` only ever appears as a JSON key, so any name works for it.
    """
    names = {
        "field_politician": settings.field_politician,
        "field_photo": settings.field_photo,
        "field_status": settings.field_status,
    }
    for setting, name in names.items():
        if not name.strip():
            raise ConfigError(f"{setting}: must not be empty")
        bad = sorted(FORBIDDEN_FIELD_CHARS.intersection(name))
        if bad:
            raise ConfigError(
                f"{setting}: {name!r} contains {' '.join(bad)}, which NocoDB's where/fields "
                "syntax cannot carry; rename the field in NocoDB"
            )
