#!/usr/bin/env python3
"""How ``max_side`` and ``upsample`` trade time against the smallest face found and distances.

    $VENV/bin/python scripts/bench/tradeoff.py [--configs 1024/1 1024/0 800/1 640/1 0/1]

For each configuration (``MAX_SIDE/UPSAMPLE``; 0 = native size) on the photos of
../shared/faces, with 2 warm workers and Obama's reference encoded under the same
configuration:

- seconds for all photos, and the ratio to the native-size run when it is in the list;
- whether every photo's face count equals the manifest's;
- the largest drift of a single-face photo's distance to Obama from the native-size run;
- the smallest face found: Obama's head (from ``obama/obama.jpg``) pasted onto a grey
  1600x1200 picture with its face box 300, 290, ... 20 px wide; the smallest width (and
  its fraction of the picture's longest side) at which that one face is still counted.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from typing import Any

import numpy as np
from benchlib import FACES, OBAMA_REFERENCE, machine_line, shared_faces
from PIL import Image

from nocodb_guard.faces.see import PipelineConfig, make_engine, see
from nocodb_guard.faces.workers import PoolAnalyzer

NATIVE = 100_000
CANVAS = (1600, 1200)


def config_for(spec: str) -> PipelineConfig:
    side, upsample = (int(x) for x in spec.split("/"))
    return PipelineConfig(max_side=side or NATIVE, upsample=upsample, max_pixels=120_000_000)


def reference(config: PipelineConfig) -> np.ndarray[Any, Any]:
    encoding = see((FACES / OBAMA_REFERENCE).read_bytes(), config, make_engine(config)).encoding
    assert encoding is not None
    return encoding[None, :]


def face_crop() -> tuple[Image.Image, int]:
    """Obama's head from obama/obama.jpg (the face box plus half its size around), box size."""
    config = PipelineConfig(max_side=NATIVE)
    photo = Image.open(FACES / OBAMA_REFERENCE).convert("RGB")
    kept = see((FACES / OBAMA_REFERENCE).read_bytes(), config, make_engine(config)).faces
    box, margin = kept[0], kept[0].size // 2
    region = (box.left - margin, box.top - margin, box.right + margin, box.bottom + margin)
    return photo.crop(region), box.size


def pasted(crop: Image.Image, box_size: int, width: int) -> bytes:
    """The head scaled so that its face box is ``width`` px, on a grey 1600x1200 JPEG."""
    scale = width / box_size
    face = crop.resize(
        (round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", CANVAS, (128, 128, 128))
    canvas.paste(face, (CANVAS[0] // 3, CANVAS[1] // 3))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    return out.getvalue()


def smallest_face(pool: PoolAnalyzer) -> int | None:
    """Smallest pasted width (px on the 1600 px picture) still found as exactly one face."""
    crop, box_size = face_crop()
    widths = list(range(300, 19, -10))
    futures = [pool.submit(pasted(crop, box_size, w), f"{w}", None) for w in widths]
    found = [w for w, f in zip(widths, futures, strict=True) if len(f.result().faces) == 1]
    return min(found) if found else None


def run(spec: str, data: list[tuple[str, bytes]]) -> dict[str, Any]:
    config = config_for(spec)
    refs = reference(config)
    pool = PoolAnalyzer(config, 2)
    try:
        pool.wait_ready(timeout=120)
        started = time.perf_counter()
        futures = [pool.submit(blob, name, refs) for name, blob in data]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - started
        small = smallest_face(pool)
    finally:
        pool.close()
    return {
        "spec": spec,
        "seconds": seconds,
        "faces": {r.name: len(r.faces) for r in results},
        "distances": {r.name: r.distances[0] for r in results if r.distances},
        "smallest": small,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = ["0/1", "1024/1", "1024/0", "800/1", "640/1"]
    parser.add_argument("--configs", nargs="+", default=default)
    args = parser.parse_args()
    manifest = {
        row["file"]: int(row["faces"]) for row in csv.DictReader((FACES / "manifest.csv").open())
    }
    photos = shared_faces()
    data = [(str(p.relative_to(FACES)), p.read_bytes()) for p in photos]
    print(f"{len(data)} photos; {machine_line()}", flush=True)
    results = []
    for spec in args.configs:
        results.append(run(spec, data))
        print(f"{spec}: {results[-1]['seconds']:.2f}s; {machine_line()}", flush=True)
    native = next((r for r in results if r["spec"].startswith("0/")), None)
    print()
    print(f"{'max_side/upsample':18}{'seconds':>8}{'speed-up':>9}{'counts ok':>10}"
          f"{'max drift':>10}{'smallest face':>15}")  # fmt: skip
    for r in results:
        counts_ok = all(r["faces"][name] == manifest[name] for name in r["faces"])
        speed = f"{native['seconds'] / r['seconds']:.2f}x" if native else "-"
        drift = "-"
        if native:
            common = set(r["distances"]) & set(native["distances"])
            drift = f"{max(abs(r['distances'][n] - native['distances'][n]) for n in common):.3f}"
        small = r["smallest"]
        small_text = f"{small}px {100 * small / max(CANVAS):.1f}%" if small else "none"
        label = r["spec"].replace("0/", "native/", 1) if r["spec"].startswith("0/") else r["spec"]
        print(f"{label:18}{r['seconds']:8.2f}{speed:>9}{'yes' if counts_ok else 'NO':>10}"
              f"{drift:>10}{small_text:>15}")  # fmt: skip
    print("smallest face: width of the pasted face on a 1600 px wide picture (and % of it)")
    print(machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
