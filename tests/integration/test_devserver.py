"""The local NocoDB behaves like the site's: a public form, hidden moderator fields, no sign-up.

These tests check the test bench itself (scripts/nocodb-dev and tests/nocodb_admin.py), so
that the daemon's integration tests can trust it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests import nocodb_admin
from tests.integration.conftest import NOCODB_DEV, DevServer, free_port
from tests.nocodb_admin import read_env_file

pytestmark = pytest.mark.integration


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie lingers when nobody reaps the detached server)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def small_jpeg(colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def test_a_second_up_reuses_the_same_table_and_token_in_seconds(nocodb: DevServer) -> None:
    before = read_env_file(nocodb.env_file)
    started = time.monotonic()
    nocodb.start()
    elapsed = time.monotonic() - started

    assert read_env_file(nocodb.env_file) == before
    assert elapsed < 10, f"second up took {elapsed:.1f} s"


def test_guard_env_is_private_and_names_the_configured_fields(nocodb: DevServer) -> None:
    assert nocodb.env_file.stat().st_mode & 0o077 == 0
    assert nocodb.env["NOCODB_GUARD_FIELD_POLITICIAN"] == "Politician"
    assert nocodb.env["NOCODB_GUARD_FIELD_PHOTO"] == "Photo"
    assert nocodb.env["NOCODB_GUARD_FIELD_STATUS"] == "Status"
    assert nocodb.env["NOCODB_GUARD_FIELD_REASON"] == "Reason"
    assert nocodb.url == f"http://127.0.0.1:{nocodb.port}"


def test_the_server_runs_on_the_database_the_suite_asked_for(nocodb: DevServer) -> None:
    status = nocodb.run("status", timeout=30)

    assert f"on {nocodb.db} (healthy" in status.stdout
    if nocodb.db == "postgres":
        postmaster = int((nocodb.dir / "pg" / "postmaster.pid").read_text().split()[0])
        assert Path(f"/proc/{postmaster}").stat().st_uid != 0  # PostgreSQL refuses root
        assert "PostgreSQL running" in status.stdout


def test_a_data_dir_keeps_its_database(nocodb: DevServer) -> None:
    other = "sqlite" if nocodb.db == "postgres" else "postgres"

    result = nocodb.run("up", db=other, timeout=60)

    assert result.returncode == 1
    assert f"holds a {nocodb.db} NocoDB" in result.stderr


def test_the_politician_field_offers_every_configured_label(nocodb: DevServer) -> None:
    options = nocodb_admin.get_select_options(
        nocodb.url, nocodb.token, nocodb.table_id, "Politician"
    )

    assert options[: len(nocodb.politicians)] == list(nocodb.politicians)


def test_an_anonymous_form_submission_lands_with_a_downloadable_signed_attachment(
    clean_table: DevServer,
) -> None:
    picture = small_jpeg()

    created = clean_table.submit("obama", [("face.jpg", picture, "image/jpeg")])

    [row] = clean_table.rows()
    assert row["Id"] == created["Id"]
    assert row["Politician"] == "obama"
    [attachment] = row["Photo"]
    assert attachment["title"] == "face.jpg"
    download = requests.get(f"{clean_table.url}/{attachment['signedPath']}", timeout=30)
    assert download.status_code == 200
    assert download.content == picture


def test_stored_files_are_served_only_through_signed_links_as_in_production(
    clean_table: DevServer,
) -> None:
    created = clean_table.submit("obama", [("face.jpg", small_jpeg(), "image/jpeg")])

    [attachment] = created["Photo"]
    anonymous = requests.get(f"{clean_table.url}/{attachment['path']}", timeout=30)
    signed = requests.get(f"{clean_table.url}/{attachment['signedPath']}", timeout=30)
    assert anonymous.status_code != 200
    assert signed.status_code == 200


def test_guard_env_points_the_purge_at_the_folder_holding_the_uploads(
    clean_table: DevServer,
) -> None:
    created = clean_table.submit("obama", [("face.jpg", small_jpeg(), "image/jpeg")])

    stored = created["Photo"][0]["path"].removeprefix("download/")
    data_dir = Path(clean_table.env["NOCODB_GUARD_NOCODB_DATA_DIR"])
    assert (data_dir / "nc" / "uploads" / stored).is_file()


def test_the_public_gallery_shows_approved_rows_only(clean_table: DevServer) -> None:
    clean_table.insert(
        [
            {"Title": "kept", "Status": "approved"},
            {"Title": "tagged", "Status": "rejected"},
            {"Title": "to review", "Status": "review"},
            {"Title": "pending"},
        ]
    )

    shown = nocodb_admin.shared_view_rows(clean_table.url, clean_table.gallery_uuid)

    assert [row["Title"] for row in shown] == ["kept"]


def test_the_status_field_offers_approved_rejected_and_review(nocodb: DevServer) -> None:
    options = nocodb_admin.get_select_options(nocodb.url, nocodb.token, nocodb.table_id, "Status")

    assert options == ["approved", "rejected", "review"]


def test_several_files_in_one_submission_stay_in_one_cell_in_order(clean_table: DevServer) -> None:
    files = [
        ("first.jpg", small_jpeg("red"), "image/jpeg"),
        ("second.jpg", small_jpeg("blue"), "image/jpeg"),
    ]

    created = clean_table.submit("Grace Hopper (demo)", files)

    row = clean_table.row(created["Id"])
    assert row is not None
    assert [item["title"] for item in row["Photo"]] == ["first.jpg", "second.jpg"]


def test_fields_hidden_in_the_form_are_dropped_from_a_submission(clean_table: DevServer) -> None:
    created = clean_table.submit(
        "obama",
        [("face.jpg", small_jpeg(), "image/jpeg")],
        Status="approved",
        Reason="trust me",
    )

    row = clean_table.row(created["Id"])
    assert row is not None
    assert row["Status"] is None
    assert row["Reason"] is None


def test_a_politician_outside_the_options_is_refused_by_the_form(clean_table: DevServer) -> None:
    with pytest.raises(nocodb_admin.NocoAdminError) as refused:
        clean_table.submit("Someone Else", [("face.jpg", small_jpeg(), "image/jpeg")])

    assert refused.value.status == 400
    assert clean_table.rows() == []


def test_open_sign_up_is_closed(nocodb: DevServer) -> None:
    response = requests.post(
        f"{nocodb.url}/api/v1/auth/user/signup",
        json={"email": "intruder@example.com", "password": "Intruder-1234!"},
        timeout=30,
    )

    assert response.status_code == 400
    assert "token" not in response.text


def test_clean_table_empties_the_table_between_tests(clean_table: DevServer) -> None:
    ids = clean_table.insert([{"Politician": "obama"} for _ in range(3)])

    assert clean_table.clear() == len(ids)
    assert clean_table.rows() == []


def test_up_without_node_says_what_to_install(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": str(tmp_path),
        "NOCODB_DEV_DIR": str(tmp_path / "data"),
        "NOCODB_DEV_PORT": str(free_port()),
        "NOCODB_DEV_CACHE": str(tmp_path / "cache"),
    }

    result = subprocess.run(
        [sys.executable, str(NOCODB_DEV), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "node and npm not found" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_postgres_in_a_folder_its_user_cannot_enter_is_refused_with_the_remedy(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "NOCODB_DEV_DIR": str(tmp_path / "data"),  # under pytest's private (0700) temp root
        "NOCODB_DEV_PORT": str(free_port()),
        "NOCODB_DEV_DB": "postgres",
    }

    result = subprocess.run(
        [sys.executable, str(NOCODB_DEV), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 1
    assert "cannot enter" in result.stderr
    assert "NOCODB_DEV_DIR under /tmp" in result.stderr


def test_down_stops_only_our_server_and_up_brings_it_back_on_the_same_data(
    nocodb: DevServer,
) -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    pid = nocodb.pid()
    assert pid is not None
    table_id = nocodb.table_id
    try:
        nocodb.stop()

        assert nocodb.pid() is None
        assert not is_running(pid)
        assert bystander.poll() is None
        status = nocodb.run("status", timeout=30)
        assert status.returncode == 3
        assert "PostgreSQL running" not in status.stdout
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{nocodb.url}/api/v1/health", timeout=5)
    finally:
        bystander.kill()
        bystander.wait()
        nocodb.start()

    assert nocodb.table_id == table_id
    assert requests.get(f"{nocodb.url}/api/v1/health", timeout=5).status_code == 200
