"""Nothing about an uploader reaches the disk, and the API token reaches no output.

- The daemon runs with its state directory, ``TMPDIR``, ``$HOME`` and its working directory
  pointed at watched folders; after it moderated real uploads, the state dir holds only
  reference caches, the heartbeat, the audit trail and the lock, the others nothing, and no
  file anywhere in them, nor any file that appeared in ``/dev/shm`` (where shared memory
  would land), holds a slice of an upload.
- Everything every guard process printed during this test session (daemon logs at debug
  level, ``--json`` outputs, error messages after injected faults, the metrics page) is
  searched for the token.

This module runs after test_faults.py and test_hostile_uploads.py (alphabetical order), so
its token check also covers every guard process those tests ran.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.demo_references import install_demo_references
from tests.faultproxy import Fault, running_proxy
from tests.integration.conftest import DevServer, free_port
from tests.integration.guard_process import (
    CAT,
    MATCH,
    OUTPUTS,
    TEXT,
    WRONG_PERSON,
    guard_daemon,
    guard_env,
    run_cli,
    submit,
)

#: Files the daemon may leave behind, relative to its state directory.
ALLOWED_STATE_FILES = (
    re.compile(r"^reference-cache/[0-9a-f]{64}-[\w.-]+\.npy$"),
    re.compile(r"^heartbeat\.json$"),
    re.compile(r"^audit/audit-\d{4}-\d{2}-\d{2}\.jsonl$"),
    re.compile(r"^sweep\.lock$"),
    # Storage paths of files to purge / seen in the table (never bytes): storage/queue.py
    re.compile(r"^purge-queue\.json$"),
    re.compile(r"^storage-ledger\.jsonl$"),
)
SLICE = 64


#: POSIX shared memory: multiprocessing's semaphores appear here, and so would any buffer
#: shared with a worker; nothing in it may hold a piece of an upload.
SHM = Path("/dev/shm")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def slices(data: bytes) -> list[bytes]:
    """A few distinctive pieces of an upload: any of them on disk would be a leak."""
    points = (len(data) // 4, len(data) // 2, max(0, len(data) - 2 * SLICE))
    return [data[p : p + SLICE] for p in points if len(data[p : p + SLICE]) == SLICE]


@pytest.mark.slow
def test_no_uploaded_picture_or_face_encoding_is_ever_written_to_disk(
    clean_table: DevServer, tmp_path: Path
) -> None:
    uploads = {upload.name: upload.make() for upload in (MATCH, WRONG_PERSON, CAT, TEXT)}
    ids = [
        int(clean_table.submit(upload.politician, [(upload.name, uploads[upload.name],
                                                    "image/jpeg")])["Id"])
        for upload in (MATCH, WRONG_PERSON, CAT, TEXT)
    ]
    state, temp, work, home = (tmp_path / name for name in ("state", "tmp", "work", "home"))
    for folder in (temp, work, home):
        folder.mkdir()
    refs = install_demo_references(tmp_path / "refs")
    env = guard_env(clean_table, state, refs, workers="1")
    env.update(TMPDIR=str(temp), HOME=str(home))
    shared_memory_before = set(all_files(SHM)) if SHM.is_dir() else set()

    with guard_daemon(clean_table, env, tmp_path / "daemon.log", cwd=work) as daemon:
        daemon.wait_decided(ids, timeout=180)
        daemon.wait_until((state / "heartbeat.json").exists, 30, "a heartbeat")
        assert daemon.stop() == 0

    unexpected = [
        str(path.relative_to(state))
        for path in all_files(state)
        if not any(rule.match(str(path.relative_to(state))) for rule in ALLOWED_STATE_FILES)
    ]
    assert not unexpected, f"unexpected files in the state dir: {unexpected}"
    assert all_files(temp) == [], "the daemon wrote temporary files"
    assert all_files(work) == [], "the daemon wrote to its working directory"
    assert all_files(home) == [], "the daemon wrote to $HOME"
    assert (state / "heartbeat.json").is_file()
    assert list((state / "audit").glob("audit-*.jsonl")), "no audit trail was written"
    caches = list((state / "reference-cache").glob("*.npy"))
    assert len(caches) == 2, "only the two reference photos may have cached encodings"
    shared_memory = set(all_files(SHM)) - shared_memory_before if SHM.is_dir() else set()
    for path in all_files(state) + all_files(temp) + sorted(shared_memory):
        content = path.read_bytes()
        for name, data in uploads.items():
            assert not any(piece in content for piece in slices(data)), f"{name} in {path}"
    for line in (state / "audit").glob("*.jsonl"):
        for record in map(json.loads, line.read_text().splitlines()):
            assert not _has_vector(record), f"a vector in an audit record: {record}"


def _has_vector(value: object) -> bool:
    """True for any list of 100+ numbers (a face encoding has 128) nested in ``value``."""
    if isinstance(value, dict):
        return any(_has_vector(v) for v in value.values())
    if isinstance(value, list):
        if len(value) >= 100 and all(isinstance(v, int | float) for v in value):
            return True
        return any(_has_vector(v) for v in value)
    return False


def test_the_token_never_appears_in_logs_json_output_errors_or_metrics(
    clean_table: DevServer, tmp_path: Path
) -> None:
    token = clean_table.token
    state, refs = tmp_path / "state", install_demo_references(tmp_path / "refs")
    env = guard_env(clean_table, state, refs, log_level="debug")
    for upload in (MATCH, TEXT):
        submit(clean_table, upload)
    texts: list[tuple[str, str]] = []
    for args in (("check", "--json"), ("references", "--json"), ("sweep", "--json"),
                 ("history", "--json"), ("health",)):
        result = run_cli(clean_table, env, *args)
        texts.append((" ".join(args), result.stdout + result.stderr))
    with running_proxy(clean_table.url) as proxy:
        proxy.add(Fault("status", path="^/api/", status=500))
        submit(clean_table, TEXT)
        failing = run_cli(clean_table, {**env, "NOCODB_GUARD_NOCODB_URL": proxy.url,
                                        "NOCODB_GUARD_RETRY_SECONDS": "1"}, "sweep", "--json")
    assert failing.returncode == 3
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "nocodb_token").write_text(token + "\n")
    env_without_token = tmp_path / "guard.env"
    env_without_token.write_text("".join(
        line for line in clean_table.env_file.read_text().splitlines(keepends=True)
        if not line.startswith("NOCODB_GUARD_NOCODB_TOKEN=")))
    from_secret_file = subprocess.run(
        [sys.executable, "-m", "nocodb_guard", "--env-file", str(env_without_token),
         "--secrets-dir", str(secrets), "check", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    texts.append(("check with --secrets-dir", from_secret_file.stdout + from_secret_file.stderr))
    checks = {entry["name"]: entry["ok"] for entry in json.loads(from_secret_file.stdout)}
    assert checks["nocodb"], "the token from the secret file was not used"
    port = free_port()
    with guard_daemon(clean_table, {**env, "NOCODB_GUARD_METRICS_PORT": str(port)},
                      tmp_path / "daemon.log") as daemon:
        daemon.wait_until(lambda: bool(daemon.events("sweep_done")), 120, "a sweep")
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    texts.append(("metrics", metrics))

    everything = [*OUTPUTS, *texts]
    leaks = [label for label, text in everything if token in text]
    assert not leaks, f"the token appeared in: {leaks}"
    assert len(everything) >= 8
    assert any("nocodb.request" in text for _, text in everything), "debug logs were not on"
