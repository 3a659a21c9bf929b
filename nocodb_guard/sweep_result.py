"""What one pass did: its outcomes, and whether it was cut short or could not record."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nocodb_guard.models import RowOutcome, Verdict


@dataclass
class SweepResult:
    outcomes: list[RowOutcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False
    error: str | None = None
    """Set when the pass was cut short by NocoDB becoming unavailable."""
    audit_error: str | None = None
    """Set when the audit trail could not be written: rows were deferred, not acted on."""

    @property
    def deferred(self) -> int:
        return sum(1 for o in self.outcomes if o.decision.verdict is Verdict.DEFERRED)

    def summary(self) -> dict[str, Any]:
        verdicts = Counter(o.decision.verdict.value for o in self.outcomes)
        rejected = Counter(
            o.decision.reason.value
            for o in self.outcomes
            if o.decision.verdict is Verdict.REJECTED
        )
        deferred = Counter(
            o.decision.reason.value
            for o in self.outcomes
            if o.decision.verdict is Verdict.DEFERRED
        )
        return {
            "rows": len(self.outcomes),
            "approved": verdicts.get("approved", 0),
            "rejected": verdicts.get("rejected", 0),
            "deferred": verdicts.get("deferred", 0),
            "rejected_by_reason": dict(rejected),
            "deferred_by_reason": dict(deferred),
            "seconds": round(self.seconds, 3),
            "stopped_early": self.stopped_early,
            "error": self.error,
            "audit_error": self.audit_error,
        }

    def status_line(self) -> str:
        """One short line for systemd's STATUS= and the console."""
        s = self.summary()
        text = f"{s['rows']} rows: {s['approved']} approved, {s['rejected']} rejected, "
        text += f"{s['deferred']} deferred in {s['seconds']:.1f}s"
        if self.audit_error:
            text += " (audit trail cannot be written: nothing deleted or approved)"
        return text + (f" ({self.error})" if self.error else "")
