"""Stop flags set by signal handlers; read by the loops.

The first SIGTERM/SIGINT only sets a flag: the row in hand is finished, then everything
stops cleanly. A second one means "now": the process ends with that signal's default
action at once... but its face workers are child processes that ignore SIGINT and may be
deep in a picture, and would live on, reparented to init, holding CPU and memory. So the
second signal first kills the children (``SIGKILL``: they hold nothing worth saving;
pictures live in memory only), then re-raises itself with the default action restored.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType


@dataclass
class Flags:
    """``stop``: finish the row in hand, then stop. ``sweep_now``: a webhook asked for a pass."""

    stop: threading.Event = field(default_factory=threading.Event)
    sweep_now: threading.Event = field(default_factory=threading.Event)
    idle: threading.Event = field(default_factory=threading.Event)

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stop.is_set():
            self.stop.set()
            return
        end_now(signum)


def end_now(signum: int) -> None:
    """Kill our child processes, then die of ``signum`` as if no handler were installed."""
    for child in multiprocessing.active_children():
        if child.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(child.pid, signal.SIGKILL)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
