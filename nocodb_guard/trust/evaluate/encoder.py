"""How ``evaluate`` sees a labelled photo: with the pipeline's own :func:`see`, once per file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nocodb_guard.errors import BadPicture
from nocodb_guard.faces.engine import FaceEngine
from nocodb_guard.faces.see import PipelineConfig, see
from nocodb_guard.trust.evaluate.diagnosis import Encoding


@dataclass(frozen=True)
class PhotoEncoding:
    """What the face stack saw in one labelled photo: ``encoding`` is set iff ``faces == 1``."""

    faces: int
    encoding: Encoding | None = None
    problem: str | None = None


EncodePhoto = Callable[[Path], PhotoEncoding]


def make_photo_encoder(config: PipelineConfig, engine: FaceEngine) -> EncodePhoto:
    """An :data:`EncodePhoto` that sees a photo as the pipeline sees an upload (:func:`see`)."""

    def encode(path: Path) -> PhotoEncoding:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return PhotoEncoding(0, problem=f"unreadable: {exc.strerror}")
        try:
            sight = see(data, config, engine)
        except BadPicture as bad:
            return PhotoEncoding(0, problem=bad.reason)
        return PhotoEncoding(len(sight.faces), sight.encoding)

    return encode


def once_per_file(encode_photo: EncodePhoto) -> EncodePhoto:
    """Reference photos may also sit in DIR: detection is the slow part, never do it twice."""
    seen: dict[Path, PhotoEncoding] = {}

    def encode(path: Path) -> PhotoEncoding:
        key = path.resolve()
        if key not in seen:
            seen[key] = encode_photo(path)
        return seen[key]

    return encode
