"""``nocodb-guard evaluate DIR``: measure, on labelled photos, how trustworthy the decisions are.

DIR holds one sub-folder per person (like ``../shared/faces``). An optional ``manifest.csv``
(columns ``file``, ``persons``, ``faces``, ``source_photo``; see ``../shared/faces/README.md``)
says who is in each file, how many faces it holds, and which files are copies of the same
original photo. Without it, the person is the folder and every file is its own source photo.

Two modes:

- ``configured``: each configured politician's reference photos are the reference; the
  photos of the DIR sub-folder named like that politician's reference folder are genuine,
  all other persons' photos are impostors. Copies of a reference photo (same bytes, or the
  same ``source_photo`` per the manifest) never count as genuine evidence: matching a resized
  copy of the reference proves nothing.
- ``self``: references come from DIR itself. For each person and each of their source
  photos, all copies of that source photo form the reference set; the person's photos from
  *other* source photos are genuine probes, every other person's photos are impostors. A
  person with a single source photo contributes impostor comparisons only.

Source photo keys are qualified by the person (``rose_leslie/img1`` and ``alex_lacamoire/img1``
are different photos), since a single-face photo cannot show two people.

These photos are the admin's own labelled photos, not uploads; their encodings are computed
once and kept in memory only, never written anywhere.

The package follows the data: :mod:`.photos` reads DIR and the targets, :mod:`.encoder` sees
each photo as the pipeline does, :mod:`.run` and :mod:`.compare` measure, :mod:`.swapped` adds
synthetic face swaps (``--swaps``), :mod:`.calibration` and :mod:`.diagnosis` are the
statistics, and :mod:`.output_text`, :mod:`.output_json` and :mod:`.output_plot` present the
:class:`~.report.EvaluationReport`.
"""

from __future__ import annotations

from nocodb_guard.trust.evaluate.encoder import EncodePhoto, PhotoEncoding, make_photo_encoder
from nocodb_guard.trust.evaluate.output_json import to_json
from nocodb_guard.trust.evaluate.output_plot import plot_png
from nocodb_guard.trust.evaluate.output_text import render_text
from nocodb_guard.trust.evaluate.photos import (
    LabelledPhoto,
    Target,
    configured_targets,
    read_labelled_photos,
)
from nocodb_guard.trust.evaluate.report import EvaluationReport
from nocodb_guard.trust.evaluate.run import evaluate_dir
from nocodb_guard.trust.evaluate.swapped import SwapEncoder, make_swap_encoder

__all__ = [
    "EncodePhoto",
    "EvaluationReport",
    "LabelledPhoto",
    "PhotoEncoding",
    "SwapEncoder",
    "Target",
    "configured_targets",
    "evaluate_dir",
    "make_photo_encoder",
    "make_swap_encoder",
    "plot_png",
    "read_labelled_photos",
    "render_text",
    "to_json",
]
