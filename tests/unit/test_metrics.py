"""Prometheus metrics: private registry, loopback endpoint, closed label sets."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from nocodb_guard.models import Action, Decision, Reason, RowOutcome, Verdict
from nocodb_guard.nocodb.pacing import PacingTotals
from nocodb_guard.service.metrics import NOCODB_ERROR_KINDS, Metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    value = metrics.registry.get_sample_value(name, labels)
    return None if value is None else float(value)


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics()
    port = metrics.start_server("127.0.0.1", 0)
    yield metrics, f"http://127.0.0.1:{port}/metrics"
    metrics.stop_server()


def test_decisions_are_counted_by_verdict_and_reason() -> None:
    metrics = Metrics()
    metrics.record_decision(Verdict.REJECTED, Reason.MULTIPLE_FACES)
    metrics.record_decision(Verdict.REJECTED, Reason.MULTIPLE_FACES)
    metrics.record_decision(Verdict.APPROVED, Reason.MATCH)
    name = "nocodb_guard_rows_decided_total"
    assert sample(metrics, name, verdict="rejected", reason="multiple_faces") == 2
    assert sample(metrics, name, verdict="approved", reason="match") == 1


def test_two_instances_do_not_share_counters() -> None:
    first, second = Metrics(), Metrics()
    first.record_decision(Verdict.APPROVED, Reason.MATCH)
    name = "nocodb_guard_rows_decided_total"
    assert sample(second, name, verdict="approved", reason="match") is None


def test_an_unknown_error_kind_is_counted_as_other() -> None:
    metrics = Metrics()
    metrics.record_nocodb_error("timeout")
    metrics.record_nocodb_error("https://nocodb.example/api?token=abc")
    name = "nocodb_guard_nocodb_request_errors_total"
    assert sample(metrics, name, kind="timeout") == 1
    assert sample(metrics, name, kind="other") == 1
    assert sample(metrics, name, kind="server_error") == 0


def test_a_sweep_is_timed_and_marks_the_last_success() -> None:
    metrics = Metrics()
    metrics.observe_sweep(0.2, 7, ok=True)
    assert sample(metrics, "nocodb_guard_sweep_duration_seconds_count") == 1
    assert sample(metrics, "nocodb_guard_sweeps_total", outcome="ok") == 1
    assert (sample(metrics, "nocodb_guard_last_success_timestamp_seconds") or 0) > 1e9
    assert sample(metrics, "nocodb_guard_pending_rows") == 7


def test_pacing_is_counted_in_seconds_and_server_holds() -> None:
    metrics = Metrics()
    metrics.observe_pacing(PacingTotals(paced_seconds=2.5, holds=0))
    metrics.observe_pacing(PacingTotals(paced_seconds=30.0, holds=1))
    assert sample(metrics, "nocodb_guard_paced_seconds_total") == 32.5
    assert sample(metrics, "nocodb_guard_rate_limit_holds_total") == 1


def test_a_failed_sweep_counts_as_failed_and_is_not_a_success() -> None:
    metrics = Metrics()
    metrics.observe_sweep(0.2, ok=False)
    assert sample(metrics, "nocodb_guard_sweeps_total", outcome="failed") == 1
    assert sample(metrics, "nocodb_guard_last_success_timestamp_seconds") == 0


def test_the_endpoint_serves_the_counters(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    metrics.record_decision(Verdict.DEFERRED, Reason.TRANSIENT_ERROR)
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    assert (
        'nocodb_guard_rows_decided_total{reason="transient_error",verdict="deferred"} 1.0'
        in response.text
    )


def test_no_label_value_looks_like_a_token_or_url(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    for verdict, reason in [(Verdict.APPROVED, Reason.MATCH), (Verdict.REJECTED, Reason.NO_FACE)]:
        metrics.record_decision(verdict, reason)
    for kind in (*NOCODB_ERROR_KINDS, "xc-token: Zm9vYmFyYmF6cXV4cXV1eA", "/api/v2/tables"):
        metrics.record_nocodb_error(kind)
        metrics.observe_error(kind)
    text = requests.get(url, timeout=5).text
    label_values = [
        value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        for value in s.labels.values()
    ]
    assert label_values
    for value in label_values:
        assert re.fullmatch(r"[a-z_]+|[A-Za-z]+|[0-9.e+]+|\+Inf", value), value


def test_the_endpoint_binds_to_loopback_by_default() -> None:
    metrics = Metrics()
    port = metrics.start_server(port=0)
    try:
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).ok
    finally:
        metrics.stop_server()


def test_a_sweeps_row_outcome_is_recorded_as_a_decision() -> None:
    metrics = Metrics()
    decision = Decision(Verdict.REJECTED, Reason.NO_FACE, "no face found")
    metrics.record(
        RowOutcome(row_id=1, politician="Jane Doe", decision=decision, action=Action.DELETED)
    )
    name = "nocodb_guard_rows_decided_total"
    assert sample(metrics, name, verdict="rejected", reason="no_face") == 1


def test_observe_sweep_with_a_row_count_sets_the_queue_depth() -> None:
    metrics = Metrics()
    metrics.observe_sweep(2.5, 12, ok=True)
    assert sample(metrics, "nocodb_guard_pending_rows") == 12
    assert sample(metrics, "nocodb_guard_sweep_duration_seconds_sum") == 2.5


def test_failed_ticks_are_counted_by_our_error_class_only() -> None:
    metrics = Metrics()
    metrics.observe_error("NocoDBUnavailable")
    metrics.observe_error("Bearer abcdef0123456789")
    assert sample(metrics, "nocodb_guard_tick_errors_total", kind="NocoDBUnavailable") == 1
    assert sample(metrics, "nocodb_guard_tick_errors_total", kind="other") == 1


def test_a_disabled_instance_counts_but_never_listens() -> None:
    metrics = Metrics(enabled=False)
    metrics.record_decision(Verdict.APPROVED, Reason.MATCH)
    assert metrics.start_server("127.0.0.1", 0) == 0
    metrics.stop_server()
    name = "nocodb_guard_rows_decided_total"
    assert sample(metrics, name, verdict="approved", reason="match") == 1
