"""``nocodb-guard explain``: what the pipeline sees in local pictures, and its verdict.

The same :func:`nocodb_guard.faces.see.analyze` and :func:`nocodb_guard.policy.decide` as a
sweep, so an admin can reproduce any decision offline on a copy of the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nocodb_guard.errors import ConfigError
from nocodb_guard.faces.references import ReferenceSet, ReferenceStore
from nocodb_guard.faces.see import PipelineConfig, analyze, make_engine
from nocodb_guard.models import PictureAnalysis, Reason
from nocodb_guard.policy import RowEvidence, decide
from nocodb_guard.report import explain_json
from nocodb_guard.settings import Settings

REFERENCE_LABEL = "the reference photos"


def load_references(
    settings: Settings, politician: str | None, reference_photos: Sequence[Path] | None
) -> ReferenceSet:
    """The politician's configured references, or explicit photos (``--reference``)."""
    store = ReferenceStore.from_settings(settings, read_only=True)
    if reference_photos:
        missing = [str(p) for p in reference_photos if not p.is_file()]
        if missing:
            raise ConfigError(f"--reference: no such file: {', '.join(missing)}")
        return store.load_files(REFERENCE_LABEL, reference_photos)
    assert politician is not None
    references = store.load(politician)
    if references is None:
        raise ConfigError(
            f"no reference photos for {politician!r} in {settings.reference_folder(politician)}"
        )
    return references


def explain_pictures(
    settings: Settings,
    images: Sequence[Path],
    *,
    politician: str | None,
    reference_photos: Sequence[Path] | None,
    tolerance: float | None = None,
) -> list[dict[str, Any]]:
    """One JSON-able dict per picture: sizes, faces, distances, verdict and reason."""
    references = load_references(settings, politician, reference_photos)
    config = PipelineConfig.from_settings(settings)
    engine = make_engine(config)
    label = politician or REFERENCE_LABEL
    results = []
    for image in images:
        picture = _analyze_file(image, references, config, engine)
        decision = decide(
            RowEvidence(
                politician=label,
                tolerance=tolerance or references.tolerance,
                attachment_count=1,
                pictures=(picture,),
            ),
            max_attachments=settings.max_attachments,
        )
        results.append(explain_json(str(image), picture, decision, references.files))
    return results


def _analyze_file(
    image: Path, references: ReferenceSet, config: PipelineConfig, engine: Any
) -> PictureAnalysis:
    try:
        data = image.read_bytes()
    except OSError as exc:
        return PictureAnalysis(
            name=image.name, problem=Reason.UNREADABLE, detail=exc.strerror or str(exc)
        )
    return analyze(data, image.name, references.encodings, config, engine)
