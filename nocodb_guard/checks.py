"""``nocodb-guard check`` and ``nocodb-guard references``: readable reports for an admin.

Unlike the daemon's start-up, ``check`` is strict: an option without references is a
problem to fix (its uploads wait forever), so it fails the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from nocodb_guard.errors import GuardError, NocoDBUnavailable, Stop
from nocodb_guard.faces.references import ReferenceStore
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.nocodb.schema import TableSchema, check_schema, politician_options
from nocodb_guard.nocodb.views import View, ViewKind
from nocodb_guard.settings import Settings
from nocodb_guard.startup import labels_to_check
from nocodb_guard.storage.base import StorageRefused
from nocodb_guard.storage.config import backend_from_settings
from nocodb_guard.storage.exposure import AnonymousProbe
from nocodb_guard.storage.queue import PurgeQueue
from nocodb_guard.storage.s3 import anonymous_status
from nocodb_guard.storage.s3_settings import S3Settings

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
        results.extend(_exposure_checks(client, settings))
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


def _exposure_checks(client: NocoDBClient, settings: Settings) -> list[CheckResult]:
    """Can the public see what it should not? Unsigned file paths, purging, shared views."""
    try:
        results = [_download_check(client, settings), _purge_check(settings)]
        views = client.shared_views()
    except (NocoDBUnavailable, Stop) as exc:
        return [CheckResult("exposure", False, str(exc), EXIT_NOCODB)]
    return [*results, *(_view_check(view, settings) for view in views)]


def _download_check(client: NocoDBClient, settings: Settings) -> CheckResult:
    """Tried on a real attachment: does its unsigned ``/download/...`` path answer anyone?"""
    files = (a for cell in client.iter_attachment_cells() for a in cell if a.path or a.url)
    first = next(files, None)
    if first is not None and first.path is None and first.url and settings.s3 is not None:
        return _s3_public_check(first.url, settings.s3)
    path = first.path if first is not None else None
    if path is None:
        return CheckResult("public files", True, "not tried: no row has a local file yet")
    probe = AnonymousProbe(settings.nocodb_url)
    try:
        status = probe.status(path)
    finally:
        probe.close()
    if status == 200:
        return CheckResult(
            "public files",
            False,
            "an anonymous GET of a file's unsigned path answers 200: anyone who learns one "
            "picture's path can fetch it and its neighbours; start NocoDB with "
            "NC_SECURE_ATTACHMENTS=true",
        )
    return CheckResult("public files", True, f"unsigned path answers {status} to anyone")


def _s3_public_check(url: str, s3: S3Settings) -> CheckResult:
    """Tried on a real object: does its plain, unsigned url answer anyone?"""
    try:
        status = anonymous_status(url, s3)
    except StorageRefused as exc:
        return CheckResult("public files", True, f"not tried: {exc}")
    if status == 200:
        return CheckResult(
            "public files",
            False,
            f"an anonymous GET of an object in bucket {s3.bucket!r} answers 200: every upload "
            "is public to whoever learns its url; make the objects private (no public-read "
            "ACL, unset NC_S3_ACL, no public bucket policy): NocoDB serves them signed",
        )
    return CheckResult("public files", True, f"unsigned object url answers {status} to anyone")


def _purge_check(settings: Settings) -> CheckResult:
    try:
        backend = backend_from_settings(settings)  # S3: its key files are read here
        message = backend.probe() if backend is not None else ""
    except GuardError as exc:
        return CheckResult("purge", False, str(exc))
    if backend is None:
        return CheckResult(
            "purge",
            False,
            "nocodb_data_dir not set: files of deleted rows stay on NocoDB's disk and stay "
            "reachable; set it to NocoDB's data folder (the one holding nc/uploads), "
            "or the [s3] settings when NocoDB stores uploads in S3",
        )
    queued = len(PurgeQueue(settings.state_dir).pending())
    if queued:
        message += f"; {queued} file(s) still queued for purging"
    return CheckResult("purge", True, message)


def _view_check(view: View, settings: Settings) -> CheckResult:
    name = f"shared {view.label}"
    if view.kind is ViewKind.FORM:
        return CheckResult(name, True, "the upload form (expected)")
    if view.only_approved:
        return CheckResult(name, True, f"filtered to {settings.field_status} = approved")
    return CheckResult(
        name,
        False,
        f"public and not filtered to {settings.field_status} = {settings.status_approved}: "
        "it publishes unmoderated uploads; add that filter or stop sharing it",
    )


def _reference_checks(settings: Settings, labels: Sequence[str]) -> list[CheckResult]:
    report, _ = describe_references(settings, labels)
    return [
        CheckResult(f"references {entry['politician']!r}", entry["ok"], entry["status"])
        for entry in report
    ]


def describe_references(
    settings: Settings, labels: Sequence[str]
) -> tuple[list[dict[str, Any]], bool]:
    """Per politician: folder, tolerance, files and the daemon's cache state; ok overall?"""
    store = ReferenceStore.from_settings(settings, read_only=True)
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
            schema = client.table_schema()
            return labels_to_check(settings, politician_options(schema, settings.field_politician))
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
