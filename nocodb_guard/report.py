"""Human- and machine-readable renderings of outcomes, for the CLI.

Only counts, sizes, distances and reasons are rendered: never pixels or encodings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nocodb_guard.models import Decision, PictureAnalysis, RowOutcome, SeenFace, Verdict


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
            "review": verdicts.get("review", 0),
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
        text += f"{s['deferred']} deferred, {s['review']} for review in {s['seconds']:.1f}s"
        if self.audit_error:
            text += " (audit trail cannot be written: nothing deleted or approved)"
        return text + (f" ({self.error})" if self.error else "")


def picture_json(picture: PictureAnalysis) -> dict[str, Any]:
    return {
        "name": picture.name,
        "problem": picture.problem.value if picture.problem else None,
        "detail": picture.detail or None,
        "format": picture.format,
        "original_size": list(picture.original_size) if picture.original_size else None,
        "analysed_size": list(picture.analysed_size) if picture.analysed_size else None,
        "faces": len(picture.faces),
        "boxes": [{"width": b.width, "height": b.height} for b in picture.faces],
        "ignored_faces": picture.ignored_faces,
        "seen": [_seen_json(face) for face in picture.seen],
        "distance": _round(picture.distance),
        "seconds": round(picture.seconds, 4),
    }


def _seen_json(face: SeenFace) -> dict[str, Any]:
    """One detection: its box in the upload's pixels, the scale it was judged at, and why not."""
    box = face.box
    return {
        "box": {"left": box.left, "top": box.top, "right": box.right, "bottom": box.bottom},
        "size": box.size,
        "scale": round(face.scale, 3),
        "ignored": face.ignored.value if face.ignored is not None else None,
    }


def explain_json(
    image: str, picture: PictureAnalysis, decision: Decision, reference_names: Sequence[str]
) -> dict[str, Any]:
    """One object per picture for ``explain --json``."""
    data = picture_json(picture)
    data.update(
        image=image,
        verdict=decision.verdict.value,
        reason=decision.reason.value,
        explanation=decision.explanation,
        tolerance=decision.tolerance,
        distances=dict(zip(reference_names, (_round(d) for d in picture.distances), strict=False)),
    )
    return data


def explain_text(data: dict[str, Any]) -> str:
    lines = [f"{data['image']}: {data['verdict']} ({data['reason']}): {data['explanation']}"]
    if data["problem"]:
        return "\n".join(lines)
    size = "x".join(map(str, data["original_size"] or ()))
    analysed = "x".join(map(str, data["analysed_size"] or ()))
    lines.append(f"  decoded {data['format']} {size}, analysed at {analysed}")
    boxes = ", ".join(f"{b['width']}x{b['height']}" for b in data["boxes"]) or "none"
    lines.append(f"  faces: {data['faces']} ({boxes}); ignored: {data['ignored_faces']}")
    for face in data["seen"]:
        box, why = face["box"], face["ignored"] or "counted"
        lines.append(
            f"    {face['size']} px face at ({box['left']},{box['top']})-({box['right']},"
            f"{box['bottom']}) of the upload, judged at scale {face['scale']:.2f}: {why}"
        )
    for name, distance in data["distances"].items():
        lines.append(f"  distance to {name}: {distance:.3f}")
    lines.append(f"  time: {data['seconds']:.2f}s")
    return "\n".join(lines)


def outcome_json(outcome: RowOutcome) -> dict[str, Any]:
    decision = outcome.decision
    return {
        "id": outcome.row_id,
        "politician": outcome.politician,
        "verdict": decision.verdict.value,
        "reason": decision.reason.value,
        "distance": _round(decision.distance),
        "tolerance": decision.tolerance,
        "action": outcome.action.value,
        "files_purged": outcome.files_purged,
        "explanation": decision.explanation,
        "pictures": [picture_json(p) for p in outcome.pictures],
    }


def outcome_line(outcome: RowOutcome) -> str:
    d = outcome.decision
    return (
        f"row {outcome.row_id:>6}  {d.verdict.value:<9} {d.reason.value:<21} "
        f"{outcome.action.value:<17} {outcome.politician or '-'}: {d.explanation}"
    )


def table(outcomes: Iterable[RowOutcome]) -> str:
    header = f"{'':4}{'id':>6}  {'verdict':<9} {'reason':<21} {'action':<17} explanation"
    return "\n".join([header, *(outcome_line(o) for o in outcomes)])


def summary_text(summary: dict[str, Any]) -> str:
    parts = [
        f"{summary['rows']} rows: {summary['approved']} approved, "
        f"{summary['rejected']} rejected, {summary['deferred']} deferred, "
        f"{summary['review']} for review ({summary['seconds']:.1f}s)"
    ]
    for key in ("rejected_by_reason", "deferred_by_reason"):
        if summary[key]:
            words = ", ".join(f"{reason} {count}" for reason, count in sorted(summary[key].items()))
            parts.append(f"  {key.replace('_', ' ')}: {words}")
    if summary.get("error"):
        parts.append(f"  interrupted: {summary['error']}")
    return "\n".join(parts)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
