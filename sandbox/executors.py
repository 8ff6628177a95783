"""Executors: where sandboxed jobs run, picked by a short name (``make_executor("local")``, ``"ray"``)."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from sandbox.limits import Job, ProcessResult
from sandbox.ray_executor import RayExecutor
from sandbox.runner import run


class Executor(Protocol):
    def submit(self, job: Job) -> Future[ProcessResult]: ...

    def shutdown(self) -> None: ...


class LocalExecutor:
    """At most ``workers`` jobs at once (default: one per core), each in its own isolated child process.

    The pool's threads only wait on children, so a thread per job is all the parallelism needs.
    """

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")

    def submit(self, job: Job) -> Future[ProcessResult]:
        return self._pool.submit(run, job)

    def shutdown(self) -> None:
        """Drop queued jobs and wait for running ones (``kill_all`` first to end them now)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


EXECUTORS: dict[str, type] = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str = "local", **options) -> Executor:
    """An executor by short name; ``options`` go to its constructor (``workers``; for "ray" also
    ``address`` and ``gpus``). The ray package is imported only when a Ray executor is made."""
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}") from None
    return factory(**options)
