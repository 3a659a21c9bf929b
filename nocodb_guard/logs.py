"""Logging set-up: structlog for our events, stdlib logging routed through the same output.

- JSON lines when the stream is not a terminal (journald, podman, files) or ``fmt="json"``;
  a readable console renderer on a terminal.
- ISO-8601 UTC timestamps, so lines from the service, the container and NocoDB line up.
- Tracebacks become structured fields (``exception``: a list of frames, no local variables:
  locals may hold a token or picture bytes).
- Redaction runs last before rendering, on every line (ours and libraries'): values under
  keys that name a credential are masked, and any configured secret is cut out of every
  string, so a token that ends up in an exception message or a URL still never reaches a log.

Called once by the CLI; calling it again replaces the previous set-up (tests do).
The module is named ``logs`` so it never shadows the stdlib ``logging``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from nocodb_guard.errors import ConfigError

if TYPE_CHECKING:
    from nocodb_guard.settings import Settings

REDACTED = "[REDACTED]"
#: Keys whose values are credentials whatever they hold (matched case-insensitively).
SENSITIVE_KEY = re.compile(
    r"token|passw|secret|authori[sz]ation|api[-_]?key|cookie|credential|(^|[-_])auth($|[-_])",
    re.IGNORECASE,
)
#: Values under a sensitive key that say whether a secret is configured, not what it is.
_PRESENCE_MARKERS = frozenset({"set", "missing"})
#: Secrets shorter than this are not searched inside strings (they would mangle every line).
MIN_SECRET_CHARS = 4
#: Libraries that log every request or job at INFO: kept at WARNING and above, even at
#: ``--log-level debug``. For botocore it is also a matter of secrets: its debug lines carry
#: the signed request headers (``Authorization: AWS4-HMAC-SHA256 Credential=AKIA...``).
NOISY_LOGGERS = (
    "apscheduler",
    "urllib3",
    "requests",
    "PIL",
    "tenacity",
    "filelock",
    "botocore",
    "boto3",
    "s3transfer",
)

#: Loggers whose warnings are expected in normal operation: APScheduler warns "skipped:
#: maximum number of running instances reached" on every tick that falls inside a long
#: sweep, which is exactly what max_instances=1 is for.
QUIET_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")

LogFormat = Literal["auto", "json", "console"]


class Redactor:
    """structlog processor masking credentials by key and by value (see module doc)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_CHARS}
        self._secrets = sorted(unique, key=len, reverse=True)

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def _clean(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and SENSITIVE_KEY.search(key):
            return self._mask(value)
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(key, item) for item in value]
        if isinstance(value, str):
            return self.scrub(value)
        return value

    def _mask(self, value: Any) -> Any:
        if value is None or isinstance(value, bool) or value == "":
            return value
        if isinstance(value, str) and value in _PRESENCE_MARKERS:
            return value
        return REDACTED

    def scrub(self, text: str) -> str:
        """``text`` with every configured secret replaced by :data:`REDACTED`."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class _GuardHandler(logging.StreamHandler[TextIO]):
    """Marks the handler we install, so a second configure replaces exactly it."""


def settings_secrets(settings: Settings) -> tuple[str, ...]:
    """The secrets held by the settings, for :func:`configure_logging`'s ``secrets``.

    The S3 keys live in files the settings only name. Unreadable or malformed ones are left
    out: building the storage says what is wrong with them, and no request carries them.
    """
    values = (settings.nocodb_token, settings.webhook_secret)
    secrets = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
    if settings.s3 is not None:
        with contextlib.suppress(ConfigError):
            secrets.extend(settings.s3.keys())
    return tuple(secrets)


def configure_logging(
    level: str | int = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Route structlog and stdlib logging to ``stream`` (default stdout), redacted."""
    target = sys.stdout if stream is None else stream
    numeric = _numeric_level(level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: structlog.testing.capture_logs and a re-configure must take effect
        # on module-level loggers too. The volume here (a few lines per row) makes it free.
        cache_logger_on_first_use=False,
    )
    handler = _GuardHandler(target)
    handler.setFormatter(_formatter(_use_json(fmt, target), Redactor(secrets), target))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _GuardHandler)]:
        root.removeHandler(old)
        old.close()  # a StreamHandler never closes its stream
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.ERROR))


def _formatter(
    as_json: bool, redactor: Redactor, stream: TextIO
) -> structlog.stdlib.ProcessorFormatter:
    renderer: list[Processor]
    if as_json:
        tracebacks = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        renderer = [tracebacks, redactor, structlog.processors.JSONRenderer()]
    else:
        colors = _is_tty(stream)
        renderer = [
            structlog.processors.format_exc_info,
            redactor,
            structlog.dev.ConsoleRenderer(colors=colors),
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderer,
        ],
    )


def _use_json(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    return not _is_tty(stream)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def _numeric_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level: {level!r}")
    return value
