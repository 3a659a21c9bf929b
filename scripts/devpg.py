"""A private PostgreSQL cluster for `scripts/nocodb-dev` (NOCODB_DEV_DB=postgres).

Production NocoDB runs on PostgreSQL, so the dev server and the integration tests can too.
The cluster is Debian's `postgresql` (installed with apt-get when missing and we are root),
its data lives in `<dev dir>/pg`, it listens on 127.0.0.1 only (no unix socket: socket
paths are length-limited and the port is all NocoDB needs), and it runs as an unprivileged
user because PostgreSQL refuses root: the `postgres` user Debian's package creates when we
are root, ourselves otherwise; that user must be able to enter the dev folder, so the folder
is made traversable (o+x, not readable) and a private folder above it is refused with a clear
message. It is tuned for throw-away test data (no fsync).

Standard library only, like scripts/nocodb-dev, which imports it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

ROLE = "nocodb"
DATABASE = "nocodb"
SYSTEM_USER = "postgres"
SERVER_CONF = """
# Written by scripts/nocodb-dev: a private cluster for throw-away dev and test data.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 50
"""


class ClusterError(Exception):
    """A failure the operator must read (nocodb-dev prints it without a traceback)."""


def bin_dir() -> Path | None:
    """The newest installed server's programs (Debian keeps them out of PATH)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def ensure_installed() -> Path:
    """Debian's `postgresql`, installed on first use when we are root (as ensure-node does)."""
    found = bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterError("PostgreSQL is not installed: apt-get install postgresql (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "postgresql"]
    for command in (["apt-get", "update", "-qq"], install):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise ClusterError(f"`{' '.join(command)}` failed")
    found = bin_dir()
    if found is None:
        raise ClusterError("apt-get installed postgresql but no initdb under /usr/lib/postgresql")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """The cluster in `<dev dir>/pg`: created once, started and stopped with NocoDB."""

    def __init__(self, dev_dir: Path) -> None:
        self.dir = dev_dir / "pg"
        self.log = dev_dir / "postgres.log"

    def user(self) -> str:
        """Who runs the server: never root (PostgreSQL refuses it)."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError as missing:
            raise ClusterError(f"no `{SYSTEM_USER}` user: reinstall postgresql") from missing
        return SYSTEM_USER

    def run(self, tool: str, *args: str, password: str | None = None) -> str:
        """A PostgreSQL program as the cluster's user, from a folder that user can enter."""
        programs = ensure_installed()
        prefix = ["runuser", "-u", self.user(), "--"] if os.geteuid() == 0 else []
        env = {**os.environ, "PGPASSWORD": password} if password else None
        result = subprocess.run(
            [*prefix, str(programs / tool), *args],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def pid(self) -> int | None:
        """The postmaster's pid if it is alive (read from its pid file, as root can)."""
        try:
            pid = int((self.dir / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, PermissionError):
            return None
        return pid if b"postgres" in cmdline else None

    def ensure_created(self, password: str) -> None:
        """initdb with a password-protected superuser role, once; the user owns the folder."""
        if (self.dir / "PG_VERSION").exists():
            return
        ensure_installed()
        user = pwd.getpwnam(self.user())
        self.check_reachable(user.pw_name)
        self.dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.log.touch()
        os.chown(self.log, user.pw_uid, user.pw_gid)
        # A file the server user can read (a pipe from root is not), removed right after.
        pwfile = self.dir.parent / "pg.pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            self.run("initdb", "-D", str(self.dir), "-U", ROLE, f"--pwfile={pwfile}",
                     "-A", "scram-sha-256", "-E", "UTF8", "--locale=C")
        finally:
            pwfile.unlink()
        with (self.dir / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_CONF)

    def check_reachable(self, user: str) -> None:
        """The server user must be able to enter every folder above its data folder."""
        if os.geteuid() != 0:
            return
        self.dir.parent.chmod(self.dir.parent.stat().st_mode | 0o711)
        probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(self.dir.parent)],
                               check=False)
        if probe.returncode != 0:
            raise ClusterError(
                f"PostgreSQL runs as `{user}`, who cannot enter {self.dir.parent}: a folder "
                "above it is private; use a NOCODB_DEV_DIR under /tmp or another open folder"
            )

    def start(self) -> int:
        """Start on a free port (reused while running); return the port."""
        pid = self.pid()
        if pid is not None:
            return self.port()
        port = free_port()
        self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.dir), "-l", str(self.log),
                 "-o", f"-p {port}")
        return port

    def port(self) -> int:
        """The running server's port (line 4 of postmaster.pid)."""
        return int((self.dir / "postmaster.pid").read_text().split("\n")[3])

    def ensure_database(self, port: int, password: str) -> None:
        """NocoDB's database, created on first start."""
        server = ["-h", "127.0.0.1", "-p", str(port), "-U", ROLE]
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        listed = self.run("psql", *server, "-d", "postgres", "-tAc", query, password=password)
        if listed.strip() != "1":
            self.run("createdb", *server, DATABASE, password=password)

    def stop(self) -> bool:
        """pg_ctl stop (fast: rolls back open transactions); True when it was running."""
        if self.pid() is None:
            return False
        self.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.dir))
        return True
