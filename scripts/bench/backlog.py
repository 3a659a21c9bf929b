#!/usr/bin/env python3
"""A backlog of pending rows: time, rows per second, peak memory, NocoDB requests per row.

    $VENV/bin/python scripts/bench/backlog.py [--rows 200 2000] [--quick]

Small pictures (the photos of ../shared/faces scaled to 320 px, plus a cat: about half
approved, half deleted) are uploaded once through NocoDB's storage API and referenced by
N rows inserted through the REST API, all pending, politician ``obama``. Then one sweep
(the daemon's tick, in this process, 2 workers, warm pool) works the whole backlog while
the resident memory of this process and its workers is sampled. Each size runs on fresh
rows, smallest first, so that time per row and memory can be compared across sizes:
linear time shows as a flat rows/s, flat memory as the same peak RSS.

Requests are counted with the NocoDB client's ``observer`` hook, by operation.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchlib import (
    POLITICIAN,
    RequestCounter,
    RssSampler,
    machine_line,
    nocodb_server,
    settings_for,
    shared_faces,
    tree_rss_mb,
    warm_reference_cache,
)
from PIL import Image

from nocodb_guard import samples
from nocodb_guard.faces.workers import PoolAnalyzer
from nocodb_guard.logs import configure_logging
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.runtime import Runtime, build_runtime
from tests import nocodb_admin
from tests.integration.conftest import DevServer

SIDE = 320
INSERT_BATCH = 100


def small_pictures() -> list[tuple[str, bytes, str]]:
    """Single-person photos and a cat, as 320 px JPEGs."""
    files = []
    for path in [p for p in shared_faces() if p.parent.name != "groups"] + [None]:
        image = Image.open(path) if path else Image.open(io.BytesIO(samples.chelsea_png()))
        image = image.convert("RGB")
        image.thumbnail((SIDE, SIDE))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        name = f"{path.parent.name}_{path.stem}.jpg" if path else "chelsea.jpg"
        files.append((name, out.getvalue(), "image/jpeg"))
    return files


def insert_backlog(server: DevServer, cells: list[Any], rows: int) -> None:
    for start in range(0, rows, INSERT_BATCH):
        batch = [
            {"Politician": POLITICIAN, "Photo": cells[i % len(cells)]}
            for i in range(start, min(rows, start + INSERT_BATCH))
        ]
        server.insert(batch)


def sweep_backlog(
    runtime: Runtime, counter: RequestCounter, rows: int, prefetch: int | None
) -> dict[str, Any]:
    counter.counts.clear()
    sweeper = runtime.sweeper()
    if prefetch:  # a benchmark knob: the window is otherwise derived from the worker count
        sweeper._options = replace(sweeper._options, prefetch=prefetch)
    with RssSampler(os.getpid(), interval=0.1) as sampler:
        started = time.perf_counter()
        result = sweeper.run()
        seconds = time.perf_counter() - started
    summary = result.summary()
    assert summary["rows"] == rows, summary
    return {
        "rows": rows,
        "seconds": seconds,
        "peak": sampler.peak,
        "counts": dict(counter.counts),
        "summary": summary,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--quick", action="store_true", help="50 and 500 rows")
    parser.add_argument("--prefetch", type=int, help="override the sweep's window of rows")
    args = parser.parse_args()
    sizes = sorted([50, 500] if args.quick else args.rows)
    work = Path(tempfile.mkdtemp(prefix="nocodb-guard-bench-backlog-"))
    print(f"backlog sizes {sizes}; {machine_line()}", flush=True)
    results = []
    try:
        with (work / "daemon.log").open("w") as log_stream:
            configure_logging("info", fmt="json", stream=log_stream)
            with nocodb_server() as server:
                results = run_sizes(server, work, sizes, args.prefetch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    return 0


def run_sizes(
    server: DevServer, work: Path, sizes: list[int], prefetch: int | None
) -> list[dict[str, Any]]:
    pictures = small_pictures()
    cells = [nocodb_admin.upload_attachments(server.url, server.token, [p]) for p in pictures]
    settings = settings_for(server, work)
    warm_reference_cache(settings)
    runtime = build_runtime(settings, audit=True)
    counter = RequestCounter()
    runtime.client.close()
    runtime.client = NocoDBClient(settings, observer=counter)
    results = []
    try:
        assert runtime.references.load(POLITICIAN) is not None
        if isinstance(runtime.analyzer, PoolAnalyzer):
            runtime.analyzer.wait_ready(timeout=120)
        idle = tree_rss_mb(os.getpid())
        print(f"idle RSS (this process + workers, pool warm): {idle:.0f} MiB", flush=True)
        references = runtime.references.load(POLITICIAN)
        assert references is not None
        count = min(sizes)
        started = time.perf_counter()
        futures = [
            runtime.analyzer.submit(pictures[i % len(pictures)][1], "p", references.encodings)
            for i in range(count)
        ]
        for future in futures:
            future.result()
        pure = count / (time.perf_counter() - started)
        print(f"pure pipeline on {count} of these pictures: {pure:.1f} pictures/s", flush=True)
        for rows in sizes:
            insert_backlog(server, cells, rows)
            result = sweep_backlog(runtime, counter, rows, prefetch)
            result["idle"] = idle
            result["pure"] = pure
            results.append(result)
            print(f"{rows} rows: {result['seconds']:.1f}s, peak RSS {result['peak']:.0f} MiB; "
                  f"{machine_line()}", flush=True)  # fmt: skip
    finally:
        runtime.close()
    return results


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(f"{'rows':>6}{'seconds':>9}{'rows/s':>8}{'peak RSS':>10}{'req/row':>9}"
          f"{'approved':>10}{'deleted':>9}   requests by operation")  # fmt: skip
    for r in results:
        total = sum(r["counts"].values())
        s = r["summary"]
        print(f"{r['rows']:6}{r['seconds']:9.1f}{r['rows'] / r['seconds']:8.1f}"
              f"{r['peak']:8.0f}MB{total / r['rows']:9.2f}{s['approved']:10}{s['rejected']:9}"
              f"   {r['counts']}")  # fmt: skip
    if len(results) >= 2:
        small, large = results[0], results[-1]
        time_ratio = (large["seconds"] / large["rows"]) / (small["seconds"] / small["rows"])
        print(f"time per row, {large['rows']} vs {small['rows']} rows: {time_ratio:.2f}x "
              f"(1.0 = linear); peak RSS {large['peak']:.0f} vs {small['peak']:.0f} MiB "
              f"(idle {small['idle']:.0f} MiB; target < 600 MiB)")  # fmt: skip
    for r in results:
        overhead = 100 * (r["pure"] * r["seconds"] / r["rows"] - 1)
        print(f"{r['rows']} rows: sweep {r['rows'] / r['seconds']:.1f} rows/s vs pure pipeline "
              f"{r['pure']:.1f} pictures/s: daemon overhead {overhead:+.0f}%")  # fmt: skip
    for r in results:
        counts, s = r["counts"], r["summary"]
        approved, rejected = s["approved"], s["rejected"]
        lists = counts.get("records.list", 0)
        per_row = (sum(counts.values()) - lists) / r["rows"]
        print(f"{r['rows']} rows: {lists} listings ({r['rows'] / max(lists, 1):.0f} rows each); "
              f"{per_row:.2f} requests per row besides listings: approved rows cost "
              f"download + update = 2, deleted rows download + re-read + delete = 3 "
              f"({approved} and {rejected})")  # fmt: skip
    print(machine_line())


if __name__ == "__main__":
    raise SystemExit(main())
