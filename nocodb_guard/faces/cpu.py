"""Whether this CPU can run the installed dlib: checked before dlib is ever imported.

Its own small module (no numpy, no Pillow) so that the CLI can check it at the start of
every command that judges pictures without slowing down the others (``health``).
"""

from __future__ import annotations

from pathlib import Path

from nocodb_guard.errors import FaceStackError

CPUINFO = Path("/proc/cpuinfo")


def require_avx(cpuinfo: Path | None = None) -> None:
    """:class:`FaceStackError` on a CPU without AVX, before dlib is imported.

    The ``dlib-bin`` wheel is built for AVX: on an older CPU (or a VM that hides the flag)
    importing it kills the process with SIGILL, with no message at all. Where
    ``/proc/cpuinfo`` cannot be read (not Linux), nothing is checked.
    """
    try:
        text = (cpuinfo or CPUINFO).read_text(encoding="ascii", errors="replace")
    except OSError:
        return
    flags = {
        flag
        for line in text.splitlines()
        if line.startswith("flags")
        for flag in line.partition(":")[2].split()
    }
    if flags and "avx" not in flags:
        raise FaceStackError(
            "this CPU has no AVX, which the installed dlib (the dlib-bin wheel) needs: it "
            "would die with SIGILL. Run on a CPU with AVX, or build dlib from source "
            "(pip install dlib) for this CPU."
        )
