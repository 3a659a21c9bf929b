"""Where the face work runs: in-process (one thread) or in a pool of worker processes.

dlib's HOG detector releases the GIL but its encoder holds it and is not thread-safe, so
real parallelism needs processes. Each worker loads the models once (initializer) and
then only ever sees one picture's bytes at a time; nothing is written to disk.

The pool lives as long as the daemon (``runtime.build_runtime`` makes one analyzer), so
the model loading (about 1-2 s per worker) is paid once, and it starts as soon as the
pool is built: :class:`PoolAnalyzer` sends each worker a no-op at construction, so the
models load while the daemon checks NocoDB and the first rows download.

Memory stays bounded because the sweep keeps a fixed window of rows in flight (its
``prefetch``): at most that many rows' pictures are queued for the pool at any time.

A worker that dies (out of memory, a segfault in a C decoder on a hostile picture, an
operator's ``kill``) breaks a ``ProcessPoolExecutor`` for good. Pictures that were in
that pool come back as a ``transient_error`` analysis (the policy defers their rows,
untouched), and the next :meth:`PoolAnalyzer.submit` builds a fresh pool, so later rows
and ticks go on.

Each picture has a wall-clock limit in its worker (``picture_timeout``): a timer
(``SIGALRM`` with its default action) ends the worker process when a picture takes
longer, even inside a C decoder that never returns to Python. So a picture the structural
limits of :mod:`~nocodb_guard.faces.budgets` missed holds a worker for at most that long;
its row is deferred (never deleted: a slow machine is no fact about the picture) and the
worker replaced. Each worker's address space is capped too (``worker_memory_mb``,
``RLIMIT_AS``): a picture that would need more fails its allocation with ``MemoryError``,
which defers its row like the timer does, and the worker lives on, so several workers stay
under the unit's ``MemoryMax`` instead of being OOM-killed in turn. In-process analysis
(``workers = 0``) has neither net.

A worker ends by itself when the process that owns the pool is gone: a ``kill -9``, the
OOM killer or ``timeout -s KILL`` around a cron sweep leave no chance to shut the pool
down, and a ``ProcessPoolExecutor`` worker would otherwise wait forever on a queue whose
write end it holds itself, with its models (about 135 MiB) loaded. systemd kills the
whole control group; a shell or cron does not.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

import numpy as np
import numpy.typing as npt
import structlog

from nocodb_guard.faces.engine import FaceEngine
from nocodb_guard.faces.see import LazyEngine, PipelineConfig, analyze, make_engine
from nocodb_guard.models import PictureAnalysis, Reason

log = structlog.get_logger(__name__)

References = npt.NDArray[np.float64] | None
#: Builds a worker's engine from the config; must be a module-level (picklable) function.
EngineFactory = Callable[[PipelineConfig], FaceEngine]


class Analyzer(Protocol):
    """Turns picture bytes into a :class:`PictureAnalysis`, possibly in another process."""

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]: ...

    def restart(self) -> None:
        """Replace the workers (the daemon asks after a pass died of a broken pool)."""
        ...

    def close(self) -> None: ...


class InlineAnalyzer:
    """Runs the pipeline on one background thread of this process (``workers = 0``)."""

    def __init__(self, config: PipelineConfig, engine: FaceEngine | None = None) -> None:
        self._config = config
        self._engine = engine or LazyEngine(functools.partial(make_engine, config))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")

    def _run(self, data: bytes, name: str, references: References) -> PictureAnalysis:
        return analyze(data, name, references, self._config, self._engine)

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]:
        return self._executor.submit(self._run, data, name, references)

    def restart(self) -> None:
        """A fresh thread; the engine (and its loaded models) is kept."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


#: How often a worker checks that the process owning its pool is still there.
PARENT_CHECK_S = 1.0

# Per-process state of a pool worker: set once by the initializer, in the worker only.
_worker_engine: FaceEngine | None = None
_worker_config: PipelineConfig | None = None


def _init_worker(config: PipelineConfig, engine_factory: EngineFactory, owner: int) -> None:
    global _worker_engine, _worker_config  # noqa: PLW0603 - one engine per worker process
    # Ctrl-C reaches the whole process group: the parent finishes the row in hand, then
    # shuts the pool down; a worker must not die under it first (and break the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The per-picture limit: the default action of SIGALRM ends the process.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if config.worker_memory_mb > 0:
        limit = config.worker_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _worker_config = config
    threading.Thread(target=_end_with, args=(owner,), name="end-with-owner", daemon=True).start()
    _worker_engine = engine_factory(config)


def _end_with(owner: int) -> None:
    """End this worker once ``owner`` has gone (the worker is then re-parented).

    The owner's pid comes from the owner itself: a worker that starts after the owner
    was killed must not take its new parent for the owner.
    """
    while os.getppid() == owner:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _analyze_in_worker(data: bytes, name: str, references: References) -> PictureAnalysis:
    assert _worker_engine is not None and _worker_config is not None
    signal.setitimer(signal.ITIMER_REAL, _worker_config.picture_timeout)
    try:
        return analyze(data, name, references, _worker_config, _worker_engine)
    except MemoryError:
        return PictureAnalysis(
            name=name,
            problem=Reason.TRANSIENT_ERROR,
            detail=f"over the face worker's {_worker_config.worker_memory_mb} MiB memory limit",
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _worker_lost(name: str, config: PipelineConfig) -> PictureAnalysis:
    """What a picture whose worker died gets: a transient problem, so its row is deferred."""
    return PictureAnalysis(
        name=name,
        problem=Reason.TRANSIENT_ERROR,
        detail=(
            f"the face worker stopped (over the {config.picture_timeout:g} s limit per "
            "picture, out of memory or crashed); the worker was replaced"
        ),
    )


def _ready() -> int:
    """The warm-up task: returns once the initializer (model loading) has run."""
    return os.getpid()


class PoolAnalyzer:
    """A pool of ``workers`` processes, each with its own loaded models.

    ``spawn`` is used rather than ``fork``: the daemon has threads (scheduler, HTTP
    servers) and forking a threaded process can deadlock. ``submit`` is called from the
    sweep's download threads, hence the lock around the executor swap.
    """

    def __init__(
        self,
        config: PipelineConfig,
        workers: int,
        engine_factory: EngineFactory = make_engine,
    ) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self._config = config
        self._workers = workers
        self._engine_factory = engine_factory
        self._lock = threading.Lock()
        self._closed = False
        self.restarts = 0
        """How many times a broken pool was replaced (metrics, tests)."""
        self._warmup: list[Future[int]] = []
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._config, self._engine_factory, os.getpid()),
        )
        # Spawns every worker now and lets them load their models in the background.
        self._warmup = [executor.submit(_ready) for _ in range(self._workers)]
        return executor

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]:
        with self._lock:
            executor = self._executor
        try:
            inner = executor.submit(_analyze_in_worker, data, name, references)
        except BrokenProcessPool:
            inner = self._restart(executor).submit(_analyze_in_worker, data, name, references)
        return self._settled(inner, name)

    def _settled(self, inner: Future[PictureAnalysis], name: str) -> Future[PictureAnalysis]:
        """``inner``'s result, with a dead worker turned into a transient analysis."""
        outer: Future[PictureAnalysis] = Future()

        def relay(done: Future[PictureAnalysis]) -> None:
            if done.cancelled():
                outer.cancel()
            elif isinstance(done.exception(), BrokenProcessPool):
                outer.set_result(_worker_lost(name, self._config))
            elif (error := done.exception()) is not None:
                outer.set_exception(error)
            else:
                outer.set_result(done.result())

        inner.add_done_callback(relay)
        return outer

    def restart(self) -> None:
        """A fresh pool in place of the current one (unless another thread just replaced it)."""
        with self._lock:
            executor = self._executor
        self._restart(executor)

    def _restart(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """Replace ``broken`` once, however many threads noticed it at the same time."""
        with self._lock:
            if self._closed:
                raise BrokenProcessPool("the face worker pool is closed")
            if self._executor is broken:
                log.warning("face_pool_restarted", workers=self._workers)
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._start()
                self.restarts += 1
            return self._executor

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (tests and the benchmarks measure them)."""
        with self._lock:
            processes = dict(self._executor._processes or {})  # no public API for this
        return sorted(pid for pid, process in processes.items() if process.is_alive())

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the warm-up tasks have run, i.e. the workers have loaded their models."""
        with self._lock:
            futures = list(self._warmup)
        for future in futures:
            future.result(timeout=timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor = self._executor
        executor.shutdown(wait=True, cancel_futures=True)


def make_analyzer(config: PipelineConfig, workers: int) -> Analyzer:
    """``workers`` = 0 runs in-process; otherwise a process pool of that size."""
    if workers <= 0:
        return InlineAnalyzer(config)
    return PoolAnalyzer(config, workers)
