"""What must be true before moderating: shared by ``run`` (at start-up) and ``check``.

- NocoDB answers and accepts the token; the table has the configured fields and types;
- every politician option of the select field (and every configured politician) has
  usable references. A reference that does not hold exactly one face stops start-up
  (exit 2); an option with no references at all is only a warning: its rows are deferred
  until the operator adds photos, never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nocodb_guard.nocodb.schema import politician_options, require_schema
from nocodb_guard.runtime import Runtime
from nocodb_guard.settings import Settings


@dataclass(frozen=True)
class StartupReport:
    options: tuple[str, ...]
    ready: dict[str, int] = field(default_factory=dict)
    """Politician -> number of reference photos."""
    missing: tuple[str, ...] = ()
    """Politicians (options) without references: their rows are deferred."""
    unknown_configured: tuple[str, ...] = ()
    """Configured politicians that are not options of the select field (renamed?)."""

    @property
    def summary(self) -> str:
        text = f"{len(self.ready)} politicians ready"
        if self.missing:
            text += f", {len(self.missing)} without references: {', '.join(self.missing)}"
        return text

    def as_log(self) -> dict[str, Any]:
        return {
            "politicians_ready": self.ready,
            "politicians_without_references": list(self.missing),
            "configured_but_not_options": list(self.unknown_configured),
        }


def labels_to_check(settings: Settings, options: list[str]) -> list[str]:
    """Every option of the select field, plus configured politicians not among them."""
    return list(dict.fromkeys([*options, *settings.politicians]))


def check_startup(settings: Settings, runtime: Runtime) -> StartupReport:
    """Raise on what stops everything; return what is merely worth a warning."""
    schema = require_schema(runtime.client.table_schema(), settings)
    options = politician_options(schema, settings.field_politician)
    ready: dict[str, int] = {}
    missing: list[str] = []
    for label in labels_to_check(settings, options):
        references = runtime.references.load(label)
        if references is None:
            missing.append(label)
        else:
            ready[label] = len(references.files)
    return StartupReport(
        options=tuple(options),
        ready=ready,
        missing=tuple(label for label in missing if label in options),
        unknown_configured=tuple(label for label in settings.politicians if label not in options),
    )
