"""Calibration statistics: tolerance tables, suggestions and reference diagnosis."""

from __future__ import annotations

import numpy as np
import pytest

from nocodb_guard.trust.evaluate.calibration import (
    ToleranceRow,
    suggest_tolerance,
    tolerance_table,
)
from nocodb_guard.trust.evaluate.diagnosis import FindingKind, diagnose_references
from nocodb_guard.trust.evaluate.output_text import histogram, text_histogram


@pytest.mark.parametrize(
    ("genuine", "impostor", "tolerance", "false_approvals", "false_rejections"),
    [
        ([0.3, 0.4], [0.8, 0.9], 0.6, 0, 0),
        ([0.3, 0.4], [0.8, 0.9], 0.35, 0, 1),
        ([0.3, 0.4], [0.8, 0.9], 0.85, 1, 0),
        # a distance equal to the tolerance matches (as policy.decide and compare_faces do)
        ([0.6], [0.6], 0.6, 1, 0),
        ([], [], 0.6, 0, 0),
    ],
)
def test_tolerance_table_counts_false_approvals_and_false_rejections(
    genuine: list[float],
    impostor: list[float],
    tolerance: float,
    false_approvals: int,
    false_rejections: int,
) -> None:
    assert tolerance_table(genuine, impostor, [tolerance]) == [
        ToleranceRow(tolerance, false_approvals, false_rejections)
    ]


def test_tolerance_table_keeps_the_order_of_the_tolerances() -> None:
    rows = tolerance_table([0.5], [0.7], [0.7, 0.4])
    assert [r.tolerance for r in rows] == [0.7, 0.4]


def test_separable_distances_suggest_the_midpoint_with_half_the_gap_as_margin() -> None:
    suggestion = suggest_tolerance([0.34, 0.53, 0.41], [0.70, 1.1])
    assert suggestion.separable
    assert suggestion.tolerance == pytest.approx(0.615)
    assert suggestion.margin == pytest.approx(0.085)
    assert (suggestion.max_genuine, suggestion.min_impostor) == (0.53, 0.70)


def test_overlapping_distances_are_said_to_be_not_separable() -> None:
    suggestion = suggest_tolerance([0.3, 0.4, 0.65], [0.6, 0.9])
    assert not suggestion.separable
    assert suggestion.margin is not None and suggestion.margin < 0
    assert "NOT separable" in suggestion.note


def test_overlapping_distances_weigh_a_false_approval_heavier_than_a_false_rejection() -> None:
    # Accepting the 0.65 genuine would also accept the 0.6 impostor: better reject the genuine.
    suggestion = suggest_tolerance([0.3, 0.4, 0.65], [0.6, 0.9])
    assert suggestion.tolerance is not None
    assert 0.4 < suggestion.tolerance < 0.6


def test_overlap_with_many_genuine_still_prefers_no_false_approval() -> None:
    genuine = [0.3, 0.62, 0.63, 0.64]
    suggestion = suggest_tolerance(genuine, [0.61, 0.9])
    assert suggestion.tolerance is not None and suggestion.tolerance < 0.61


@pytest.mark.parametrize(
    ("genuine", "impostor", "words"),
    [
        ([], [0.7], "no genuine comparisons"),
        ([0.4], [], "no impostor comparisons"),
        ([], [], "no comparisons"),
    ],
)
def test_one_sided_measurements_suggest_nothing_and_say_why(
    genuine: list[float], impostor: list[float], words: str
) -> None:
    suggestion = suggest_tolerance(genuine, impostor)
    assert suggestion.tolerance is None
    assert words in suggestion.note


def _person(seed: int) -> np.ndarray:
    """A synthetic 'identity': a random direction scaled so people are ~1.0 apart."""
    return np.random.default_rng(seed).normal(0, 1 / np.sqrt(2 * 128), 128) * 1.0


def _photo(identity: np.ndarray, seed: int, spread: float = 0.25) -> np.ndarray:
    noise = np.random.default_rng(1000 + seed).normal(0, spread / np.sqrt(2 * 128), 128)
    return identity + noise


def test_a_reference_of_another_person_is_flagged_as_probably_the_wrong_person() -> None:
    obama, biden = _person(1), _person(2)
    refs = {
        "Obama": [
            ("obama/a.jpg", _photo(obama, 1)),
            ("obama/b.jpg", _photo(obama, 2)),
            ("obama/c.jpg", _photo(obama, 3)),
            ("obama/intruder.jpg", _photo(biden, 4)),
        ]
    }
    findings = diagnose_references(refs)
    assert [(f.kind, f.files) for f in findings] == [
        (FindingKind.OUTLIER_REFERENCE, ("obama/intruder.jpg",))
    ]
    assert "probably the wrong person" in findings[0].message


def test_a_polluted_set_of_three_flags_only_the_intruder() -> None:
    obama, biden = _person(1), _person(2)
    refs = {
        "Obama": [
            ("a.jpg", _photo(obama, 1)),
            ("b.jpg", _photo(obama, 2)),
            ("x.jpg", _photo(biden, 3)),
        ]
    }
    assert [f.files for f in diagnose_references(refs)] == [("x.jpg",)]


def test_two_references_that_disagree_are_flagged_once() -> None:
    refs = {"Obama": [("a.jpg", _photo(_person(1), 1)), ("b.jpg", _photo(_person(2), 2))]}
    findings = diagnose_references(refs)
    assert [f.kind for f in findings] == [FindingKind.INCONSISTENT_REFERENCES]


def test_consistent_distinct_politicians_give_no_finding() -> None:
    refs = {
        name: [(f"{name}/{i}.jpg", _photo(_person(seed), seed * 10 + i)) for i in range(3)]
        for seed, name in enumerate(["Ada", "Grace", "Linus"], start=1)
    }
    assert diagnose_references(refs) == []


def test_politicians_whose_references_are_close_are_flagged_as_dangerously_close() -> None:
    twin = _person(7)
    refs = {
        "Ada": [("ada/1.jpg", _photo(twin, 1))],
        "Grace": [("grace/1.jpg", _photo(twin, 2))],
        "Linus": [("linus/1.jpg", _photo(_person(8), 3))],
    }
    findings = diagnose_references(refs)
    assert [(f.kind, f.politicians) for f in findings] == [
        (FindingKind.POLITICIANS_TOO_CLOSE, ("Ada", "Grace"))
    ]
    assert "dangerously close" in findings[0].message


def test_histogram_puts_outliers_in_the_edge_bins() -> None:
    assert histogram([-1.0, 0.05, 0.15, 0.15, 9.0], [0.0, 0.1, 0.2]) == [2, 3]


def test_text_histogram_marks_the_tolerance_bin() -> None:
    lines = text_histogram([0.42, 0.44], [0.81], tolerance=0.6)
    assert any("<- tolerance" in line and line.strip().startswith("0.60") for line in lines)
    assert any(line.strip().startswith("0.40") and "GG" in line for line in lines)
