"""The fault proxy's copy of NocoDB's rate limiter behaves as NocoDB's does (fake clock)."""

from __future__ import annotations

from tests.nocodb_limiter import NocoLimiter, Throttler

RECORDS = "/api/v2/tables/mtbl1/records"
TOKEN = {"xc-token": "tok-a"}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_five_requests_a_second_pass_with_headers_counting_down() -> None:
    limiter = NocoLimiter(clock=Clock())

    verdicts = [limiter.check(RECORDS, TOKEN) for _ in range(5)]

    assert all(v is not None and v.allowed for v in verdicts)
    remaining = [v.headers["X-RateLimit-Remaining"] for v in verdicts if v is not None]
    assert remaining == ["4", "3", "2", "1", "0"]
    first = verdicts[0]
    assert first is not None
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Reset"]) == ("5", "1")
    assert limiter.blocks == 0


def test_the_sixth_request_in_the_window_starts_a_30_s_block_of_429s() -> None:
    clock = Clock()
    limiter = NocoLimiter(clock=clock)
    for _ in range(5):
        limiter.check(RECORDS, TOKEN)

    sixth = limiter.check(RECORDS, TOKEN)
    clock.now += 10.5
    later = limiter.check(RECORDS, TOKEN)

    assert sixth is not None and not sixth.allowed
    assert sixth.headers["Retry-After"] == "30"
    assert later is not None and not later.allowed
    assert later.headers["Retry-After"] == "20"
    assert (limiter.blocks, limiter.rejected) == (1, 2)


def test_a_block_ends_after_its_duration_and_a_new_window_opens() -> None:
    clock = Clock()
    limiter = NocoLimiter(clock=clock)
    for _ in range(6):
        limiter.check(RECORDS, TOKEN)

    clock.now += 30.0
    after = limiter.check(RECORDS, TOKEN)

    assert after is not None and after.allowed
    assert after.headers["X-RateLimit-Remaining"] == "4"


def test_knocking_at_the_end_of_a_block_starts_the_next_one() -> None:
    clock = Clock()
    limiter = NocoLimiter(clock=clock)
    for _ in range(6):
        limiter.check(RECORDS, TOKEN)
    clock.now += 29.5
    for _ in range(6):  # a retry storm in the block's last second
        limiter.check(RECORDS, TOKEN)

    clock.now += 0.6  # block over, but the window still holds 6 hits
    verdict = limiter.check(RECORDS, TOKEN)

    assert verdict is not None and not verdict.allowed
    assert limiter.blocks == 2


def test_a_request_spaced_at_four_a_second_is_never_blocked() -> None:
    clock = Clock()
    limiter = NocoLimiter(clock=clock)

    for _ in range(400):
        verdict = limiter.check(RECORDS, TOKEN)
        assert verdict is not None and verdict.allowed
        clock.now += 0.25

    assert limiter.blocks == 0


def test_tokens_are_counted_apart_and_files_and_anonymous_requests_not_at_all() -> None:
    limiter = NocoLimiter(clock=Clock())
    for _ in range(5):
        limiter.check(RECORDS, TOKEN)

    assert limiter.check("/dltemp/abc/123/photo.jpg", TOKEN) is None
    assert limiter.check(RECORDS, {}) is None
    other = limiter.check(RECORDS, {"xc-token": "tok-b"})
    assert other is not None and other.allowed


def test_the_meta_api_has_its_own_budget_of_60_a_minute() -> None:
    limiter = NocoLimiter(clock=Clock())
    for _ in range(5):
        limiter.check(RECORDS, TOKEN)

    verdicts = [limiter.check("/api/v2/meta/tables/mtbl1", TOKEN) for _ in range(61)]

    assert all(v is not None and v.allowed for v in verdicts[:60])
    last = verdicts[60]
    assert last is not None and not last.allowed
    assert last.headers["X-RateLimit-Policy"] == "meta"


def test_limits_scale_like_nocodbs_environment_variables() -> None:
    clock = Clock()
    limiter = NocoLimiter(data=Throttler("data", limit=2, ttl_ms=500, block_ms=3000), clock=clock)

    first, second, third = (limiter.check(RECORDS, TOKEN) for _ in range(3))

    assert first is not None and second is not None and first.allowed and second.allowed
    assert third is not None and third.headers["Retry-After"] == "3"
