"""``evaluate --plot``: genuine vs impostor distances as a PNG (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

from nocodb_guard.errors import ConfigError
from nocodb_guard.trust.evaluate.report import EvaluationReport


def plot_png(report: EvaluationReport, path: Path) -> None:
    """Genuine vs impostor distance histograms (pooled) as a PNG.

    Raises :class:`ConfigError` with an install hint when matplotlib is missing: the plot
    is an optional extra, never needed by the daemon.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib") from None
    genuine = [d for p in report.politicians for d in p.genuine_distances]
    impostor = [d for p in report.politicians for d in p.impostor_distances]
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bins = [i * 0.025 for i in range(int(1.3 / 0.025) + 1)]
    axes.hist(genuine, bins=bins, alpha=0.6, label=f"genuine ({len(genuine)})", color="tab:green")
    axes.hist(impostor, bins=bins, alpha=0.6, label=f"impostor ({len(impostor)})", color="tab:red")
    for tolerance in sorted({p.tolerance for p in report.politicians}):
        axes.axvline(tolerance, color="black", linestyle="--", label=f"tolerance {tolerance:.2f}")
    suggestion = report.overall_suggestion
    if suggestion is not None and suggestion.tolerance is not None:
        axes.axvline(suggestion.tolerance, color="tab:blue", linestyle=":", label="suggested")
    axes.set_xlabel("face distance")
    axes.set_ylabel("comparisons")
    axes.set_title(f"nocodb-guard evaluate ({report.mode}): {report.directory}")
    axes.legend()
    figure.savefig(path, format="png", dpi=100)
