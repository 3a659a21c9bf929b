#!/usr/bin/env python3
"""Where the face work goes: seconds per stage of ``see()`` over the photos of ../shared/faces.

    $VENV/bin/python scripts/bench/stages.py [--rounds 2] [--upsample N] [--max-side N]

One process, no pool, no NocoDB: every photo once to warm up, then ``--rounds`` passes; the
fastest pass is printed, split by stage (decode, detect, the closer looks of
``faces.scan``, encode, the CNN's second opinions). Each stage is timed by wrapping the
function that does it, so the stages add up to nearly the total.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchlib import machine_line, shared_faces

from nocodb_guard.faces import scan, see
from nocodb_guard.faces.see import PipelineConfig, make_engine


def timed(owner: Any, name: str, label: str, seconds: Counter[str], calls: Counter[str]) -> None:
    """Replace ``owner.name`` by a wrapper adding its time to ``seconds[label]``."""
    inner: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - started
            calls[label] += 1

    setattr(owner, name, wrapper)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--upsample", type=int)
    parser.add_argument("--max-side", type=int)
    args = parser.parse_args()
    overrides = {"upsample": args.upsample, "max_side": args.max_side}
    config = PipelineConfig(**{k: v for k, v in overrides.items() if v is not None})
    engine = make_engine(config)
    seconds: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    timed(see.images, "decode", "decode (every decode)", seconds, calls)
    timed(scan, "detect", "detect (HOG, every search)", seconds, calls)
    timed(scan, "closer_look", "refine: closer-look decode/enlarge", seconds, calls)
    timed(scan, "encoding_view", "refine: encoding-view crops", seconds, calls)
    timed(engine, "encode", "encode", seconds, calls)
    timed(engine, "confirm", "confirm (CNN second opinion)", seconds, calls)
    photos = [path.read_bytes() for path in shared_faces()]
    for data in photos:
        see.see(data, config, engine)
    best: tuple[float, dict[str, float], dict[str, int]] | None = None
    for _ in range(args.rounds):
        seconds.clear()
        calls.clear()
        started = time.perf_counter()
        for data in photos:
            see.see(data, config, engine)
        total = time.perf_counter() - started
        if best is None or total < best[0]:
            best = (total, dict(seconds), dict(calls))
    assert best is not None
    total, stage_seconds, stage_calls = best
    print(f"{len(photos)} photos, max_side {config.max_side}, upsample {config.upsample}: "
          f"{total:.2f} s (fastest of {args.rounds}, one process)")  # fmt: skip
    for label, spent in stage_seconds.items():
        print(f"  {label:36} {spent:6.2f} s  ({stage_calls[label]} calls)")
    print(machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
