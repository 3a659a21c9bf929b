"""The reference photos of the two demo identities, for the demo, the tests and benchmarks.

One folder per politician of the demo form, as ``reference_dir`` expects them, each holding a
photo shipped inside an installed package (Grace Hopper's portrait from matplotlib, the
astronaut Eileen Collins from scikit-image): a fresh machine has them without a download.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from nocodb_guard import samples


def install_demo_references(target: Path) -> Path:
    """Copy the demo identities' reference photos under ``target``; returns ``target``."""
    for folder, source in (
        ("grace_hopper_demo", samples.grace_hopper_path()),
        ("eileen_collins_demo", samples.astronaut_path()),
    ):
        (target / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / folder / source.name)
    return target
