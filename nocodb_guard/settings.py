"""Settings: built once by the CLI and passed down, never a module global.

Sources, highest priority first:

1. command-line flags (``--workers``, ``--log-level``, ``--log-format``);
2. environment variables prefixed ``NOCODB_GUARD_`` (nested values as JSON, e.g.
   ``NOCODB_GUARD_POLITICIANS='{"Jane Doe": {"tolerance": 0.5}}'``);
3. a dotenv file given with ``--env-file`` (``scripts/nocodb-dev`` writes one);
4. secret files: ``nocodb_token`` in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``),
   in ``/run/secrets`` (containers), or in ``--secrets-dir``;
5. a TOML file given with ``--config`` (see ``config/nocodb-guard.example.toml``);
6. the defaults documented on each field below.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from urllib3.util import parse_url

from nocodb_guard.errors import ConfigError
from nocodb_guard.labels import slugify
from nocodb_guard.secretfiles import read_token_file, secret_dirs, secret_problem
from nocodb_guard.storage.s3_settings import S3Settings

ENV_PREFIX = "NOCODB_GUARD_"


ReviewBand = tuple[
    Annotated[float, Field(ge=0.0, le=1.5)], Annotated[float, Field(ge=0.0, le=1.5)]
]
"""``[low, high]``: distances in it are neither approved nor deleted but tagged for review."""


def check_band(band: ReviewBand | None) -> ReviewBand | None:
    """A band must have some width: ``low < high``."""
    if band is not None and not band[0] < band[1]:
        raise ValueError(f"review_band {list(band)}: low must be below high")
    return band


class Politician(BaseModel):
    """One option of the form's select field and where its reference photos live."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    folder: str | None = None
    """Folder under ``reference_dir``; default: the slugified label (``Jane Doe``: ``jane_doe``)."""
    tolerance: float | None = Field(default=None, gt=0.0, le=1.5)
    """Per-politician distance tolerance; default: the global ``tolerance``."""
    review_band: ReviewBand | None = None
    """Per-politician review band; default: the global ``review_band``."""

    @field_validator("review_band")
    @classmethod
    def _ordered(cls, band: ReviewBand | None) -> ReviewBand | None:
        return check_band(band)

    @field_validator("folder")
    @classmethod
    def _one_folder_inside(cls, value: str | None) -> str | None:
        """One folder name: ``""``, ``.``, ``..`` or a path would make the reference root
        itself (or a place outside it) one politician's folder: every photo there would
        count as that politician."""
        if value is None:
            return None
        if value.strip() in ("", ".", "..") or any(sep in value for sep in "/\\\x00"):
            raise ValueError(
                "must be one folder name inside reference_dir (not empty, '.', '..' or a path)"
            )
        return value


class Settings(BaseSettings):
    """Every knob of nocodb-guard, with its default and why."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    # --- NocoDB ---------------------------------------------------------------------
    nocodb_url: str = "http://127.0.0.1:8080"
    """Base URL of NocoDB; attachments come only from this origin (or ``allowed_hosts``)."""
    nocodb_token: SecretStr | None = None
    """API token (``xc-token``). Prefer a secret file over the environment."""
    table_id: str = ""
    """The form table's id (``m...``), as shown in NocoDB's table details / API snippets."""
    field_politician: str = "Politician"
    field_photo: str = "Photo"
    field_status: str = "Status"
    field_reason: str = "Reason"
    """Long-text field that receives the plain-words explanation; empty string to disable."""
    status_approved: str = "approved"
    status_rejected: str = "rejected"
    status_review: str = "review"
    """Status given to rows whose distance lies in ``review_band`` (only when a band is set)."""
    reject_action: Literal["delete", "tag"] = "delete"
    """``delete`` removes rejected rows; ``tag`` sets ``status_rejected`` for human review."""
    page_size: int = Field(default=100, ge=1, le=1000)
    """Rows per listing request (NocoDB caps at 1000)."""
    act_batch: int = Field(default=25, ge=1, le=1000)
    """Decided rows written together: one re-read, one bulk delete, one bulk update a page.

    Larger spends fewer requests (NocoDB 0.301.4+ allows 5 a second); smaller writes each
    decision sooner, and leaves less for the next pass to decide again after a crash.
    """
    # NoDecode: the environment gives "a.example,b.example", not JSON (the validator splits it).
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    """Extra hosts attachments may come from (S3-like storage). Exact host names, no wildcards."""
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    retry_seconds: float = Field(default=60.0, ge=0)
    """Time budget for retrying one NocoDB request (5xx, 429, timeouts) before deferring."""
    rate_limit: float = Field(default=4.0, ge=0)
    """Data API requests per second the guard allows itself; 0 turns pacing off.

    NocoDB 0.301.4+ allows 5 a second per token (``NC_DATA_COUNT`` per ``NC_DATA_API_TTL``),
    then blocks the token for 30 s: 4 leaves room for network jitter. Set it to 80% of your
    server's limit; ``X-RateLimit-Remaining: 0`` and 429s are honoured whatever it says.
    """
    meta_rate_limit: float = Field(default=0.9, ge=0)
    """Meta API (table schema) requests per second; NocoDB allows 60 a minute. 0: off."""
    max_download_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Byte cap per attachment, enforced while streaming (NocoDB's default upload cap: 20 MiB)."""
    max_attachments: int = Field(default=5, ge=1)
    """More files than this in one row is rejected (``too_many_attachments``)."""

    nocodb_data_dir: Path | None = None
    """NocoDB's data folder, the one holding ``nc/uploads`` (NocoDB's ``NC_TOOL_DIR``;
    ``/usr/app/data`` in its Docker image). Set, the files of deleted rows are purged from
    it (the service needs write access: ``ReadWritePaths=``). Unset, nothing is purged and
    deleted uploads stay on NocoDB's disk, still served by their path."""
    s3: S3Settings | None = None
    """NocoDB's S3-compatible storage (``[s3]`` table; instead of ``nocodb_data_dir``): the
    objects of deleted rows are purged from its bucket with the operator's keys."""

    # --- references and matching -------------------------------------------------------
    reference_dir: Path = Path("reference_faces")
    politicians: dict[str, Politician] = Field(default_factory=dict)
    """Form option label -> folder/tolerance. Options not listed use the slugified label."""
    tolerance: float = Field(default=0.6, gt=0.0, le=1.5)
    """face_recognition's documented best for its 128-d encodings; lower is stricter."""
    review_band: ReviewBand | None = None
    """Off by default. ``[low, high]`` around the tolerance: a distance inside it is neither
    approved nor deleted; the row is tagged ``status_review`` for an admin. Per politician
    too, like ``tolerance``."""

    # --- image and face pipeline ---------------------------------------------------------
    max_pixels: int = Field(default=120_000_000, ge=10_000)
    """Pixel cap from the header; above it a picture is ``too_large`` (decompression bombs).

    120 MP so that a 108 MP phone photo is judged, not deleted: JPEGs are decoded at 1/8
    scale, so memory stays small. Other formats are decoded at full size and stay capped
    at 50 MP (``images.FULL_DECODE_MAX_PIXELS``); Pillow's own hard limit (~179 MP) holds.
    """
    max_side: int = Field(default=1024, ge=128)
    """Longest side of the coarse picture faces are first searched in (faces.scan)."""
    detection_model: Literal["hog", "cnn"] = "hog"
    upsample: int = Field(default=0, ge=0, le=3)
    """Upsampling passes of the coarse search (0: faces of 72 px and more at ``max_side``).

    Smaller faces are looked for by a closer look only where they matter (faces.scan):
    1 makes every picture pay four times the search for what the closer look finds."""
    min_face_px: int = Field(default=40, ge=1)
    """A lone face smaller than this, in the upload's own pixels, is too small to judge."""
    min_face_ratio: float = Field(default=0.35, ge=0.0, le=1.0)
    """Faces smaller than this fraction of the largest face are background noise, ignored."""
    refine_pixels: int = Field(default=8_000_000, ge=1_000_000, le=50_000_000)
    """Most pixels a closer look decodes or searches (faces.scan): bounds its time and memory."""
    encode_face_px: int = Field(default=200, ge=100, le=1000)
    """A face is encoded from a view where it is at least this wide, when the upload has it."""
    num_jitters: int = Field(default=1, ge=1, le=100)
    picture_timeout: float = Field(default=60.0, gt=0)
    """Seconds one picture may take in a face worker, then the worker is replaced and the
    row deferred: a safety net (cost bombs are refused from their structure first)."""
    worker_memory_mb: int = Field(default=2048, ge=0)
    """Address space (MiB) a face worker may map (``RLIMIT_AS``, 0: none); over it, deferred."""
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)
    """Face worker processes; 0 runs the pipeline in the calling process."""

    # --- service -----------------------------------------------------------------------------
    state_dir: Path = Path(".nocodb-guard-state")
    """Reference cache, heartbeat, audit log and lock live here (systemd: ``StateDirectory=``)."""
    poll_interval: float = Field(default=30.0, gt=0)
    heartbeat_max_age: float = Field(default=300.0, gt=0)
    """``nocodb-guard health`` fails when the last successful sweep is older than this."""
    audit_retention_days: int = Field(default=30, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Prometheus endpoint port; 0 disables it."""
    metrics_host: str = "127.0.0.1"
    webhook_port: int = Field(default=0, ge=0, le=65535)
    """Port for NocoDB's after-insert webhook; 0 disables instant moderation."""
    webhook_host: str = "127.0.0.1"
    webhook_secret: SecretStr | None = None

    @field_validator("nocodb_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        """An http(s) URL without credentials or a trailing-dot host (see ``attachments``)."""
        if not re.match(r"^https?://[^/]+", value):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8080")
        parsed = parse_url(value)
        if parsed.auth is not None:
            # Never echo the value: it holds a password.
            raise ValueError("must not carry user:password@ (the token goes in nocodb_token)")
        if (parsed.host or "").endswith("."):
            raise ValueError("the host must not end with a dot (write it without)")
        return value.rstrip("/")

    @field_validator("nocodb_token", "webhook_secret")
    @classmethod
    def _one_line_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """Secrets end up in HTTP headers: refuse on load what would fail (and leak) there."""
        if value is None:
            return None
        problem = secret_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)  # names the problem, never the value
        return SecretStr(value.get_secret_value().strip())

    @field_validator("nocodb_data_dir", "s3", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """``NOCODB_GUARD_NOCODB_DATA_DIR=`` (empty) means unset, not the current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        """Comma-separated (env, dotenv) or a JSON list; host names compare in lower case."""
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else value.split(",")
        if isinstance(value, list | tuple):  # non-strings stay, for pydantic to refuse
            hosts = (h.strip().lower() if isinstance(h, str) else h for h in value)
            return tuple(h for h in hosts if h != "")
        return value

    @field_validator("review_band")
    @classmethod
    def _band_ordered(cls, band: ReviewBand | None) -> ReviewBand | None:
        return check_band(band)

    @model_validator(mode="after")
    def _bands_around_tolerances(self) -> Settings:
        """A band that does not contain its tolerance would approve or delete inside it."""
        for label in ("", *self.politicians):
            band = self.review_band_for(label) if label else self.review_band
            tolerance = self.tolerance_for(label) if label else self.tolerance
            if band is not None and not band[0] <= tolerance <= band[1]:
                where = f"politician {label!r}" if label else "global"
                raise ValueError(
                    f"review_band {list(band)} ({where}) must contain the tolerance {tolerance}"
                )
        return self

    # --- derived -------------------------------------------------------------------------------
    def politician(self, label: str) -> Politician:
        """Configuration for a form option, filling in the defaults."""
        configured = self.politicians.get(label, Politician())
        return Politician(
            folder=configured.folder or slugify(label),
            tolerance=configured.tolerance or self.tolerance,
            review_band=configured.review_band or self.review_band,
        )

    def reference_folder(self, label: str) -> Path:
        folder = self.politician(label).folder
        assert folder is not None
        return self.reference_dir / folder

    def tolerance_for(self, label: str) -> float:
        tolerance = self.politician(label).tolerance
        assert tolerance is not None
        return tolerance

    def review_band_for(self, label: str) -> ReviewBand | None:
        return self.politician(label).review_band

    def uses_review(self) -> bool:
        """Whether any politician can get a ``review`` verdict (``check`` then needs the option)."""
        return self.review_band is not None or any(
            p.review_band is not None for p in self.politicians.values()
        )

    def token(self) -> str:
        """The API token, for the one place that puts it in a header."""
        if self.nocodb_token is None or not self.nocodb_token.get_secret_value():
            raise ConfigError(
                "nocodb_token: missing (set NOCODB_GUARD_NOCODB_TOKEN, a secret file "
                "'nocodb_token', or the env file from scripts/nocodb-dev)"
            )
        return self.nocodb_token.get_secret_value()

    def require_table(self) -> str:
        if not self.table_id:
            raise ConfigError("table_id: missing (set NOCODB_GUARD_TABLE_ID)")
        return self.table_id

    def public_summary(self) -> dict[str, Any]:
        """The effective configuration for a start-up log line: no secrets, ever."""
        data = self.model_dump(mode="json", exclude={"nocodb_token", "webhook_secret"})
        data["nocodb_token"] = "set" if self.nocodb_token else "missing"
        data["webhook_secret"] = "set" if self.webhook_secret else "missing"
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The init kwargs carry the TOML file and secret files (see load_settings), so
        # they rank below the environment: an operator's env var always wins.
        return (env_settings, dotenv_settings, init_settings)


def load_settings(
    config_file: Path | None = None,
    env_file: Path | None = None,
    secrets_dir: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings once; any problem becomes one :class:`ConfigError` naming the setting.

    ``overrides`` (command-line flags such as ``--workers``, and tests) beat every other
    source: what an operator types last is what runs.
    """
    for label, path in (("--config", config_file), ("--env-file", env_file)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{label}: no such file: {path}")
    try:
        values: dict[str, Any] = {}
        if config_file is not None:
            values.update(tomllib.loads(config_file.read_text(encoding="utf-8")))
        token = read_token_file(secret_dirs(secrets_dir))
        if token:
            values["nocodb_token"] = token
        settings = Settings(_env_file=env_file, **values)  # type: ignore[call-arg]
        if not overrides:
            return settings
        return _Merged(**{**settings.model_dump(), **overrides})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML / dotenv
        raise ConfigError(f"cannot read settings: {exc}") from None


class _Merged(Settings):
    """Settings validated from values already merged: no source is read again."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def format_validation_error(exc: ValidationError) -> str:
    """One line per bad setting, naming it the way an operator would set it."""
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across settings (review_band vs tolerance)
            lines.append(error["msg"].removeprefix("Value error, "))
            continue
        name = ".".join(str(part) for part in error["loc"])
        lines.append(f"{name} ({ENV_PREFIX}{str(error['loc'][0]).upper()}): {error['msg']}")
    return "invalid settings: " + "; ".join(lines)
