#!/usr/bin/env python3
"""A backlog through NocoDB 0.301.4+'s rate limiter at its defaults: paced, or blocked?

    $VENV/bin/python scripts/bench/ratelimit.py [--rows 200] [--rate-limit 4] [--max-side 480]

Starts its own NocoDB 0.301.3 (which has no limiter) behind the fault proxy playing
NocoDB's limiter exactly (``tests/nocodb_limiter.py``: 5 data requests a second per token,
then a 30 s block of 429s; meta 60 a minute), uploads ``--rows`` pending rows (the photos of
../shared/faces, scaled to ``--max-side`` so that the face pipeline is not what limits the
pace), and runs daemon passes (a queue count, then a sweep) until none is pending.

Prints rows/s, requests per row (all of them, and those NocoDB's limiter counts: downloads
carry no token and ``/dltemp/`` has no limiter), ``429 responses: N``, ``blocks triggered: N``,
and rows/s against what 5 requests a second would allow at those requests per row.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    REPO,
    RequestCounter,
    machine_line,
    nocodb_server,
    settings_for,
    shared_faces,
    upload_rows,
    warm_reference_cache,
)
from PIL import Image, ImageOps

from nocodb_guard.faces.workers import PoolAnalyzer
from nocodb_guard.logs import configure_logging
from nocodb_guard.runtime import Runtime, build_runtime
from tests import nocodb_admin
from tests.faultproxy import running_proxy
from tests.nocodb_limiter import DATA, NocoLimiter

MAX_PASSES = 10
UNCOUNTED = ("attachment.download",)
"""Operations NocoDB's limiter does not see (no token; ``/dltemp/`` has no guard)."""


def pictures(rows: int, max_side: int) -> list[nocodb_admin.FileTuple]:
    """``rows`` uploads cycling through the shared photos, scaled down, as JPEG."""
    sources = shared_faces()
    files: list[nocodb_admin.FileTuple] = []
    for number in range(rows):
        source = sources[number % len(sources)]
        image = ImageOps.exif_transpose(Image.open(source)).convert("RGB")
        image.thumbnail((max_side, max_side))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        files.append((f"{number}_{source.parent.name}_{source.stem}.jpg", buffer.getvalue(),
                      "image/jpeg"))  # fmt: skip
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--rate-limit", type=float, help="the guard's rate_limit (default 4)")
    parser.add_argument("--max-side", type=int, default=480, help="photos scaled to (px)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nocodb-guard-bench-rl-"))
    try:
        with (work / "guard.log").open("w") as log_stream:
            configure_logging("info", fmt="json", stream=log_stream)
            return bench(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(work: Path, args: argparse.Namespace) -> int:
    files = pictures(args.rows, args.max_side)
    print(f"{len(files)} rows, photos scaled to {args.max_side} px; {machine_line()}", flush=True)
    limiter = NocoLimiter()
    with nocodb_server() as server, running_proxy(server.url) as proxy:
        proxy.limiter = limiter
        upload_rows(server, files)  # straight to NocoDB: setting up is not counted
        overrides: dict[str, object] = {"nocodb_url": proxy.url, "workers": args.workers}
        if args.rate_limit is not None:
            overrides["rate_limit"] = args.rate_limit
        settings = settings_for(server, work, **overrides)
        warm_reference_cache(settings)
        counter = RequestCounter()
        runtime = build_runtime(settings, audit=False, observer=counter)
        try:
            if isinstance(runtime.analyzer, PoolAnalyzer):
                runtime.analyzer.wait_ready(timeout=120)
            print(f"guard: rate_limit {settings.rate_limit}/s, workers {settings.workers}; "
                  f"proxy: NocoDB's defaults ({DATA.limit} per {DATA.ttl_ms} ms, "
                  f"{DATA.block_ms // 1000} s block)", flush=True)  # fmt: skip
            started = time.perf_counter()
            decided, passes = run_passes(runtime)
            seconds = time.perf_counter() - started
        finally:
            runtime.close()
    return report(len(files), decided, passes, seconds, counter, limiter)


def run_passes(runtime: Runtime) -> tuple[int, int]:
    """Daemon passes (count, sweep) until nothing is pending; (rows decided, passes)."""
    decided = 0
    for number in range(1, MAX_PASSES + 1):
        if runtime.client.count_pending() == 0:
            return decided, number - 1
        result = runtime.sweeper().run()
        summary = result.summary()
        decided += int(summary["approved"]) + int(summary["rejected"])
    return decided, MAX_PASSES


def report(rows: int, decided: int, passes: int, seconds: float, counter: RequestCounter,
           limiter: NocoLimiter) -> int:  # fmt: skip
    total = counter.total()
    counted = total - sum(counter.counts[name] for name in UNCOUNTED)
    rate = decided / seconds
    print()
    print(f"decided {decided} of {rows} rows in {passes} pass(es), {seconds:.1f} s")
    print(f"rows/s: {rate:.2f}")
    print(f"requests: {dict(sorted(counter.counts.items()))}")
    print(f"requests per row: {total / rows:.2f} ({counted / rows:.2f} counted by NocoDB's "
          f"limiter, {(total - counted) / rows:.2f} downloads)")  # fmt: skip
    print(f"429 responses: {limiter.rejected}")
    print(f"blocks triggered: {limiter.blocks}")
    allowed_all = DATA.limit / (total / rows)
    allowed_counted = DATA.limit / (counted / rows)
    print(f"5 requests/s would allow {allowed_all:.2f} rows/s at {total / rows:.2f} requests per "
          f"row: measured {100 * rate / allowed_all:.0f}% (target >= 90%)")  # fmt: skip
    print(f"NocoDB's limiter would allow {allowed_counted:.2f} rows/s at {counted / rows:.2f} "
          f"counted requests per row: measured {100 * rate / allowed_counted:.0f}%")  # fmt: skip
    print(machine_line())
    return 0 if limiter.blocks == 0 and decided == rows else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
