"""Wiring: settings in, a ready :class:`Sweeper` out. Shared by ``sweep`` and ``run``.

Kept apart from the CLI so that the daemon and the one-shot command build exactly the
same objects, and from the sweep so that the sweep stays free of construction details.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nocodb_guard.backoff import Backoff
from nocodb_guard.faces.references import ReferenceStore
from nocodb_guard.faces.see import PipelineConfig
from nocodb_guard.faces.workers import Analyzer, make_analyzer
from nocodb_guard.missing_files import MissingFiles
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.nocodb.transport import RequestObserver
from nocodb_guard.settings import Settings
from nocodb_guard.storage.config import build_purger
from nocodb_guard.storage.purge import Purger
from nocodb_guard.sweep import PREFETCH_PER_WORKER, Recorder, Sweeper, SweepOptions
from nocodb_guard.trust.audit import AuditLog, settings_version


@dataclass
class Runtime:
    """Everything a pass needs; ``close()`` stops the worker processes."""

    settings: Settings
    client: NocoDBClient
    references: ReferenceStore
    analyzer: Analyzer
    purger: Purger | None = None
    """Removes deleted rows' files from NocoDB's storage; None when not configured."""
    recorders: list[Recorder] = field(default_factory=list)
    journal: AuditLog | None = None
    """Where a decision is written before the row is changed (None: no audit)."""
    missing: MissingFiles | None = None
    """Rows whose file NocoDB does not have (None: a dry run keeps no memory)."""
    backoff: Backoff = field(default_factory=Backoff)
    """Rows whose picture could not be analysed, waiting before the next try."""

    def sweeper(
        self,
        *,
        dry_run: bool = False,
        limit: int | None = None,
        recheck_approved: bool = False,
        apply: bool = False,
    ) -> Sweeper:
        options = SweepOptions(
            dry_run=dry_run,
            limit=limit,
            recheck_approved=recheck_approved,
            apply=apply,
            max_attachments=self.settings.max_attachments,
            prefetch=PREFETCH_PER_WORKER * max(self.settings.workers, 1),
            act_batch=self.settings.act_batch,
        )
        return Sweeper(
            self.client,
            self.references,
            self.analyzer,
            options,
            recorders=tuple(self.recorders),
            journal=self.journal,
            missing=None if dry_run or recheck_approved else self.missing,
            # A pass that changes nothing in NocoDB changes nothing in its storage either.
            purger=None if dry_run or (recheck_approved and not apply) else self.purger,
            backoff=self.backoff,
        )

    def close(self) -> None:
        self.analyzer.close()
        self.client.close()
        if self.purger is not None:
            self.purger.close()


def build_runtime(
    settings: Settings,
    *,
    audit: bool = True,
    dry_run: bool = False,
    observer: RequestObserver | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Runtime:
    """Build the client, reference store and face workers from the settings.

    ``observer`` and ``sleep`` go to the NocoDB client: the daemon counts request errors
    in its metrics and cuts retry pauses short on a stop.
    """
    config = PipelineConfig.from_settings(settings)
    client = NocoDBClient(settings, observer=observer, sleep=sleep)
    references = ReferenceStore.from_settings(settings, config=config)
    audit_log = (
        AuditLog(
            settings.state_dir,
            settings.audit_retention_days,
            settings_version(settings),
            dry_run=dry_run,
        )
        if audit
        else None
    )
    runtime = Runtime(
        settings=settings,
        client=client,
        references=references,
        analyzer=make_analyzer(config, settings.workers),
        journal=audit_log,
        missing=MissingFiles(settings.state_dir) if audit and not dry_run else None,
        purger=build_purger(settings, client),
    )
    if audit_log is not None:
        runtime.recorders.append(audit_log)
    return runtime
