"""Deleted means gone on S3 too: a NocoDB storing its uploads in a real S3-compatible server.

The test starts moto's S3 server on 127.0.0.1 and a NocoDB of its own whose S3 plugin is
configured through NocoDB's ``NC_S3_*`` variables (path style, that endpoint), so form
uploads land in the bucket as ``nc/uploads/...`` with thumbnails under ``nc/thumbnails/...``
and the rows carry ``url``/``signedUrl``. ``nocodb-guard sweep`` runs as a subprocess with
the ``[s3]`` settings and its keys in secret files, as an operator configures it; the
bucket is inspected through the S3 API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nocodb_guard import samples
from tests import nocodb_admin
from tests.faultproxy import Fault, running_proxy
from tests.integration.conftest import POLITICIANS, DevServer, free_port, require_node
from tests.integration.test_sweep import GRACE, run_guard, sweep_json
from tests.s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, S3Server, running_s3

THUMBNAILS = ("card_cover.jpg", "small.jpg", "tiny.jpg")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3(free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def nocodb_s3(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A NocoDB of this module's own, storing uploads in ``s3`` (the shared one is local)."""
    require_node()
    server = DevServer(
        dir=tmp_path_factory.mktemp("nocodb-s3"),
        port=free_port(),
        politicians=POLITICIANS,
        db="sqlite",
        nocodb_env={
            "NC_S3_BUCKET_NAME": BUCKET,
            "NC_S3_REGION": REGION,
            "NC_S3_ENDPOINT": s3.endpoint,
            "NC_S3_FORCE_PATH_STYLE": "true",
            "NC_S3_ACCESS_KEY": ACCESS_KEY,
            "NC_S3_ACCESS_SECRET": SECRET_KEY,
        },
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(nocodb_s3: DevServer) -> Iterator[DevServer]:
    nocodb_s3.clear()
    yield nocodb_s3
    nocodb_s3.clear()


@pytest.fixture
def s3_env(s3: S3Server, tmp_path: Path) -> dict[str, str]:
    """The guard's storage settings: the ``[s3]`` table, keys in 0600 secret files."""
    files = {}
    for name, value in (("s3_access_key", ACCESS_KEY), ("s3_secret_key", SECRET_KEY)):
        files[name] = tmp_path / "secrets" / name
        files[name].parent.mkdir(exist_ok=True)
        files[name].write_text(value + "\n")
        files[name].chmod(0o600)
    table = {
        "endpoint": s3.endpoint,
        "bucket": BUCKET,
        "region": REGION,
        "access_key_file": str(files["s3_access_key"]),
        "secret_key_file": str(files["s3_secret_key"]),
    }
    # The dev server's env file names its local data folder: S3 replaces it here.
    return {"NOCODB_GUARD_S3": json.dumps(table), "NOCODB_GUARD_NOCODB_DATA_DIR": ""}


def object_keys(row: dict[str, Any]) -> list[str]:
    """The upload's object and its thumbnails, as NocoDB's S3 plugin names them."""
    url: str = row["Photo"][0]["url"]
    key = url.split(f"/{BUCKET}/", 1)[1]
    thumbs = key.replace("nc/uploads/", "nc/thumbnails/", 1)
    return sorted([key, *(f"{thumbs}/{t}" for t in THUMBNAILS)])


def stored(s3: S3Server, row: dict[str, Any]) -> list[str]:
    wanted = object_keys(row)
    return [k for k in s3.listed() if k in wanted]


def wait_stored(s3: S3Server, row: dict[str, Any], seconds: float = 20.0) -> None:
    """NocoDB makes thumbnails in the background: wait for all four objects."""
    deadline = time.monotonic() + seconds
    while len(stored(s3, row)) < 1 + len(THUMBNAILS):
        assert time.monotonic() < deadline, f"NocoDB stored only {stored(s3, row)}"
        time.sleep(0.2)


def wrong_person(server: DevServer) -> dict[str, Any]:
    return server.submit(GRACE, [("astro naut.png", samples.astronaut_png(), "image/png")])


def queued(state: Path) -> list[str | None]:
    path = state / "purge-queue.json"
    return [e["url"] for e in json.loads(path.read_text())] if path.exists() else []


def test_nocodb_stores_form_uploads_in_the_bucket_with_a_url(
    server: DevServer, s3: S3Server
) -> None:
    row = wrong_person(server)
    photo = row["Photo"][0]

    assert photo["url"].startswith(f"https://127.0.0.1:{s3.port}/{BUCKET}/nc/uploads/")
    assert "path" not in photo
    wait_stored(s3, row)


def test_after_a_sweep_rejected_objects_are_gone_approved_and_shared_ones_stay(
    server: DevServer, s3: S3Server, references: Path, state: Path, s3_env: dict[str, str]
) -> None:
    match = server.submit(GRACE, [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")])
    rejected = wrong_person(server)
    shared = server.submit(GRACE, [("cat.png", samples.chelsea_png(), "image/png")])
    # An admin copied the cat into an approved row of their own: NocoDB reuses the object.
    server.insert([{"Politician": GRACE, "Status": "approved", "Photo": shared["Photo"]}])
    for row in (match, rejected, shared):
        wait_stored(s3, row)

    result = run_guard(server, references, state, "sweep", "--json", **s3_env)

    assert result.returncode == 0, result.stderr
    assert server.row(int(rejected["Id"])) is None
    assert stored(s3, rejected) == []
    assert server.row(int(match["Id"]))["Status"] == "approved"  # type: ignore[index]
    assert stored(s3, match) == object_keys(match)
    assert server.row(int(shared["Id"])) is None
    assert stored(s3, shared) == object_keys(shared)
    assert queued(state) == []
    rows = {o["id"]: o for o in sweep_json(result)["rows"]}
    assert rows[int(rejected["Id"])]["files_purged"] == 1
    assert rows[int(shared["Id"])]["files_purged"] == 0
    assert SECRET_KEY not in result.stderr and ACCESS_KEY not in result.stderr


def test_an_s3_outage_during_the_purge_keeps_it_queued_until_a_later_pass(
    server: DevServer, s3: S3Server, references: Path, state: Path, s3_env: dict[str, str]
) -> None:
    row = wrong_person(server)
    wait_stored(s3, row)
    with running_proxy(server.url) as proxy:
        # The purge's first step reads which files the table still uses: the row is
        # deleted by then (its picture was judged). S3 goes down right there.
        proxy.add(Fault("callback", path=r"fields=Id%2CPhoto(&|$)", method="GET", callback=s3.stop))
        try:
            first = run_guard(
                server,
                references,
                state,
                "sweep",
                "--json",
                NOCODB_GUARD_NOCODB_URL=proxy.url,
                **s3_env,
            )
        finally:
            s3.start()

    assert server.row(int(row["Id"])) is None
    assert stored(s3, row) == object_keys(row)
    assert queued(state) == [row["Photo"][0]["url"]]
    assert "purge_queued" in first.stderr

    second = run_guard(server, references, state, "sweep", "--json", **s3_env)

    assert second.returncode == 0, second.stderr
    assert stored(s3, row) == []
    assert queued(state) == []


def test_check_says_the_bucket_is_reachable_and_private_and_names_it_when_not(
    server: DevServer, s3: S3Server, references: Path, state: Path, s3_env: dict[str, str]
) -> None:
    wait_stored(s3, wrong_person(server))

    def check() -> dict[str, dict[str, Any]]:
        result = run_guard(server, references, state, "check", "--json", **s3_env)
        return {r["name"]: r for r in json.loads(result.stdout)}

    results = check()
    assert results["purge"]["ok"], results["purge"]
    assert results["public files"]["ok"], results["public files"]
    assert "answers 403" in results["public files"]["message"]
    s3.stop()
    try:
        down = check()["purge"]
    finally:
        s3.start()
    assert not down["ok"] and "unreachable" in down["message"]


def test_orphans_of_rows_deleted_by_an_admin_are_purged_from_the_bucket(
    server: DevServer, s3: S3Server, references: Path, state: Path, s3_env: dict[str, str]
) -> None:
    match = server.submit(GRACE, [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")])
    wait_stored(s3, match)
    run_guard(server, references, state, "sweep", **s3_env)  # approves it, records its file
    nocodb_admin.delete_rows(server.url, server.token, server.table_id, [int(match["Id"])])
    orphans = ("purge", "--orphans", "--older-than", "0s", "--json")

    listed = run_guard(server, references, state, *orphans, "--dry-run", **s3_env)
    assert [o["file"] for o in json.loads(listed.stdout)["orphans"]] == [match["Photo"][0]["url"]]
    assert stored(s3, match) == object_keys(match)

    purged = run_guard(server, references, state, *orphans, **s3_env)
    assert purged.returncode == 0, purged.stderr
    assert [o["status"] for o in json.loads(purged.stdout)["orphans"]] == ["purged"]
    assert stored(s3, match) == []
