"""Logging: JSON lines, UTC timestamps, structured tracebacks, redaction, idempotence."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from nocodb_guard.logs import REDACTED, configure_logging, settings_secrets
from nocodb_guard.settings import Settings

TOKEN = "xc_tok_0123456789abcdef"
S3_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
S3_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_non_terminal_stream_gets_json_lines_with_utc_iso_timestamps() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    structlog.get_logger("nocodb_guard.test").info("row decided", row_id=7, verdict="approved")
    [line] = lines(stream)
    assert line["event"] == "row decided"
    assert line["row_id"] == 7
    assert line["level"] == "info"
    assert line["logger"] == "nocodb_guard.test"
    assert line["timestamp"].endswith("Z")
    assert "T" in line["timestamp"]


def test_console_format_is_not_json() -> None:
    stream = io.StringIO()
    configure_logging("info", fmt="console", stream=stream)
    structlog.get_logger().info("hello", row_id=1)
    text = stream.getvalue()
    assert "hello" in text
    assert "row_id" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_lines_below_the_level_are_dropped() -> None:
    stream = io.StringIO()
    configure_logging("warning", stream=stream)
    log = structlog.get_logger("nocodb_guard.test")
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in lines(stream)] == ["loud"]


def test_values_under_credential_keys_are_masked() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    structlog.get_logger().info(
        "request",
        token="abc-should-not-appear",
        headers={"xc-token": "also-hidden", "Authorization": "Bearer zzz", "Accept": "json"},
        password="hunter22",
        webhook_secret="shh-secret",
    )
    [line] = lines(stream)
    assert line["token"] == REDACTED
    assert line["headers"] == {"xc-token": REDACTED, "Authorization": REDACTED, "Accept": "json"}
    assert line["password"] == REDACTED
    assert line["webhook_secret"] == REDACTED


def test_presence_markers_of_the_public_summary_stay_readable() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    summary = Settings(nocodb_token=SecretStr(TOKEN)).public_summary()
    structlog.get_logger().info("starting", config=summary)
    [line] = lines(stream)
    assert line["config"]["nocodb_token"] == "set"
    assert line["config"]["webhook_secret"] == "missing"
    assert TOKEN not in stream.getvalue()


def test_a_configured_secret_is_cut_out_of_any_string() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream, secrets=[TOKEN])
    structlog.get_logger().info(f"calling with {TOKEN}", url=f"http://x/api?t={TOKEN}")
    assert TOKEN not in stream.getvalue()
    [line] = lines(stream)
    assert line["event"] == f"calling with {REDACTED}"
    assert line["url"] == f"http://x/api?t={REDACTED}"


def test_tracebacks_are_structured_and_redacted_without_local_variables() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream, secrets=[TOKEN])
    secret_local = f"local {TOKEN}"
    try:
        raise ValueError(f"bad header {TOKEN}")
    except ValueError:
        structlog.get_logger().exception("request failed")
    assert secret_local
    assert TOKEN not in stream.getvalue()
    [line] = lines(stream)
    [exception] = line["exception"]
    assert exception["exc_type"] == "ValueError"
    assert exception["exc_value"] == f"bad header {REDACTED}"
    assert exception["frames"]
    assert all("locals" not in frame or not frame["locals"] for frame in exception["frames"])


def test_stdlib_loggers_go_through_the_same_pipeline() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream, secrets=[TOKEN])
    logging.getLogger("somelib").warning("retrying %s with %s", "GET", TOKEN)
    [line] = lines(stream)
    assert line["event"] == f"retrying GET with {REDACTED}"
    assert line["logger"] == "somelib"
    assert line["level"] == "warning"
    assert line["timestamp"].endswith("Z")


def test_noisy_libraries_are_kept_at_warning() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    logging.getLogger("apscheduler.executors.default").info("Running job ...")
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTP connection")
    logging.getLogger("apscheduler.jobstores.default").warning("job missed")
    assert [line["event"] for line in lines(stream)] == ["job missed"]


def test_the_schedulers_expected_skip_warnings_are_quiet_but_errors_show() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    scheduler = logging.getLogger("apscheduler.scheduler")
    scheduler.warning("skipped: maximum number of running instances reached (1)")
    logging.getLogger("apscheduler.executors.default").error("Job raised an exception")
    assert [line["event"] for line in lines(stream)] == ["Job raised an exception"]


def test_configuring_twice_replaces_the_first_setup() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", stream=first)
    configure_logging("info", stream=second)
    structlog.get_logger().info("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


def test_settings_secrets_lists_token_and_webhook_secret() -> None:
    settings = Settings(nocodb_token=SecretStr(TOKEN), webhook_secret=SecretStr("hook-secret"))
    assert set(settings_secrets(settings)) == {TOKEN, "hook-secret"}
    assert settings_secrets(Settings(nocodb_token=None)) == ()


def s3_settings(folder: Path) -> Settings:
    """Settings naming S3 key files in ``folder``, as an operator writes them."""
    return Settings.model_validate(
        {
            "s3": {
                "endpoint": "https://s3.example.com",
                "bucket": "nocodb-uploads",
                "access_key_file": folder / "access",
                "secret_key_file": folder / "secret",
            }
        }
    )


def test_botocore_debug_lines_never_show_the_s3_keys(tmp_path: Path) -> None:
    (tmp_path / "access").write_text(S3_ACCESS_KEY + "\n")
    (tmp_path / "secret").write_text(S3_SECRET_KEY + "\n")
    stream = io.StringIO()
    configure_logging("debug", stream=stream, secrets=settings_secrets(s3_settings(tmp_path)))
    signed = f"Authorization: AWS4-HMAC-SHA256 Credential={S3_ACCESS_KEY}/20261202/us-east-1/s3"
    logging.getLogger("botocore.endpoint").debug("Sending http request: %s", signed)
    logging.getLogger("botocore.credentials").debug("Using keys %s", S3_SECRET_KEY)
    logging.getLogger("s3transfer.tasks").debug("key %s", S3_ACCESS_KEY)
    assert lines(stream) == []
    # and whatever botocore says loud enough to be shown, the keys are cut out of it
    logging.getLogger("botocore.auth").warning("signing with %s %s", S3_ACCESS_KEY, S3_SECRET_KEY)
    [line] = lines(stream)
    assert line["event"] == f"signing with {REDACTED} {REDACTED}"


def test_unreadable_s3_key_files_leave_the_other_secrets_listed(tmp_path: Path) -> None:
    settings = s3_settings(tmp_path).model_copy(update={"nocodb_token": SecretStr(TOKEN)})
    assert settings_secrets(settings) == (TOKEN,)


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("chatty", stream=io.StringIO())
