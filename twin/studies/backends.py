"""Where a study's runs execute: local processes (the default) or a Ray cluster, behind one call.

A backend maps a module-level function over tasks and yields each result as it finishes
(unordered: the caller orders them, so results never depend on completion order). ``local``
runs in this process with one worker, else in a ``concurrent.futures`` pool of processes
(:func:`twin.results.runs.start_method`: ``fork``ed on Linux when this process runs no other
thread, a worker then starting in milliseconds with the twin imported; else ``spawn``ed); ``ray`` starts a local Ray cluster on demand (its temporary directory under the
store, or a short one under the system's temp dir when that path is too long for Ray's unix
sockets), or joins one at ``address``. Ray is imported only by the ``ray`` backend.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from twin.results.runs import start_method

__all__ = ["Backend", "LocalBackend", "RayBackend", "BACKENDS", "make_backend"]

#: The longest temporary directory Ray is given (its socket paths add ~60 characters to it and a
#: unix socket path may hold 107).
MAX_RAY_TMP_CHARS = 40


class Backend(Protocol):
    """What a study needs of an executor."""

    name: str
    workers: int
    #: seconds spent starting the executor (Ray: ``ray.init``), 0 when nothing was started.
    startup_s: float

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """``fn(task)`` for every task, yielded as each finishes."""
        ...


#: Thread pools of numeric libraries a worker keeps to one thread (Arrow's CPU pool and OpenBLAS
#: read these when they load): parallel runs are the parallelism, and a run's own threads would
#: only contend with the other workers' (Ray sets ``OMP_NUM_THREADS=1`` in its workers too).
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Processes started inside inherit :data:`SINGLE_THREAD_ENV` = 1 (unless already set)."""
    added = [k for k in SINGLE_THREAD_ENV if k not in os.environ]
    for k in added:
        os.environ[k] = "1"
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _worker_init() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it stops the workers); a forked
    worker also forgets the parent's cached code version (it checks the sources itself, so a
    run is still stored only under the name of the code that computed it) and keeps Arrow's
    CPU pool to one thread (:data:`SINGLE_THREAD_ENV` is read only when a library loads)."""
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = sys.modules.get("twin.studies.store")
    if store is not None:
        store.code_version.cache_clear()
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.set_cpu_count(1)


class LocalBackend:
    """``workers`` local processes (:func:`twin.results.runs.start_method`; numeric libraries on
    one thread each: :data:`SINGLE_THREAD_ENV`); one worker runs in this process.

    ``spawn`` (where ``fork`` is not safe) starts each worker as a fresh interpreter that imports
    the calling script as a module, so a script that sweeps on 2+ workers needs the ``if __name__
    == "__main__":`` guard (the ``twin`` command has it)."""

    name = "local"

    def __init__(self, workers: int | None = None, **_: Any) -> None:
        self.workers = int(workers or os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.startup_s = 0.0
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=exc[0] is None, cancel_futures=True)

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        tasks = list(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            for t in tasks:
                yield fn(t)
            return
        if self._pool is None:
            t0 = time.perf_counter()
            self._pool = ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)),
                                             mp_context=multiprocessing.get_context(start_method()),
                                             initializer=_worker_init)
            self.startup_s += time.perf_counter() - t0
        with _single_threaded_children():  # the pool starts its workers as tasks are submitted
            futures: set[Future] = {self._pool.submit(fn, t) for t in tasks}
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def ray_temp_dir(preferred: Path) -> str:
    """``preferred`` (absolute) when it is short enough for Ray's socket paths, else a new
    directory ``/tmp/twin-ray-XXXX`` (or under the system's temp dir)."""
    p = preferred.resolve()
    if len(str(p)) <= MAX_RAY_TMP_CHARS:
        p.mkdir(parents=True, exist_ok=True)
        return str(p)
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="twin-ray-", dir=base)


class RayBackend:
    """Ray tasks (one CPU each), at most ``workers`` in flight.

    If Ray is already initialised in this process (a test session's cluster, a notebook's), it
    is used as it is. Otherwise :meth:`__enter__` starts a local cluster of ``workers`` CPUs with
    its temporary directory at ``temp_dir`` (see :func:`ray_temp_dir`), or joins the cluster at
    ``address`` (``"auto"`` or ``"ray://host:10001"``), and shuts it down on exit. On a cluster
    of several machines the store must be on a file system every node sees (workers write
    their runs' files there).
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None,
                 temp_dir: str | Path | None = None) -> None:
        self.workers = int(workers or os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.address = address
        self.temp_dir = temp_dir
        self.startup_s = 0.0
        self._started = False

    def __enter__(self) -> RayBackend:
        try:
            import ray
        except ImportError:
            raise ValueError("--backend ray needs Ray: pip install -e '.[studies]' (or pip install ray)") from None
        if not ray.is_initialized():
            t0 = time.perf_counter()
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kw["address"] = self.address
            else:
                kw["num_cpus"] = self.workers
                kw["_temp_dir"] = ray_temp_dir(Path(self.temp_dir or Path(tempfile.gettempdir()) / "twin-ray"))
            ray.init(**kw)
            self.startup_s = time.perf_counter() - t0
            self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        import ray

        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        todo = list(tasks)
        todo.reverse()
        running: list[Any] = []
        try:
            while todo or running:
                while todo and len(running) < self.workers:
                    running.append(remote.remote(todo.pop()))
                done, running = ray.wait(running, num_returns=1)
                for ref in done:
                    yield ray.get(ref)
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise


#: The backends by name (``twin sweep --backend``).
BACKENDS: dict[str, type] = {"local": LocalBackend, "ray": RayBackend}


def make_backend(name: str, workers: int | None = None, address: str | None = None,
                 temp_dir: str | Path | None = None) -> Backend:
    """The backend called ``name`` (:data:`BACKENDS`)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if name == "ray":
        return RayBackend(workers, address=address, temp_dir=temp_dir)
    if address:
        raise ValueError("--address is for --backend ray (the local backend runs on this machine)")
    return LocalBackend(workers)
