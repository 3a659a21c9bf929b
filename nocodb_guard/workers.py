"""Where the face work runs: in-process (one thread) or in a pool of worker processes.

dlib's HOG detector releases the GIL but its encoder holds it and is not thread-safe, so
real parallelism needs processes. Each worker loads the models once (initializer) and
then only ever sees one picture's bytes at a time; nothing is written to disk.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Protocol

import numpy as np
import numpy.typing as npt

from nocodb_guard.faces import FaceEngine
from nocodb_guard.models import PictureAnalysis
from nocodb_guard.pipeline import PipelineConfig, analyze

References = npt.NDArray[np.float64] | None


class Analyzer(Protocol):
    """Turns picture bytes into a :class:`PictureAnalysis`, possibly in another process."""

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]: ...

    def close(self) -> None: ...


def make_engine(config: PipelineConfig) -> FaceEngine:
    """The real dlib engine; imported here so that tests of pure logic never load dlib."""
    from nocodb_guard.faces import DlibFaceEngine  # noqa: PLC0415 - loads dlib models

    return DlibFaceEngine(
        model=config.detection_model, upsample=config.upsample, num_jitters=config.num_jitters
    )


class InlineAnalyzer:
    """Runs the pipeline on one background thread of this process (``workers = 0``)."""

    def __init__(self, config: PipelineConfig, engine: FaceEngine | None = None) -> None:
        self._config = config
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")

    def _run(self, data: bytes, name: str, references: References) -> PictureAnalysis:
        if self._engine is None:
            self._engine = make_engine(self._config)
        return analyze(data, name, references, self._config, self._engine)

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]:
        return self._executor.submit(self._run, data, name, references)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


# Per-process state of a pool worker: set once by the initializer, in the worker only.
_worker_engine: FaceEngine | None = None
_worker_config: PipelineConfig | None = None


def _init_worker(config: PipelineConfig) -> None:
    global _worker_engine, _worker_config  # noqa: PLW0603 - one engine per worker process
    _worker_config = config
    _worker_engine = make_engine(config)


def _analyze_in_worker(data: bytes, name: str, references: References) -> PictureAnalysis:
    assert _worker_engine is not None and _worker_config is not None
    return analyze(data, name, references, _worker_config, _worker_engine)


class PoolAnalyzer:
    """A pool of ``workers`` processes, each with its own loaded models.

    ``spawn`` is used rather than ``fork``: the daemon has threads (scheduler, HTTP
    servers) and forking a threaded process can deadlock.
    """

    def __init__(self, config: PipelineConfig, workers: int) -> None:
        self._executor: Executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(config,),
        )

    def submit(self, data: bytes, name: str, references: References) -> Future[PictureAnalysis]:
        return self._executor.submit(_analyze_in_worker, data, name, references)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def make_analyzer(config: PipelineConfig, workers: int) -> Analyzer:
    """``workers`` = 0 runs in-process; otherwise a process pool of that size."""
    if workers <= 0:
        return InlineAnalyzer(config)
    return PoolAnalyzer(config, workers)
