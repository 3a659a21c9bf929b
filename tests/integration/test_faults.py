"""Faults against the real NocoDB: nothing is deleted that should not be, no row is ever lost.

Each test injects one kind of fault (NocoDB killed mid-sweep, the daemon SIGKILLed, 5xx and
429 answers, dropped connections, slow answers, an admin acting between listing and acting,
an operator's mistake) and then checks every row against what a clean run decides: rows
that must be kept are never deleted, and every row ends decided once the fault is gone.

Faults on the wire come from ``tests/faultproxy.py``, a proxy between the daemon and NocoDB.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from nocodb_guard import samples
from nocodb_guard.nocodb.client import NocoDBClient
from nocodb_guard.settings import load_settings
from tests import nocodb_admin
from tests.demo_references import install_demo_references
from tests.faultproxy import Fault, FaultProxy, Listener, listening, running_proxy
from tests.integration.conftest import DevServer
from tests.integration.guard_process import (
    CAT,
    EILEEN,
    GRACE,
    MATCH,
    MIX,
    NOBODY,
    TEXT,
    WRONG_PERSON,
    Upload,
    by_row,
    expected_state,
    guard_daemon,
    guard_env,
    row_state,
    run_cli,
    submit,
    sweep_json,
)

#: Faults injected by this module, counted for the README's reliability figures.
FAULT_KINDS = (
    "NocoDB stopped mid-sweep and restarted",
    "daemon SIGKILLed mid-sweep and restarted",
    "download answering 500", "download connection dropped", "download body cut",
    "download slower than the read timeout", "download redirected to 127.0.0.1",
    "download over the byte cap", "download answering 200 with an HTML error page",
    "download answering 200 with a JSON error", "download answering 401",
    "download answering 403", "API slower than the read timeout",
    "API 429 with Retry-After", "API 503 beyond budget",
    "DELETE answering 500", "row edited between listing and acting",
    "row deleted between listing and acting", "signed link expired", "attachment file gone",
    "reference folder missing", "two-face reference photo", "select option renamed",
    "wrong token", "wrong table id", "approve twice", "delete twice",
)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the module's guards so that reference encodings are computed once."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as running:
        yield running


@pytest.fixture
def proxy(clean_table: DevServer) -> Iterator[FaultProxy]:
    with running_proxy(clean_table.url) as running:
        yield running


def submit_many(server: DevServer, uploads: tuple[Upload, ...], rounds: int) -> dict[int, Upload]:
    rows: dict[int, Upload] = {}
    for round_ in range(rounds):
        for upload in uploads:
            rows[submit(server, upload, name=f"r{round_}-{upload.name}")] = upload
    return rows


def assert_decided_as_a_clean_run(server: DevServer, rows: dict[int, Upload]) -> None:
    states = {row_id: row_state(server, row_id) for row_id in rows}
    wrong = {
        row_id: (upload.name, state)
        for row_id, upload in rows.items()
        if (state := states[row_id]) != expected_state(upload)
    }
    assert not wrong, f"rows not decided as a clean run would: {wrong}"


# --- NocoDB and the daemon dying ---------------------------------------------------------------


@pytest.mark.slow
def test_nocodb_killed_mid_sweep_and_restarted_loses_no_row_and_the_daemon_carries_on(
    clean_table: DevServer, references: Path, state_dir: Path, tmp_path: Path
) -> None:
    rows = submit_many(clean_table, MIX, rounds=5)
    env = guard_env(clean_table, state_dir, references, act_batch="2")  # outage mid-sweep

    with guard_daemon(clean_table, env, tmp_path / "daemon.log") as daemon:
        daemon.wait_until(lambda: len(daemon.decided()) >= 4, 120, "a sweep under way")
        clean_table.stop()
        stopped_at = time.monotonic()
        daemon.wait_until(lambda: len(daemon.events("sweep_interrupted")) >= 2, 60,
                          "passes cut short by the outage")
        time.sleep(max(0.0, 3 - (time.monotonic() - stopped_at)))  # a few failed ticks
        clean_table.start()
        daemon.wait_decided(list(rows), timeout=180)

        assert daemon.alive(), "the daemon exited while NocoDB was down"
    assert_decided_as_a_clean_run(clean_table, rows)


@pytest.mark.slow
def test_a_daemon_killed_with_sigkill_mid_sweep_ends_with_every_row_decided_as_a_clean_run(
    clean_table: DevServer, references: Path, state_dir: Path, tmp_path: Path
) -> None:
    rows = submit_many(clean_table, MIX, rounds=4)
    env = guard_env(clean_table, state_dir, references, act_batch="2")  # killed mid-sweep

    with guard_daemon(clean_table, env, tmp_path / "first.log") as first:
        first.wait_until(lambda: len(first.decided()) >= 3, 120, "a sweep under way")
        first.kill()
    decided_before_kill = len(first.decided())
    # What NocoDB still has pending, not what the first log shows: the kill may land between
    # acting on a row and logging it (that row is done, and rightly never decided again).
    pending = [int(r["Id"]) for r in clean_table.rows() if not r.get("Status")]
    with guard_daemon(clean_table, env, tmp_path / "second.log") as second:
        # the kernel released the flock of the killed process: the new one sweeps at once
        second.wait_decided([i for i in rows if i in pending], timeout=120)
        assert second.stop() == 0

    assert decided_before_kill < len(rows), "the kill came too late to test anything"
    assert_decided_as_a_clean_run(clean_table, rows)


def test_approving_or_deleting_a_row_twice_is_harmless(clean_table: DevServer) -> None:
    keep, drop = clean_table.insert([{"Politician": GRACE}, {"Politician": GRACE}])
    settings = load_settings(env_file=clean_table.env_file)

    with NocoDBClient(settings) as client:
        assert client.approve(keep, "first") == "approved"
        assert client.approve(keep, "second") == "approved"
        assert client.reject(drop, "first") == "deleted"
        assert client.reject(drop, "again") == "already_gone"  # the 404 is not an error

    assert row_state(clean_table, keep) == "approved"
    assert row_state(clean_table, drop) == "deleted"


# --- NocoDB answering badly (through the fault proxy) ---------------------------------------------


def test_downloads_failing_with_500_drops_cut_bodies_or_slowness_defer_rows_then_next_pass_decides(
    clean_table: DevServer, proxy: FaultProxy, listener: Listener, references: Path,
    state_dir: Path,
) -> None:
    """Also: a redirect is refused (and not followed), a body over the byte cap is too_large."""
    server = clean_table
    faulty = {
        submit(server, WRONG_PERSON, name="f500.png"): "500",
        submit(server, TEXT, name="fdrop.jpg"): "drop",
        submit(server, CAT, name="fcut.png"): "cut",
        submit(server, WRONG_PERSON, name="fslow.png"): "slow",
    }
    healthy = submit(server, MATCH)
    oversized = int(server.submit(GRACE, [("huge.png", noise_png(), "image/png")])["Id"])
    redirected = submit(server, TEXT, name="fredirect.jpg")
    proxy.add(Fault("status", path="/dltemp/.*fredirect", status=302,
                    location=f"http://127.0.0.1:{listener.port}/x.jpg"))
    proxy.add(Fault("status", path="/dltemp/.*f500", status=500))
    proxy.add(Fault("drop", path="/dltemp/.*fdrop"))
    proxy.add(Fault("drop_mid_body", path="/dltemp/.*fcut"))
    proxy.add(Fault("delay", path="/dltemp/.*fslow", delay=4.0))
    env = guard_env(server, state_dir, references, nocodb_url=proxy.url, read_timeout="2",
                    max_download_bytes=str(1_000_000))

    started = time.monotonic()
    code, report = sweep_json(server, env)
    first_pass_seconds = time.monotonic() - started

    outcomes = by_row(report)
    assert code == 1, report["summary"]
    for row_id in faulty:
        assert outcomes[row_id]["verdict"] == "deferred"
        assert outcomes[row_id]["reason"] == "transient_error"
        assert row_state(server, row_id) == "pending"
    assert row_state(server, healthy) == "approved"
    assert (outcomes[oversized]["reason"], row_state(server, oversized)) == ("too_large", "deleted")
    assert (outcomes[redirected]["reason"], row_state(server, redirected)) == (
        "url_not_allowed", "pending")
    assert listener.connections == 0, "a redirect was followed"
    assert first_pass_seconds < 90

    proxy.clear()
    code, report = sweep_json(server, env)

    assert code == 0, report["summary"]
    assert all(row_state(server, row_id) == "deleted" for row_id in [*faulty, redirected])


CDN_ERROR_PAGE = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>cloudfront</body></html>"


def test_a_proxy_answering_200_with_an_error_page_defers_rows_it_never_deletes_them(
    clean_table: DevServer, proxy: FaultProxy, references: Path, state_dir: Path
) -> None:
    """A CDN in front of NocoDB answers 200 with its own HTML or JSON page for attachments:
    those bytes are not the upload, so no verdict (not even not_an_image) is drawn."""
    server = clean_table
    html = {submit(server, upload, name=f"cdnhtml-{upload.name}"): upload for upload in MIX}
    json = {submit(server, upload, name=f"cdnjson-{upload.name}"): upload for upload in MIX}
    proxy.add(Fault("status", path="/dltemp/.*cdnhtml", status=200, payload=CDN_ERROR_PAGE,
                    content_type="text/html; charset=utf-8"))
    proxy.add(Fault("status", path="/dltemp/.*cdnjson", status=200,
                    payload=b'{"msg":"Internal error"}', content_type="application/json"))
    env = guard_env(server, state_dir, references, nocodb_url=proxy.url)

    code, report = sweep_json(server, env)

    outcomes = by_row(report)
    assert code == 1, report["summary"]
    for row_id in [*html, *json]:
        assert (outcomes[row_id]["verdict"], outcomes[row_id]["reason"]) == (
            "deferred", "transient_error"), outcomes[row_id]
        assert "not the uploaded file" in outcomes[row_id]["explanation"]
        assert row_state(server, row_id) == "pending"

    proxy.clear()
    sweep_json(server, env)

    assert_decided_as_a_clean_run(server, {**html, **json})


@pytest.mark.parametrize("status", [401, 403])
def test_an_attachment_answering_401_or_403_is_deferred_as_refused_not_missing(
    status: int, clean_table: DevServer, proxy: FaultProxy, references: Path, state_dir: Path
) -> None:
    """Access refused (a proxy's auth, a storage policy) is not "missing on NocoDB's side"."""
    server = clean_table
    row_id = submit(server, TEXT, name="refused.jpg")
    proxy.add(Fault("status", path="/dltemp/.*refused", status=status))
    env = guard_env(server, state_dir, references, nocodb_url=proxy.url)

    code, report = sweep_json(server, env)

    outcome = by_row(report)[row_id]
    assert code == 1, report["summary"]
    assert (outcome["verdict"], outcome["reason"]) == ("deferred", "transient_error")
    assert f"HTTP {status}" in outcome["explanation"]
    assert "access refused" in outcome["explanation"]
    assert "missing on NocoDB's side" not in outcome["explanation"]
    assert len(proxy.requests("/dltemp/.*refused")) == 2  # refreshed once, as for a 404
    assert row_state(server, row_id) == "pending"


def noise_png() -> bytes:
    """About 3 MB that no compressor can shrink: over a 1 MB download cap."""
    pixels = np.random.default_rng(1).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    return samples.encode(Image.fromarray(pixels), "PNG")


def test_a_slow_answer_and_a_429_with_retry_after_are_waited_out_once_and_the_pass_completes(
    clean_table: DevServer, proxy: FaultProxy, references: Path, state_dir: Path
) -> None:
    server = clean_table
    row_id = submit(server, MATCH)
    listing = "/api/v2/tables/.*/records\\?"
    proxy.add(Fault("delay", path=listing, method="GET", delay=3.0, times=1))
    proxy.add(Fault("status", path=listing, method="GET", status=429, retry_after="2", times=1))
    env = guard_env(server, state_dir, references, nocodb_url=proxy.url, retry_seconds="20",
                    read_timeout="2")

    code, _ = sweep_json(server, env)

    assert code == 0
    assert row_state(server, row_id) == "approved"
    listings = proxy.requests(listing, method="GET")
    outcomes = [entry.outcome for entry in listings[:3]]
    assert outcomes == ["delay", "status", "forwarded"]
    gap = listings[2].at - listings[1].at
    assert gap >= 1.9, f"Retry-After: 2 not honoured: {gap}"


def test_nocodb_answering_503_beyond_the_retry_budget_stops_the_pass_in_bounded_time(
    clean_table: DevServer, proxy: FaultProxy, references: Path, state_dir: Path
) -> None:
    server = clean_table
    rows = {submit(server, upload): upload for upload in (WRONG_PERSON, TEXT)}
    proxy.add(Fault("status", path="^/api/", status=503))
    env = guard_env(server, state_dir, references, nocodb_url=proxy.url, retry_seconds="3")

    started = time.monotonic()
    result = run_cli(server, env, "sweep")
    elapsed = time.monotonic() - started

    assert result.returncode == 3, result.stderr[-2000:]
    assert "HTTP 503" in result.stderr
    assert elapsed < 60
    attempts = len(proxy.requests("^/api/"))
    assert 2 <= attempts <= 20, f"{attempts} attempts in a 3 s budget"
    assert all(row_state(server, row_id) == "pending" for row_id in rows)


def test_a_delete_answering_500_leaves_the_row_and_the_next_pass_deletes_it(
    clean_table: DevServer, proxy: FaultProxy, references: Path, state_dir: Path
) -> None:
    server = clean_table
    doomed = submit(server, TEXT)
    kept = submit(server, MATCH)
    proxy.add(Fault("status", path="/records", method="DELETE", status=500))
    env = guard_env(server, state_dir, references, nocodb_url=proxy.url, retry_seconds="2")

    code, report = sweep_json(server, env)

    assert code == 3, report["summary"]  # the pass stops at the first DELETE that fails
    assert row_state(server, doomed) == "pending"
    assert row_state(server, kept) == "pending"
    proxy.clear()
    code, _ = sweep_json(server, env)
    assert code == 0
    assert row_state(server, doomed) == "deleted"
    assert row_state(server, kept) == "approved"


# --- admins, expired links and missing files ------------------------------------------------------


def test_rows_changed_under_the_daemon_are_handled_with_a_clear_event_and_no_crash(
    clean_table: DevServer, proxy: FaultProxy, references: Path, state_dir: Path
) -> None:
    server = clean_table
    edited = submit(server, CAT, name="edited.png")
    vanished = submit(server, WRONG_PERSON, name="vanished.png")
    vanished_match = submit(server, MATCH, name="vanishing.jpg")
    expired = submit(server, TEXT, name="expired.jpg")
    missing = submit(server, MATCH, name="missing.jpg")

    def admin_edits() -> None:
        nocodb_admin.update_rows(
            server.url, server.token, server.table_id, [{"Id": edited, "Politician": GRACE}]
        )

    def admin_deletes() -> None:
        nocodb_admin.delete_rows(
            server.url, server.token, server.table_id, [vanished, vanished_match]
        )

    proxy.add(Fault("callback", path="/dltemp/.*edited", callback=admin_edits, times=1))
    proxy.add(Fault("callback", path="/dltemp/.*vanished", callback=admin_deletes, times=1))
    proxy.add(Fault("status", path="/dltemp/.*expired", status=404, times=1))
    remove_stored_file(server, missing)
    env = guard_env(server, state_dir, references, nocodb_url=proxy.url)

    code, report = sweep_json(server, env)

    outcomes = by_row(report)
    assert outcomes[edited]["action"] == "changed_meanwhile"
    assert row_state(server, edited) == "pending"  # judged again on the next pass
    assert outcomes[vanished]["action"] in ("gone", "already_gone")
    assert outcomes[vanished_match]["action"] == "gone"  # approving a deleted row
    assert row_state(server, vanished_match) == "deleted"
    assert outcomes[expired]["action"] == "deleted"  # a fresh link was fetched
    # the file itself: the 404, the fresh link, then the purge's check that it is gone
    assert len(proxy.requests("^/dltemp/(?!.*/thumbnails/).*expired")) == 3
    assert outcomes[missing]["verdict"] == "deferred"
    assert "missing on NocoDB's side" in outcomes[missing]["explanation"]
    assert row_state(server, missing) == "pending"
    assert code == 1, report["summary"]


def remove_stored_file(server: DevServer, row_id: int) -> None:
    """Delete the row's file from NocoDB's upload storage, as a disk mishap would."""
    row = server.row(row_id)
    assert row is not None
    stored = row["Photo"][0]["path"].removeprefix("download/")
    target = server.dir / "nc" / "uploads" / stored
    assert target.is_file(), f"NocoDB stores uploads elsewhere than {target}"
    target.unlink()


# --- operators' mistakes ------------------------------------------------------------------------


def test_a_wrong_token_or_table_id_stops_with_a_clear_message_and_rows_untouched(
    clean_table: DevServer, references: Path, state_dir: Path
) -> None:
    row_id = submit(clean_table, TEXT)
    wrong_token = "not-the-token-" + "x" * 20

    bad_token = run_cli(
        clean_table, guard_env(clean_table, state_dir, references, nocodb_token=wrong_token), "run",
        timeout=60,
    )
    bad_table = run_cli(
        clean_table, guard_env(clean_table, state_dir, references, table_id="mdoesnotexist"),
        "run", timeout=60,
    )

    assert bad_token.returncode == 3
    assert "rejected the API token" in bad_token.stderr
    assert wrong_token not in bad_token.stdout + bad_token.stderr
    assert bad_table.returncode == 3
    assert "not found" in bad_table.stderr and "table_id" in bad_table.stderr
    assert row_state(clean_table, row_id) == "pending"


def test_a_reference_photo_with_two_faces_stops_start_up_naming_it_and_rows_untouched(
    clean_table: DevServer, state_dir: Path, tmp_path: Path
) -> None:
    refs = install_demo_references(tmp_path / "refs")
    (refs / "grace_hopper_demo" / "group.jpg").write_bytes(samples.two_faces_side_by_side())
    row_id = submit(clean_table, TEXT)

    result = run_cli(clean_table, guard_env(clean_table, state_dir, refs), "run", timeout=90)

    assert result.returncode == 2
    assert "group.jpg" in result.stderr
    assert row_state(clean_table, row_id) == "pending"


def test_a_politician_without_a_reference_folder_has_its_rows_left_untouched(
    clean_table: DevServer, state_dir: Path, tmp_path: Path
) -> None:
    refs = install_demo_references(tmp_path / "refs")
    for folder in refs.iterdir():
        if folder.name == "grace_hopper_demo":
            for photo in folder.iterdir():
                photo.unlink()
            folder.rmdir()
    rows = [submit(clean_table, TEXT), submit(clean_table, WRONG_PERSON),
            int(clean_table.submit(NOBODY, [("x.jpg", samples.text_as_jpg(), "image/jpeg")])["Id"])]
    env = guard_env(clean_table, state_dir, refs)

    check = run_cli(clean_table, env, "check")
    code, report = sweep_json(clean_table, env)

    assert check.returncode == 1
    assert "no reference photos" in check.stdout
    assert code == 1
    assert {entry["reason"] for entry in report["rows"]} == {"unknown_politician"}
    assert all(row_state(clean_table, row_id) == "pending" for row_id in rows)


def test_an_option_renamed_in_nocodb_leaves_its_rows_untouched(
    clean_table: DevServer, references: Path, state_dir: Path
) -> None:
    row_id = submit(clean_table, CAT)
    kept = submit(clean_table, Upload(EILEEN, "a.png", samples.astronaut_png, "approved", "match"))
    rename_option(clean_table, EILEEN, "Eileen Collins")
    try:
        code, report = sweep_json(clean_table, guard_env(clean_table, state_dir, references))
    finally:
        rename_option(clean_table, "Eileen Collins", EILEEN)

    outcomes = by_row(report)
    assert outcomes[row_id]["reason"] == "unknown_politician"
    assert outcomes[kept]["reason"] == "unknown_politician"
    assert code == 1
    assert row_state(clean_table, row_id) == "pending"
    assert row_state(clean_table, kept) == "pending"


def rename_option(server: DevServer, old: str, new: str) -> None:
    """What an admin does in NocoDB's field editor: same option id, new title."""
    column = nocodb_admin._column(server.url, server.token, server.table_id, "Politician")
    for option in column["colOptions"]["options"]:
        if option["title"] == old:
            option["title"] = new
    response = requests.patch(
        f"{server.url}/api/v2/meta/columns/{column['id']}",
        headers={"xc-token": server.token},
        json=column,
        timeout=30,
    )
    assert response.status_code < 300, response.text
