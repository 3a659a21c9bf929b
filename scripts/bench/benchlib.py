"""Shared parts of the benchmarks: a private NocoDB, settings, uploads, RSS and request counts.

Every benchmark starts its OWN NocoDB (``scripts/nocodb-dev up`` on a temp dir and a free
port, exactly like the integration tests) and always brings it down, so it never touches
the demo's or the tests' servers. Figures are printed as ratios measured side by side in
one run: the machine is shared, absolute times are not comparable between runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nocodb_guard.settings import Settings  # noqa: E402
from tests import nocodb_admin  # noqa: E402
from tests.integration.conftest import DevServer, free_port  # noqa: E402

FACES = REPO.parent / "shared" / "faces"
POLITICIAN = "obama"
#: One reference photo per person, as the face_recognition CLI's "known" folder holds.
OBAMA_REFERENCE = "obama/obama.jpg"
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def machine_line() -> str:
    """Load and CPU count, printed with every result (the machine is shared)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"machine: {os.cpu_count()} CPUs, load average {load} (1/5/15 min)"


def shared_faces() -> list[Path]:
    """The photos of ../shared/faces listed in its manifest, in manifest order."""
    manifest = FACES / "manifest.csv"
    if not manifest.exists():
        raise SystemExit(f"{FACES} is missing: these benchmarks need the shared photos")
    lines = manifest.read_text().splitlines()[1:]
    return [FACES / line.split(",")[0] for line in lines if line.strip()]


def file_tuple(path: Path, name: str | None = None) -> nocodb_admin.FileTuple:
    return (name or path.name, path.read_bytes(), MIME.get(path.suffix.lower(), "image/jpeg"))


def reference_dir(root: Path) -> Path:
    """reference_faces/obama/ holding the one reference photo."""
    folder = root / "reference_faces" / POLITICIAN
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FACES / OBAMA_REFERENCE, folder / "obama.jpg")
    return root / "reference_faces"


@contextlib.contextmanager
def nocodb_server(webhook: tuple[str, str] | None = None) -> Iterator[DevServer]:
    """A private NocoDB with the ``obama`` option, always brought down (and its dir removed)."""
    root = Path(tempfile.mkdtemp(prefix="nocodb-guard-bench-"))
    server = DevServer(dir=root / "nocodb", port=free_port(), politicians=(POLITICIAN,))
    server.dir.mkdir()
    try:
        args = ["--politician", POLITICIAN]
        if webhook is not None:
            args += ["--webhook", webhook[0], "--webhook-secret", webhook[1]]
        result = server.run("up", *args)
        if result.returncode != 0:
            raise SystemExit(f"nocodb-dev up failed:\n{result.stderr}")
        server.env = nocodb_admin.read_env_file(server.env_file)
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def settings_for(server: DevServer, work: Path, **overrides: Any) -> Settings:
    """The daemon's settings for this server, references and state under ``work``."""
    values: dict[str, Any] = {
        "nocodb_url": server.url,
        "nocodb_token": server.token,
        "table_id": server.table_id,
        "reference_dir": reference_dir(work),
        "state_dir": work / "state",
        "workers": 2,
    }
    values.update(overrides)
    return Settings(**values)


def warm_reference_cache(settings: Settings) -> None:
    """Encode the references in a throw-away process, as a daemon's earlier run would have.

    The daemon encodes references in its main process only when the on-disk cache misses
    (its first start); after that the main process never loads dlib. Benchmarks measure
    that steady state, so the cache is filled beforehand in another process.
    """
    code = (
        "import sys, json\n"
        "from nocodb_guard.settings import Settings\n"
        "from nocodb_guard.faces.references import ReferenceStore\n"
        "settings = Settings(**json.loads(sys.argv[1]))\n"
        f"assert ReferenceStore.from_settings(settings).load({POLITICIAN!r}) is not None\n"
    )
    keys = ("reference_dir", "state_dir", "max_side", "upsample", "detection_model", "num_jitters")
    values = settings.model_dump(mode="json", include=set(keys))
    done = run([sys.executable, "-c", code, json.dumps(values)], cwd=REPO, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"could not encode the references:\n{done.stderr}")


def guard_env(server: DevServer, work: Path, **extra: str) -> dict[str, str]:
    """Environment for a ``python -m nocodb_guard`` subprocess against this server."""
    env = dict(os.environ)
    env.update(
        {
            "NOCODB_GUARD_REFERENCE_DIR": str(reference_dir(work)),
            "NOCODB_GUARD_STATE_DIR": str(work / "state"),
            "NOCODB_GUARD_WORKERS": "2",
        }
    )
    env.update(extra)
    return env


def upload_rows(server: DevServer, files: Sequence[nocodb_admin.FileTuple]) -> list[int]:
    """One pending row per file, uploaded through NocoDB's storage API then bulk-inserted."""
    ids: list[int] = []
    batch = 50
    for start in range(0, len(files), batch):
        rows = []
        for item in files[start : start + batch]:
            cell = nocodb_admin.upload_attachments(server.url, server.token, [item])
            rows.append({"Politician": POLITICIAN, "Photo": cell})
        ids += server.insert(rows)
    return ids


# --- measuring ------------------------------------------------------------------------------
def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


@dataclass
class RssSampler:
    """Samples the RSS of a process tree every ``interval`` seconds on a thread."""

    pid: int
    interval: float = 0.2
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(tree_rss_mb(self.pid))

    @property
    def peak(self) -> float:
        return max(self.samples, default=tree_rss_mb(self.pid))


@dataclass
class RequestCounter:
    """A NocoDBClient ``observer``: counts requests by operation (thread-safe enough: GIL)."""

    counts: Counter[str] = field(default_factory=Counter)

    def __call__(self, operation: str, outcome: str, seconds: float) -> None:
        self.counts[operation] += 1

    def total(self) -> int:
        return sum(self.counts.values())


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 10 values is the largest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-int(fraction * 100 * len(ordered)) // 100)))
    return ordered[rank - 1]


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> float:
    """Poll ``predicate`` until true; returns the time it became true (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout} s")
        time.sleep(step)


def run(command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False, **kwargs)
