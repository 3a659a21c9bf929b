"""Run the real ``nocodb-guard`` (daemon or one-shot CLI) as a subprocess against the test NocoDB.

Used by the reliability, hostile-input and privacy tests. Everything a guard process prints
is kept in :data:`OUTPUTS` for the whole session, so that a test can prove the API token
never appeared in any of it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from nocodb_guard import samples
from tests.integration.conftest import REPO, DevServer

GRACE = "Grace Hopper (demo)"
EILEEN = "Eileen Collins (demo)"
NOBODY = "Nobody Configured"

#: (label, text) of everything any guard process printed in this test session.
OUTPUTS: list[tuple[str, str]] = []

STOP_TIMEOUT_S = 70.0  # the daemon's own stop bound is 60 s


def grace_variant() -> bytes:
    """Another photo of Grace Hopper: mirrored, cropped, re-encoded (not the reference file)."""
    image = Image.open(samples.grace_hopper_path()).convert("RGB")
    image = ImageOps.mirror(image).crop((20, 10, image.width - 10, image.height - 40))
    buffer = io.BytesIO()
    image.resize((image.width * 3 // 4, image.height * 3 // 4)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@dataclass(frozen=True)
class Upload:
    """A picture a visitor submits, and what a clean run must do with its row."""

    politician: str
    name: str
    make: Callable[[], bytes]
    verdict: str  # approved / rejected / deferred
    reason: str


#: Cheap uploads with certain outcomes, for tests that need many rows.
MATCH = Upload(GRACE, "grace.jpg", grace_variant, "approved", "match")
WRONG_PERSON = Upload(GRACE, "astronaut.png", samples.astronaut_png, "rejected", "no_match")
CAT = Upload(EILEEN, "chelsea.png", samples.chelsea_png, "rejected", "no_face")
TEXT = Upload(GRACE, "notes.jpg", samples.text_as_jpg, "rejected", "not_an_image")
MIX = (MATCH, WRONG_PERSON, CAT, TEXT)


def submit(server: DevServer, upload: Upload, name: str | None = None) -> int:
    """Submit through the public form; returns the new row's Id."""
    row = server.submit(upload.politician, [(name or upload.name, upload.make(), "image/jpeg")])
    return int(row["Id"])


def row_state(server: DevServer, row_id: int) -> str:
    """``deleted``, ``approved`` or ``pending`` (blank status), as NocoDB holds it now."""
    row = server.row(row_id)
    if row is None:
        return "deleted"
    return str(row.get("Status") or "pending")


def expected_state(upload: Upload) -> str:
    return {"approved": "approved", "rejected": "deleted"}.get(upload.verdict, "pending")


def guard_env(
    server: DevServer, state_dir: Path, reference_dir: Path, **overrides: str
) -> dict[str, str]:
    """Environment for a guard process: the server's settings plus test-sized timings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOCODB_GUARD_")}
    env.update(
        {
            "NOCODB_GUARD_REFERENCE_DIR": str(reference_dir),
            "NOCODB_GUARD_STATE_DIR": str(state_dir),
            "NOCODB_GUARD_POLL_INTERVAL": "1",
            "NOCODB_GUARD_WORKERS": "0",
            "NOCODB_GUARD_LOG_FORMAT": "json",
            "NOCODB_GUARD_RETRY_SECONDS": "3",
            "NOCODB_GUARD_CONNECT_TIMEOUT": "2",
            "NOCODB_GUARD_READ_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({f"NOCODB_GUARD_{key.upper()}": value for key, value in overrides.items()})
    return env


def command(server: DevServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "nocodb_guard", "--env-file", str(server.env_file), *args]


def run_cli(
    server: DevServer, env: Mapping[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """A one-shot command (sweep, check...), its output kept in :data:`OUTPUTS`."""
    result = subprocess.run(
        command(server, *args),
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    OUTPUTS.append((f"nocodb-guard {' '.join(args)}", result.stdout + result.stderr))
    return result


def sweep_json(
    server: DevServer, env: Mapping[str, str], timeout: float = 180
) -> tuple[int, dict[str, Any]]:
    """``nocodb-guard sweep --json``: (exit code, the printed object)."""
    result = run_cli(server, env, "sweep", "--json", timeout=timeout)
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"sweep printed no JSON (rc {result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr[-3000:]}") from exc


def by_row(report: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(entry["id"]): entry for entry in report["rows"]}


@dataclass
class GuardDaemon:
    """``nocodb-guard run`` in the background, its JSON log in ``log_path``."""

    server: DevServer
    env: dict[str, str]
    log_path: Path
    cwd: Path = REPO
    """The working directory (the privacy test watches it)."""
    process: subprocess.Popen[bytes] | None = None
    _offset: int = 0
    _events: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> GuardDaemon:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                command(self.server, "run"),
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Parsed JSON log lines so far (optionally only those whose ``event`` is ``name``)."""
        text = self.output()
        new, self._offset = text[self._offset :], len(text)
        # keep a trailing partial line for the next read
        if new and not new.endswith("\n"):
            cut = new.rfind("\n") + 1
            self._offset -= len(new) - cut
            new = new[:cut]
        for line in new.splitlines():
            if line.startswith("{"):
                try:
                    self._events.append(json.loads(line))
                except ValueError:
                    continue
        return [e for e in self._events if name is None or e.get("event") == name]

    def decided(self) -> dict[int, dict[str, Any]]:
        """Row id -> the last ``row_decided`` event about it."""
        return {int(e["row_id"]): e for e in self.events("row_decided")}

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if not self.alive():
                raise AssertionError(f"daemon exited ({self.process and self.process.returncode}) "
                                     f"while waiting for {what}:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n"
                             f"{self.output()[-4000:]}")

    def wait_decided(self, ids: Sequence[int], timeout: float, final: bool = True) -> None:
        """Until every row has a ``row_decided`` event (a final verdict if ``final``)."""
        def done() -> bool:
            decided = self.decided()
            return all(
                i in decided and (not final or decided[i]["verdict"] != "deferred") for i in ids
            )

        self.wait_until(done, timeout, f"decisions on rows {list(ids)}")

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._keep_output()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or cleaned up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self._keep_output()

    def _keep_output(self) -> None:
        label = f"nocodb-guard run ({self.log_path})"
        OUTPUTS[:] = [entry for entry in OUTPUTS if entry[0] != label]
        OUTPUTS.append((label, self.output()))


@contextmanager
def guard_daemon(
    server: DevServer, env: dict[str, str], log_path: Path, cwd: Path = REPO
) -> Iterator[GuardDaemon]:
    """A started daemon that is always stopped (and its output kept) when the block ends."""
    daemon = GuardDaemon(server, env, log_path, cwd).start()
    try:
        yield daemon
    finally:
        if daemon.alive():
            daemon.stop()
        else:
            daemon._keep_output()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc), e.g. the daemon and its face workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident memory) of one process, in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0
