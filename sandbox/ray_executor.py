"""The Ray executor: each job is a Ray task that runs the same sandbox on the node Ray picks.

On the worker the task runs the job in a ``Sandbox`` exactly as the local executor does: the
worker's own fork server forks a supervisor and an isolated child, so a job is confined the same
way wherever it runs; Ray only decides where. A task reserves ``job.limits.threads`` CPUs and,
when the executor was made for a GPU tier and the cluster has GPUs, one GPU, so a node never runs
more jobs than it has room for.

``address`` names a running cluster (``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:10001"``); None
starts a private local one with ``workers`` CPUs, which is shut down again with the executor. The
project must be importable on every node of a remote cluster (installed there, as on the driver).

Every ending is a ``ProcessResult``, as with the local executor: a task Ray cancelled reads
``cancelled``, a worker or node that died under a task ``sandbox-error``. ``cancel_all`` and
``shutdown`` cancel every task still outstanding, first politely (the task ends its job and
removes its working directory), then by killing the worker, so nothing runs on after the run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures

from sandbox.limits import Job, ProcessResult
from sandbox.runner import Sandbox
from sandbox.zygote import ForkServerError

INSTALL_HINT = "pip install 'discover-arch[ray]'"
CANCEL_GRACE_S = 10.0  # how long a politely cancelled task may take to end its job before its worker is killed
_POLL_S = 0.2  # how often a task's waiting thread looks up, so that Ray's interrupt reaches it


class RayUnavailable(RuntimeError):
    """The ``ray`` package is not installed, or no cluster could be reached."""


def _ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"the ray executor needs the ray package: {INSTALL_HINT}") from None
    return ray


def run_on_worker(job: Job, preload: tuple[str, ...]) -> ProcessResult:
    """The Ray task: ``job`` in this worker's sandbox, ending the job if Ray cancels the task.

    The worker's fork server imports the executor's ``preload`` and the job's target module once, so
    a job's start-up costs a fork here too; the result's ``isolation["ray"]`` says where it ran.
    The job runs on a thread while this one waits in short steps: Ray cancels a running task by
    raising KeyboardInterrupt in it, and a wait that looks up now and then receives it, kills the
    job (its supervisor reports ``cancelled``) and lets ``run`` clean up before the task ends.
    """
    sandbox = _sandbox_for(job, preload)
    outcome: list[ProcessResult | BaseException] = []
    finished = threading.Event()

    def work() -> None:
        try:
            outcome.append(sandbox.run(job))
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=work, name="sandbox-job", daemon=True)
    thread.start()
    try:
        while not finished.wait(_POLL_S):
            pass
    except KeyboardInterrupt:
        while not finished.wait(_POLL_S):  # again until it ends: the job may not have been running yet
            sandbox.cancel_all()  # only this task's job: a worker runs one task at a time
        raise
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    result.isolation["ray"] = where_on_cluster()
    return result


def _sandbox_for(job: Job, preload: tuple[str, ...]) -> Sandbox:
    """This worker's sandbox with ``preload`` and the job's target module imported, unless that import
    fails: then the job's child imports it and the error is the job's own (``raised``), as locally."""
    with_target = tuple(dict.fromkeys((*preload, job.target.partition(":")[0])))
    try:
        return _worker_sandbox(with_target)
    except ForkServerError:
        return _worker_sandbox(preload)


@functools.lru_cache(maxsize=1)
def _worker_sandbox(preload: tuple[str, ...]) -> Sandbox:
    """The sandbox of this worker process, kept across the tasks Ray runs in it; a task that needs other
    preloads replaces it, and the one replaced stops its fork server once no task uses it."""
    return Sandbox(preload)


def where_on_cluster() -> dict:
    """Which node and worker ran a task, recorded with its result (an evaluation's environment keeps it)."""
    ray = _ray()
    return {"node_ip": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(),
            "worker_pid": os.getpid()}


class RayExecutor:
    """At most ``workers`` jobs at once on a local Ray cluster it starts, or any number on ``address``'s.

    ``gpus`` is what each job asks for (1 for a tier that trains on a GPU); it is requested only from
    a cluster that has GPUs, because a tier's device is "cuda when one is present" and a CPU cluster
    would otherwise leave every task waiting forever. ``preload``: what each worker's fork server
    imports besides the job's target module.
    """

    def __init__(self, workers: int | None = None, address: str | None = None, gpus: float = 0, *,
                 preload: Iterable[str] = ()):
        ray = _ray()
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {gpus}")
        self.workers = workers or os.cpu_count() or 1
        self.preload = tuple(preload)
        self.address = address or None
        if self.address is not None:
            _check_reachable(self.address)
        self.started_cluster = not ray.is_initialized()  # else this process is connected already: use that
        if self.started_cluster:
            self._init(ray)
        self.gpus = gpus if gpus and ray.cluster_resources().get("GPU", 0) > 0 else 0
        self._task = ray.remote(max_retries=0)(run_on_worker)
        self._lock = threading.Lock()
        self._outstanding: dict[Future, object] = {}  # our future -> its task's ObjectRef
        self._cancelled: set[Future] = set()  # outstanding futures whose tasks cancel_all has cancelled
        self._closed = False

    def _init(self, ray) -> None:
        options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address is None:
            options["num_cpus"] = self.workers
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise RayUnavailable(f"could not start or reach {where}: {exc}") from exc

    def submit(self, job: Job) -> Future[ProcessResult]:
        """Start ``job`` as a Ray task; the future resolves to its ProcessResult and never raises."""
        if self._closed:
            raise RuntimeError("cannot submit a job to a RayExecutor that has been shut down")
        ref = self._task.options(num_cpus=job.limits.threads, num_gpus=self.gpus).remote(job, self.preload)
        out: Future[ProcessResult] = Future()
        with self._lock:
            self._outstanding[out] = ref
        ref.future().add_done_callback(lambda task: self._settle(out, task))
        return out

    def _settle(self, out: Future, task: Future) -> None:
        with self._lock:
            self._outstanding.pop(out, None)
            cancelled = out in self._cancelled
            self._cancelled.discard(out)
        out.set_result(_as_result(task, cancelled))

    def cancel_all(self) -> int:
        """End every outstanding task (queued ones never start); returns how many there were."""
        with self._lock:
            pending = dict(self._outstanding)
            self._cancelled.update(pending)
        if not pending:
            return 0
        ray = _ray()
        for ref in pending.values():
            with contextlib.suppress(Exception):  # the task finished meanwhile; Ray has nothing to cancel
                ray.cancel(ref, force=False)
        _, stuck = wait_futures(pending, timeout=CANCEL_GRACE_S)
        for future in stuck:
            with contextlib.suppress(Exception):
                ray.cancel(pending[future], force=True)
        wait_futures(stuck, timeout=CANCEL_GRACE_S)
        return len(pending)

    def shutdown(self) -> None:
        """End every outstanding task, then stop the local cluster if this executor started it."""
        if self._closed:
            return
        self._closed = True
        self.cancel_all()
        if self.started_cluster:
            _ray().shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds where ``ray.init`` would wait minutes for a HOST:PORT that nothing answers on."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray looks for a running cluster itself, and says so quickly
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailable(f"no Ray cluster answers at {address}: {exc}") from None


def _as_result(task: Future, cancelled: bool) -> ProcessResult:
    """What a finished Ray task means as a job's ending; ``cancelled``: ``cancel_all`` ended it (a worker
    killed by a forced cancel reads as a crashed worker to Ray)."""
    ray = _ray()
    try:
        return task.result()
    except ray.exceptions.TaskCancelledError:
        return ProcessResult("cancelled", error="the Ray task was cancelled at the caller's request")
    except Exception as exc:  # whatever Ray raises, the job's future must resolve, or the loop would wait forever
        if cancelled:
            return ProcessResult("cancelled", error="the Ray task's worker was killed at the caller's request")
        # A dead worker or node, a lost object, or an error of the sandbox on the worker: not the job's doing.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return ProcessResult("sandbox-error", error=f"Ray: {type(exc).__name__}: {first_line}"[:500])
