"""``nocodb-guard sweep``: one pass, the same :class:`Sweeper` the daemon ticks with."""

from __future__ import annotations

from collections.abc import Callable

from nocodb_guard.models import RowOutcome
from nocodb_guard.nocodb.schema import require_schema
from nocodb_guard.report import SweepResult
from nocodb_guard.runtime import build_runtime
from nocodb_guard.service.signals import Flags
from nocodb_guard.settings import Settings


def run_one_sweep(
    settings: Settings,
    *,
    dry_run: bool,
    limit: int | None,
    flags: Flags,
    on_outcome: Callable[[RowOutcome], None] | None = None,
    recheck_approved: bool = False,
    apply: bool = False,
) -> SweepResult:
    """Check the schema (one request), then run one pass; the caller holds the lock."""
    runtime = build_runtime(settings, dry_run=dry_run or (recheck_approved and not apply))
    try:
        require_schema(runtime.client.table_schema(), settings)
        sweeper = runtime.sweeper(
            dry_run=dry_run, limit=limit, recheck_approved=recheck_approved, apply=apply
        )
        return sweeper.run(should_stop=flags.stop.is_set, on_outcome=on_outcome)
    finally:
        runtime.close()
