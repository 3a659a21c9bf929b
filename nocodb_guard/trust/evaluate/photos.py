"""What ``evaluate`` reads: DIR's labelled photos (``manifest.csv`` or folders), and the targets.

A file the manifest lists takes its labels from it; any other file in a person's folder is
that person's, and its own source photo. The configured targets are the settings'
politicians with their reference photos.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nocodb_guard.errors import ConfigError
from nocodb_guard.faces.references import IMAGE_SUFFIXES
from nocodb_guard.settings import Settings

MANIFEST = "manifest.csv"


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
