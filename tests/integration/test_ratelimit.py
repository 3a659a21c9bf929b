"""A backlog through NocoDB 0.301.4+'s rate limiter: paced, the guard never gets blocked.

The real NocoDB here (0.301.3) has no limiter, so the fault proxy plays it exactly
(``tests/nocodb_limiter.py``: per-token windows, then a block of 429s). Limits are scaled
down from NocoDB's 5 a second and 30 s, as an operator may set them (``NC_DATA_COUNT``,
``NC_DATA_BLOCK_DURATION``): 1 a second, and a 3 s block, so that the run meeting a block
(caused by another client bursting on the same token) stays short. The guard is paced at
80% of that limit, as the README advises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.faultproxy import Fault, FaultProxy, running_proxy
from tests.integration.conftest import DevServer
from tests.integration.guard_process import (
    MIX,
    Upload,
    expected_state,
    guard_env,
    row_state,
    submit,
    sweep_json,
)
from tests.nocodb_limiter import NocoLimiter, Throttler

BACKLOG = 15
LIMIT = Throttler("data", limit=1, ttl_ms=1000, block_ms=3000)
PACED = str(0.8 * LIMIT.limit * 1000 / LIMIT.ttl_ms)


@pytest.fixture
def limited(clean_table: DevServer) -> Iterator[tuple[FaultProxy, NocoLimiter]]:
    limiter = NocoLimiter(data=LIMIT)
    with running_proxy(clean_table.url) as proxy:
        proxy.limiter = limiter
        yield proxy, limiter


def backlog(server: DevServer) -> dict[int, Upload]:
    uploads = [MIX[n % len(MIX)] for n in range(BACKLOG)]
    return {submit(server, upload, name=f"{n}-{upload.name}"): upload for n, upload in
            enumerate(uploads)}  # fmt: skip


def undecided(server: DevServer, rows: dict[int, Upload]) -> dict[int, str]:
    states = {row_id: row_state(server, row_id) for row_id in rows}
    return {i: s for i, s in states.items() if s != expected_state(rows[i])}


def test_a_paced_backlog_is_decided_without_a_single_block(
    clean_table: DevServer,
    limited: tuple[FaultProxy, NocoLimiter],
    references: Path,
    tmp_path: Path,
) -> None:
    proxy, limiter = limited
    rows = backlog(clean_table)
    env = guard_env(clean_table, tmp_path, references, nocodb_url=proxy.url, retry_seconds="10",
                    rate_limit=PACED)  # fmt: skip

    code, report = sweep_json(clean_table, env)

    assert code == 0, report
    assert undecided(clean_table, rows) == {}
    assert (limiter.blocks, limiter.rejected) == (0, 0)
    assert proxy.requests("/api/v2/tables/", method="GET"), "the proxy saw the traffic"


def test_a_block_caused_by_another_client_on_the_token_is_waited_out_once_and_deletes_nothing(
    clean_table: DevServer,
    limited: tuple[FaultProxy, NocoLimiter],
    references: Path,
    tmp_path: Path,
) -> None:
    """Another client bursts on the same token mid-sweep: a 429 is waited out, never a verdict."""
    proxy, limiter = limited
    rows = backlog(clean_table)
    listing = f"{proxy.url}/api/v2/tables/{clean_table.table_id}/records"

    def burst() -> None:
        for _ in range(LIMIT.limit + 3):
            requests.get(listing, params={"burst": "1"}, headers={"xc-token": clean_table.token},
                         timeout=10)  # fmt: skip

    # Just before the page's delete: the bulk update that follows meets the block.
    proxy.add(Fault("callback", path="/records", method="DELETE", callback=burst, times=1))
    env = guard_env(clean_table, tmp_path, references, nocodb_url=proxy.url, retry_seconds="10",
                    rate_limit=PACED)  # fmt: skip

    code, report = sweep_json(clean_table, env)

    assert code == 0, report
    assert undecided(clean_table, rows) == {}
    assert limiter.blocks == 1  # the burst's; the guard did not start another
    guard_429s = [e for e in proxy.log if e.outcome == "rate_limited" and "burst" not in e.path]
    assert len(guard_429s) == 1, "one 429, then the guard waited out the block"
