"""``evaluate_dir``: read DIR, see every photo once, compare in the chosen mode, summarise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nocodb_guard.errors import ConfigError
from nocodb_guard.trust.evaluate import calibration
from nocodb_guard.trust.evaluate.compare import Probe, configured_results, self_results
from nocodb_guard.trust.evaluate.diagnosis import Encoding, diagnose_references
from nocodb_guard.trust.evaluate.encoder import EncodePhoto, PhotoEncoding, once_per_file
from nocodb_guard.trust.evaluate.photos import LabelledPhoto, Target, read_labelled_photos
from nocodb_guard.trust.evaluate.report import EvaluationReport, Mode, PhotoNote, PoliticianResult
from nocodb_guard.trust.evaluate.swapped import SwapEncoder, add_swaps, originals


def evaluate_dir(
    directory: Path,
    *,
    encode_photo: EncodePhoto,
    mode: Mode = "configured",
    targets: Sequence[Target] = (),
    tolerance: float = calibration.SAME_PERSON_DISTANCE,
    table_tolerances: Sequence[float] = calibration.DEFAULT_TABLE_TOLERANCES,
    encode_swap: SwapEncoder | None = None,
) -> EvaluationReport:
    """Encode every photo once, compare, and summarise.

    ``targets`` (see :func:`configured_targets`) is required in ``configured`` mode and
    ignored in ``self`` mode, where every person uses ``tolerance``. With ``encode_swap``,
    synthetic face swaps are added to each politician's result (:mod:`.swapped`).
    """
    encode_photo = once_per_file(encode_photo)
    photos, notes = read_labelled_photos(directory)
    encodings = {p.file: encode_photo(directory / p.file) for p in photos}
    probes, not_single, unusable = _split_photos(photos, encodings)
    if mode == "self":
        results, by_person = self_results(probes, tolerance)
    elif mode == "configured":
        if not targets:
            raise ConfigError("evaluate: no politicians configured (and no reference folders)")
        results, by_person = configured_results(directory, photos, probes, targets, encode_photo)
    else:
        raise ConfigError(f"evaluate: unknown mode {mode!r} (configured or self)")
    if encode_swap is not None:
        files = {t.label: t.reference_files for t in targets} if mode == "configured" else {}
        for result in results:
            _add_swaps(directory, result, files.get(result.label), probes, by_person, encode_swap)
    report = EvaluationReport(
        mode=mode,
        directory=str(directory),
        politicians=results,
        findings=diagnose_references(by_person),
        not_single_face=not_single,
        unusable=unusable,
        notes=notes,
        table_tolerances=tuple(table_tolerances),
    )
    _summarise(report)
    return report


def _split_photos(
    photos: Sequence[LabelledPhoto], encodings: Mapping[str, PhotoEncoding]
) -> tuple[list[Probe], list[PhotoNote], list[PhotoNote]]:
    """Single-face photos become probes; group/no-face photos and failures are set aside."""
    probes: list[Probe] = []
    not_single: list[PhotoNote] = []
    unusable: list[PhotoNote] = []
    for photo in photos:
        seen = encodings[photo.file]
        note = PhotoNote(photo.file, seen.faces, photo.expected_faces, seen.problem)
        if photo.expected_faces not in (None, 1):
            not_single.append(note)
        elif seen.encoding is None:
            unusable.append(note)
        else:
            probes.append((photo, seen.encoding))
    return probes, not_single, unusable


def _add_swaps(
    directory: Path,
    result: PoliticianResult,
    own: Sequence[Path] | None,
    probes: Sequence[Probe],
    by_person: Mapping[str, Sequence[tuple[str, Encoding]]],
    encode_swap: SwapEncoder,
) -> None:
    """Swaps with one photo per original of everyone who was this politician's impostor.

    ``own``: the politician's reference photos; None in ``self`` mode, where the person's
    own photos (one per original) take their place.
    """
    if own is None:
        own = originals([p for p, _ in probes if p.person == result.label], directory)
    impostors = {c.probe for c in result.impostor}
    strangers = originals([p for p, _ in probes if p.file in impostors], directory)
    references = [encoding for _, encoding in by_person.get(result.label, ())]
    add_swaps(result, own, strangers, references, encode_swap)


def _summarise(report: EvaluationReport) -> None:
    """Fill in tables and suggestions, per politician and pooled."""
    for result in report.politicians:
        result.table = calibration.tolerance_table(
            result.genuine_distances, result.impostor_distances, report.table_tolerances
        )
        result.suggestion = calibration.suggest_tolerance(
            result.genuine_distances, result.impostor_distances
        )
    genuine = [d for p in report.politicians for d in p.genuine_distances]
    impostor = [d for p in report.politicians for d in p.impostor_distances]
    report.overall_table = calibration.tolerance_table(genuine, impostor, report.table_tolerances)
    report.overall_suggestion = calibration.suggest_tolerance(genuine, impostor)
