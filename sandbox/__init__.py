"""Running untrusted code: one isolated child process per job.

Knows nothing of designs: a job names a function (``"package.module:function"``) and a payload;
the result says how the child ended (``outcome``, one of ``OUTCOMES``) and what it returned.
``limits`` holds the data types, ``zygote`` the fork server that makes start-up cheap, ``child``
the isolation applied inside the job's process, ``runner`` the parent's side (``Sandbox``: one
fork server and the jobs it runs), ``executors`` the pools that run many jobs.

    with sandbox.make_executor("local", preload=("torch",)) as executor:  # its fork server imports torch once
        result = executor.submit(Job("pkg.mod:fn", {"x": 1}, Limits(wall_s=60))).result()
    result.outcome, result.value, result.error

    sandbox.run(job)  # one job, blocking, in a sandbox of its own
"""

from sandbox.child import child_info, missing_protections
from sandbox.executors import EXECUTORS, Executor, LocalExecutor, make_executor
from sandbox.limits import OUTCOMES, Job, Limits, ProcessResult
from sandbox.runner import Sandbox, run, scrubbed_environment
from sandbox.zygote import ForkServerError

__all__ = ["EXECUTORS", "OUTCOMES", "Executor", "ForkServerError", "Job", "Limits", "LocalExecutor",
           "ProcessResult", "Sandbox", "child_info", "make_executor", "missing_protections", "run",
           "scrubbed_environment"]
