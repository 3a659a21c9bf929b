#!/usr/bin/env python3
"""Decision latency (polling and webhook mode) and the daemon's memory, idle and under load.

    $VENV/bin/python scripts/bench/latency.py [--submissions 10] [--poll-interval 5] [--quick]

Runs the real daemon (``python -m nocodb_guard run``, 2 workers) against a private NocoDB
whose after-insert webhook points at the daemon's webhook port. For each mode, pictures
are submitted one at a time through the PUBLIC shared form, as the site's iframe does,
at random moments relative to the daemon's ticks; the latency is from the start of the
submission to the row being approved (Status set) or deleted, seen through the API
every 50 ms. Alternates a matching photo of Obama and a photo of Biden (deleted).

- polling mode: webhook off, ``poll_interval`` P: target p95 <= P + 2 s;
- webhook mode: poll_interval 300 s, the webhook triggers the sweep: target p95 <= 3 s.

Memory: resident set of the daemon and its worker processes (sum, from /proc), idle after
start-up and peak during a burst of every photo of ../shared/faces submitted at once.
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from benchlib import (
    FACES,
    POLITICIAN,
    RssSampler,
    file_tuple,
    guard_env,
    machine_line,
    nocodb_server,
    percentile,
    shared_faces,
    tree_rss_mb,
    wait_until,
)

from tests.integration.conftest import DevServer, free_port

MATCH = FACES / "obama" / "obama-720p.jpg"
OTHER = FACES / "biden" / "biden2.jpg"
DECISION_TIMEOUT_S = 120.0


class Daemon:
    """``nocodb-guard run`` as a subprocess; stopped with SIGTERM (then SIGKILL) at the end."""

    def __init__(self, server: DevServer, work: Path, **env: str) -> None:
        self._log = (work / f"daemon-{len(list(work.glob('daemon-*')))}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nocodb_guard", "run", "--env-file", str(server.env_file)],
            env=guard_env(server, work, NOCODB_GUARD_LOG_LEVEL="info", **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=70)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def decided(server: DevServer, row_id: int) -> bool:
    row = server.row(row_id)
    return row is None or bool(row.get("Status"))


def submit_and_wait(server: DevServer, picture: Path) -> float:
    """Seconds from the start of a form submission to the row's decision."""
    started = time.monotonic()
    row_id = int(server.submit(POLITICIAN, [file_tuple(picture)])["Id"])
    return wait_until(lambda: decided(server, row_id), DECISION_TIMEOUT_S) - started


def measure_mode(
    server: DevServer, submissions: int, spread: float, rng: random.Random
) -> list[float]:
    latencies = []
    for number in range(submissions):
        time.sleep(rng.uniform(0.2, spread))  # a random phase against the daemon's ticks
        latencies.append(submit_and_wait(server, MATCH if number % 2 == 0 else OTHER))
    return latencies


def burst(server: DevServer, daemon: Daemon) -> tuple[float, float, int]:
    """Every shared photo submitted at once: (peak RSS MiB, seconds to decide all, rows)."""
    pictures = shared_faces()
    with RssSampler(daemon.process.pid) as sampler:
        started = time.monotonic()
        ids = [int(server.submit(POLITICIAN, [file_tuple(p)])["Id"]) for p in pictures]
        wait_until(lambda: all(decided(server, i) for i in ids), 600, step=0.5)
        seconds = time.monotonic() - started
    return sampler.peak, seconds, len(ids)


def start_daemon(server: DevServer, work: Path, **env: str) -> Daemon:
    """Start and wait for the first decision (models loaded, references cached)."""
    daemon = Daemon(server, work, **env)
    try:
        submit_and_wait(server, MATCH)
    except BaseException:
        daemon.stop()
        raise
    return daemon


def report(label: str, values: list[float], target: float) -> None:
    p95 = percentile(values, 0.95)
    print(f"{label:26} n={len(values):3}  p50 {median(values):5.2f}s  p95 {p95:5.2f}s  "
          f"max {max(values):5.2f}s  target p95 <= {target:.1f}s: "
          f"{'met' if p95 <= target else 'NOT met'}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=10, help="per mode (default 10)")
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="4 submissions per mode")
    args = parser.parse_args()
    submissions = 4 if args.quick else args.submissions
    interval = args.poll_interval
    work = Path(tempfile.mkdtemp(prefix="nocodb-guard-bench-lat-"))
    hook_port, secret = free_port(), secrets.token_urlsafe(16)
    rng = random.Random(6)
    print(f"{submissions} submissions per mode; {machine_line()}", flush=True)
    try:
        with nocodb_server((f"http://127.0.0.1:{hook_port}/hooks/nocodb", secret)) as server:
            daemon = start_daemon(server, work, NOCODB_GUARD_POLL_INTERVAL=str(interval))
            try:
                time.sleep(3)
                idle = tree_rss_mb(daemon.process.pid)
                polling = measure_mode(server, submissions, interval, rng)
            finally:
                daemon.stop()
            daemon = start_daemon(
                server,
                work,
                NOCODB_GUARD_POLL_INTERVAL="300",
                NOCODB_GUARD_WEBHOOK_PORT=str(hook_port),
                NOCODB_GUARD_WEBHOOK_SECRET=secret,
            )
            try:
                time.sleep(3)
                idle_cached = tree_rss_mb(daemon.process.pid)
                webhook = measure_mode(server, submissions, interval, rng)
                peak, burst_seconds, burst_rows = burst(server, daemon)
            finally:
                daemon.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    report(f"polling (interval {interval:g}s)", polling, interval + 2)
    report("webhook", webhook, 3.0)
    print(f"daemon RSS (main + 2 workers): idle {idle:.0f} MiB on a first start (the main "
          f"process loaded dlib to encode the references), {idle_cached:.0f} MiB after a restart "
          f"(references from the cache); peak {peak:.0f} MiB during a burst of {burst_rows} "
          f"form submissions (all decided in {burst_seconds:.1f}s, webhook mode)")  # fmt: skip
    print(machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
