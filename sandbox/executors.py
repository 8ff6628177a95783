"""Executors: where sandboxed jobs run. Picked by a short name (``make_executor("local")``)."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from sandbox.limits import Job, ProcessResult
from sandbox.runner import run


class Executor(Protocol):
    def submit(self, job: Job) -> Future[ProcessResult]: ...

    def shutdown(self) -> None: ...


class LocalExecutor:
    """Up to ``workers`` isolated child processes at once (default: one per core)."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")

    def submit(self, job: Job) -> Future[ProcessResult]:
        return self._pool.submit(run, job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


EXECUTORS = {"local": LocalExecutor}


def make_executor(name: str = "local", **options) -> Executor:
    try:
        return EXECUTORS[name](**options)
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}") from None
