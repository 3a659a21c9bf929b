"""Pacing in the transport: every request takes a slot, 429s are waited out once, together.

Against a real local HTTP server (pytest-httpserver); the pacer's clock is real here, its
arithmetic is covered on a fake clock in ``test_pacing.py``.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from nocodb_guard.errors import NocoDBUnavailable
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.settings import Settings

TABLE = "mtbl0001"
RECORDS = f"/api/v2/tables/{TABLE}/records"
EMPTY: dict[str, Any] = {"list": [], "pageInfo": {}}


def client(server: HTTPServer, **overrides: Any) -> NocoDBClient:
    values: dict[str, Any] = {
        "nocodb_url": server.url_for("/").rstrip("/"),
        "nocodb_token": "tok-pacing",
        "table_id": TABLE,
        "retry_seconds": 5,
    }
    values.update(overrides)
    return NocoDBClient(Settings(**values))


def arrivals(server: HTTPServer) -> list[float]:
    return [request.environ["arrived"] for request, _ in server.log]


@pytest.fixture
def stamped(httpserver: HTTPServer) -> HTTPServer:
    """Every request records when it arrived, in ``request.environ['arrived']``."""
    original = httpserver.dispatch

    def dispatch(request: Any) -> Any:
        request.environ["arrived"] = time.monotonic()
        return original(request)

    httpserver.dispatch = dispatch  # type: ignore[method-assign]
    return httpserver


def test_requests_are_spaced_at_the_rate_limit(stamped: HTTPServer) -> None:
    stamped.expect_request(RECORDS).respond_with_json(EMPTY)
    with client(stamped, rate_limit=10) as guard:
        for _ in range(4):
            list(guard.iter_pending())
        paced = guard.pacing().paced_seconds

    times = arrivals(stamped)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.09
    assert paced == pytest.approx(0.3, abs=0.08)


def test_a_429_is_waited_out_once_for_its_retry_after_then_retried(stamped: HTTPServer) -> None:
    stamped.expect_ordered_request(RECORDS).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    stamped.expect_ordered_request(RECORDS).respond_with_json(EMPTY)
    with client(stamped, rate_limit=0) as guard:
        assert list(guard.iter_pending()) == []
        totals = guard.pacing()

    first, second = arrivals(stamped)
    assert 0.95 <= second - first < 1.5
    assert totals.holds == 1


def test_a_second_429_in_a_row_gives_up_instead_of_knocking_on(stamped: HTTPServer) -> None:
    stamped.expect_request(RECORDS).respond_with_data(
        "blocked", status=429, headers={"Retry-After": "1"}
    )
    with client(stamped, rate_limit=0) as guard, pytest.raises(NocoDBUnavailable, match="429"):
        list(guard.iter_pending())

    assert len(stamped.log) == 2


def test_remaining_zero_makes_the_next_request_wait_for_the_window_reset(
    stamped: HTTPServer,
) -> None:
    stamped.expect_ordered_request(RECORDS).respond_with_json(
        EMPTY, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
    )
    stamped.expect_ordered_request(RECORDS).respond_with_json(EMPTY)
    with client(stamped, rate_limit=0) as guard:
        list(guard.iter_pending())
        list(guard.iter_pending())

    first, second = arrivals(stamped)
    assert second - first >= 0.95


def test_threads_meeting_a_block_all_wait_for_its_one_retry_after(stamped: HTTPServer) -> None:
    """Once one request met a 429, the others do not each knock on the blocked server."""
    stamped.expect_ordered_request(RECORDS).respond_with_data(
        "blocked", status=429, headers={"Retry-After": "1"}
    )
    stamped.expect_request(RECORDS).respond_with_json(EMPTY)
    with client(stamped, rate_limit=0) as guard:
        threads = [threading.Thread(target=lambda: list(guard.iter_pending())) for _ in range(4)]
        threads[0].start()
        while not stamped.log:
            time.sleep(0.01)
        for thread in threads[1:]:
            thread.start()
        for thread in threads:
            thread.join()

    blocked, *others = arrivals(stamped)
    assert len(others) == 4  # the one retry and one request per other thread, no more
    assert min(others) - blocked >= 0.95
