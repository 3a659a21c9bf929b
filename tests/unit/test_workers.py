"""The face worker pool: models loaded once per worker, warm start, recovery from a dead worker.

Most tests use a fake engine (a module-level factory, so spawned workers can import it)
to stay fast; one test runs the real dlib engine in a worker to prove the wiring.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from nocodb_guard import samples
from nocodb_guard.faces.engine import Detection
from nocodb_guard.faces.see import PipelineConfig
from nocodb_guard.faces.workers import InlineAnalyzer, PoolAnalyzer, make_analyzer
from nocodb_guard.models import FaceBox, PictureAnalysis, Reason

DEADLINE_S = 60.0
REPO = Path(__file__).resolve().parents[2]


class OneFaceEngine:
    """Sees one 100 px face in the middle of every picture; encodes it as zeros."""

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        height, width = rgb.shape[:2]
        top, left = height // 2 - 50, width // 2 - 50
        return [Detection(FaceBox(top=top, right=left + 100, bottom=top + 100, left=left), 1.0)]

    def confirm(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> bool:
        return True

    def encode(self, rgb: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        return np.zeros(128)


def one_face_engine(config: PipelineConfig) -> OneFaceEngine:
    return OneFaceEngine()


SLOW_S = 60
"""How long the slow engine takes over :data:`SLOW_PICTURE`: far beyond any test's bound, so
a loaded machine cannot blur "cut short" and "finished"."""


class SlowEngine(OneFaceEngine):
    """Takes its time over :data:`SLOW_PICTURE`, so that a test can kill it mid-picture."""

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        if rgb.shape[1] == SLOW_WIDTH:
            time.sleep(SLOW_S)
        return super().detect(rgb)


def slow_engine(config: PipelineConfig) -> SlowEngine:
    return SlowEngine()


class GreedyEngine(OneFaceEngine):
    """Asks for 4 GiB over :data:`SLOW_PICTURE`, as a decoder bomb that slipped through would."""

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        if rgb.shape[1] == SLOW_WIDTH:
            np.ones(4 * 1024**3, dtype=np.uint8)
        return super().detect(rgb)


def greedy_engine(config: PipelineConfig) -> GreedyEngine:
    return GreedyEngine()


PICTURE = samples.solid((300, 300), (200, 150, 120))
SLOW_WIDTH = 301
SLOW_PICTURE = samples.solid((SLOW_WIDTH, 300), (200, 150, 120))
REFERENCES = np.full((1, 128), 0.05)


def fake_pool(workers: int = 2) -> PoolAnalyzer:
    return PoolAnalyzer(PipelineConfig(), workers, engine_factory=one_face_engine)


def wait_for(predicate: object, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def result_after_recovery(pool: PoolAnalyzer) -> PictureAnalysis:
    """Submit until a picture is analysed: the first ones may fail with the dead pool."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        future: Future[PictureAnalysis] = pool.submit(PICTURE, "picture 1", REFERENCES)
        try:
            return future.result(timeout=DEADLINE_S)
        except BrokenProcessPool:
            if time.monotonic() > deadline:
                raise


def test_a_pool_analyses_pictures_in_worker_processes() -> None:
    pool = fake_pool()
    try:
        analysis = pool.submit(PICTURE, "picture 1", REFERENCES).result(timeout=DEADLINE_S)
    finally:
        pool.close()
    assert len(analysis.faces) == 1
    assert analysis.distances == pytest.approx((np.linalg.norm(REFERENCES[0]),))
    assert analysis.problem is None


def test_every_worker_starts_and_loads_its_models_when_the_pool_is_built() -> None:
    pool = fake_pool(workers=2)
    try:
        pool.wait_ready(timeout=DEADLINE_S)
        pids = pool.worker_pids()
    finally:
        pool.close()
    assert len(pids) == 2
    assert os.getpid() not in pids


def test_close_leaves_no_worker_process_behind() -> None:
    pool = fake_pool()
    pool.wait_ready(timeout=DEADLINE_S)
    pids = pool.worker_pids()
    pool.close()
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), timeout=10)


def test_a_killed_worker_is_replaced_and_later_pictures_are_analysed() -> None:
    pool = fake_pool()
    try:
        pool.wait_ready(timeout=DEADLINE_S)
        pid = pool.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), timeout=10)
        # The pool learns of the death asynchronously: a picture or two may still go to
        # the surviving worker, or fail with the broken pool, before it is replaced.
        deadline = time.monotonic() + DEADLINE_S
        while pool.restarts == 0 and time.monotonic() < deadline:
            result_after_recovery(pool)
            time.sleep(0.05)
        assert pool.restarts == 1
        assert len(result_after_recovery(pool).faces) == 1
        wait_for(lambda: len(pool.worker_pids()) == 2)
        assert pid not in pool.worker_pids()
    finally:
        pool.close()


def test_a_picture_in_flight_when_its_worker_dies_is_a_transient_problem_not_a_verdict() -> None:
    """The policy defers a row with a transient picture: nothing is deleted on a crash."""
    pool = PoolAnalyzer(PipelineConfig(), 1, engine_factory=slow_engine)
    try:
        pool.wait_ready(timeout=DEADLINE_S)
        (pid,) = pool.worker_pids()
        future = pool.submit(SLOW_PICTURE, "picture 1", REFERENCES)
        time.sleep(0.5)  # the worker is inside detect()
        os.kill(pid, signal.SIGKILL)
        lost = future.result(timeout=DEADLINE_S)
        assert (lost.problem, lost.faces) == (Reason.TRANSIENT_ERROR, ())
        assert "the face worker stopped" in lost.detail
        wait_for(lambda: not _alive(pid), timeout=10)
        later = pool.submit(PICTURE, "picture 1", REFERENCES)
        assert pool.restarts == 1
        assert len(later.result(timeout=DEADLINE_S).faces) == 1
    finally:
        pool.close()


def test_a_picture_over_the_time_limit_ends_its_worker_and_later_pictures_go_on() -> None:
    """The wall-clock net: the worker is ended even inside a call that never yields."""
    config = PipelineConfig(picture_timeout=1.0)
    pool = PoolAnalyzer(config, 1, engine_factory=slow_engine)
    try:
        pool.wait_ready(timeout=DEADLINE_S)
        (pid,) = pool.worker_pids()
        started = time.monotonic()
        slow = pool.submit(SLOW_PICTURE, "picture 1", REFERENCES).result(timeout=DEADLINE_S)
        waited = time.monotonic() - started

        assert slow.problem == Reason.TRANSIENT_ERROR
        assert "over the 1 s limit per picture" in slow.detail
        assert waited < SLOW_S / 3  # cut short, not the minute the picture would have taken
        wait_for(lambda: not _alive(pid), timeout=10)
        later = pool.submit(PICTURE, "picture 2", REFERENCES).result(timeout=DEADLINE_S)
        assert len(later.faces) == 1
        assert pool.restarts == 1
    finally:
        pool.close()


def test_a_picture_over_the_memory_limit_is_deferred_and_its_worker_lives_on() -> None:
    """The address-space net: an allocation fails in the worker instead of an OOM kill."""
    pool = PoolAnalyzer(PipelineConfig(worker_memory_mb=1536), 1, engine_factory=greedy_engine)
    try:
        pool.wait_ready(timeout=DEADLINE_S)
        (pid,) = pool.worker_pids()
        greedy = pool.submit(SLOW_PICTURE, "picture 1", REFERENCES).result(timeout=DEADLINE_S)
        later = pool.submit(PICTURE, "picture 2", REFERENCES).result(timeout=DEADLINE_S)

        assert greedy.problem == Reason.TRANSIENT_ERROR
        assert "1536 MiB memory limit" in greedy.detail
        assert len(later.faces) == 1
        assert (pool.worker_pids(), pool.restarts) == ([pid], 0)
    finally:
        pool.close()


def test_asked_to_restart_the_pool_starts_fresh_workers_that_analyse() -> None:
    """What the daemon does after a pass died of a broken pool."""
    pool = fake_pool(workers=1)
    try:
        pool.wait_ready(timeout=DEADLINE_S)
        (old,) = pool.worker_pids()
        pool.restart()
        assert pool.restarts == 1
        later = pool.submit(PICTURE, "picture 1", REFERENCES)
        assert len(later.result(timeout=DEADLINE_S).faces) == 1
        assert old not in pool.worker_pids()
    finally:
        pool.close()


def test_submitting_to_a_closed_pool_fails_instead_of_starting_new_workers() -> None:
    pool = fake_pool(workers=1)
    pool.close()
    with pytest.raises(RuntimeError):
        pool.submit(PICTURE, "picture 1", REFERENCES)


def test_a_pool_needs_at_least_one_worker_and_zero_means_in_process() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        PoolAnalyzer(PipelineConfig(), 0)
    inline = make_analyzer(PipelineConfig(), 0)
    try:
        assert isinstance(inline, InlineAnalyzer)
    finally:
        inline.close()


def test_the_real_dlib_engine_counts_one_face_in_a_worker_process() -> None:
    pool = PoolAnalyzer(PipelineConfig(), 1)
    try:
        analysis = pool.submit(samples.grace_hopper_jpeg(), "picture 1", None).result(
            timeout=DEADLINE_S
        )
    finally:
        pool.close()
    assert len(analysis.faces) == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child stays a zombie until reaped; count zombies as dead.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


OWNER = """
import time
from nocodb_guard.faces.see import PipelineConfig
from nocodb_guard.faces.workers import PoolAnalyzer
from tests.unit.test_workers import one_face_engine
pool = PoolAnalyzer(PipelineConfig(), 2, engine_factory=one_face_engine)
pool.wait_ready(timeout=60)
print(*pool.worker_pids(), flush=True)
time.sleep(600)
"""


def test_the_workers_end_when_the_process_that_owns_the_pool_is_killed() -> None:
    # kill -9, the OOM killer or `timeout -s KILL` around a cron sweep leave no chance to
    # shut the pool down; its workers must not live on with their models loaded.
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert owner.stdout is not None
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        owner.kill()
        owner.wait()
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), timeout=10)
