"""``evaluate --json``: the report for machines; distances only, never encodings."""

from __future__ import annotations

from typing import Any

from nocodb_guard.trust.evaluate.calibration import Suggestion, ToleranceRow
from nocodb_guard.trust.evaluate.report import (
    EvaluationReport,
    PhotoNote,
    PoliticianResult,
    SwapDirection,
)


def to_json(report: EvaluationReport) -> dict[str, Any]:
    """Machine-readable report; distances only, never encodings."""
    return {
        "mode": report.mode,
        "directory": report.directory,
        "false_approvals": report.false_approvals,
        "false_rejections": report.false_rejections,
        "swap_approvals": report.swap_approvals,
        "politicians": [_politician_json(p) for p in report.politicians],
        "overall": {
            "table": [_row_json(r) for r in report.overall_table],
            "suggestion": _suggestion_json(report.overall_suggestion),
        },
        "findings": [
            {
                "kind": str(f.kind),
                "politicians": list(f.politicians),
                "files": list(f.files),
                "distance": round(f.distance, 4),
                "message": f.message,
            }
            for f in report.findings
        ],
        "not_single_face": [_note_json(n) for n in report.not_single_face],
        "unusable": [_note_json(n) for n in report.unusable],
        "notes": list(report.notes),
    }


def _politician_json(result: PoliticianResult) -> dict[str, Any]:
    return {
        "label": result.label,
        "tolerance": result.tolerance,
        "genuine": {
            "count": len(result.genuine),
            "accepted": result.genuine_accepted,
            "rejected": result.false_rejections,
            "distances": [round(d, 4) for d in result.genuine_distances],
        },
        "impostor": {
            "count": len(result.impostor),
            "accepted": result.false_approvals,
            "rejected": result.impostor_rejected,
            "distances": [round(d, 4) for d in result.impostor_distances],
        },
        "false_approvals": result.false_approvals,
        "false_rejections": result.false_rejections,
        "table": [_row_json(r) for r in result.table],
        "suggestion": _suggestion_json(result.suggestion),
        "notes": list(result.notes),
        "swaps": _swaps_json(result),
    }


def _swaps_json(result: PoliticianResult) -> dict[str, Any]:
    """Synthetic swaps per direction (empty without ``--swaps``); ``null``: not one face."""
    return {
        direction.value: [
            {
                "face": s.face,
                "head": s.head,
                "distance": _rounded(s.distance),
                "approved": s.approved(result.tolerance),
            }
            for s in result.swaps_of(direction)
        ]
        for direction in SwapDirection
    }


def _row_json(row: ToleranceRow) -> dict[str, Any]:
    return {
        "tolerance": row.tolerance,
        "false_approvals": row.false_approvals,
        "false_rejections": row.false_rejections,
    }


def _suggestion_json(suggestion: Suggestion | None) -> dict[str, Any] | None:
    if suggestion is None:
        return None
    return {
        "tolerance": _rounded(suggestion.tolerance),
        "margin": _rounded(suggestion.margin),
        "max_genuine": _rounded(suggestion.max_genuine),
        "min_impostor": _rounded(suggestion.min_impostor),
        "separable": suggestion.separable,
        "note": suggestion.note,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _note_json(note: PhotoNote) -> dict[str, Any]:
    return {
        "file": note.file,
        "detected_faces": note.detected_faces,
        "expected_faces": note.expected_faces,
        "problem": note.problem,
        "rejected": note.rejected,
    }
