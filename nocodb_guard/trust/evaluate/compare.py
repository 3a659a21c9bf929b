"""The comparisons of both modes: genuine and impostor distances per politician (or person).

Each returns the results and, for :func:`~.diagnosis.diagnose_references`, the encodings
that served as references, by politician.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nocodb_guard.labels import slugify
from nocodb_guard.trust.evaluate.diagnosis import Encoding
from nocodb_guard.trust.evaluate.encoder import EncodePhoto
from nocodb_guard.trust.evaluate.photos import LabelledPhoto, Target
from nocodb_guard.trust.evaluate.report import Comparison, PoliticianResult

Probe = tuple[LabelledPhoto, Encoding]


def _best(encoding: Encoding, references: Sequence[Encoding]) -> float:
    return float(np.min(np.linalg.norm(np.asarray(references) - encoding, axis=1)))


def self_results(
    probes: Sequence[Probe], tolerance: float
) -> tuple[list[PoliticianResult], dict[str, list[tuple[str, Encoding]]]]:
    """``self`` mode: the copies of each source photo are a reference set for the person."""
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


def configured_results(
    directory: Path,
    photos: Sequence[LabelledPhoto],
    probes: Sequence[Probe],
    targets: Sequence[Target],
    encode_photo: EncodePhoto,
) -> tuple[list[PoliticianResult], dict[str, list[tuple[str, Encoding]]]]:
    """``configured`` mode: each politician's references; their copies prove nothing."""
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
