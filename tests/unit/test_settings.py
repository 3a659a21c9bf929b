"""Where settings come from, which source wins, and how a bad one is reported.

Every test runs with a clean environment: no ``NOCODB_GUARD_*`` variable, no
``$CREDENTIALS_DIRECTORY`` and no default secret folder, so only what the test sets counts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nocodb_guard import cli, secretfiles, settings
from nocodb_guard.errors import ConfigError
from nocodb_guard.settings import Settings, load_settings

TOKEN = "tok-SECRET-do-not-print-0123456789"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(settings.ENV_PREFIX) or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setattr(secretfiles, "DEFAULT_SECRET_DIRS", ())


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_apply_when_nothing_is_configured() -> None:
    loaded = load_settings()

    assert loaded.nocodb_url == "http://127.0.0.1:8080"
    assert loaded.tolerance == 0.6
    assert loaded.reject_action == "delete"
    assert loaded.nocodb_token is None


def test_environment_variables_with_the_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCODB_GUARD_TOLERANCE", "0.5")
    monkeypatch.setenv("NOCODB_GUARD_TABLE_ID", "m123")
    monkeypatch.setenv("NOCODB_GUARD_ALLOWED_HOSTS", "S3.example.org, cdn.example.org")
    monkeypatch.setenv("NOCODB_GUARD_POLITICIANS", '{"Jane Doe": {"tolerance": 0.45}}')
    monkeypatch.setenv("TOLERANCE", "0.1")  # no prefix: not ours

    loaded = load_settings()

    assert loaded.tolerance == 0.5
    assert loaded.table_id == "m123"
    assert loaded.allowed_hosts == ("s3.example.org", "cdn.example.org")
    assert loaded.tolerance_for("Jane Doe") == 0.45
    assert loaded.reference_folder("Jane Doe") == Path("reference_faces/jane_doe")


def test_a_toml_file_given_with_config_is_read(tmp_path: Path) -> None:
    config = write(
        tmp_path / "guard.toml",
        'nocodb_url = "http://nocodb.internal:8080/"\n'
        'reject_action = "tag"\n'
        "tolerance = 0.55\n"
        '[politicians."Grace Hopper (demo)"]\n'
        'folder = "hopper"\n',
    )

    loaded = load_settings(config)

    assert loaded.nocodb_url == "http://nocodb.internal:8080"
    assert loaded.reject_action == "tag"
    assert loaded.tolerance_for("Grace Hopper (demo)") == 0.55
    assert loaded.reference_folder("Grace Hopper (demo)") == Path("reference_faces/hopper")


def test_a_dotenv_file_is_read_and_the_dev_servers_own_keys_are_ignored(tmp_path: Path) -> None:
    env_file = write(
        tmp_path / "guard.env",
        "# Written by scripts/nocodb-dev up\n"
        "NOCODB_GUARD_NOCODB_URL=http://127.0.0.1:18080\n"
        f"NOCODB_GUARD_NOCODB_TOKEN={TOKEN}\n"
        "NOCODB_GUARD_TABLE_ID=mtable\n"
        "NOCODB_DEV_FORM_UUID=b3c186c4-782b-4fba-9a1a-f80b8653a5a5\n"
        "NOCODB_DEV_BASE_ID=pbase\n",
    )

    loaded = load_settings(env_file=env_file)

    assert loaded.nocodb_url == "http://127.0.0.1:18080"
    assert loaded.token() == TOKEN
    assert loaded.table_id == "mtable"


def test_the_token_is_read_from_a_secret_file_in_secrets_dir(tmp_path: Path) -> None:
    write(tmp_path / "nocodb_token", f"{TOKEN}\n")

    assert load_settings(secrets_dir=tmp_path).token() == TOKEN


def test_the_token_is_read_from_systemds_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "nocodb_token", TOKEN)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    assert load_settings().token() == TOKEN


def test_the_environment_beats_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "guard.toml", "tolerance = 0.4\nworkers = 3\n")
    monkeypatch.setenv("NOCODB_GUARD_TOLERANCE", "0.5")

    loaded = load_settings(config)

    assert loaded.tolerance == 0.5
    assert loaded.workers == 3


def test_a_secret_file_beats_the_toml_file(tmp_path: Path) -> None:
    config = write(tmp_path / "guard.toml", 'nocodb_token = "from-toml"\n')
    write(tmp_path / "nocodb_token", TOKEN)

    assert load_settings(config, secrets_dir=tmp_path).token() == TOKEN


def test_a_missing_token_is_a_config_error_saying_where_to_put_it() -> None:
    with pytest.raises(ConfigError, match="nocodb_token: missing"):
        load_settings().token()


def test_a_bad_setting_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCODB_GUARD_TOLERANCE", "7")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "tolerance (NOCODB_GUARD_TOLERANCE)" in str(caught.value)
    assert "1.5" in str(caught.value)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config: no such file"):
        load_settings(tmp_path / "absent.toml")


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read settings"):
        load_settings(write(tmp_path / "guard.toml", "tolerance = = 0.5\n"))


def test_the_token_never_appears_in_the_public_summary(tmp_path: Path) -> None:
    write(tmp_path / "nocodb_token", TOKEN)

    summary = load_settings(secrets_dir=tmp_path, webhook_secret="hook-SECRET").public_summary()

    assert summary["nocodb_token"] == "set"
    assert summary["webhook_secret"] == "set"
    assert TOKEN not in repr(summary)
    assert "hook-SECRET" not in repr(summary)


def test_the_token_never_appears_in_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = write(
        tmp_path / "guard.env",
        f"NOCODB_GUARD_NOCODB_TOKEN={TOKEN}\nNOCODB_GUARD_NOCODB_URL={TOKEN}\n",
    )
    monkeypatch.setenv("NOCODB_GUARD_PAGE_SIZE", "0")

    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=env_file)

    assert "nocodb_url" in str(caught.value) and "page_size" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_the_token_is_not_shown_by_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCODB_GUARD_NOCODB_TOKEN", TOKEN)

    assert TOKEN not in repr(Settings())


def test_a_bad_setting_makes_the_cli_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = write(tmp_path / "guard.env", f"NOCODB_GUARD_NOCODB_TOKEN={TOKEN}\n")
    monkeypatch.setenv("NOCODB_GUARD_TOLERANCE", "7")

    code = cli.main(["--env-file", str(env_file), "references"])

    err = capsys.readouterr().err
    assert code == cli.EXIT_CONFIG == 2
    assert "NOCODB_GUARD_TOLERANCE" in err
    assert TOKEN not in err


def test_a_missing_env_file_makes_the_cli_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["references", "--env-file", str(tmp_path / "absent.env")])

    assert code == 2
    assert "--env-file: no such file" in capsys.readouterr().err


def test_command_line_flags_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCODB_GUARD_WORKERS", "1")
    monkeypatch.setenv("NOCODB_GUARD_LOG_LEVEL", "info")
    monkeypatch.setenv("NOCODB_GUARD_TOLERANCE", "0.5")

    loaded = load_settings(workers=3, log_level="debug")

    assert (loaded.workers, loaded.log_level) == (3, "debug")
    assert loaded.tolerance == 0.5


def test_a_bad_command_line_value_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"workers \(NOCODB_GUARD_WORKERS\)"):
        load_settings(workers=-1)


def test_the_workers_flag_reaches_the_settings_the_cli_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOCODB_GUARD_WORKERS", "1")
    args = cli.build_parser().parse_args(["sweep", "--workers", "0"])

    assert cli._settings(args).workers == 0


def test_a_token_file_with_two_lines_names_the_file_and_the_setting_not_the_value(
    tmp_path: Path,
) -> None:
    token_file = write(tmp_path / "nocodb_token", f"{TOKEN}\nnew-{TOKEN}\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(secrets_dir=tmp_path)

    assert str(caught.value) == (
        f"nocodb_token (secret file {token_file}): holds 2 lines, a secret is one line "
        "(replace the old one, do not append)"
    )


@pytest.mark.parametrize("bad", [f"{TOKEN} x", f"{TOKEN}\x7f", f"{TOKEN}é", f"a\n{TOKEN}"])
def test_a_secret_with_whitespace_or_control_characters_inside_is_refused(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOCODB_GUARD_WEBHOOK_SECRET", bad)

    named = r"webhook_secret \(NOCODB_GUARD_WEBHOOK_SECRET\)"
    with pytest.raises(ConfigError, match=named) as caught:
        load_settings()

    assert "do-not-print" not in str(caught.value)


def test_surrounding_whitespace_of_a_secret_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCODB_GUARD_NOCODB_TOKEN", f"  {TOKEN}\n")

    assert load_settings().token() == TOKEN


def test_credentials_in_nocodb_url_are_refused_naming_the_setting_not_the_password() -> None:
    with pytest.raises(ConfigError, match=r"nocodb_url \(NOCODB_GUARD_NOCODB_URL\)") as caught:
        load_settings(nocodb_url="http://admin:hunter2@127.0.0.1:8080")

    assert "user:password@" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_trailing_dot_host_in_nocodb_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="must not end with a dot"):
        load_settings(nocodb_url="http://127.0.0.1.:8080")


@pytest.mark.parametrize(
    ("label", "folder"),
    [
        ("Κυριάκος Μητσοτάκης", "κυριάκος_μητσοτάκης"),
        ("Владимир Зеленский", "владимир_зеленский"),
        ("José Müller", "jose_muller"),
        ("Jane Doe", "jane_doe"),
    ],
)
def test_labels_in_any_script_get_their_own_reference_folder(label: str, folder: str) -> None:
    loaded = load_settings()

    assert loaded.reference_folder(label) == loaded.reference_dir / folder


def test_a_label_without_letters_never_maps_to_the_reference_root() -> None:
    loaded = load_settings()
    folders = {loaded.reference_folder(label) for label in ("🙂", "★★", "...")}

    assert loaded.reference_dir not in folders
    assert len(folders) == 3


@pytest.mark.parametrize("folder", ["", ".", "..", "../other", "a/b"])
def test_a_configured_folder_not_one_folder_inside_the_root_is_refused_naming_the_politician(
    folder: str,
) -> None:
    with pytest.raises(ConfigError, match=r"politicians\.Κυριάκος Μητσοτάκης\.folder") as caught:
        load_settings(politicians={"Κυριάκος Μητσοτάκης": {"folder": folder}})

    assert "one folder name inside reference_dir" in str(caught.value)


def test_a_review_band_is_off_by_default_and_set_globally_or_per_politician(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().review_band_for("Jane Doe") is None
    assert not load_settings().uses_review()
    monkeypatch.setenv("NOCODB_GUARD_REVIEW_BAND", "[0.55, 0.65]")
    monkeypatch.setenv(
        "NOCODB_GUARD_POLITICIANS",
        '{"Jane Doe": {"tolerance": 0.45, "review_band": [0.4, 0.5]}}',
    )

    loaded = load_settings()

    assert loaded.review_band_for("Jane Doe") == (0.4, 0.5)
    assert loaded.review_band_for("John Roe") == (0.55, 0.65)
    assert loaded.uses_review()
    assert loaded.status_review == "review"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("review_band = [0.65, 0.55]\n", "low must be below high"),
        ("review_band = [0.62, 0.7]\n", "must contain the tolerance 0.6"),
        (
            "[politicians.\"Jane Doe\"]\ntolerance = 0.5\nreview_band = [0.55, 0.65]\n",
            "politician 'Jane Doe') must contain the tolerance 0.5",
        ),
    ],
)
def test_a_review_band_that_is_empty_or_misses_its_tolerance_is_refused(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(write(tmp_path / "guard.toml", toml))
