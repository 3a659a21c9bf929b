"""S3 storage: which object keys an attachment's url may name (pure; no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from nocodb_guard.errors import ConfigError
from nocodb_guard.secretfiles import read_secret_file
from nocodb_guard.settings import load_settings
from nocodb_guard.storage.base import StorageRefused
from nocodb_guard.storage.config import backend_from_settings
from nocodb_guard.storage.s3 import object_key, thumbnail_prefix
from nocodb_guard.storage.s3_settings import S3Settings

KEY = "nc/uploads/2026/12/01/60e65c63f9091a580cbaec91b0376456/face_ab12C.jpg"


def s3(endpoint: str = "http://127.0.0.1:9000", **extra: object) -> S3Settings:
    return S3Settings.model_validate(
        {
            "endpoint": endpoint,
            "bucket": "nocodb-uploads",
            "access_key_file": "/run/secrets/s3_access_key",
            "secret_key_file": "/run/secrets/s3_secret_key",
            **extra,
        }
    )


def test_a_path_style_url_on_the_endpoint_names_its_key() -> None:
    # NocoDB writes https even for an http endpoint: the scheme is not compared.
    url = f"https://127.0.0.1:9000/nocodb-uploads/{KEY}"
    assert object_key(url, s3()) == KEY


def test_the_key_is_the_raw_rest_of_the_url_spaces_included() -> None:
    # As measured on NocoDB 0.301.3: "grace hopper.jpg" is stored with its space, unescaped.
    key = "nc/uploads/2026/12/01/60e65c63/grace hopper_ZtNBy.jpg"
    assert object_key(f"http://127.0.0.1:9000/nocodb-uploads/{key}", s3()) == key


def test_a_default_port_is_left_out_as_nocodb_does() -> None:
    url = f"https://minio.example/nocodb-uploads/{KEY}"
    assert object_key(url, s3("https://MinIO.example:443")) == KEY


def test_a_virtual_hosted_url_names_its_key() -> None:
    settings = s3("https://s3.eu-central-1.amazonaws.com")
    url = f"https://nocodb-uploads.s3.eu-central-1.amazonaws.com/{KEY}"
    assert object_key(url, settings) == KEY


def test_thumbnails_live_in_a_folder_named_after_the_upload() -> None:
    assert thumbnail_prefix(KEY) == KEY.replace("nc/uploads/", "nc/thumbnails/") + "/"


@pytest.mark.parametrize(
    "url",
    [
        f"https://evil.example/nocodb-uploads/{KEY}",  # another host
        f"https://127.0.0.1:9001/nocodb-uploads/{KEY}",  # another port
        f"https://127.0.0.1:9000/other-bucket/{KEY}",  # another bucket
        f"https://other-bucket.127.0.0.1:9000/{KEY}",
        "https://127.0.0.1:9000/nocodb-uploads/nc/other/2026/x.jpg",  # not an upload
        "https://127.0.0.1:9000/nocodb-uploads/nc/uploads/x.jpg",  # no folder
        "https://127.0.0.1:9000/nocodb-uploads/nc/uploads/2026/../../secret.txt",
        "https://127.0.0.1:9000/nocodb-uploads/nc/uploads/2026//x.jpg",
        "https://127.0.0.1:9000/nocodb-uploads/nc/uploads/2026/./x.jpg",
        "https://127.0.0.1:9000/nocodb-uploads/nc/uploads/2026\\..\\x.jpg",
        "https://127.0.0.1:9000/nocodb-uploads/nc/uploads/2026/x\x00.jpg",
        f"ftp://127.0.0.1:9000/nocodb-uploads/{KEY}",
        f"https://127.0.0.1:9000.evil.example/nocodb-uploads/{KEY}",
        f"//127.0.0.1:9000/nocodb-uploads/{KEY}",
        "https://127.0.0.1:9000/nocodb-uploads/nc/thumbnails/2026/x.jpg/tiny.jpg",
    ],
)
def test_a_url_outside_the_bucket_uploads_is_refused(url: str) -> None:
    with pytest.raises(StorageRefused):
        object_key(url, s3())


@pytest.mark.parametrize(
    "endpoint", ["ftp://s3.example", "https://s3.example/path", "https://key:secret@s3.example"]
)
def test_the_endpoint_is_a_plain_http_origin(endpoint: str) -> None:
    with pytest.raises(ValidationError):
        s3(endpoint)


def test_a_secret_file_is_read_and_checked_without_echoing_it(tmp_path: Path) -> None:
    good, two_lines, empty = tmp_path / "good", tmp_path / "two", tmp_path / "empty"
    good.write_text("AKIAEXAMPLE\n")
    two_lines.write_text("OLDVALUE\nNEWVALUE\n")
    empty.write_text("\n")

    assert read_secret_file(good, "s3.access_key_file") == "AKIAEXAMPLE"
    for path in (two_lines, empty, tmp_path / "missing"):
        with pytest.raises(ConfigError) as caught:
            read_secret_file(path, "s3.secret_key_file")
        assert "s3.secret_key_file" in str(caught.value)
        assert "VALUE" not in str(caught.value)


def test_s3_settings_come_as_one_table_and_exclude_the_data_dir(tmp_path: Path) -> None:
    config = tmp_path / "guard.toml"
    config.write_text(
        'nocodb_data_dir = "/var/lib/nocodb"\n'
        "[s3]\n"
        'endpoint = "https://s3.example"\nbucket = "nocodb-uploads"\n'
        'access_key_file = "/run/secrets/a"\nsecret_key_file = "/run/secrets/b"\n'
    )
    settings = load_settings(config_file=config)
    assert settings.s3 is not None and settings.s3.bucket == "nocodb-uploads"
    assert settings.public_summary()["s3"]["access_key_file"] == "/run/secrets/a"
    with pytest.raises(ConfigError, match="both set"):
        backend_from_settings(settings)
