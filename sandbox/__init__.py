"""Running untrusted code: one isolated child process per job.

Knows nothing of designs: a job names a function and a JSON payload; the result says how the
child ended (``outcome``) and what it returned. See ``runner`` for the start-up strategy and
``child`` for the isolation applied inside the child.
"""

from sandbox.executors import EXECUTORS, Executor, LocalExecutor, make_executor
from sandbox.limits import Job, Limits, ProcessResult
from sandbox.runner import configure, run

__all__ = ["EXECUTORS", "Executor", "Job", "Limits", "LocalExecutor", "ProcessResult", "configure", "make_executor",
           "run"]
