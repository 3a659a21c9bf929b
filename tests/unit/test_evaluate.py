"""``evaluate``: genuine vs impostor distances on labelled photos, with and without dlib."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from nocodb_guard.settings import Politician, Settings
from nocodb_guard.trust.evaluate import (
    EncodePhoto,
    EvaluationReport,
    PhotoEncoding,
    Target,
    configured_targets,
    evaluate_dir,
    plot_png,
    read_labelled_photos,
    render_text,
    to_json,
)
from nocodb_guard.trust.evaluate.diagnosis import FindingKind

SHARED_FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"


def _identity(seed: int) -> np.ndarray:
    """A synthetic person: different people end up about 1.0 apart."""
    return np.random.default_rng(seed).normal(0, 1 / np.sqrt(2 * 128), 128)


def _variant(identity: np.ndarray, seed: int, spread: float = 0.3) -> np.ndarray:
    """Another photo of that person: about ``spread`` from the identity."""
    return identity + np.random.default_rng(1000 + seed).normal(0, spread / np.sqrt(128), 128)


class FakeEncoder:
    """Encodings by file name, counting calls (each photo must be encoded once)."""

    def __init__(self, encodings: Mapping[str, PhotoEncoding]) -> None:
        self.encodings = encodings
        self.calls: list[str] = []

    def __call__(self, path: Path) -> PhotoEncoding:
        self.calls.append(path.name)
        return self.encodings[path.name]


def _write(directory: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


ADA, GRACE = _identity(1), _identity(2)


@pytest.fixture
def two_people(tmp_path: Path) -> tuple[Path, FakeEncoder]:
    """Ada: three source photos, one resized copy. Grace: two. A group photo of both."""
    _write(
        tmp_path,
        {
            "ada/a1.jpg": b"a1",
            "ada/a1-small.jpg": b"a1 small",
            "ada/a2.jpg": b"a2",
            "ada/a3.jpg": b"a3",
            "grace/g1.jpg": b"g1",
            "grace/g2.jpg": b"g2",
            "groups/both.jpg": b"both",
        },
    )
    (tmp_path / "manifest.csv").write_text(
        "file,persons,faces,source_photo,width,height,note\n"
        "ada/a1.jpg,ada,1,A1,1,1,\n"
        "ada/a1-small.jpg,ada,1,A1,1,1,resized copy\n"
        "ada/a2.jpg,ada,1,A2,1,1,\n"
        "ada/a3.jpg,ada,1,A3,1,1,\n"
        "grace/g1.jpg,grace,1,G1,1,1,\n"
        "grace/g2.jpg,grace,1,G2,1,1,\n"
        "groups/both.jpg,ada;grace,2,both,1,1,\n",
        encoding="utf-8",
    )
    a1 = _variant(ADA, 1)
    encoder = FakeEncoder(
        {
            "a1.jpg": PhotoEncoding(1, a1),
            "a1-small.jpg": PhotoEncoding(1, a1 + 0.001),
            "a2.jpg": PhotoEncoding(1, _variant(ADA, 2)),
            "a3.jpg": PhotoEncoding(1, _variant(ADA, 3)),
            "g1.jpg": PhotoEncoding(1, _variant(GRACE, 4)),
            "g2.jpg": PhotoEncoding(1, _variant(GRACE, 5)),
            "both.jpg": PhotoEncoding(2),
        }
    )
    return tmp_path, encoder


def test_self_mode_with_a_clear_gap_makes_no_error_and_suggests_a_tolerance_in_it(
    two_people: tuple[Path, FakeEncoder],
) -> None:
    directory, encoder = two_people
    report = evaluate_dir(directory, encode_photo=encoder, mode="self", tolerance=0.6)
    assert (report.false_approvals, report.false_rejections) == (0, 0)
    suggestion = report.overall_suggestion
    assert suggestion is not None and suggestion.separable and suggestion.tolerance is not None
    genuine = [d for p in report.politicians for d in p.genuine_distances]
    impostor = [d for p in report.politicians for d in p.impostor_distances]
    assert max(genuine) < suggestion.tolerance < min(impostor)
    assert report.findings == []


def test_each_photo_is_encoded_once(two_people: tuple[Path, FakeEncoder]) -> None:
    directory, encoder = two_people
    evaluate_dir(directory, encode_photo=encoder, mode="self")
    assert sorted(encoder.calls) == sorted(set(encoder.calls))
    assert len(encoder.calls) == 7


def test_copies_of_the_reference_photo_never_count_as_genuine_evidence(
    two_people: tuple[Path, FakeEncoder],
) -> None:
    directory, encoder = two_people
    report = evaluate_dir(directory, encode_photo=encoder, mode="self")
    ada = next(p for p in report.politicians if p.label == "ada")
    pairs = {(c.probe, c.reference) for c in ada.genuine}
    assert ("ada/a1-small.jpg", "ada/A1") not in pairs
    assert ("ada/a1-small.jpg", "ada/A2") in pairs
    assert min(ada.genuine_distances) > 0.1
    # 3 source photos: each against the photos of the 2 others (a1 counts twice as a probe)
    assert len(ada.genuine) == 3 + 3 + 2


def test_group_photos_are_reported_apart_as_rejected(two_people: tuple[Path, FakeEncoder]) -> None:
    directory, encoder = two_people
    report = evaluate_dir(directory, encode_photo=encoder, mode="self")
    [group] = report.not_single_face
    assert (group.file, group.detected_faces, group.rejected) == ("groups/both.jpg", 2, True)
    assert all(c.probe != "groups/both.jpg" for p in report.politicians for c in p.impostor)
    assert "groups/both.jpg: expected 2 faces, detected 2: rejected" in render_text(report)


def test_a_person_with_one_source_photo_gives_impostor_comparisons_only(tmp_path: Path) -> None:
    _write(tmp_path, {"ada/a1.jpg": b"1", "ada/a2.jpg": b"2", "grace/g1.jpg": b"3"})
    encoder = FakeEncoder(
        {
            "a1.jpg": PhotoEncoding(1, _variant(ADA, 1)),
            "a2.jpg": PhotoEncoding(1, _variant(ADA, 2)),
            "g1.jpg": PhotoEncoding(1, _variant(GRACE, 3)),
        }
    )
    report = evaluate_dir(tmp_path, encode_photo=encoder, mode="self")
    grace = next(p for p in report.politicians if p.label == "grace")
    assert grace.genuine == [] and len(grace.impostor) == 2
    assert any("one source photo" in note for note in grace.notes)


def test_without_a_manifest_the_folder_is_the_person_and_each_file_its_own_photo(
    tmp_path: Path,
) -> None:
    _write(tmp_path, {"ada/x.jpg": b"1", "ada/y.png": b"2", "notes.txt": b"", "top.jpg": b""})
    photos, notes = read_labelled_photos(tmp_path)
    assert [(p.file, p.person, p.source) for p in photos] == [
        ("ada/x.jpg", "ada", "ada/ada/x.jpg"),
        ("ada/y.png", "ada", "ada/ada/y.png"),
    ]
    assert notes == ["top.jpg skipped: not in a person's folder nor in manifest.csv"]


def test_configured_targets_default_to_the_reference_folders(tmp_path: Path) -> None:
    _write(tmp_path, {"ada_lovelace/1.jpg": b"1", "ada_lovelace/2.png": b"2", "grace/1.jpg": b""})
    targets = configured_targets(Settings(reference_dir=tmp_path, tolerance=0.5))
    assert [(t.label, t.folder, t.tolerance, len(t.reference_files)) for t in targets] == [
        ("ada_lovelace", "ada_lovelace", 0.5, 2),
        ("grace", "grace", 0.5, 1),
    ]


def test_configured_targets_follow_the_politicians_setting(tmp_path: Path) -> None:
    _write(tmp_path, {"ada_lovelace/1.jpg": b"1", "other/1.jpg": b""})
    settings = Settings(
        reference_dir=tmp_path,
        politicians={"Ada Lovelace": Politician(tolerance=0.45), "Nobody": Politician()},
    )
    targets = configured_targets(settings)
    assert [(t.label, t.folder, t.tolerance, len(t.reference_files)) for t in targets] == [
        ("Ada Lovelace", "ada_lovelace", 0.45, 1),
        ("Nobody", "nobody", 0.6, 0),
    ]


def test_a_polluted_reference_set_is_flagged_in_configured_mode(tmp_path: Path) -> None:
    references, photos = tmp_path / "refs", tmp_path / "photos"
    _write(
        references,
        {
            "ada/r1.jpg": b"r1",
            "ada/r2.jpg": b"r2",
            "ada/r3.jpg": b"r3",
            "ada/oops.jpg": b"oops",
            "grace/r4.jpg": b"r4",
        },
    )
    _write(photos, {"ada/p1.jpg": b"p1", "ada/r1-copy.jpg": b"r1", "grace/p2.jpg": b"p2"})
    encoder = FakeEncoder(
        {
            "r1.jpg": PhotoEncoding(1, _variant(ADA, 1)),
            "r1-copy.jpg": PhotoEncoding(1, _variant(ADA, 1)),
            "r2.jpg": PhotoEncoding(1, _variant(ADA, 2)),
            "r3.jpg": PhotoEncoding(1, _variant(ADA, 3)),
            "oops.jpg": PhotoEncoding(1, _variant(GRACE, 4)),
            "r4.jpg": PhotoEncoding(1, _variant(GRACE, 5)),
            "p1.jpg": PhotoEncoding(1, _variant(ADA, 6)),
            "p2.jpg": PhotoEncoding(1, _variant(GRACE, 7)),
        }
    )
    targets = [
        Target("Ada Lovelace", "ada", 0.6, tuple(sorted((references / "ada").iterdir()))),
        Target("Grace Hopper", "grace", 0.5, ((references / "grace" / "r4.jpg"),)),
    ]
    report = evaluate_dir(photos, encode_photo=encoder, targets=targets)
    kinds = {(f.kind, f.files) for f in report.findings}
    assert (FindingKind.OUTLIER_REFERENCE, ("ada/oops.jpg",)) in kinds
    assert any(f.kind is FindingKind.POLITICIANS_TOO_CLOSE for f in report.findings)
    ada = report.politicians[0]
    # the byte-identical copy of a reference is not genuine evidence
    assert [c.probe for c in ada.genuine] == ["ada/p1.jpg"]
    # with Grace's face among Ada's references, Grace's photo is approved as Ada
    assert report.false_approvals == 1
    assert "probably the wrong person" in render_text(report)


def test_json_output_carries_the_totals_and_no_encoding(
    two_people: tuple[Path, FakeEncoder],
) -> None:
    directory, encoder = two_people
    document = to_json(evaluate_dir(directory, encode_photo=encoder, mode="self"))
    assert (document["false_approvals"], document["false_rejections"]) == (0, 0)
    assert {p["label"] for p in document["politicians"]} == {"ada", "grace"}
    text = json.dumps(document)
    assert "encoding" not in text
    assert document["overall"]["suggestion"]["separable"] is True


def test_the_text_report_shows_counts_table_and_suggestion(
    two_people: tuple[Path, FakeEncoder],
) -> None:
    directory, encoder = two_people
    text = render_text(evaluate_dir(directory, encode_photo=encoder, mode="self"))
    assert "false approvals: 0, false rejections: 0" in text
    assert "tolerance  false approvals  false rejections" in text
    assert "suggestion: tolerance" in text


def test_the_plot_is_a_png(two_people: tuple[Path, FakeEncoder], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    directory, encoder = two_people
    target = tmp_path / "plot.png"
    plot_png(evaluate_dir(directory, encode_photo=encoder, mode="self"), target)
    assert target.read_bytes().startswith(b"\x89PNG")


# --- the real face stack on ../shared/faces ----------------------------------------------------


@pytest.fixture(scope="module")
def real_encoder() -> Iterator[EncodePhoto]:
    """The real face stack, memoised across this module's tests (detection is slow)."""
    if not SHARED_FACES.is_dir():
        pytest.skip(f"real photos absent: {SHARED_FACES} (see DEVELOPERS.md)")
    from nocodb_guard.faces.see import PipelineConfig, make_engine  # noqa: PLC0415
    from nocodb_guard.trust.evaluate import make_photo_encoder  # noqa: PLC0415

    config = PipelineConfig()
    encode = make_photo_encoder(config, make_engine(config))
    cache: dict[Path, PhotoEncoding] = {}

    def memoised(path: Path) -> PhotoEncoding:
        if path.resolve() not in cache:
            cache[path.resolve()] = encode(path)
        return cache[path.resolve()]

    yield memoised


@pytest.fixture(scope="module")
def shared_faces_report(real_encoder: EncodePhoto) -> EvaluationReport:
    return evaluate_dir(SHARED_FACES, encode_photo=real_encoder, mode="self", tolerance=0.6)


@pytest.mark.shared_faces
def test_self_evaluation_of_the_shared_faces_makes_no_error_at_0_6(
    shared_faces_report: EvaluationReport,
) -> None:
    report = shared_faces_report
    assert (report.false_approvals, report.false_rejections) == (0, 0)
    assert report.unusable == []
    assert all(note.rejected for note in report.not_single_face)
    assert report.findings == []


@pytest.mark.shared_faces
def test_self_evaluation_of_the_shared_faces_suggests_a_tolerance_in_the_gap(
    shared_faces_report: EvaluationReport,
) -> None:
    suggestion = shared_faces_report.overall_suggestion
    assert suggestion is not None and suggestion.separable and suggestion.tolerance is not None
    assert suggestion.max_genuine is not None and suggestion.min_impostor is not None
    assert suggestion.max_genuine < suggestion.tolerance < suggestion.min_impostor


@pytest.mark.shared_faces
def test_a_biden_photo_among_obamas_references_is_flagged_on_real_photos(
    real_encoder: EncodePhoto,
) -> None:
    obama = tuple(SHARED_FACES / "obama" / f for f in ("obama.jpg", "obama1.jpg"))
    targets = [
        Target("Barack Obama", "obama", 0.6, (*obama, SHARED_FACES / "biden" / "biden.jpg")),
        Target("Joe Biden", "biden", 0.6, (SHARED_FACES / "biden" / "biden2.jpg",)),
    ]
    report = evaluate_dir(SHARED_FACES, encode_photo=real_encoder, targets=targets)
    outliers = [f for f in report.findings if f.kind is FindingKind.OUTLIER_REFERENCE]
    assert [f.files for f in outliers] == [("biden/biden.jpg",)]
    assert any(f.kind is FindingKind.POLITICIANS_TOO_CLOSE for f in report.findings)
    obama_result = report.politicians[0]
    # copies of obama.jpg (source obama_A) and obama1.jpg are no evidence: obama_B and _C remain
    assert sorted(c.probe for c in obama_result.genuine) == [
        "obama/32bit.png",
        "obama/obama2.jpg",
        "obama/obama3.jpg",
    ]
    assert obama_result.false_approvals > 0  # Biden's photos now pass as Obama
