"""Stop flags set by signal handlers; read by the loops. Nothing else happens in a handler."""

from __future__ import annotations

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
        # First signal: ask for a clean stop. The default action is restored, so a second
        # signal ends the process at once.
        self.stop.set()
        signal.signal(signum, signal.SIG_DFL)
