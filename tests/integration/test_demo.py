"""./scripts/demo's Python half, run as a user runs it, against the session's real NocoDB.

``scripts/demo`` itself only adds the environment set-up and ``scripts/nocodb-dev up`` (on
port 8080), which the suite's own fixture already does on a free port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import DevServer

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_uploads_five_pictures_through_the_form_and_the_daemon_decides_them(
    clean_table: DevServer,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOCODB_GUARD_")}
    env["PYTHONPATH"] = str(REPO)
    demo = [sys.executable, str(REPO / "scripts" / "demo.py")]
    result = subprocess.run(
        [*demo, "--env-file", str(clean_table.env_file)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    lines = {line.split("->")[0].split(maxsplit=2)[-1].strip(): line for line in out.splitlines()
             if "->" in line}
    assert "approved: 1 face, distance" in lines["a matching picture"]
    assert "deleted (no_match" in lines["the wrong person"]
    assert "deleted (multiple_faces" in lines["two faces"]
    assert "deleted (no_face" in lines["a cat"]
    assert "deleted (not_an_image" in lines["a text file named .jpg"]
    assert f"/dashboard/#/nc/form/{clean_table.form_uuid}" in out
    assert f"/dashboard/#/nc/gallery/{clean_table.gallery_uuid}" in out
    assert clean_table.token not in out + result.stderr
