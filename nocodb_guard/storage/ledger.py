"""Which stored files belong to the configured table: the ones the guard saw in its rows.

NocoDB's storage layout does not say which table a file belongs to: a form upload lands in
``nc/uploads/<y>/<m>/<d>/<hash>/``, where ``<hash>`` depends on the *uploader* (every
anonymous form upload of every base shares it). NocoDB knows (its ``nc_file_references``
table) but does not expose it over the API. So the guard keeps its own record: every
storage location it reads in the attachment field of the configured table (rows it
moderates, and every full scan of the table) is appended here with the time it was seen.
``nocodb-guard purge --orphans`` only ever considers files recorded here.

Layout: ``<state_dir>/storage-ledger.jsonl``, one JSON object per line
(``{"table": ..., "key": ..., "seen": <unix time>}``), appended with ``O_APPEND`` through
:mod:`nocodb_guard.safefiles` (no symlink, no FIFO), mode 0600. A torn last line (crash) is
skipped. Storage locations only.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from nocodb_guard.safefiles import open_private, open_to_read

LEDGER_FILE = "storage-ledger.jsonl"


class FileLedger:
    """Append-only record of (table, storage key, when seen)."""

    def __init__(self, state_dir: Path, table_id: str) -> None:
        self.path = Path(state_dir) / LEDGER_FILE
        self.table_id = table_id
        self._lock = threading.Lock()

    def record(self, keys: Iterable[str], now: float | None = None) -> None:
        """Remember that these files were seen in the table's rows now."""
        when = time.time() if now is None else now
        wanted = sorted({k for k in keys if k})
        if not wanted:
            return
        lines = (
            json.dumps({"table": self.table_id, "key": k, "seen": when}) + "\n" for k in wanted
        )
        data = "".join(lines).encode()
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            with os.fdopen(open_private(self.path, flags), "ab") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())

    def known(self) -> dict[str, float]:
        """Every file seen in this table, with the first time it was seen."""
        try:
            fd = open_to_read(self.path)
        except FileNotFoundError:
            return {}
        seen: dict[str, float] = {}
        with os.fdopen(fd, "rb") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    table, key, when = entry["table"], entry["key"], float(entry["seen"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line
                if table == self.table_id and isinstance(key, str):
                    seen.setdefault(key, when)
        return seen
