"""The demo behind ./scripts/demo: a real NocoDB, real uploads, the real daemon.

Steps (each printed as it happens):
1. reference photos for two demo identities are copied from pictures shipped inside
   installed packages (never committed): matplotlib's grace_hopper.jpg and
   scikit-image's astronaut.png (Eileen Collins);
2. five uploads are submitted through the public shared form, exactly as an anonymous
   visitor's browser does: a matching picture, the wrong person, two faces, a cat and a
   text file named .jpg;
3. ``nocodb-guard run`` (the service) moderates them;
4. what happened to each row is printed (for a deleted row, whether its file is still on
   NocoDB's disk and what an anonymous fetch of it answers), with the form URL for your
   own uploads and the public gallery's.

Run through ./scripts/demo, which sets up the environment and the NocoDB server first.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nocodb_guard import samples  # noqa: E402
from nocodb_guard.trust.audit import AuditLog  # noqa: E402
from tests import nocodb_admin  # noqa: E402
from tests.demo_references import install_demo_references  # noqa: E402

GRACE = "Grace Hopper (demo)"
EILEEN = "Eileen Collins (demo)"


UPLOADS = [
    ("a matching picture", GRACE, "grace.jpg", samples.grace_hopper_variant, "image/jpeg"),
    ("the wrong person", GRACE, "astronaut.png", samples.astronaut_png, "image/png"),
    ("two faces", EILEEN, "two.jpg", samples.two_faces_side_by_side, "image/jpeg"),
    ("a cat", EILEEN, "chelsea.png", samples.chelsea_png, "image/png"),
    ("a text file named .jpg", GRACE, "notes.jpg", samples.text_as_jpg, "image/jpeg"),
]


@dataclass(frozen=True)
class Submitted:
    """One sample upload: what it is, and where NocoDB stored its files (attachment `path`)."""

    label: str
    paths: tuple[str, ...]


def submit_samples(env: dict[str, str]) -> dict[int, Submitted]:
    submitted = {}
    for label, politician, name, make, mimetype in UPLOADS:
        row = nocodb_admin.submit_form(
            env["NOCODB_GUARD_NOCODB_URL"], env["NOCODB_DEV_FORM_UUID"], politician,
            [(name, make(), mimetype)], title=label,
        )
        paths = tuple(str(item["path"]) for item in row["Photo"])
        submitted[int(row["Id"])] = Submitted(label, paths)
        print(f"  submitted row {row['Id']}: {label} ({name}, as {politician})")
    return submitted


def wait_for_decisions(env: dict[str, str], ids: dict[int, Submitted], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [
            r for r in nocodb_admin.list_rows(
                env["NOCODB_GUARD_NOCODB_URL"], env["NOCODB_GUARD_NOCODB_TOKEN"],
                env["NOCODB_GUARD_TABLE_ID"],
            )
            if int(r["Id"]) in ids and not r.get("Status")
        ]
        if not pending:
            return
        time.sleep(1)
    print(f"  (still pending after {timeout:.0f}s: see the daemon log)")


def files_left(env: dict[str, str], paths: tuple[str, ...]) -> str:
    """A deleted row's files: still on NocoDB's disk? What does an anonymous fetch answer?"""
    uploads = Path(env["NOCODB_GUARD_NOCODB_DATA_DIR"]) / "nc" / "uploads"
    on_disk = sum((uploads / path.removeprefix("download/")).exists() for path in paths)
    url = env["NOCODB_GUARD_NOCODB_URL"]
    answers = sorted({requests.get(f"{url}/{path}", timeout=30).status_code for path in paths})
    return (f"files on NocoDB's disk: {on_disk} of {len(paths)}, "
            f"anonymous fetch answers {', '.join(map(str, answers))}")


def audit_records(audit: AuditLog, row_id: int, wait_s: float = 15.0) -> list[dict[str, Any]]:
    """The row's audit records; a deleted row's record follows its purge, so wait a little."""
    deadline = time.monotonic() + wait_s
    while not (records := list(audit.query(row_id=row_id))) and time.monotonic() < deadline:
        time.sleep(0.5)
    return records


def show_results(env: dict[str, str], ids: dict[int, Submitted], state_dir: Path) -> None:
    """The table as NocoDB has it now; for deleted rows, why (from the audit trail)."""
    print("\nWhat happened to each upload:")
    audit = AuditLog(state_dir)
    for row_id, upload in ids.items():
        row = nocodb_admin.get_row(
            env["NOCODB_GUARD_NOCODB_URL"], env["NOCODB_GUARD_NOCODB_TOKEN"],
            env["NOCODB_GUARD_TABLE_ID"], row_id,
        )
        if row is None:
            records = audit_records(audit, row_id)
            why = f" ({records[-1]['reason']}: {records[-1]['explanation']})" if records else ""
            outcome = f"deleted{why}\n{'':<33}   {files_left(env, upload.paths)}"
        else:
            outcome = f"{row.get('Status') or 'pending'}: {row.get('Reason') or ''}"
        print(f"  row {row_id:<4} {upload.label:<24} -> {outcome}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--serve", action="store_true",
                        help="keep the daemon running afterwards (Ctrl-C to stop)")
    args = parser.parse_args()
    env = nocodb_admin.read_env_file(args.env_file)
    data_dir = args.env_file.parent
    references = data_dir / "reference_faces"
    install_demo_references(references)
    print(f"references: {references} (copied from installed packages)")

    daemon_env = dict(os.environ)
    daemon_env.update(
        NOCODB_GUARD_REFERENCE_DIR=str(references),
        NOCODB_GUARD_STATE_DIR=str(data_dir / "guard-state"),
        NOCODB_GUARD_POLL_INTERVAL="2",
        NOCODB_GUARD_LOG_FORMAT="console",
    )
    log_path = data_dir / "daemon.log"
    print(f"starting the daemon: nocodb-guard run (log: {log_path})")
    with log_path.open("ab") as log:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "nocodb-guard"), "--env-file", str(args.env_file),
             "run"],
            env=daemon_env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        print("uploading through the public form, as a visitor would:")
        ids = submit_samples(env)
        wait_for_decisions(env, ids, timeout=120)
        show_results(env, ids, data_dir / "guard-state")
        dashboard = f"{env['NOCODB_GUARD_NOCODB_URL']}/dashboard/#/nc"
        print(f"\nThe form:    {dashboard}/form/{env['NOCODB_DEV_FORM_UUID']}")
        print(f"The gallery: {dashboard}/gallery/{env['NOCODB_DEV_GALLERY_UUID']} (approved only)")
        if args.serve:
            print("The daemon keeps moderating: upload your own pictures there. Ctrl-C to stop.")
            daemon.wait()
    except KeyboardInterrupt:
        pass
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
