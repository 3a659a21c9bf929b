"""The ``[s3]`` settings table: where NocoDB's S3-compatible storage is, and whose keys to use.

Its own model (like ``politicians``) so the whole storage is one setting: in TOML a
``[s3]`` table, in the environment ``NOCODB_GUARD_S3='{"endpoint": ..., ...}'``. Only file
*paths* of the credentials live here: the keys themselves are read from those files when
the storage is built (:meth:`S3Settings.keys`), and when logging is set up, to be cut out of
every line (:func:`nocodb_guard.logs.settings_secrets`).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from urllib3.util import parse_url

from nocodb_guard.secretfiles import read_secret_file


class S3Settings(BaseModel):
    """NocoDB's S3 plugin, as the operator configured it (``NC_S3_*`` or the plugin page)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str
    """The S3 API's base URL, e.g. ``https://s3.eu-central-1.amazonaws.com`` or MinIO's
    ``http://127.0.0.1:9000`` (NocoDB's ``NC_S3_ENDPOINT``). Downloads from this origin
    are trusted like the NocoDB origin: the operator named it."""
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    """NocoDB's ``NC_S3_BUCKET_NAME``."""
    region: str = "us-east-1"
    """NocoDB's ``NC_S3_REGION`` (signs the requests)."""
    access_key_file: Path
    """File holding the access key id (systemd ``LoadCredential=``, a container secret)."""
    secret_key_file: Path
    """File holding the secret access key."""
    force_path_style: bool = True
    """``bucket`` in the URL path (MinIO, most S3-compatible servers) rather than the host."""

    def keys(self) -> tuple[str, str]:
        """The access key id and the secret access key, read from their files (ConfigError)."""
        return (
            read_secret_file(self.access_key_file, "s3.access_key_file"),
            read_secret_file(self.secret_key_file, "s3.secret_key_file"),
        )

    @field_validator("endpoint")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        """``scheme://host[:port]`` only: credentials go in the files, paths nowhere."""
        if not re.match(r"^https?://[^/]+/?$", value):
            raise ValueError("must be an http(s) URL without a path, e.g. https://s3.example")
        parsed = parse_url(value)
        if parsed.auth is not None:
            raise ValueError("must not carry user:password@ (use access_key_file)")
        return value.rstrip("/")
