"""The client-side pacer: spaced slots per budget, server holds, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from nocodb_guard.nocodb.pacing import DEFAULT_BLOCK_SECONDS, Budget, Pacer


class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def pacer(clock: FakeClock, data: float = 4.0, meta: float = 0.9) -> Pacer:
    return Pacer({Budget.DATA: data, Budget.META: meta}, clock=clock, sleep=clock.sleep)


def test_requests_are_spaced_at_the_configured_rate_and_the_first_goes_at_once() -> None:
    clock = FakeClock()
    paced = pacer(clock)

    waits = [paced.acquire(Budget.DATA) for _ in range(5)]

    assert waits == pytest.approx([0.0, 0.25, 0.25, 0.25, 0.25])
    assert paced.totals().paced_seconds == pytest.approx(1.0)


def test_time_spent_elsewhere_counts_towards_the_spacing() -> None:
    clock = FakeClock()
    paced = pacer(clock)
    paced.acquire(Budget.DATA)

    clock.now += 0.2  # analysing a picture
    assert paced.acquire(Budget.DATA) == pytest.approx(0.05)
    clock.now += 5.0  # idle: no burst allowance builds up beyond one slot
    assert paced.acquire(Budget.DATA) == 0.0
    assert paced.acquire(Budget.DATA) == pytest.approx(0.25)


def test_the_meta_budget_is_separate_and_slower() -> None:
    clock = FakeClock()
    paced = pacer(clock)
    paced.acquire(Budget.DATA)

    assert paced.acquire(Budget.META) == 0.0
    assert paced.acquire(Budget.META) == pytest.approx(1 / 0.9)


def test_a_rate_of_zero_turns_spacing_off() -> None:
    clock = FakeClock()
    paced = pacer(clock, data=0)

    assert [paced.acquire(Budget.DATA) for _ in range(20)] == [0.0] * 20
    assert clock.slept == []


def test_threads_get_distinct_slots_so_the_budget_is_shared() -> None:
    clock = FakeClock()
    paced = Pacer({Budget.DATA: 4.0}, clock=clock, sleep=lambda _: None)  # frozen clock
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        wait = paced.acquire(Budget.DATA)
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == pytest.approx([0.25 * n for n in range(8)])


def test_remaining_zero_holds_the_budget_until_the_window_resets() -> None:
    clock = FakeClock()
    paced = pacer(clock, data=0)

    paced.observe(Budget.DATA, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"})

    assert paced.acquire(Budget.DATA) == pytest.approx(1.0)
    assert paced.acquire(Budget.META) == 0.0  # the other limiter is not affected
    assert paced.totals().holds == 1


def test_remaining_above_zero_or_missing_headers_change_nothing() -> None:
    clock = FakeClock()
    paced = pacer(clock, data=0)

    paced.observe(Budget.DATA, {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1"})
    paced.observe(Budget.DATA, {"X-RateLimit-Remaining": "0"})
    paced.observe(Budget.DATA, {"X-RateLimit-Remaining": "soon", "X-RateLimit-Reset": "1"})
    paced.observe(Budget.DATA, {})

    assert paced.acquire(Budget.DATA) == 0.0
    assert paced.totals().holds == 0


def test_a_reset_given_as_an_epoch_timestamp_is_understood(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    paced = pacer(clock, data=0)
    monkeypatch.setattr("nocodb_guard.nocodb.pacing.time.time", lambda: 1_800_000_000.0)

    paced.observe(Budget.DATA, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000002"})

    assert paced.acquire(Budget.DATA) == pytest.approx(2.0)


def test_a_429_hold_makes_every_caller_wait_it_out_once_then_spacing_resumes() -> None:
    clock = FakeClock()
    paced = pacer(clock)
    paced.acquire(Budget.DATA)

    paced.hold(Budget.DATA, 30.0)

    assert paced.acquire(Budget.DATA) == pytest.approx(30.0)
    assert paced.acquire(Budget.DATA) == pytest.approx(0.25)
    assert paced.totals().holds == 1


def test_a_hold_without_retry_after_lasts_nocodbs_block_and_a_shorter_one_does_not_shorten_it() -> (
    None
):
    clock = FakeClock()
    paced = pacer(clock, data=0)

    paced.hold(Budget.DATA, None)
    paced.hold(Budget.DATA, 2.0)

    assert paced.wait_for_hold(Budget.DATA) == pytest.approx(DEFAULT_BLOCK_SECONDS)
    assert paced.totals().holds == 1


def test_downloads_wait_for_a_hold_but_take_no_slot() -> None:
    clock = FakeClock()
    paced = pacer(clock)
    paced.acquire(Budget.DATA)

    assert paced.wait_for_hold(Budget.DATA) == 0.0
    assert paced.acquire(Budget.DATA) == pytest.approx(0.25)
