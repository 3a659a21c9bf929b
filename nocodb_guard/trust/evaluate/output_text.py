"""``evaluate``'s report as an admin reads it in a terminal, with text histograms."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from nocodb_guard.trust.evaluate.calibration import Suggestion, ToleranceRow
from nocodb_guard.trust.evaluate.report import (
    EvaluationReport,
    PhotoNote,
    PoliticianResult,
    SwapDirection,
)

SWAP_LABELS = {
    SwapDirection.POLITICIAN_FACE: "politician's face on other heads",
    SwapDirection.STRANGER_FACE: "other faces on the politician's head",
}


def render_text(report: EvaluationReport) -> str:
    """The report an admin reads in a terminal."""
    lines = [
        f"Evaluation of {report.directory} ({report.mode} mode)",
        f"false approvals: {report.false_approvals}, false rejections: "
        f"{report.false_rejections} (at the configured tolerance(s))",
        "",
    ]
    if any(p.swaps for p in report.politicians):
        lines[2:2] = [f"synthetic swaps of a stranger's face approved: {report.swap_approvals}", ""]
    for result in report.politicians:
        lines.extend(_politician_text(result))
    lines.extend(_table_text("All politicians pooled", report.overall_table))
    if report.overall_suggestion is not None:
        lines.append(f"  suggestion: {_suggestion_text(report.overall_suggestion)}")
    lines.append("")
    lines.extend(_photo_notes_text(report))
    lines.append("Reference diagnosis:")
    lines.extend(f"  ! {f.message}" for f in report.findings)
    if not report.findings:
        lines.append("  no reference looks like the wrong person; no two politicians too close")
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines) + "\n"


def _politician_text(result: PoliticianResult) -> list[str]:
    lines = [
        f"== {result.label} (tolerance {result.tolerance:.2f})",
        f"  genuine:  {len(result.genuine):4d} comparisons, {result.genuine_accepted} accepted, "
        f"{result.false_rejections} rejected{_range(result.genuine_distances)}",
        f"  impostor: {len(result.impostor):4d} comparisons, {result.false_approvals} accepted, "
        f"{result.impostor_rejected} rejected{_range(result.impostor_distances)}",
    ]
    lines.extend(f"  note: {note}" for note in result.notes)
    lines.extend(_swaps_text(result))
    lines.extend(
        text_histogram(
            result.genuine_distances, result.impostor_distances, tolerance=result.tolerance
        )
    )
    lines.extend(_table_text("", result.table))
    if result.suggestion is not None:
        lines.append(f"  suggestion: {_suggestion_text(result.suggestion)}")
    lines.append("")
    return lines


def _swaps_text(result: PoliticianResult) -> list[str]:
    """Synthetic swaps, apart from the photos; every approved stranger's face named."""
    if not result.swaps:
        return []
    lines = ["  synthetic face swaps (--swaps: built from the photos, not photos themselves):"]
    for direction, label in SWAP_LABELS.items():
        swaps = result.swaps_of(direction)
        approved = sum(s.approved(result.tolerance) for s in swaps)
        distances = [s.distance for s in swaps if s.distance is not None]
        unseen = len(swaps) - len(distances)
        lines.append(
            f"    {label}: {len(swaps)} swaps, {approved} approved, {len(swaps) - approved} "
            f"rejected ({unseen} not seen as one face){_range(distances)}"
        )
    lines.extend(
        f"    ! APPROVED: {s.face}'s face on {s.head}'s head, distance {s.distance:.3f}"
        for s in result.swaps_of(SwapDirection.STRANGER_FACE)
        if s.distance is not None and s.approved(result.tolerance)
    )
    return lines


def _range(values: Sequence[float]) -> str:
    if not values:
        return ""
    return f", distance {min(values):.3f} to {max(values):.3f} (median {np.median(values):.3f})"


def _table_text(title: str, table: Sequence[ToleranceRow]) -> list[str]:
    lines = [title] if title else []
    lines.append("  tolerance  false approvals  false rejections")
    lines.extend(
        f"  {row.tolerance:9.2f}  {row.false_approvals:15d}  {row.false_rejections:16d}"
        for row in table
    )
    return lines


def _suggestion_text(suggestion: Suggestion) -> str:
    if suggestion.tolerance is None:
        return suggestion.note
    margin = "" if suggestion.margin is None else f" (margin {suggestion.margin:+.3f})"
    return f"tolerance {suggestion.tolerance:.3f}{margin}: {suggestion.note}"


def _photo_notes_text(report: EvaluationReport) -> list[str]:
    lines = []
    if report.not_single_face:
        lines.append("Pictures that are not one face (an upload of them must be rejected):")
        for note in report.not_single_face:
            verdict = "rejected" if note.rejected else "WOULD BE JUDGED AS ONE FACE"
            lines.append(
                f"  {note.file}: expected {note.expected_faces} faces, detected "
                f"{note.detected_faces}{_problem(note)}: {verdict}"
            )
    if report.unusable:
        lines.append("Photos not used (not exactly one face detected, or unreadable):")
        lines.extend(
            f"  {n.file}: detected {n.detected_faces} faces{_problem(n)}" for n in report.unusable
        )
    return [*lines, ""] if lines else []


def _problem(note: PhotoNote) -> str:
    return f" ({note.problem})" if note.problem else ""


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin ``[edges[i], edges[i+1])``; values outside go to the first/last bin."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        index = int(np.searchsorted(edges, value, side="right")) - 1
        counts[min(max(index, 0), len(counts) - 1)] += 1
    return counts


def text_histogram(
    genuine: Sequence[float],
    impostor: Sequence[float],
    *,
    start: float = 0.0,
    stop: float = 1.2,
    step: float = 0.05,
    width: int = 30,
    tolerance: float | None = None,
) -> list[str]:
    """Side-by-side bars, ``G`` for genuine and ``I`` for impostor, one line per bin.

    The bin holding ``tolerance`` is marked with ``<- tolerance``.
    """
    count = round((stop - start) / step)
    edges = [round(start + i * step, 9) for i in range(count + 1)]
    g_counts, i_counts = histogram(genuine, edges), histogram(impostor, edges)
    peak = max([*g_counts, *i_counts, 1])
    lines = [f"  {'distance':9s} {'G':>4s} {'I':>4s}  (G genuine, I impostor)"]
    for low, high, g, i in zip(edges, edges[1:], g_counts, i_counts, strict=False):
        if not g and not i and not (tolerance is not None and low <= tolerance < high):
            continue
        bars = f"{'G' * _bar(g, peak, width):<{width}} {'I' * _bar(i, peak, width):<{width}}"
        mark = "  <- tolerance" if tolerance is not None and low <= tolerance < high else ""
        lines.append(f"  {low:4.2f}-{high:4.2f} {g:4d} {i:4d}  {bars.rstrip()}{mark}")
    return lines


def _bar(value: int, peak: int, width: int) -> int:
    """Bar length; any non-zero count shows at least one character."""
    return 0 if value == 0 else max(1, round(value * width / peak))
