"""Executors: where sandboxed jobs run, picked by a short name (``make_executor("local")``, ``"ray"``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from sandbox.limits import Job, ProcessResult
from sandbox.ray_executor import RayExecutor
from sandbox.runner import Sandbox


class Executor(Protocol):
    def submit(self, job: Job) -> Future[ProcessResult]:
        """Queue ``job``; the future resolves to how it ended."""

    def cancel_all(self) -> int:
        """End every running job now (its process group is killed; it reads ``cancelled``) and drop the
        queued ones; returns how many jobs that ended. The executor stays usable."""

    def shutdown(self) -> None:
        """Release the executor's workers; it takes no job afterwards."""


class LocalExecutor:
    """At most ``workers`` jobs at once (default: one per core), each in its own isolated child process,
    forked by one fork server that imports ``preload`` once (``self.sandbox``).

    The pool's threads only wait on children, so a thread per job is all the parallelism needs.
    A module of ``preload`` that fails to import raises ``ForkServerError`` here.
    """

    def __init__(self, workers: int | None = None, *, preload: Iterable[str] = ()):
        self.workers = workers or os.cpu_count() or 1
        self.sandbox = Sandbox(preload)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")
        self._lock = threading.Lock()
        self._pending: set[Future] = set()  # submitted and not done: queued or running
        self._generation = 0  # bumped by cancel_all: a job submitted before it never starts after it

    def submit(self, job: Job) -> Future[ProcessResult]:
        generation = self._generation
        future = self._pool.submit(self.sandbox.run, job, lambda: self._generation == generation)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def cancel_all(self) -> int:
        """Cancel the futures of queued jobs, then kill the running ones; returns how many jobs that ended."""
        with self._lock:
            self._generation += 1  # before the sandbox's cancel_all: a job it misses is withdrawn instead
            pending = list(self._pending)
        dropped = sum(future.cancel() for future in pending)  # False for a running or finished one
        return dropped + self.sandbox.cancel_all()

    def shutdown(self) -> None:
        """Drop queued jobs, wait for running ones (``cancel_all`` first to end them now), stop the fork server."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.sandbox.close()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


EXECUTORS: dict[str, type] = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str = "local", *, workers: int | None = None, preload: Iterable[str] = (),
                  **options) -> Executor:
    """An executor by short name, running at most ``workers`` jobs at once, whose fork servers import
    ``preload`` once; ``options`` go to its constructor (for "ray": ``address`` and ``gpus``). The ray
    package is imported only when a Ray executor is made."""
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}") from None
    return factory(workers=workers, preload=preload, **options)
