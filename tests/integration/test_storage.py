"""Deleted means gone: the files of deleted rows leave NocoDB's disk, approved ones stay.

Uploads go through the public form of the real NocoDB; ``nocodb-guard sweep`` runs as a
subprocess with ``NOCODB_GUARD_NOCODB_DATA_DIR`` set to the dev server's data folder (its
``NC_TOOL_DIR``), exactly as an operator configures it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from nocodb_guard import samples
from tests import nocodb_admin
from tests.faultproxy import Fault, running_proxy
from tests.integration.conftest import DevServer
from tests.integration.test_sweep import (
    CLI_TIMEOUT_S,
    GRACE,
    REPO,
    guard_env,
    run_guard,
    sweep_json,
)

THUMBNAILS = ("tiny.jpg", "small.jpg", "card_cover.jpg")


def data_env(server: DevServer, data_dir: Path | None = None) -> dict[str, str]:
    return {"NOCODB_GUARD_NOCODB_DATA_DIR": str(data_dir or server.dir)}


def upload_of(row: dict[str, Any]) -> dict[str, Any]:
    photo: list[dict[str, Any]] = row["Photo"]
    return photo[0]


def on_disk(server: DevServer, path: str) -> dict[str, bool]:
    """Which of the file and its thumbnails are still on NocoDB's disk."""
    relative = path.removeprefix("download/")
    found = {"file": (server.dir / "nc" / "uploads" / relative).exists()}
    for thumb in THUMBNAILS:
        found[thumb] = (server.dir / "nc" / "thumbnails" / relative / thumb).exists()
    return found


def anonymous_statuses(server: DevServer, upload: dict[str, Any]) -> list[int]:
    """What anyone gets for the file's path, its signed link and its thumbnails' links."""
    links = [upload["path"], upload["signedPath"]]
    links += [t["signedPath"] for t in upload.get("thumbnails", {}).values()]
    return [requests.get(f"{server.url}/{link}", timeout=10).status_code for link in links]


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def wrong_person(server: DevServer) -> dict[str, Any]:
    return server.submit(GRACE, [("astronaut.png", samples.astronaut_png(), "image/png")])


def queued(state: Path) -> list[dict[str, Any]]:
    path = state / "purge-queue.json"
    return list(json.loads(path.read_text())) if path.exists() else []


def test_after_a_sweep_deleted_files_are_gone_and_approved_ones_stay(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    server = clean_table
    match = server.submit(GRACE, [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")])
    rejected = [
        wrong_person(server),
        server.submit(GRACE, [("cat.png", samples.chelsea_png(), "image/png")]),
        server.submit(GRACE, [("two.jpg", samples.two_faces_side_by_side(), "image/jpeg")]),
    ]
    for row in rejected:  # NocoDB makes thumbnails in the background
        wait_for(lambda r=row: all(on_disk(server, upload_of(r)["path"]).values()))

    result = run_guard(server, references, state, "sweep", "--json", **data_env(server))

    assert result.returncode == 0, result.stderr
    for row in rejected:
        upload = upload_of(row)
        assert server.row(int(row["Id"])) is None
        assert not any(on_disk(server, upload["path"]).values())
        assert 200 not in anonymous_statuses(server, upload)
    approved = upload_of(match)
    assert server.row(int(match["Id"]))["Status"] == "approved"  # type: ignore[index]
    assert all(on_disk(server, approved["path"]).values())
    fresh = upload_of(server.row(int(match["Id"])) or {})
    assert requests.get(f"{server.url}/{fresh['signedPath']}", timeout=10).status_code == 200
    assert queued(state) == []
    rows = {o["id"]: o for o in sweep_json(result)["rows"]}
    assert {rows[int(r["Id"])]["files_purged"] for r in rejected} == {1}


def test_a_file_another_row_still_uses_is_kept(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    server = clean_table
    row = wrong_person(server)
    # An admin copied the upload into an approved row of their own (NocoDB reuses the file).
    server.insert([{"Politician": GRACE, "Status": "approved", "Photo": row["Photo"]}])

    result = run_guard(server, references, state, "sweep", "--json", **data_env(server))

    assert result.returncode == 0, result.stderr
    assert server.row(int(row["Id"])) is None
    assert all(on_disk(server, upload_of(row)["path"]).values())
    assert queued(state) == []


def test_an_entry_naming_no_stored_file_does_not_hold_the_purge_back(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    """NocoDB refuses an entry with neither path nor url (422) but keeps a blank path, which
    names no file either: the scan of the table's files skips it instead of waiting on it."""
    server = clean_table
    no_file = {"path": " ", "title": "x.jpg", "mimetype": "image/jpeg"}
    [odd] = server.insert([{"Politician": GRACE, "Status": "approved", "Photo": [no_file]}])
    row = wrong_person(server)
    wait_for(lambda: all(on_disk(server, upload_of(row)["path"]).values()))
    [stored] = server.row(odd)["Photo"]  # the premise: NocoDB stored it as it came
    assert stored.get("path") == " " and not stored.get("url")

    result = run_guard(server, references, state, "sweep", "--json", **data_env(server))

    assert result.returncode == 0, result.stderr
    assert server.row(int(row["Id"])) is None
    assert not any(on_disk(server, upload_of(row)["path"]).values())
    assert queued(state) == []


def test_a_path_crafted_to_escape_the_folder_is_refused(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    server = clean_table
    canary = server.dir / "canary.txt"
    canary.write_text("must survive")
    crafted = {"path": "download/../../canary.txt", "title": "x.jpg", "mimetype": "image/jpeg"}
    [row_id] = server.insert([{"Politician": None, "Photo": [crafted]}])  # rejected: no politician

    result = run_guard(server, references, state, "sweep", "--json", **data_env(server))

    assert server.row(row_id) is None
    assert canary.read_text() == "must survive"
    assert "purge_refused" in result.stderr
    assert queued(state) == []


@contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """A folder nobody may change, not even root (``chattr +i``): a read-only storage."""
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i unsupported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_refused_purge_stays_queued_and_the_next_pass_finishes_it(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    server = clean_table
    row = wrong_person(server)
    path = upload_of(row)["path"]
    folder = (server.dir / "nc" / "uploads" / path.removeprefix("download/")).parent

    with immutable(folder):
        first = run_guard(server, references, state, "sweep", "--json", **data_env(server))
        assert server.row(int(row["Id"])) is None
        assert on_disk(server, path)["file"]
        assert [e["path"] for e in queued(state)] == [path]
        assert "purge_queued" in first.stderr

    second = run_guard(server, references, state, "sweep", "--json", **data_env(server))

    assert second.returncode == 0, second.stderr
    assert not any(on_disk(server, path).values())
    assert queued(state) == []


def test_missing_storage_queues_the_purge_until_it_is_back(
    clean_table: DevServer, references: Path, state: Path, tmp_path: Path
) -> None:
    server = clean_table
    row = wrong_person(server)
    path = upload_of(row)["path"]

    run_guard(server, references, state, "sweep", **data_env(server, tmp_path / "unmounted"))
    assert server.row(int(row["Id"])) is None
    assert on_disk(server, path)["file"]
    assert [e["path"] for e in queued(state)] == [path]

    run_guard(server, references, state, "sweep", **data_env(server))
    assert not any(on_disk(server, path).values())
    assert queued(state) == []


def test_sigkill_between_delete_and_purge_loses_no_purge(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    server = clean_table
    row = wrong_person(server)
    path = upload_of(row)["path"]
    with running_proxy(server.url) as proxy:
        command = [sys.executable, "-m", "nocodb_guard", "--env-file", str(server.env_file)]
        env = guard_env(references, state, NOCODB_GUARD_NOCODB_URL=proxy.url, **data_env(server))
        process = subprocess.Popen([*command, "sweep"], env=env, cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # The purge's first step reads which files the table still uses: the row is
        # deleted by then. Kill the guard right there.
        proxy.add(Fault("callback", path=r"fields=Id%2CPhoto(&|$)", method="GET",
                        callback=lambda: os.kill(process.pid, signal.SIGKILL)))
        process.wait(timeout=CLI_TIMEOUT_S)

    assert process.returncode == -signal.SIGKILL
    assert server.row(int(row["Id"])) is None
    assert on_disk(server, path)["file"]
    assert [e["path"] for e in queued(state)] == [path]

    run_guard(server, references, state, "sweep", **data_env(server))
    assert not any(on_disk(server, path).values())


def test_orphans_of_rows_deleted_by_an_admin_are_listed_then_purged(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    server = clean_table
    match = server.submit(GRACE, [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")])
    run_guard(server, references, state, "sweep", **data_env(server))  # approves, records it
    kept = wrong_person(server)  # pending, referenced: never an orphan
    unrelated = nocodb_admin.upload_attachments(
        server.url, server.token, [("other.png", samples.chelsea_png(), "image/png")]
    )[0]  # stored, in no row of this table: not the guard's to judge
    nocodb_admin.delete_rows(server.url, server.token, server.table_id, [int(match["Id"])])
    path = upload_of(match)["path"]
    orphans = ("purge", "--orphans", "--older-than", "0s", "--json")

    listed = run_guard(server, references, state, *orphans, "--dry-run", **data_env(server))
    assert listed.returncode == 0, listed.stderr
    assert [o["file"] for o in json.loads(listed.stdout)["orphans"]] == [path]
    assert on_disk(server, path)["file"]

    young = run_guard(server, references, state, "purge", "--orphans", "--older-than", "1h",
                      "--json", **data_env(server))
    assert json.loads(young.stdout)["orphans"] == []

    purged = run_guard(server, references, state, *orphans, **data_env(server))
    assert purged.returncode == 0, purged.stderr
    assert [o["status"] for o in json.loads(purged.stdout)["orphans"]] == ["purged"]
    assert not any(on_disk(server, path).values())
    assert on_disk(server, upload_of(kept)["path"])["file"]
    assert on_disk(server, unrelated["path"])["file"]


def check_results(server: DevServer, references: Path, state: Path) -> dict[str, dict[str, Any]]:
    result = run_guard(server, references, state, "check", "--json", **data_env(server))
    return {r["name"]: r for r in json.loads(result.stdout)}


def test_check_reports_exposure_purging_and_every_shared_view(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    server = clean_table
    row = server.submit(GRACE, [("grace.jpg", samples.grace_hopper_variant(), "image/jpeg")])
    public = requests.get(f"{server.url}/{upload_of(row)['path']}", timeout=10).status_code == 200
    grid = create_shared_view(server, "grids", "Everything")
    try:
        results = check_results(server, references, state)
        assert results["public files"]["ok"] is not public
        if public:
            assert "NC_SECURE_ATTACHMENTS=true" in results["public files"]["message"]
        assert results["purge"]["ok"], results["purge"]
        assert results["shared form 'Upload a picture'"]["ok"]
        assert not results["shared grid 'Everything'"]["ok"]
        assert "unmoderated" in results["shared grid 'Everything'"]["message"]

        filter_to_approved(server, grid)
        assert check_results(server, references, state)["shared grid 'Everything'"]["ok"]
    finally:
        admin(server, "DELETE", f"/api/v2/meta/views/{grid}")


def admin(server: DevServer, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, f"{server.url}{path}", json=body, timeout=30,
                                headers={"xc-token": server.token})
    response.raise_for_status()
    return response.json()


def create_shared_view(server: DevServer, kind: str, title: str) -> str:
    view = admin(server, "POST", f"/api/v2/meta/tables/{server.table_id}/{kind}", {"title": title})
    admin(server, "POST", f"/api/v2/meta/views/{view['id']}/share")
    return str(view["id"])


def filter_to_approved(server: DevServer, view_id: str) -> None:
    table = admin(server, "GET", f"/api/v2/meta/tables/{server.table_id}")
    status = next(c["id"] for c in table["columns"] if c["title"] == "Status")
    admin(server, "POST", f"/api/v2/meta/views/{view_id}/filters",
          {"fk_column_id": status, "comparison_op": "eq", "value": "approved"})


def test_check_fails_when_purging_is_not_configured(
    clean_table: DevServer, references: Path, state: Path
) -> None:
    # Empty beats the env file (which the dev server may fill in): purging is off.
    unset = {"NOCODB_GUARD_NOCODB_DATA_DIR": ""}
    result = run_guard(clean_table, references, state, "check", "--json", **unset)

    purge = {r["name"]: r for r in json.loads(result.stdout)}["purge"]
    assert not purge["ok"] and "nocodb_data_dir" in purge["message"]
    assert result.returncode == 1
