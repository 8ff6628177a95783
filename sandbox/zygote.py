"""The fork server: a clean process with the heavy modules imported once, forking one job at a time.

Importing torch costs about 2 s; forking a process that has already imported it costs a few
milliseconds. So each ``runner.Sandbox`` starts one fork server (``ForkServer``), with an
environment that is already scrubbed and ``sys.path`` taken from the parent, which imports the
preload modules and then waits. Per job it forks a supervisor, and the supervisor forks the job's
child::

    parent ──fds over a unix socket──▶ fork server ──fork──▶ supervisor ──fork──▶ child (sandbox.child)

This is our own zygote rather than ``multiprocessing``'s forkserver because that one inherits the
caller's environment (a secret in the parent would sit in /proc/<pid>/environ of every child),
reaps the children itself (no exit status with rusage), and is one global per interpreter.

The supervisor owns the job's lifetime. It is a child subreaper, so every orphan the job leaves
is re-parented to it; it enforces the wall clock, reaps the child with ``wait4`` (status and
rusage), then kills the child's process group and every remaining descendant, and only then
reports. So when the parent reads the report, no process of the job is left. If the parent
closes its end (it was killed, or ``Sandbox.cancel_all``), the supervisor kills the job at once.

Requires Linux >= 5.3 (pidfd). The fork server must stay single-threaded: it is started with one
thread for OpenMP/BLAS so that importing numpy or torch starts no thread pool before a fork.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import NoReturn

from sandbox import child

_BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
         "from sandbox.zygote import serve; serve(int(sys.argv[2]), json.loads(sys.argv[3]))")
_PR_SET_CHILD_SUBREAPER = 36
_LENGTH = struct.Struct(">Q")


class ForkServerError(RuntimeError):
    """The fork server could not start (usually: a preload module failed to import)."""


class ForkServer:
    """The parent's handle on one fork server process."""

    def __init__(self, preload: tuple[str, ...], env: dict[str, str], sys_path: list[str],
                 start_timeout_s: float = 120.0):
        self.preload = preload
        self._sock, theirs = socket.socketpair()
        self._lock = threading.Lock()
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps(sys_path), str(theirs.fileno()), json.dumps(list(preload))],
            env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            pass_fds=(theirs.fileno(),), start_new_session=True,  # a terminal's Ctrl-C is the parent's to handle
        )
        theirs.close()
        # Stopped by close(), or when this handle is garbage or the interpreter exits, whichever comes first.
        self._stop = weakref.finalize(self, _stop, self._sock, self._process, self._log)
        self._sock.settimeout(start_timeout_s)
        try:
            ready = self._sock.recv(1)
        except TimeoutError:
            ready = b""
        if ready != b"R":
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            log = self.log()  # read before close() releases the log file
            self.close()
            raise ForkServerError(f"fork server with preload {list(preload)} did not start: {log[-2000:]}")
        self._sock.settimeout(None)

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def exited(self, within_s: float) -> bool:
        """Whether the server is gone, waiting up to ``within_s`` for one that is dying."""
        try:
            self._process.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def spawn(self, conn: socket.socket, stdout_fd: int, stderr_fd: int, result_fd: int) -> None:
        """Hand one job's fds to the server; the supervisor it forks reads the request from ``conn``."""
        with self._lock:
            socket.send_fds(self._sock, [b"J"], [conn.fileno(), stdout_fd, stderr_fd, result_fd])

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        """Stop the server (it exits when its socket closes) and reap it; running jobs' supervisors are not touched."""
        self._stop()


def _stop(sock: socket.socket, process: subprocess.Popen, log) -> None:
    sock.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def send_request(conn: socket.socket, request: dict) -> None:
    blob = pickle.dumps(request)
    conn.sendall(_LENGTH.pack(len(blob)) + blob)


def serve(ctrl_fd: int, preload: list[str]) -> None:
    """The fork server's main loop: import ``preload``, then fork a supervisor per received job."""
    for name in preload:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished supervisors
    ctrl = socket.socket(fileno=ctrl_fd)
    ctrl.sendall(b"R")
    while True:
        message, fds, _, _ = socket.recv_fds(ctrl, 1, 4)
        if not message:
            return  # the parent closed its end or died
        if os.fork() == 0:
            ctrl.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _supervise(*fds)
        for fd in fds:
            os.close(fd)


def _supervise(conn_fd: int, stdout_fd: int, stderr_fd: int, result_fd: int) -> NoReturn:
    code = 1
    try:
        conn = socket.socket(fileno=conn_fd)
        request = pickle.loads(_recv_exact(conn, _LENGTH.unpack(_recv_exact(conn, _LENGTH.size))[0]))
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            conn.close()
            child.main(request, stdout_fd, stderr_fd, result_fd)
        for fd in (stdout_fd, stderr_fd, result_fd):
            os.close(fd)
        _report(conn, {"pid": pid})
        killed_by = _wait(pid, conn, request["limits"]["wall_s"])
        _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - started
        _kill_descendants(pid)
        _report(conn, {"status": status, "killed_by": killed_by, "wall_s": wall,
                       "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_bytes": usage.ru_maxrss * 1024})
        code = 0
    finally:
        os._exit(code)


def _wait(pid: int, conn: socket.socket, wall_s: float) -> str | None:
    """Wait for the child to end; kill it on the wall clock or when the parent lets go."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd, conn], [], [], wall_s)
    finally:
        os.close(pidfd)
    if pidfd in ready:
        return None
    _kill_job(pid)
    return "cancelled" if ready else "timeout"


def _kill_job(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)  # by pid too: the child may not have called setsid yet
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _kill_descendants(pgid: int) -> None:
    """Kill the job's process group, then every process re-parented to this subreaper, until none is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    while pids := _children():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as handle:
            return [int(pid) for pid in handle.read().split()]
    except FileNotFoundError:  # kernel without CONFIG_PROC_CHILDREN: scan every process
        found = []
        for entry in os.listdir("/proc"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(entry))
        return found


def _report(conn: socket.socket, message: dict) -> None:
    # A parent that went away has nobody to tell; the job is still killed and reaped.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        conn.sendall((json.dumps(message) + "\n").encode())


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(min(n - len(data), 1 << 20))
        if not chunk:
            raise EOFError(f"request cut short: {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)
