"""A real NocoDB for the integration tests, started by the suite itself.

One server per test session (start-up costs ~10 s, the npm install is cached per machine),
on a fresh temp data dir and a free port, bootstrapped by `scripts/nocodb-dev up` exactly as
operators run it. Tests share it and empty the table with the `clean_table` fixture.
Every test under tests/integration/ is marked `integration`.

The database is NocoDB's SQLite unless NOCODB_DEV_DB=postgres (what production runs):
`scripts/test` runs the integration tests once on each.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import nocodb_admin
from tests.demo_references import install_demo_references
from tests.nocodb_admin import read_env_file

REPO = Path(__file__).resolve().parents[2]
NOCODB_DEV = REPO / "scripts" / "nocodb-dev"
HERE = Path(__file__).resolve().parent
# "Nobody Configured" is a valid form option with no reference photos: the daemon must leave
# its rows alone (an operator's misconfiguration is never a reason to delete).
POLITICIANS = ("obama", "Grace Hopper (demo)", "Eileen Collins (demo)", "Nobody Configured")
UP_TIMEOUT_S = 900  # the first run on a machine installs and compiles (~4 min on 2 cores)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything in this directory `integration` (so `-m "not integration"` works)."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def database() -> str:
    """The database the session's NocoDB runs on (scripts/nocodb-dev reads the same variable)."""
    return os.environ.get("NOCODB_DEV_DB") or "sqlite"


def pytest_report_header() -> str:
    return f"nocodb-dev database: {database()} (NOCODB_DEV_DB)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevServer:
    """Handle on the session's NocoDB: its settings, and the visitor/admin actions tests need."""

    dir: Path
    port: int
    politicians: tuple[str, ...]
    db: str = field(default_factory=database)
    env: dict[str, str] = field(default_factory=dict)
    nocodb_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for NocoDB itself (e.g. ``NC_S3_*``); the shared server has none."""

    # ----------------------------------------------------------- lifecycle
    def run(
        self, command: str, *args: str, timeout: float = UP_TIMEOUT_S, db: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `scripts/nocodb-dev COMMAND` against this server's data dir, port and database."""
        process_env = dict(os.environ)
        process_env.update(
            {
                "NOCODB_DEV_DIR": str(self.dir),
                "NOCODB_DEV_PORT": str(self.port),
                "NOCODB_DEV_DB": db or self.db,
            }
        )
        process_env.update(self.nocodb_env)
        return subprocess.run(
            [sys.executable, str(NOCODB_DEV), command, *args],
            env=process_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        """`up` (idempotent): starts the process if stopped, then re-reads guard.env."""
        args = [arg for label in self.politicians for arg in ("--politician", label)]
        result = self.run("up", *args)
        if result.returncode != 0:
            raise RuntimeError(f"nocodb-dev up failed ({result.returncode}):\n{result.stderr}")
        self.env = read_env_file(self.env_file)

    def stop(self) -> None:
        """`down`: SIGTERM our server process; the data dir stays for a later start()."""
        result = self.run("down", timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"nocodb-dev down failed:\n{result.stderr}")

    def pid(self) -> int | None:
        try:
            return int((self.dir / "nocodb.pid").read_text().strip())
        except FileNotFoundError:
            return None

    def log_text(self) -> str:
        log = self.dir / "nocodb.log"
        return log.read_text(errors="replace") if log.exists() else ""

    # ----------------------------------------------------------- settings
    @property
    def env_file(self) -> Path:
        return self.dir / "guard.env"

    @property
    def url(self) -> str:
        return self.env["NOCODB_GUARD_NOCODB_URL"]

    @property
    def token(self) -> str:
        return self.env["NOCODB_GUARD_NOCODB_TOKEN"]

    @property
    def table_id(self) -> str:
        return self.env["NOCODB_GUARD_TABLE_ID"]

    @property
    def form_uuid(self) -> str:
        return self.env["NOCODB_DEV_FORM_UUID"]

    @property
    def gallery_uuid(self) -> str:
        """The public gallery of approved pictures (what the campaign site shows)."""
        return self.env["NOCODB_DEV_GALLERY_UUID"]

    # ----------------------------------------------------------- visitors and admins
    def submit(
        self,
        politician: str | None,
        files: Sequence[nocodb_admin.FileTuple],
        title: str | None = None,
        **extra_fields: Any,
    ) -> dict[str, Any]:
        """An anonymous upload through the public form, as the iframe sends it."""
        return nocodb_admin.submit_form(
            self.url, self.form_uuid, politician, files, title, extra_fields=extra_fields
        )

    def rows(self, where: str | None = None) -> list[dict[str, Any]]:
        return nocodb_admin.list_rows(self.url, self.token, self.table_id, where)

    def row(self, row_id: int) -> dict[str, Any] | None:
        return nocodb_admin.get_row(self.url, self.token, self.table_id, row_id)

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        return nocodb_admin.insert_rows_via_api(self.url, self.token, self.table_id, rows)

    def clear(self) -> int:
        return nocodb_admin.delete_all_rows(self.url, self.token, self.table_id)


def require_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"integration tests need {' and '.join(missing)} on PATH to run the real NocoDB "
            "(install Node.js 20+ and npm; CI must provide them)",
            pytrace=False,
        )


def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh data dir. PostgreSQL's cluster runs as an unprivileged user, who cannot enter
    pytest's private temp root: its dir is made directly under /tmp (and wiped at the end)."""
    if database() == "postgres":
        return Path(tempfile.mkdtemp(prefix="nocodb-dev-pg-"))
    return tmp_path_factory.mktemp("nocodb-dev")


@pytest.fixture(scope="session")
def nocodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """The session's real NocoDB; always brought down at the end, even after a failure."""
    require_node()
    server = DevServer(dir=server_dir(tmp_path_factory), port=free_port(), politicians=POLITICIANS)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if server.db == "postgres":
            server.run("reset", timeout=60)


@pytest.fixture
def clean_table(nocodb: DevServer) -> Iterator[DevServer]:
    """An empty Uploads table before the test (and after, so leftovers never leak)."""
    if nocodb.pid() is None:
        nocodb.start()  # a fault test may have left it stopped
    nocodb.clear()
    yield nocodb
    if nocodb.pid() is not None:
        nocodb.clear()


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two demo identities' reference folders, shared by a module's tests."""
    return install_demo_references(tmp_path_factory.mktemp("references"))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A fresh state dir per test (a module that shares one overrides this)."""
    return tmp_path / "state"
