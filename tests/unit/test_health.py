"""Heartbeat file and the health check built on it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nocodb_guard.service.health import (
    HEARTBEAT_FILE,
    check_health,
    health_main,
    read_heartbeat,
    write_heartbeat,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_a_written_heartbeat_reads_back_with_time_counts_and_pid(tmp_path: Path) -> None:
    write_heartbeat(tmp_path, {"approved": 2, "rejected": 1}, now=NOW)
    heartbeat = read_heartbeat(tmp_path)
    assert heartbeat is not None
    assert heartbeat.last_success == NOW
    assert heartbeat.summary == {"approved": 2, "rejected": 1}
    assert heartbeat.pid == os.getpid()


def test_health_json_shows_the_queue_depth_and_the_pacing_of_the_last_pass(
    tmp_path: Path,
) -> None:
    write_heartbeat(tmp_path, {"approved": 2}, now=NOW, pending=17, paced_seconds=4.25)

    report = check_health(tmp_path, 300, now=NOW + timedelta(seconds=10)).as_json()

    assert report["ok"] is True
    assert (report["pending"], report["paced_seconds"], report["age_seconds"]) == (17, 4.2, 10.0)
    assert report["summary"] == {"approved": 2}
    assert "pending=17" in report["message"]


def test_health_json_without_a_heartbeat_says_so_with_nulls(tmp_path: Path) -> None:
    report = check_health(tmp_path, 300, now=NOW).as_json()

    assert report["ok"] is False
    assert report["pending"] is None and report["last_success"] is None


def test_the_heartbeat_file_holds_an_iso_utc_time(tmp_path: Path) -> None:
    write_heartbeat(tmp_path, {}, now=NOW)
    data = json.loads((tmp_path / HEARTBEAT_FILE).read_text())
    assert data["last_success"] == "2026-05-01T12:00:00+00:00"


def test_writing_replaces_the_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_heartbeat(tmp_path, {"approved": 1}, now=NOW)
    write_heartbeat(tmp_path, {"approved": 5}, now=NOW + timedelta(minutes=1))
    assert [p.name for p in tmp_path.iterdir()] == [HEARTBEAT_FILE]
    heartbeat = read_heartbeat(tmp_path)
    assert heartbeat is not None
    assert heartbeat.summary == {"approved": 5}


def test_a_missing_state_dir_is_created(tmp_path: Path) -> None:
    write_heartbeat(tmp_path / "state" / "deeper", {}, now=NOW)
    assert (tmp_path / "state" / "deeper" / HEARTBEAT_FILE).is_file()


def test_a_fresh_heartbeat_is_healthy(tmp_path: Path) -> None:
    write_heartbeat(tmp_path, {"approved": 3}, now=NOW - timedelta(seconds=30))
    status = check_health(tmp_path, max_age_seconds=300, now=NOW)
    assert status.ok
    assert status.age == 30.0
    assert "approved=3" in status.message


def test_a_stale_heartbeat_is_unhealthy_and_says_how_old_it_is(tmp_path: Path) -> None:
    write_heartbeat(tmp_path, {}, now=NOW - timedelta(seconds=301))
    status = check_health(tmp_path, max_age_seconds=300, now=NOW)
    assert not status.ok
    assert status.age == 301.0
    assert "301s ago" in status.message


def test_no_heartbeat_yet_is_unhealthy(tmp_path: Path) -> None:
    status = check_health(tmp_path, max_age_seconds=300, now=NOW)
    assert not status.ok
    assert status.age is None
    assert "no successful sweep" in status.message


def test_a_corrupt_heartbeat_is_unhealthy_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / HEARTBEAT_FILE).write_text('{"last_success": "yesterday"')
    status = check_health(tmp_path, max_age_seconds=300, now=NOW)
    assert not status.ok
    assert "corrupt" in status.message


def test_a_heartbeat_without_time_zone_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / HEARTBEAT_FILE).write_text('{"last_success": "2026-05-01T12:00:00"}')
    assert not check_health(tmp_path, max_age_seconds=300, now=NOW).ok


def test_a_heartbeat_slightly_in_the_future_counts_as_fresh(tmp_path: Path) -> None:
    write_heartbeat(tmp_path, {}, now=NOW + timedelta(seconds=5))
    status = check_health(tmp_path, max_age_seconds=300, now=NOW)
    assert status.ok
    assert status.age == 0.0


def test_health_main_exits_0_when_healthy_and_1_when_not(tmp_path: Path) -> None:
    lines: list[str] = []
    assert health_main(tmp_path, 300, lines.append, now=NOW) == 1
    write_heartbeat(tmp_path, {"approved": 1}, now=NOW)
    assert health_main(tmp_path, 300, lines.append, now=NOW) == 0
    assert lines[0].startswith("unhealthy: ")
    assert lines[1].startswith("ok: ")
