"""Folder names for the form's politician options, in any script.

A form option is uploader-visible text chosen by an operator; its reference photos live in
a folder named after it. The name must never be empty: an empty one is ``reference_dir``
itself, whose every photo would then count as that politician.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata


def slugify(label: str) -> str:
    """Folder name for a form option: lower case, words joined by ``_``, in any script.

    Accents on Latin letters are dropped as before (``José Müller`` -> ``jose_muller``);
    letters of other scripts are kept as written (``Κυριάκος Μητσοτάκης`` ->
    ``κυριάκος_μητσοτάκης``, ``й`` stays ``й``): an ASCII-only slug of a Greek or Cyrillic
    label was empty, which made the reference root that politician's folder. A label with
    no letter or digit at all gets a stable name from its hash, never ``""``.
    """
    plain = "".join(_latin_without_accent(ch) for ch in unicodedata.normalize("NFC", label))
    slug = re.sub(r"[\W_]+", "_", plain.lower()).strip("_")
    if slug:
        return slug
    return "label_" + hashlib.sha256(label.encode("utf-8")).hexdigest()[:12]


def _latin_without_accent(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    if decomposed[:1].isascii():
        return decomposed.encode("ascii", "ignore").decode()
    return char
