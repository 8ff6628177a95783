"""The parent's side: start an isolated child per job, enforce the wall clock, collect the result.

Each job is a fresh ``python -m sandbox.child`` process in a new session (so the whole group can
be killed), with a scrubbed environment, a private temporary working directory, stdout and
stderr in capped files, and the result on a dedicated pipe. Spawning a fresh interpreter costs
the import of whatever the target needs (about 2 s for torch) but shares nothing with the parent
or with earlier jobs. ``configure(preload=...)`` is accepted for callers that name modules they
will need; the spawn strategy imports them in the child.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict

from sandbox.child import scrubbed_environment
from sandbox.limits import Job, ProcessResult

_preload: tuple[str, ...] = ()


def configure(preload: tuple[str, ...] = ()) -> None:
    """Modules every child will import (kept for the record; children import them on start)."""
    global _preload
    _preload = tuple(preload)


def _read_capped(path: str, limit: int) -> tuple[str, bool]:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if size <= limit:
                return handle.read().decode("utf-8", "replace"), False
            head = handle.read(limit // 2)
            handle.seek(size - limit // 2)
            tail = handle.read()
    except OSError:
        return "", False
    skipped = size - len(head) - len(tail)
    text = head.decode("utf-8", "replace") + f"\n[... {skipped} bytes cut ...]\n" + tail.decode("utf-8", "replace")
    return text, True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child_environment(home: str, threads: int) -> dict[str, str]:
    env = scrubbed_environment(dict(os.environ), home, threads)
    # The child must import the project and the target exactly as the parent does.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(job: Job) -> ProcessResult:
    """Run ``job`` in a fresh isolated child; never raises for anything the child does."""
    limits = job.limits
    workdir = tempfile.mkdtemp(prefix="discover-sandbox-")
    home = os.path.join(workdir, "home")
    os.mkdir(home)
    read_fd, write_fd = os.pipe()
    messages: list[dict] = []

    def reader() -> None:
        with os.fdopen(read_fd, "r", errors="replace") as pipe:
            for line in pipe:
                try:
                    messages.append(json.loads(line))
                except json.JSONDecodeError:
                    messages.append({"kind": "garbled"})

    thread = threading.Thread(target=reader, daemon=True)
    spawned_at = time.time()
    started = time.perf_counter()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(workdir, "stdout"), "wb") as out, open(os.path.join(workdir, "stderr"), "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.child", str(write_fd)], stdin=subprocess.PIPE, stdout=out, stderr=err,
            cwd=home, env=_child_environment(home, limits.threads), start_new_session=True, pass_fds=(write_fd,),
        )
    os.close(write_fd)
    thread.start()
    timed_out = False
    try:
        process.stdin.write(json.dumps({"target": job.target, "payload": job.payload,
                                        "limits": asdict(limits)}).encode())
        process.stdin.close()
    except BrokenPipeError:
        pass
    try:
        process.wait(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(process.pid)  # on timeout, and to take down anything the child left behind
    process.wait()
    thread.join(5)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    stdout, cut_out = _read_capped(os.path.join(workdir, "stdout"), limits.output_bytes)
    stderr, cut_err = _read_capped(os.path.join(workdir, "stderr"), limits.output_bytes)
    shutil.rmtree(workdir, ignore_errors=True)

    ready = next((m for m in messages if m.get("kind") == "ready"), None)
    imported = next((m for m in messages if m.get("kind") == "imported"), None)
    final = next((m for m in reversed(messages) if m.get("kind") in ("returned", "raised")), None)
    code = process.returncode
    result = ProcessResult(
        outcome="exited", returncode=code, stdout=stdout, stderr=stderr, truncated=cut_out or cut_err,
        wall_s=round(wall, 3),
        cpu_s=round((usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime), 3),
        max_rss_bytes=usage.ru_maxrss * 1024,
        ready_s=round(ready["t"] - spawned_at, 3) if ready else None,
        imported_s=round(imported["t"] - spawned_at, 3) if imported else None,
        isolation=ready["isolation"] if ready else {},
        signal=signal.Signals(-code).name if code is not None and code < 0 else None,
    )
    if timed_out:
        result.outcome = "timeout"
        result.error = f"wall-clock limit of {limits.wall_s:g}s reached; process group killed"
    elif final is not None and final["kind"] == "returned":
        result.outcome, result.value = "returned", final["value"]
    elif final is not None:
        result.outcome = "memory" if final.get("memory") else "raised"
        result.error, result.traceback = final["error"], final.get("traceback", "")
    elif result.signal == "SIGXCPU":
        result.outcome, result.error = "cpu-limit", f"CPU-time limit of {limits.cpu_limit_s}s reached"
    elif result.signal is not None:
        result.outcome, result.error = "killed", f"killed by {result.signal}"
    else:
        result.error = f"exited with code {code} before returning a value"
    return result
