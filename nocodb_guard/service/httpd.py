"""What the daemon's two small HTTP listeners (metrics, webhook) share."""

from __future__ import annotations

import socketserver
import threading

JOIN_SECONDS = 5.0
"""How long a stop waits for the serving thread (it finishes the request in hand)."""


def stop_serving(server: socketserver.BaseServer, thread: threading.Thread | None) -> None:
    """Stop accepting, close the socket and wait (bounded) for the serving thread."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=JOIN_SECONDS)
