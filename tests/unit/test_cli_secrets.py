"""Secrets never reach the terminal: malformed ones are refused on load, and any error
that escapes a command is one redacted line with a documented exit code.

Each test runs the real CLI in a subprocess, as systemd would, and reads what it printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nocodb_guard import samples
from tests.unit.test_cli import REPO, clean_env

TOKEN = "tokOLD-SECRET-0123456789abcdef"
NEW_TOKEN = "tokNEW-SECRET-fedcba9876543210"
HOOK = "hook-SECRET-42"
TIMEOUT_S = 60


def run_cli(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(NOCODB_GUARD_STATE_DIR=str(tmp_path / "state"),
                      NOCODB_GUARD_TABLE_ID="m123", **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def main_with(args: list[str]) -> str:
    return f"import sys\nfrom nocodb_guard import cli\nsys.exit(cli.main({args!r}))\n"


@pytest.mark.parametrize("command", ["run", "sweep", "check"])
def test_a_token_file_with_two_lines_is_refused_naming_the_file_never_the_token(
    command: str, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    token_file = secrets / "nocodb_token"
    token_file.write_text(f"{TOKEN}\n{NEW_TOKEN}\n", encoding="utf-8")

    result = run_cli(main_with([command, "--secrets-dir", str(secrets)]), tmp_path)

    assert result.returncode == 2, result.stderr  # systemd: RestartPreventExitStatus=2
    assert f"nocodb_token (secret file {token_file}): holds 2 lines" in result.stderr
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert "0123456789" not in output and "fedcba" not in output


def test_a_token_with_a_control_character_in_the_environment_is_refused_naming_the_setting(
    tmp_path: Path,
) -> None:
    result = run_cli(main_with(["check"]), tmp_path, NOCODB_GUARD_NOCODB_TOKEN=f"{TOKEN}\x1b[0m")

    assert result.returncode == 2, result.stderr
    assert "nocodb_token (NOCODB_GUARD_NOCODB_TOKEN)" in result.stderr
    assert "control character" in result.stderr
    assert "0123456789" not in result.stdout + result.stderr


def test_an_unexpected_error_is_one_redacted_line_with_exit_code_70(tmp_path: Path) -> None:
    # A bug deep inside a command, whose message quotes both secrets (as an HTTP library
    # quotes a header it refuses).
    code = (
        "import sys\nfrom nocodb_guard import cli\n"
        "def boom(args, settings):\n"
        f"    raise ValueError('Invalid header value ' + repr({TOKEN!r}) + ' hook=' + {HOOK!r})\n"
        "cli.COMMANDS['health'] = boom\n"
        "sys.exit(cli.main(['health']))\n"
    )

    result = run_cli(
        code, tmp_path, NOCODB_GUARD_NOCODB_TOKEN=TOKEN, NOCODB_GUARD_WEBHOOK_SECRET=HOOK
    )

    assert result.returncode == 70, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "nocodb-guard: error: internal error: ValueError: "
        "Invalid header value '[REDACTED]' hook=[REDACTED]"
    ]
    assert "0123456789" not in result.stdout


@pytest.mark.parametrize("command", ["run", "sweep", "check"])
def test_commands_that_judge_pictures_refuse_a_cpu_without_avx_at_start_up(
    command: str, tmp_path: Path
) -> None:
    """Even with the reference cache built (the main process then never imports dlib), the
    workers would each die of SIGILL: the start is refused first, before NocoDB is asked."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2\n")
    code = (
        "import sys\nfrom pathlib import Path\nfrom nocodb_guard import cli\n"
        "from nocodb_guard.faces import cpu\n"
        f"cpu.CPUINFO = Path({str(cpuinfo)!r})\n"
        f"sys.exit(cli.main([{command!r}]))\n"
    )

    result = run_cli(code, tmp_path, NOCODB_GUARD_NOCODB_TOKEN=TOKEN,
                     NOCODB_GUARD_NOCODB_URL="http://127.0.0.1:9")

    assert result.returncode == 2, result.stderr
    assert "this CPU has no AVX" in result.stderr
    assert "Traceback" not in result.stderr and "unreachable" not in result.stderr


def test_a_cpu_without_avx_is_a_clear_error_with_exit_2_before_dlib_is_imported(
    tmp_path: Path,
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2\n")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(samples.grace_hopper_jpeg())
    code = (
        "import sys\nfrom pathlib import Path\nfrom nocodb_guard import cli\n"
        "from nocodb_guard.faces import cpu\n"
        f"cpu.CPUINFO = Path({str(cpuinfo)!r})\n"
        f"code = cli.main(['explain', {str(photo)!r}, '--reference', {str(photo)!r}])\n"
        "assert 'dlib' not in sys.modules, 'dlib was imported'\n"
        "sys.exit(code)\n"
    )

    result = run_cli(code, tmp_path)

    assert result.returncode == 2, result.stderr
    assert "this CPU has no AVX" in result.stderr
    assert "Traceback" not in result.stderr
