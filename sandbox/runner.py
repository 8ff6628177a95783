"""The parent's side: hand a job to a fork server, collect its output and result, name the outcome.

A ``Sandbox`` owns one fork server (``zygote``), started with the modules it preloads, and the
jobs it is running. ``Sandbox.run(job)`` gives the job a fresh temporary directory and three pipes
(stdout, stderr, result), passes them with a socket to the fork server, sends the request over
that socket, and then reads everything until the job's supervisor reports that the child and all
its descendants are gone. Made once and reused, a sandbox makes a job's start-up cost a fork
instead of an import of torch; ``run(job, preload)`` is the one-off form, with a sandbox of its own.

``run`` never raises for anything the child does; every ending is a ``ProcessResult`` whose
``outcome`` is one of ``limits.OUTCOMES``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict

from sandbox.child import SECRET_WORDS
from sandbox.limits import Job, ProcessResult
from sandbox.zygote import ForkServer, send_request

_ENV_KEEP = frozenset({"PATH", "LANG", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES",
                       "CUDA_HOME", "LD_LIBRARY_PATH"})  # the last two: what GPU libraries need to load
_ENV_KEEP_PREFIXES = ("LC_", "TRITON_", "TORCH_")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS")
_OOM_MARKERS = ("can't allocate memory", "cannot allocate memory", "out of memory", "bad_alloc")
_MAX_RESULT_BYTES = 64 << 20
_REPORT_GRACE_S = 30.0  # the supervisor reports at the deadline; past this margin it is presumed lost
_DRAIN_S = 2.0  # after the report, how long output may still trickle in
# What every fork server imports after its preload: the seccomp filter (finding libseccomp runs ldconfig,
# which no job may run) and the allow-list of the code its jobs may read, computed once for all of them.
_SERVER_IMPORTS = ("sandbox.syscalls", "sandbox.landlock")


def scrubbed_environment(environ: Mapping[str, str], home: str, threads: int) -> dict[str, str]:
    """Allow-listed variables only, never one whose name looks like a secret; HOME and TMPDIR -> ``home``."""
    env = {name: value for name, value in environ.items()
           if (name in _ENV_KEEP or name.startswith(_ENV_KEEP_PREFIXES))
           and not any(word in name.upper() for word in SECRET_WORDS)}
    env.update(HOME=home, TMPDIR=home, PYTHONDONTWRITEBYTECODE="1")
    env.update({name: str(threads) for name in _THREAD_VARS})
    return env


def run(job: Job, preload: Iterable[str] = ()) -> ProcessResult:
    """Run ``job`` in a sandbox of its own, whose fork server imports ``preload`` and is stopped afterwards.

    Raises ``ForkServerError`` if a preload module fails to import; a ``Sandbox`` kept for many jobs
    pays that start-up once.
    """
    with Sandbox(preload) as sandbox:
        return sandbox.run(job)


class Sandbox:
    """One fork server with ``preload`` imported, and the table of the jobs it is running.

    The server starts here (``ForkServerError`` if a preload module fails to import) and is replaced
    whenever it dies. ``run`` may be called from many threads at once; ``cancel_all`` ends every job
    running now; ``close`` stops the server, after which ``run`` raises. A server never closed stops
    when its sandbox is garbage or the interpreter exits.
    """

    def __init__(self, preload: Iterable[str] = ()):
        self.preload = tuple(preload)
        self._lock = threading.Lock()
        self._running: dict[int, socket.socket] = {}  # id(conn) -> the job's supervisor socket
        self._cancelled: set[int] = set()  # ids in _running that cancel_all has let go of
        self._server: ForkServer | None = _start(self.preload)

    @property
    def pid(self) -> int | None:
        """The fork server's process id; None once the sandbox is closed."""
        server = self._server
        return None if server is None else server.pid

    def run(self, job: Job, wanted: Callable[[], bool] = lambda: True) -> ProcessResult:
        """Run ``job`` in a fresh isolated child forked by this sandbox's server and say how it ended.

        ``wanted()`` is asked under the lock ``cancel_all`` takes, just before the job is listed as
        running: a caller that withdrew the job in between (an executor's ``cancel_all`` while the job
        waited for a thread) gets "cancelled" and nothing starts."""
        limits = job.limits
        started = time.monotonic()
        payload = pickle.dumps(job.payload)  # an unpicklable payload is the caller's mistake: raise here
        workdir = tempfile.mkdtemp(prefix="sandbox-")
        try:
            request = {"target": job.target, "payload": payload, "cwd": workdir, "sys_path": _sys_path(),
                       "env": scrubbed_environment(os.environ, workdir, limits.threads),
                       "limits": {**asdict(limits), "cpu_limit_s": limits.cpu_limit_s}}
            for _ in range(2):
                result = self._attempt(request, job, started, wanted)
                if result is not None:
                    return result
            return ProcessResult("sandbox-error", error="the fork server died twice before the job could start")
        finally:
            # Every process of the job is dead by now; a leftover could only come from a lost supervisor.
            shutil.rmtree(workdir, ignore_errors=True)

    def cancel_all(self) -> int:
        """Kill every running job (its supervisor kills the group and reports "cancelled"); returns how many."""
        with self._lock:
            conns = list(self._running.values())
            self._cancelled.update(self._running)
        for conn in conns:
            with contextlib.suppress(OSError):  # that job has just finished and closed it
                conn.shutdown(socket.SHUT_WR)
        return len(conns)

    def close(self) -> None:
        """Stop the fork server and reap it; jobs already running are not touched (``cancel_all`` ends them)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _attempt(self, request: dict, job: Job, started: float,
                 wanted: Callable[[], bool]) -> ProcessResult | None:
        """One try; None when the fork server died before the job started (it is then replaced)."""
        server = self._live_server()
        # Listed before the spawn, so that a cancel_all during the spawn still reaches the job: a
        # supervisor whose socket is let go of before the request reads none and exits, and the job
        # reads "cancelled" below.
        with self._lock:
            if not wanted():
                return ProcessResult("cancelled", error="withdrawn at the caller's request before it started")
            conn, theirs = socket.socketpair()
            self._running[id(conn)] = conn
        (out_r, out_w), (err_r, err_w), (res_r, res_w) = os.pipe(), os.pipe(), os.pipe()
        seen = None
        try:
            try:
                server.spawn(theirs, out_w, err_w, res_w)
                spawned = True
            except OSError:  # the fork server's socket is broken: it died
                spawned = False
            finally:
                for fd in (out_w, err_w, res_w):
                    os.close(fd)
                theirs.close()
            if spawned:
                with contextlib.suppress(OSError):  # a dead server or supervisor shows up as a missing report
                    send_request(conn, request)
                seen = _collect(conn, out_r, err_r, res_r, job.limits)
            else:
                for fd in (out_r, err_r, res_r):
                    os.close(fd)
        finally:
            with self._lock:
                self._running.pop(id(conn), None)
                cancelled = id(conn) in self._cancelled
                self._cancelled.discard(id(conn))
            conn.close()  # on an exception too: the supervisor then kills the job at once
        if seen is not None and "pid" in seen.reports:
            return _result(job, started, seen, self.preload)
        if cancelled:
            return ProcessResult("cancelled", error="killed at the caller's request before it started")
        if server.exited(within_s=2.0):
            self._replace(server)
            return None
        return ProcessResult("sandbox-error", error=seen.lost if seen else "the fork server refused the job")

    def _live_server(self) -> ForkServer:
        with self._lock:
            if self._server is None:
                raise RuntimeError("cannot run a job in a sandbox that has been closed")
            if not self._server.alive():
                self._server.close()
                self._server = _start(self.preload)
            return self._server

    def _replace(self, dead: ForkServer) -> None:
        with self._lock:
            if self._server is dead:  # not closed meanwhile, nor replaced by another job's thread
                dead.close()
                self._server = _start(self.preload)


def _start(preload: tuple[str, ...]) -> ForkServer:
    env = scrubbed_environment(os.environ, tempfile.gettempdir(), threads=1)
    return ForkServer((*preload, *_SERVER_IMPORTS), env, _sys_path())


def _sys_path() -> list[str]:
    # '' means the parent's cwd, which is not the child's.
    return [os.path.abspath(p) if p == "" else p for p in sys.path]


class _Capture:
    """The first and last ``limit // 2`` bytes of a stream, and how many were dropped in between."""

    def __init__(self, limit: int):
        self.head_limit, self.tail_limit = limit - limit // 2, limit // 2
        self.head, self.tail = bytearray(), bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.tail_limit:
            self.tail += data
            if len(self.tail) > self.tail_limit:
                del self.tail[:len(self.tail) - self.tail_limit]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        cut = f"\n[... {self.dropped} bytes cut ...]\n" if self.dropped else ""
        return (bytes(self.head) + cut.encode() + bytes(self.tail)).decode("utf-8", "replace")


class _Seen:
    """Everything the parent got from one job."""

    def __init__(self, output_bytes: int):
        self.stdout, self.stderr = _Capture(output_bytes), _Capture(output_bytes)
        self.result = bytearray()
        self.result_overflow = False
        self.reports: dict = {}  # the supervisor's messages merged: pid, then status and usage
        self.lost: str | None = None


def _collect(conn: socket.socket, out_r: int, err_r: int, res_r: int, limits) -> _Seen:
    seen = _Seen(limits.output_bytes)
    pending = bytearray()  # supervisor messages are JSON lines
    deadline = time.monotonic() + limits.wall_s + _REPORT_GRACE_S
    with selectors.DefaultSelector() as selector:
        for fileobj in (conn, out_r, err_r, res_r):
            selector.register(fileobj, selectors.EVENT_READ)
        while selector.get_map():
            reported = "status" in seen.reports
            events = selector.select(max(0.0, deadline - time.monotonic()))
            if not events:
                if not reported:
                    seen.lost = f"no report from the supervisor within {limits.wall_s + _REPORT_GRACE_S:g} s"
                break
            for key, _ in events:
                data = _read(key.fileobj)
                if not data:
                    selector.unregister(key.fileobj)
                elif key.fileobj is conn:
                    pending += data
                    *lines, rest = pending.split(b"\n")
                    pending = bytearray(rest)
                    for line in lines:
                        seen.reports.update(json.loads(line))
                elif key.fileobj == out_r:
                    seen.stdout.feed(data)
                elif key.fileobj == err_r:
                    seen.stderr.feed(data)
                elif len(seen.result) + len(data) <= _MAX_RESULT_BYTES:
                    seen.result += data
                else:
                    seen.result_overflow = True
            if not reported and "status" in seen.reports:
                deadline = time.monotonic() + _DRAIN_S
    for fd in (out_r, err_r, res_r):
        os.close(fd)
    if "status" not in seen.reports:
        seen.lost = seen.lost or "the supervisor ended without a report"
        if "pid" in seen.reports:  # make sure nothing of the job outlives a lost supervisor
            with contextlib.suppress(ProcessLookupError):
                os.killpg(seen.reports["pid"], signal.SIGKILL)
    return seen


def _read(source: socket.socket | int) -> bytes:
    if isinstance(source, socket.socket):
        try:
            return source.recv(1 << 16)
        except ConnectionResetError:  # the fork server died holding the supervisor's end
            return b""
    return os.read(source, 1 << 16)


def _frames(raw: bytes) -> tuple[dict, list[str]]:
    """The child's JSON-line frames merged into one dict, and the lines that were not frames."""
    frames, garbled = {}, []
    for line in raw.split(b"\n"):
        if not line:
            continue
        try:
            frame = json.loads(line)
        except ValueError:
            frame = None
        if isinstance(frame, dict):
            frames.update(frame)
        else:
            garbled.append(line[:200].decode("utf-8", "replace"))
    return frames, garbled


def _result(job: Job, started: float, seen: _Seen, preload: tuple[str, ...]) -> ProcessResult:
    frames, garbled = _frames(bytes(seen.result))
    report = seen.reports
    result = ProcessResult(
        outcome="sandbox-error", stdout=seen.stdout.text(), stderr=seen.stderr.text(),
        truncated=bool(seen.stdout.dropped or seen.stderr.dropped),
        wall_s=round(report.get("wall_s", 0.0), 3), cpu_s=round(report.get("cpu_s", 0.0), 3),
        max_rss_bytes=report.get("max_rss_bytes", 0),
        ready_s=round(frames["ready"] - started, 4) if "ready" in frames else None,
        imported_s=round(frames["imported"] - started, 4) if "imported" in frames else None,
        isolation={**frames.get("isolation", {}), "start_method": "zygote (preforked fork server)",
                   "preload": list(preload)},
    )
    if "status" in report:
        status = report["status"]
        if os.WIFSIGNALED(status):
            result.signal = _signal_name(os.WTERMSIG(status))
        else:
            result.returncode = os.waitstatus_to_exitcode(status)
    result.outcome, result.error = _outcome(job, seen, frames, garbled, result)
    if result.outcome == "returned":
        result.value = frames["returned"]
    elif "raised" in frames:
        result.traceback = frames["raised"]["traceback"]
    return result


def _outcome(job: Job, seen: _Seen, frames: dict, garbled: list[str], result: ProcessResult) -> tuple[str, str | None]:
    limits, killed_by = job.limits, seen.reports.get("killed_by")
    if seen.lost:
        return "sandbox-error", seen.lost
    if seen.result_overflow:
        return "invalid-value", f"the result was larger than {_MAX_RESULT_BYTES} bytes"
    if "returned" in frames:
        return "returned", None
    if killed_by == "timeout":
        return "timeout", f"wall-clock limit of {limits.wall_s:g} s reached; process group killed"
    if killed_by == "cancelled":
        return "cancelled", "killed at the caller's request"
    if "raised" in frames:
        raised = frames["raised"]
        kind = raised["type"].removeprefix("builtins.")
        message = raised["message"].strip().splitlines()[0] if raised["message"].strip() else ""
        error = f"{kind}: {message}"[:500] if message else kind
        oom = kind.rsplit(".", 1)[-1] in ("MemoryError", "OutOfMemoryError") or any(
            marker in raised["message"].lower() for marker in _OOM_MARKERS)
        return ("memory" if oom else "raised"), error
    if "invalid" in frames:
        return "invalid-value", frames["invalid"]
    if "sandbox_error" in frames:
        return "sandbox-error", frames["sandbox_error"]
    note = f"; result channel held non-frames: {garbled[0]!r}" if garbled else ""
    if result.signal == "SIGXCPU" or (result.signal == "SIGKILL" and result.cpu_s >= limits.cpu_limit_s):
        return "cpu-limit", f"CPU-time limit of {limits.cpu_limit_s} s reached ({result.signal}){note}"
    if result.signal is not None:
        hint = " (the kernel's OOM killer?)" if result.signal == "SIGKILL" else ""
        return "killed", f"killed by {result.signal}{hint}{note}"
    return "exited", f"exited with code {result.returncode} without returning a value{note}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
