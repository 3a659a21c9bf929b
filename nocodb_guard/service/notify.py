"""systemd's notify protocol (``Type=notify``), without a dependency on libsystemd.

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``). Outside
systemd the variable is unset and every call is a no-op, so the daemon never branches.

A notification is a courtesy to the service manager: losing one must never take the
moderation loop down, so send failures are logged at debug level and swallowed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

#: systemd truncates nothing, but a STATUS= line should fit a ``systemctl status`` screen.
MAX_STATUS_CHARS = 512


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd when ``$NOTIFY_SOCKET`` is set.

    ``environ`` defaults to ``os.environ``; tests pass their own mapping. The environment
    is read once, at construction, because systemd sets it once, at exec.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _positive_int(env.get("WATCHDOG_USEC"))
        self._watchdog_pid = _positive_int(env.get("WATCHDOG_PID"))

    @property
    def enabled(self) -> bool:
        """True when a notify socket is configured (i.e. we run under ``Type=notify``)."""
        return self._address is not None

    def ready(self) -> bool:
        """Tell systemd start-up is complete (settings, references, NocoDB answered)."""
        return self.send("READY=1")

    def status(self, text: str) -> bool:
        """One-line status for ``systemctl status`` (newlines would split the message)."""
        line = " ".join(text.split())[:MAX_STATUS_CHARS]
        return self.send(f"STATUS={line}")

    def watchdog(self) -> bool:
        """Keep-alive ping; only sent when a watchdog applies to this very process."""
        if self.watchdog_interval() is None:
            return False
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown has begun (so a slow stop is not a hang)."""
        return self.send("STOPPING=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up/shutdown time (e.g. while encoding many references)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(1, round(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of ``WatchdogSec=``), or None when off.

        ``$WATCHDOG_PID`` names the process the watchdog is meant for; a child that
        inherited the environment (a worker process) must not ping on its behalf.
        """
        if self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None
        return self._watchdog_usec / 2_000_000

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True when it was delivered."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode("utf-8", errors="replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            log.debug("sd_notify failed", error=str(exc), message=assignments[0][:40])
            return False
        return True


def _socket_address(value: str) -> str | None:
    """AF_UNIX address for ``$NOTIFY_SOCKET``: ``@name`` is abstract (leading NUL)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    if value:  # e.g. "vsock:..." (systemd 253+ for VMs): not needed for this service
        log.debug("unsupported NOTIFY_SOCKET ignored", notify_socket=value[:40])
    return None


def _positive_int(value: str | None) -> int | None:
    """Parse systemd's numeric variables; anything odd means "not set"."""
    if not value or not value.isdigit():
        return None
    number = int(value)
    return number if number > 0 else None
