"""Files the guard writes are never opened through a planted symlink, and keep our modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from nocodb_guard.errors import ConfigError
from nocodb_guard.faces.references import ReferenceStore
from nocodb_guard.safefiles import open_private, private_dir
from nocodb_guard.service.locking import LOCK_NAME, sweep_lock


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    return target


def test_a_sweep_lock_planted_as_a_symlink_is_refused_and_its_target_untouched(
    tmp_path: Path, precious: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / LOCK_NAME).symlink_to(precious)
    with pytest.raises(ConfigError, match="state_dir"), sweep_lock(state):
        pass
    assert precious.read_text() == "keep me\n"


def test_an_existing_lock_file_with_a_loose_mode_gets_0600(tmp_path: Path) -> None:
    lock = tmp_path / LOCK_NAME
    lock.write_text("")
    lock.chmod(0o666)
    with sweep_lock(tmp_path):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_open_private_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        open_private(tmp_path / "dir", os.O_RDONLY)


def test_a_private_dir_planted_as_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "audit").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NotADirectoryError):
        private_dir(tmp_path / "audit")


def test_the_reference_cache_never_writes_through_a_planted_temporary_file(
    tmp_path: Path, precious: Path
) -> None:
    cache = tmp_path / "cache" / "entry.npy"
    cache.parent.mkdir()
    planted = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    planted.symlink_to(precious)
    ReferenceStore._write_cache(cache, np.zeros(128))
    assert precious.read_text() == "keep me\n"
    assert np.load(cache).shape == (128,)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
