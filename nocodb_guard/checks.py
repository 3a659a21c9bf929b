"""``nocodb-guard check`` and ``nocodb-guard references``: readable reports for an admin.

Unlike the daemon's start-up, ``check`` is strict: an option without references is a
problem to fix (its uploads wait forever), so it fails the check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from nocodb_guard.errors import GuardError, NocoDBUnavailable, Stop
from nocodb_guard.faces.references import ReferenceStore
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.nocodb.schema import TableSchema, check_schema, politician_options
from nocodb_guard.settings import Settings
from nocodb_guard.startup import labels_to_check

EXIT_PROBLEM, EXIT_NOCODB = 1, 3

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str
    exit_code: int = EXIT_PROBLEM

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, in order; later ones are skipped when an earlier one makes them moot."""
    results = [CheckResult("settings", True, "valid")]
    try:
        client = NocoDBClient(settings)
    except Stop as exc:
        return [*results, CheckResult("settings", False, str(exc), exc.exit_code)]
    with client:
        schema, nocodb_results = _nocodb_checks(client, settings)
        results.extend(nocodb_results)
        if schema is None:
            return results
        labels = labels_to_check(settings, politician_options(schema, settings.field_politician))
    results.extend(_reference_checks(settings, labels))
    return results


def _nocodb_checks(
    client: NocoDBClient, settings: Settings
) -> tuple[TableSchema | None, list[CheckResult]]:
    try:
        seconds = client.ping()
        schema = client.table_schema()
    except (NocoDBUnavailable, Stop) as exc:
        return None, [CheckResult("nocodb", False, str(exc), EXIT_NOCODB)]
    results = [CheckResult("nocodb", True, f"{settings.nocodb_url} answered in {seconds:.2f}s")]
    problems = check_schema(schema, settings)
    results.append(
        CheckResult("schema", not problems, "; ".join(problems) or f"table {schema.title!r} ok")
    )
    return (schema if not problems else None), results


def _reference_checks(settings: Settings, labels: Sequence[str]) -> list[CheckResult]:
    report, _ = describe_references(settings, labels)
    return [
        CheckResult(f"references {entry['politician']!r}", entry["ok"], entry["status"])
        for entry in report
    ]


def describe_references(
    settings: Settings,
    labels: Sequence[str],
    store_factory: Callable[[Settings], ReferenceStore] = ReferenceStore.from_settings,
) -> tuple[list[dict[str, Any]], bool]:
    """Per politician: folder, tolerance, files and their cache state; ok overall?"""
    store = store_factory(settings)
    wanted = list(labels) or _default_labels(settings)
    report = [_describe_one(settings, store, label) for label in wanted]
    return report, all(entry["ok"] for entry in report)


def _default_labels(settings: Settings) -> list[str]:
    """The form's options and configured politicians when NocoDB answers, else offline labels.

    One quick ping first (no retries): a report on local folders should not wait out the
    retry budget when NocoDB is down.
    """
    if settings.nocodb_token is None or not settings.table_id:
        return _known_labels(settings)
    try:
        with NocoDBClient(settings) as client:
            client.ping()
            return labels_to_check(settings, client.politician_options())
    except (NocoDBUnavailable, Stop) as exc:
        log.warning("references_without_nocodb", error=str(exc))
        return _known_labels(settings)


def _known_labels(settings: Settings) -> list[str]:
    """Without NocoDB: configured politicians, else every folder under reference_dir."""
    if settings.politicians:
        return list(settings.politicians)
    if not settings.reference_dir.is_dir():
        return []
    return sorted(p.name for p in settings.reference_dir.iterdir() if p.is_dir())


def _describe_one(settings: Settings, store: ReferenceStore, label: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "politician": label,
        "folder": str(settings.reference_folder(label)),
        "tolerance": settings.tolerance_for(label),
        "files": [],
    }
    try:
        references = store.load(label)
    except GuardError as exc:
        entry.update(ok=False, status=f"unusable: {exc}")
    else:
        if references is None:
            entry.update(ok=False, status="no reference photos: its uploads stay pending")
        else:
            entry.update(ok=True, status=f"{len(references.files)} reference photo(s)")
    entry["files"] = [
        {"name": f.name, "cached": f.cached, "faces": f.faces, "error": f.error}
        for f in store.describe(label).files
        if not f.skipped
    ]
    return entry
