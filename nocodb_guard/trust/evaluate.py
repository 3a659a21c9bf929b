"""``nocodb-guard evaluate DIR``: measure, on labelled photos, how trustworthy the decisions are.

DIR holds one sub-folder per person (like ``../shared/faces``). An optional ``manifest.csv``
(columns ``file``, ``persons``, ``faces``, ``source_photo``; see ``../shared/faces/README.md``)
says who is in each file, how many faces it holds, and which files are copies of the same
original photo. Without it, the person is the folder and every file is its own source photo.

Two modes:

- ``configured``: each configured politician's reference photos are the reference; the
  photos of the DIR sub-folder named like that politician's reference folder are genuine,
  all other persons' photos are impostors. Copies of a reference photo (same bytes, or the
  same ``source_photo`` per the manifest) never count as genuine evidence: matching a resized
  copy of the reference proves nothing.
- ``self``: references come from DIR itself. For each person and each of their source
  photos, all copies of that source photo form the reference set; the person's photos from
  *other* source photos are genuine probes, every other person's photos are impostors. A
  person with a single source photo contributes impostor comparisons only.

Source photo keys are qualified by the person (``rose_leslie/img1`` and ``alex_lacamoire/img1``
are different photos), since a single-face photo cannot show two people.

These photos are the admin's own labelled photos, not uploads; their encodings are computed
once and kept in memory only, never written anywhere.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nocodb_guard.errors import BadPicture, ConfigError
from nocodb_guard.faces.engine import FaceEngine
from nocodb_guard.faces.see import PipelineConfig, see
from nocodb_guard.settings import Settings, slugify
from nocodb_guard.trust import calibration
from nocodb_guard.trust.calibration import Encoding, Finding, Suggestion, ToleranceRow

MANIFEST = "manifest.csv"
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)

Mode = Literal["configured", "self"]


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoEncoding:
    """What the face stack saw in one labelled photo: ``encoding`` is set iff ``faces == 1``."""

    faces: int
    encoding: Encoding | None = None
    problem: str | None = None


EncodePhoto = Callable[[Path], PhotoEncoding]


@dataclass(frozen=True)
class LabelledPhoto:
    """One file of DIR and what the admin says it shows."""

    file: str
    """Path below DIR, with ``/`` separators."""
    persons: tuple[str, ...]
    source: str
    """Person-qualified source photo key: copies of one original share it."""
    expected_faces: int | None = None
    """From the manifest; None when unknown (then the detector's count is trusted)."""

    @property
    def person(self) -> str:
        return self.persons[0] if self.persons else ""


@dataclass(frozen=True)
class Target:
    """A configured politician to evaluate against."""

    label: str
    folder: str
    tolerance: float
    reference_files: tuple[Path, ...]


def configured_targets(settings: Settings) -> list[Target]:
    """The politicians of the settings (or, when none are listed, every reference sub-folder)."""
    labels = list(settings.politicians)
    if not labels and settings.reference_dir.is_dir():
        labels = sorted(p.name for p in settings.reference_dir.iterdir() if p.is_dir())
    targets = []
    for label in labels:
        folder = settings.reference_folder(label)
        files = tuple(_image_files(folder)) if folder.is_dir() else ()
        targets.append(Target(label, folder.name, settings.tolerance_for(label), files))
    return targets


def _image_files(folder: Path) -> Iterable[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def read_labelled_photos(directory: Path) -> tuple[list[LabelledPhoto], list[str]]:
    """Every image file of DIR with its labels, and notes about the manifest."""
    if not directory.is_dir():
        raise ConfigError(f"evaluate: no such directory: {directory}")
    present = {p.relative_to(directory).as_posix(): p for p in _image_files(directory)}
    manifest_path = directory / MANIFEST
    listed = _read_manifest(manifest_path) if manifest_path.is_file() else {}
    notes = [f"{MANIFEST}: {file} is listed but missing" for file in listed if file not in present]
    photos = []
    for file in sorted(present):
        if file in listed:
            photos.append(listed[file])
        elif "/" not in file:
            notes.append(f"{file} skipped: not in a person's folder nor in {MANIFEST}")
        else:
            person = file.split("/", 1)[0]
            photos.append(LabelledPhoto(file, (person,), f"{person}/{file}"))
            if listed:
                notes.append(f"{file} is not in {MANIFEST}: person {person}, own source photo")
    return photos, notes


def _read_manifest(path: Path) -> dict[str, LabelledPhoto]:
    """Manifest rows by file; a malformed row is a ConfigError naming its line."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if "file" not in (reader.fieldnames or []):
            raise ConfigError(f"{path}: needs a 'file' column")
        return dict(_manifest_row(path, number, row) for number, row in enumerate(reader, 2))


def _manifest_row(path: Path, number: int, row: dict[str, str]) -> tuple[str, LabelledPhoto]:
    file = (row.get("file") or "").strip()
    folder = file.split("/", 1)[0]
    persons = tuple(p.strip() for p in (row.get("persons") or folder).split(";") if p.strip())
    faces_text = (row.get("faces") or "").strip()
    try:
        faces = int(faces_text) if faces_text else None
    except ValueError:
        raise ConfigError(f"{path} line {number}: faces {faces_text!r} is not a number") from None
    source = (row.get("source_photo") or "").strip() or file
    key = f"{persons[0]}/{source}" if len(persons) == 1 else source
    return file, LabelledPhoto(file, persons, key, faces)


# --- the real face stack ----------------------------------------------------------------------


def make_photo_encoder(config: PipelineConfig, engine: FaceEngine) -> EncodePhoto:
    """An :data:`EncodePhoto` that sees a photo as the pipeline sees an upload (:func:`see`)."""

    def encode(path: Path) -> PhotoEncoding:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return PhotoEncoding(0, problem=f"unreadable: {exc.strerror}")
        try:
            sight = see(data, config, engine)
        except BadPicture as bad:
            return PhotoEncoding(0, problem=bad.reason)
        return PhotoEncoding(len(sight.faces), sight.encoding)

    return encode


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One probe photo against one reference set: ``distance`` is the best over the set."""

    probe: str
    reference: str
    distance: float


@dataclass(frozen=True)
class PhotoNote:
    """A photo that could not be a probe, and what the face stack found in it."""

    file: str
    detected_faces: int
    expected_faces: int | None
    problem: str | None

    @property
    def rejected(self) -> bool:
        """Would an upload of it be rejected? (Anything but exactly one face is.)"""
        return self.problem is not None or self.detected_faces != 1


@dataclass
class PoliticianResult:
    """Genuine and impostor distances of one politician (or person, in ``self`` mode)."""

    label: str
    tolerance: float
    genuine: list[Comparison] = field(default_factory=list)
    impostor: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: list[ToleranceRow] = field(default_factory=list)
    suggestion: Suggestion | None = None

    @property
    def genuine_distances(self) -> list[float]:
        return [c.distance for c in self.genuine]

    @property
    def impostor_distances(self) -> list[float]:
        return [c.distance for c in self.impostor]

    @property
    def false_rejections(self) -> int:
        return calibration.false_rejections(self.genuine_distances, self.tolerance)

    @property
    def false_approvals(self) -> int:
        return calibration.false_approvals(self.impostor_distances, self.tolerance)

    @property
    def genuine_accepted(self) -> int:
        return len(self.genuine) - self.false_rejections

    @property
    def impostor_rejected(self) -> int:
        return len(self.impostor) - self.false_approvals


@dataclass
class EvaluationReport:
    """Everything ``evaluate`` found; :func:`render_text` and :func:`to_json` present it."""

    mode: Mode
    directory: str
    politicians: list[PoliticianResult]
    findings: list[Finding]
    not_single_face: list[PhotoNote]
    unusable: list[PhotoNote]
    notes: list[str]
    table_tolerances: tuple[float, ...]
    overall_table: list[ToleranceRow] = field(default_factory=list)
    overall_suggestion: Suggestion | None = None

    @property
    def false_approvals(self) -> int:
        """Impostors accepted, each politician at its configured tolerance."""
        return sum(p.false_approvals for p in self.politicians)

    @property
    def false_rejections(self) -> int:
        """Genuine photos rejected, each politician at its configured tolerance."""
        return sum(p.false_rejections for p in self.politicians)


# --- evaluation --------------------------------------------------------------------------------


def evaluate_dir(
    directory: Path,
    *,
    encode_photo: EncodePhoto,
    mode: Mode = "configured",
    targets: Sequence[Target] = (),
    tolerance: float = calibration.SAME_PERSON_DISTANCE,
    table_tolerances: Sequence[float] = calibration.DEFAULT_TABLE_TOLERANCES,
) -> EvaluationReport:
    """Encode every photo once, compare, and summarise.

    ``targets`` (see :func:`configured_targets`) is required in ``configured`` mode and
    ignored in ``self`` mode, where every person uses ``tolerance``.
    """
    encode_photo = _once_per_file(encode_photo)
    photos, notes = read_labelled_photos(directory)
    encodings = {p.file: encode_photo(directory / p.file) for p in photos}
    probes, not_single, unusable = _split_photos(photos, encodings)
    if mode == "self":
        results, by_person = _self_results(probes, tolerance)
    elif mode == "configured":
        if not targets:
            raise ConfigError("evaluate: no politicians configured (and no reference folders)")
        results, by_person = _configured_results(directory, photos, probes, targets, encode_photo)
    else:
        raise ConfigError(f"evaluate: unknown mode {mode!r} (configured or self)")
    report = EvaluationReport(
        mode=mode,
        directory=str(directory),
        politicians=results,
        findings=calibration.diagnose_references(by_person),
        not_single_face=not_single,
        unusable=unusable,
        notes=notes,
        table_tolerances=tuple(table_tolerances),
    )
    _summarise(report)
    return report


Probe = tuple[LabelledPhoto, Encoding]


def _once_per_file(encode_photo: EncodePhoto) -> EncodePhoto:
    """Reference photos may also sit in DIR: detection is the slow part, never do it twice."""
    seen: dict[Path, PhotoEncoding] = {}

    def encode(path: Path) -> PhotoEncoding:
        key = path.resolve()
        if key not in seen:
            seen[key] = encode_photo(path)
        return seen[key]

    return encode


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


def _best(encoding: Encoding, references: Sequence[Encoding]) -> float:
    return float(np.min(np.linalg.norm(np.asarray(references) - encoding, axis=1)))


def _self_results(
    probes: Sequence[Probe], tolerance: float
) -> tuple[list[PoliticianResult], dict[str, list[tuple[str, Encoding]]]]:
    by_person: dict[str, list[Probe]] = defaultdict(list)
    for probe in probes:
        by_person[probe[0].person].append(probe)
    results = []
    for person, own in sorted(by_person.items()):
        result = PoliticianResult(person, tolerance)
        sources: dict[str, list[Probe]] = defaultdict(list)
        for probe in own:
            sources[probe[0].source].append(probe)
        if len(sources) == 1:
            result.notes.append("one source photo only: impostor comparisons only")
        for source, copies in sorted(sources.items()):
            refs = [encoding for _, encoding in copies]
            for photo, encoding in own:
                if photo.source != source:
                    result.genuine.append(Comparison(photo.file, source, _best(encoding, refs)))
            for photo, encoding in probes:
                if photo.person != person:
                    result.impostor.append(Comparison(photo.file, source, _best(encoding, refs)))
        results.append(result)
    labelled = {
        person: [(photo.file, encoding) for photo, encoding in own]
        for person, own in sorted(by_person.items())
    }
    return results, labelled


def _configured_results(
    directory: Path,
    photos: Sequence[LabelledPhoto],
    probes: Sequence[Probe],
    targets: Sequence[Target],
    encode_photo: EncodePhoto,
) -> tuple[list[PoliticianResult], dict[str, list[tuple[str, Encoding]]]]:
    hashes = {p.file: _sha256(directory / p.file) for p in photos}
    by_basename = _unique_basenames(photos)
    results = []
    labelled: dict[str, list[tuple[str, Encoding]]] = {}
    for target in targets:
        result = PoliticianResult(target.label, target.tolerance)
        refs, copied_sources = _encode_references(target, encode_photo, result.notes, by_basename)
        labelled[target.label] = refs
        ref_hashes = {_sha256(path) for path in target.reference_files}
        copies = {f for f, digest in hashes.items() if digest in ref_hashes}
        if not refs:
            result.notes.append("no usable reference photo: nothing compared")
            results.append(result)
            continue
        ref_encodings = [encoding for _, encoding in refs]
        skipped = 0
        for photo, encoding in probes:
            comparison = Comparison(photo.file, target.folder, _best(encoding, ref_encodings))
            if not _is_person(photo, target):
                result.impostor.append(comparison)
            elif photo.file in copies or photo.source in copied_sources:
                skipped += 1
            else:
                result.genuine.append(comparison)
        if skipped:
            result.notes.append(f"{skipped} copies of a reference photo not counted as genuine")
        if not any(_is_person(photo, target) for photo, _ in probes):
            result.notes.append(f"no genuine photos: expected them in {target.folder}/")
        results.append(result)
    return results, labelled


def _encode_references(
    target: Target,
    encode_photo: EncodePhoto,
    notes: list[str],
    by_basename: Mapping[str, LabelledPhoto],
) -> tuple[list[tuple[str, Encoding]], set[str]]:
    """Encode a politician's reference photos; note the unusable ones and their sources."""
    refs: list[tuple[str, Encoding]] = []
    sources = set()
    for path in target.reference_files:
        name = f"{path.parent.name}/{path.name}"
        seen = encode_photo(path)
        if seen.encoding is None:
            found = seen.problem or f"{seen.faces} faces"
            notes.append(f"reference {name} skipped: {found}")
            continue
        refs.append((name, seen.encoding))
        if path.name in by_basename:
            sources.add(by_basename[path.name].source)
    return refs, sources


def _unique_basenames(photos: Sequence[LabelledPhoto]) -> dict[str, LabelledPhoto]:
    """Manifest entries by file name, when the name is unambiguous (to spot reference copies)."""
    counts: dict[str, int] = defaultdict(int)
    for photo in photos:
        counts[Path(photo.file).name] += 1
    return {Path(p.file).name: p for p in photos if counts[Path(p.file).name] == 1}


def _is_person(photo: LabelledPhoto, target: Target) -> bool:
    names = {target.folder, slugify(target.folder), slugify(target.label)}
    return photo.person in names or slugify(photo.person) in names


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


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


# --- presentation -------------------------------------------------------------------------------


def render_text(report: EvaluationReport) -> str:
    """The report an admin reads in a terminal."""
    lines = [
        f"Evaluation of {report.directory} ({report.mode} mode)",
        f"false approvals: {report.false_approvals}, false rejections: "
        f"{report.false_rejections} (at the configured tolerance(s))",
        "",
    ]
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
    lines.extend(
        calibration.text_histogram(
            result.genuine_distances, result.impostor_distances, tolerance=result.tolerance
        )
    )
    lines.extend(_table_text("", result.table))
    if result.suggestion is not None:
        lines.append(f"  suggestion: {_suggestion_text(result.suggestion)}")
    lines.append("")
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


def to_json(report: EvaluationReport) -> dict[str, Any]:
    """Machine-readable report; distances only, never encodings."""
    return {
        "mode": report.mode,
        "directory": report.directory,
        "false_approvals": report.false_approvals,
        "false_rejections": report.false_rejections,
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
