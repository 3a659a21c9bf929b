"""Secrets on load: where the token file is looked for, and what makes a secret unusable.

Checked when settings are built, before any header is sent: a token that would make the
HTTP library raise would have it quote the whole header, secret included, in a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from nocodb_guard.errors import ConfigError

TOKEN_FILE_NAMES = ("nocodb_token", "NOCODB_GUARD_NOCODB_TOKEN")
DEFAULT_SECRET_DIRS = (Path("/run/secrets"),)


def secret_dirs(explicit: Path | None) -> tuple[Path, ...]:
    """Where to look for ``nocodb_token``: explicit dir, systemd's, then the container's."""
    dirs: list[Path] = []
    if explicit is not None:
        dirs.append(explicit)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        dirs.append(Path(credentials))
    dirs.extend(DEFAULT_SECRET_DIRS)
    return tuple(dirs)


def secret_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a secret (never the value itself), or None.

    A token goes into an HTTP header: a second line (a new token appended during a
    rotation) or a control character makes the HTTP library raise an error that quotes
    the whole header, token included. Surrounding whitespace (a file's final newline) is
    ignored; inside, only printable ASCII without spaces is accepted, as NocoDB issues.
    """
    text = value.strip()
    lines = len(text.splitlines())
    if lines > 1:
        return f"holds {lines} lines, a secret is one line (replace the old one, do not append)"
    if any(not 33 <= ord(ch) <= 126 for ch in text):
        return "contains whitespace, a control character or non-ASCII text inside the value"
    return None


def read_token_file(dirs: tuple[Path, ...]) -> str | None:
    """The token from the first secret file found, or None; a malformed one is a ConfigError."""
    for directory in dirs:
        for name in TOKEN_FILE_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return read_secret_file(candidate, "nocodb_token", required=False)
    return None


def read_secret_file(path: Path, setting: str, *, required: bool = True) -> str:
    """The one-line secret in ``path``; a missing, unreadable or malformed file (or, when
    ``required``, an empty one) is a ConfigError naming ``setting`` and the file, never
    the value."""
    try:
        value = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{setting} (secret file {path}): {exc.strerror}") from None
    problem = secret_problem(value)
    if not problem and required and not value.strip():
        problem = "is empty"
    if problem:
        raise ConfigError(f"{setting} (secret file {path}): {problem}")
    return value.strip()
