#!/usr/bin/env python3
"""Throughput and daemon overhead on the real photos of ../shared/faces.

    $VENV/bin/python scripts/bench/throughput.py [--repeat N] [--quick] [--workers 2]

In one run, on the same pictures (every photo of ../shared/faces, ``--repeat`` times):

1. the face_recognition CLI: ``face_recognition --cpus 2 --tolerance 0.6 KNOWN UNKNOWN``,
   KNOWN holding one reference photo of Obama (``obama/obama.jpg``), timed from launch to
   exit as a user runs it;
2. the pure pipeline (decode + detect + encode + compare, no NocoDB) on the daemon's warm
   worker pool, pictures already in memory;
3. the sweep over the same pictures uploaded as pending rows (politician ``obama``) to a
   private real NocoDB: list, download, analyse, decide, approve/delete, with the pool and
   the reference cache warm as in a running daemon; and "cold", counting the pool's start.

Prints pictures per second for each, the ratios (sweep vs CLI, sweep vs pure pipeline) and
whether the verdicts agree. Verdict mapping for the CLI: a picture is "approved" when the
CLI prints exactly one line for it and that line names ``obama`` (one face, matching);
anything else (``unknown_person``, ``no_persons_found``, several lines) is "rejected".
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from benchlib import (
    FACES,
    OBAMA_REFERENCE,
    REPO,
    RequestCounter,
    file_tuple,
    machine_line,
    nocodb_server,
    settings_for,
    shared_faces,
    upload_rows,
    warm_reference_cache,
)

from nocodb_guard.faces.workers import PoolAnalyzer
from nocodb_guard.logs import configure_logging
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.runtime import build_runtime
from tests.integration.conftest import DevServer

VENV_BIN = Path(sys.executable).parent


def cli_verdicts(pictures: list[Path], work: Path) -> tuple[float, dict[str, str]]:
    """Run the face_recognition CLI; (seconds, picture name -> approved/rejected)."""
    known, unknown = work / "known", work / "unknown"
    known.mkdir(parents=True)
    unknown.mkdir(parents=True)
    shutil.copy(FACES / OBAMA_REFERENCE, known / "obama.jpg")
    for picture in pictures:
        shutil.copy(picture, unknown / picture.name)
    command = [
        str(VENV_BIN / "face_recognition"), "--cpus", "2", "--tolerance", "0.6",
        str(known), str(unknown),
    ]  # fmt: skip

    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    seconds = time.perf_counter() - started
    names: dict[str, list[str]] = defaultdict(list)
    for line in done.stdout.splitlines():
        path, _, name = line.rpartition(",")
        names[Path(path).name].append(name)
    verdicts = {
        p.name: "approved" if names.get(p.name) == ["obama"] else "rejected" for p in pictures
    }
    return seconds, verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="copies of each photo (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="side-by-side rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="one copy of each photo, 2 rounds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-side", type=int, help="override the max_side setting")
    parser.add_argument("--upsample", type=int, help="override the upsample setting")
    args = parser.parse_args()
    repeat, rounds = (1, 2) if args.quick else (args.repeat, args.rounds)
    work = Path(tempfile.mkdtemp(prefix="nocodb-guard-bench-tp-"))
    try:
        overrides = {"workers": args.workers}
        if args.max_side:
            overrides["max_side"] = args.max_side
        if args.upsample is not None:
            overrides["upsample"] = args.upsample
        return bench(work, repeat, rounds, overrides)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Round:
    cli_seconds: float
    pure_seconds: float
    sweep_seconds: float
    disagree: list[str]
    summary: dict[str, object]


@dataclass
class Measured:
    pictures: int
    cold_ready: float
    rounds: list[Round]
    requests: RequestCounter
    cli_approved: int


def copies(work: Path, repeat: int) -> list[Path]:
    """``repeat`` copies of every shared photo under unique names."""
    folder = work / "pictures"
    folder.mkdir()
    pictures: list[Path] = []
    for copy in range(repeat):
        for source in shared_faces():
            target = folder / f"{copy}_{source.parent.name}_{source.name}"
            shutil.copy(source, target)
            pictures.append(target)
    return pictures


def bench(work: Path, repeat: int, rounds: int, overrides: dict[str, int]) -> int:
    pictures = copies(work, repeat)
    print(f"{len(pictures)} pictures ({len(pictures) // repeat} photos x {repeat}), "
          f"{rounds} rounds; {machine_line()}", flush=True)  # fmt: skip
    with (work / "daemon.log").open("w") as log_stream:
        configure_logging("info", fmt="json", stream=log_stream)
        with nocodb_server() as server:
            measured = measure(server, work, pictures, rounds, overrides)
    return report(measured)


def measure(
    server: DevServer, work: Path, pictures: list[Path], rounds: int, overrides: dict[str, int]
) -> Measured:
    """Per round, side by side: the CLI, the pure pipeline, a sweep over fresh rows."""
    names: dict[int, str] = {}
    for _ in range(rounds):
        ids = upload_rows(server, [file_tuple(p) for p in pictures])
        names.update(zip(ids, [p.name for p in pictures], strict=True))
    settings = settings_for(server, work, **overrides)
    print(f"settings: workers {settings.workers}, max_side {settings.max_side}, "
          f"upsample {settings.upsample}", flush=True)  # fmt: skip
    warm_reference_cache(settings)
    cold_started = time.perf_counter()
    runtime = build_runtime(settings, audit=False)
    counter = RequestCounter()
    runtime.client.close()
    runtime.client = NocoDBClient(settings, observer=counter)
    results: list[Round] = []
    try:
        references = runtime.references.load("obama")  # from the on-disk cache
        assert references is not None
        analyzer = runtime.analyzer
        if isinstance(analyzer, PoolAnalyzer):
            analyzer.wait_ready(timeout=120)
        cold_ready = time.perf_counter() - cold_started
        data = [(p.name, p.read_bytes()) for p in pictures]
        for number in range(1, rounds + 1):
            cli_seconds, cli = cli_verdicts(pictures, work / f"cli{number}")
            pure_seconds = pure_pipeline(analyzer, data, references.encodings)
            started = time.perf_counter()
            result = runtime.sweeper(limit=len(pictures)).run()
            sweep_seconds = time.perf_counter() - started
            ours = {names[o.row_id]: o.decision.verdict.value for o in result.outcomes}
            reasons = {names[o.row_id]: o.decision.reason.value for o in result.outcomes}
            disagree = sorted(
                f"{n} (round {number}: ours {ours.get(n)} {reasons.get(n)}, CLI {cli[n]})"
                for n in cli
                if ours.get(n) != cli[n]
            )
            results.append(Round(cli_seconds, pure_seconds, sweep_seconds, disagree,
                                 result.summary()))  # fmt: skip
            print(f"round {number}: CLI {cli_seconds:.2f}s, pure {pure_seconds:.2f}s, "
                  f"sweep {sweep_seconds:.2f}s; {machine_line()}", flush=True)  # fmt: skip
    finally:
        runtime.close()
    return Measured(
        pictures=len(pictures),
        cold_ready=cold_ready,
        rounds=results,
        requests=counter,
        cli_approved=sum(v == "approved" for v in cli.values()),
    )


def report(m: Measured) -> int:
    cli = median(r.cli_seconds for r in m.rounds)
    pure = median(r.pure_seconds for r in m.rounds)
    sweep = median(r.sweep_seconds for r in m.rounds)
    cold = sweep + m.cold_ready
    print()
    print(f"medians over {len(m.rounds)} rounds of {m.pictures} pictures")
    print(f"{'':34}{'seconds':>9}{'pictures/s':>12}")
    for label, seconds in (
        ("face_recognition CLI (--cpus 2)", cli),
        ("pure pipeline (warm pool)", pure),
        ("sweep via NocoDB (warm daemon)", sweep),
        ("sweep + pool start (cold daemon)", cold),
    ):
        print(f"{label:34}{seconds:9.2f}{m.pictures / seconds:12.2f}")
    print()
    per_round = ", ".join(f"{r.cli_seconds / r.sweep_seconds:.2f}x" for r in m.rounds)
    print(f"throughput, warm sweep vs CLI: {cli / sweep:.2f}x (rounds: {per_round}; target >= 4x)")
    print(f"throughput, cold sweep vs CLI: {cli / cold:.2f}x (pool start {m.cold_ready:.2f}s)")
    per_round = ", ".join(f"{100 * (r.sweep_seconds / r.pure_seconds - 1):+.0f}%" for r in m.rounds)
    print(f"daemon overhead, sweep vs pure pipeline: {100 * (sweep / pure - 1):+.1f}% "
          f"(rounds: {per_round}; target <= +15%)")  # fmt: skip
    for number, r in enumerate(m.rounds, start=1):
        s = r.summary
        print(f"round {number} verdicts: {s['approved']} approved, {s['rejected']} rejected, "
              f"{s['deferred']} deferred; CLI: {m.cli_approved} approved")  # fmt: skip
    disagree = sorted({n for r in m.rounds for n in r.disagree})
    print(f"verdicts agree with the CLI: {'yes' if not disagree else 'NO: ' + ', '.join(disagree)}")
    rows = m.pictures * len(m.rounds)
    print(f"NocoDB requests: {dict(m.requests.counts)} = {m.requests.total() / rows:.2f} per row")
    print(machine_line())
    return 0 if not disagree else 1


def pure_pipeline(analyzer: object, data: list[tuple[str, bytes]], refs: object) -> float:
    """Every picture through the pool, all submitted at once; wall seconds."""
    started = time.perf_counter()
    futures = [analyzer.submit(blob, name, refs) for name, blob in data]  # type: ignore[attr-defined]
    for future in futures:
        future.result()
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
