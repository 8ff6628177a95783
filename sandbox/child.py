"""The job's own process: isolate it, then import and call the target, and report on a private pipe.

``main`` runs in a process just forked by the job's supervisor (see ``zygote``). Everything that
confines the process happens before the target's module is imported, so not even the
candidate's import-time code runs unconfined:

1. a new session (so the parent can kill the whole process group), death with the supervisor;
2. fds 0-2 re-pointed (stdin empty, stdout and stderr to the parent's capture pipes), every other
   inherited fd closed, the result pipe kept on fd 3 and not inherited across exec;
3. an empty network namespace (only a loopback that is down: connecting anywhere fails);
4. a private mount namespace: home directories hidden, everything but the working directory
   read-only (``sandbox.confine``);
5. rlimits: address space, CPU time, processes, file size, no core files;
6. the private working directory, the scrubbed environment, the parent's ``sys.path``;
7. as root, the capability bounding set cleared, then a switch to a user id of the job's own
   (which empties the other capability sets and makes the kernel enforce RLIMIT_NPROC), and
   no-new-privileges set:
   a root process holding CAP_SYS_RESOURCE could raise its rlimits again and one holding
   CAP_SYS_ADMIN could re-enter the host's network namespace;
8. Landlock (``sandbox.landlock``): reading only the runtime, the libraries and the product's own
   packages, writing only the working directory, no execution, no TCP;
9. a seccomp filter (``sandbox.syscalls``): no exec, no sockets, no ptrace, no namespaces;
10. torch's thread count: its threads start only now, so that each one is under Landlock, which
    binds only the thread that asks for it (and the threads and processes it starts afterwards).

Steps 3, 4, 8 and 9 depend on what the kernel offers; whatever it refuses is recorded in the
isolation facts as "not in force: <why>" (``missing_protections`` lists them), never skipped silently.

The result travels as JSON lines on fd 3 (a "ready" line, an "imported" line, one final line),
never on stdout: the candidate may print anything or write straight to fds 1 and 2.
"""

from __future__ import annotations

import ctypes
import faulthandler
import fcntl
import importlib
import json
import os
import pickle
import resource
import signal
import sys
import time
import traceback
from types import ModuleType
from typing import NoReturn

from sandbox.confine import confine_filesystem, drop_to_unprivileged

RESULT_FD = 3
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "PRIVATE")

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_info: dict = {}
NOT_IN_FORCE = "not in force"
# isolation key -> the protection it records; its value starts with NOT_IN_FORCE when the OS refused it
PROTECTIONS = {"network": "network namespace", "filesystem": "filesystem confinement", "landlock": "landlock",
               "seccomp": "seccomp", "capabilities": "privilege drop"}


def child_info() -> dict:
    """The isolation facts of the sandboxed process this is called in; empty outside one."""
    return dict(_info)


def missing_protections(isolation: dict) -> list[str]:
    """The protections ``isolation`` (a ``ProcessResult.isolation``) says were not in force, each with why.

    A job run with ``Limits(network=True)`` did not ask for the network namespace: that one is not listed.
    """
    missing = []
    for key, name in PROTECTIONS.items():
        fact = isolation.get(key)
        if fact is None:
            missing.append(f"{name}: not recorded")
        elif isinstance(fact, str) and fact.startswith(NOT_IN_FORCE):
            missing.append(f"{name}: {fact}")
        elif isinstance(fact, str) and ", but not: " in fact:
            missing.append(f"{name}: partly {NOT_IN_FORCE}: {fact}")
    return missing


def main(request: dict, stdout_fd: int, stderr_fd: int, result_fd: int) -> NoReturn:
    """Isolate this process, call ``request["target"]`` on the payload, report on fd 3, exit.

    Never returns: this runs on a forked copy of the supervisor's stack, which must not unwind.
    """
    code = 1
    try:
        _redirect(stdout_fd, stderr_fd, result_fd)
        try:
            _info.update(_isolate(request))
        except (OSError, ValueError) as exc:  # e.g. a limit above what this process may set
            _send({"sandbox_error": f"isolation failed: {type(exc).__name__}: {exc}"})
        else:
            _send({"ready": time.monotonic(), "isolation": _info})
            _send(_call(request["target"], request["payload"]))
            code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # a failure of this module: leave its traceback on stderr, exit non-zero
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # the target may have closed or broken its streams
                pass
        os._exit(code)


def _redirect(stdout_fd: int, stderr_fd: int, result_fd: int) -> None:
    # Move the three pipes above any fd number they could collide with before placing them.
    out, err, res = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (stdout_fd, stderr_fd, result_fd))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.dup2(res, RESULT_FD, inheritable=False)
    os.closerange(RESULT_FD + 1, os.sysconf("SC_OPEN_MAX"))
    sys.stdout.reconfigure(line_buffering=True)  # what was printed before a crash still arrives
    faulthandler.enable()  # a segfault leaves a Python traceback on stderr


def _isolate(request: dict) -> dict:
    limits = request["limits"]
    real_uid = os.getuid()
    os.setsid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    network = "allowed" if limits["network"] else _unshare_network()
    keep = [*request["sys_path"], sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)]
    filesystem = confine_filesystem(request["cwd"], keep, real_uid)
    rlimits = _set_rlimits(limits)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:] = request["sys_path"]
    sys.dont_write_bytecode = True
    importlib.invalidate_caches()
    info = {
        "network": network,
        "session": os.getsid(0) == os.getpid(),
        "env_scrubbed": not any(word in name.upper() for name in os.environ for word in SECRET_WORDS),
        "cwd": os.getcwd(),
        "rlimits": rlimits,
        "filesystem": filesystem,
        "capabilities": _drop_capabilities(request["cwd"]),
        "nproc": f"enforced per user: counts every process of uid {os.getuid()}",
        "threads": limits["threads"],
        "uid": real_uid,
    }
    _set_no_new_privs()
    _require_one_thread()
    # Imported by the fork server already (``runner``); else here, before Landlock forbids running ldconfig.
    from sandbox import landlock, syscalls

    info["landlock"] = _restrict_files(landlock, request)
    info["seccomp"] = _restrict_syscalls(syscalls, limits["network"], bool(limits.get("programs")))
    if "torch" in sys.modules:  # preloaded: its thread pool size was fixed in the fork server
        sys.modules["torch"].set_num_threads(limits["threads"])  # starts threads: only now, all of them confined
    return info


def _unshare_network() -> str:
    if _libc.unshare(_CLONE_NEWNET) == 0:
        return "namespace"
    plain = os.strerror(ctypes.get_errno())
    # Without CAP_SYS_ADMIN a user namespace grants it, inside that namespace only.
    if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        return "namespace (in a user namespace)"
    return f"{NOT_IN_FORCE}: unshare(CLONE_NEWNET) failed ({plain}), with a user namespace too " \
           f"({os.strerror(ctypes.get_errno())})"


def _set_rlimits(limits: dict) -> dict:
    cpu = max(1, int(limits["cpu_limit_s"]))
    wanted = {
        "as": (resource.RLIMIT_AS, limits["memory_bytes"]),
        "cpu": (resource.RLIMIT_CPU, cpu),
        "nproc": (resource.RLIMIT_NPROC, limits["max_processes"]),
        "fsize": (resource.RLIMIT_FSIZE, limits["file_size_bytes"]),
        "core": (resource.RLIMIT_CORE, 0),
    }
    applied = {}
    for name, (which, value) in wanted.items():
        if value is None:
            applied[name] = None
            continue
        _, hard = resource.getrlimit(which)
        # SIGXCPU at the soft limit, SIGKILL a second later if the child ignores it.
        soft_hard = (cpu, cpu + 1) if which == resource.RLIMIT_CPU else (value, value)
        if hard != resource.RLIM_INFINITY:  # without privilege a limit cannot rise above its hard value
            soft_hard = (min(soft_hard[0], hard), min(soft_hard[1], hard))
        resource.setrlimit(which, soft_hard)
        applied[name] = soft_hard[0]
    return applied


def _drop_capabilities(workdir: str) -> str:
    if os.geteuid() != 0:
        return "none in the host's user namespace"
    for cap in range(64):  # the bounding set: exec cannot bring them back
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: past the last capability this kernel knows
    user = drop_to_unprivileged(workdir)
    _set_no_new_privs()
    if os.getuid() == 0:  # root inside a user namespace: keep the uid, lose the capabilities
        header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
        empty = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable for capabilities 0-31 and 32-63
        if _libc.capset(header, empty) != 0:
            raise OSError(ctypes.get_errno(), "capset")
    return f"dropped ({user}, no new privileges)"


def _set_no_new_privs() -> None:
    """What Landlock and seccomp require of a process without CAP_SYS_ADMIN; exec can no longer gain privileges."""
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def _require_one_thread() -> None:
    """Landlock binds the calling thread (and what it starts): a thread already running would escape it."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise OSError(f"{threads} threads are running before Landlock; it would bind only one")


def _restrict_files(landlock: ModuleType, request: dict) -> str:
    allowed = landlock.allowed_paths(request["cwd"], request["sys_path"], target=request["target"])
    if request["limits"].get("hidden"):
        allowed = landlock.without(allowed, request["limits"]["hidden"])
    if request["limits"].get("programs"):
        allowed = landlock.with_programs(allowed, request["limits"]["programs"])
    try:
        return landlock.restrict(allowed, tcp=request["limits"]["network"])
    except landlock.LandlockUnavailable as exc:
        return f"{NOT_IN_FORCE}: the kernel has no Landlock ({exc.strerror})"


def _restrict_syscalls(syscalls: ModuleType, network: bool, programs: bool) -> str:
    try:
        return syscalls.install(network, programs)
    except syscalls.SeccompUnavailable as exc:
        return f"{NOT_IN_FORCE}: {exc}"


def _call(target: str, payload: bytes) -> dict:
    module_name, _, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        _send({"imported": time.monotonic()})
        value = function(pickle.loads(payload))
    except SystemExit:
        raise
    except BaseException as exc:  # the candidate's failure is the report, not ours
        return {"raised": {"type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                           "message": str(exc), "traceback": traceback.format_exc()}}
    if not isinstance(value, dict):
        return {"invalid": f"target returned {type(value).__name__}, expected a dict"}
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        return {"invalid": f"target returned a dict that is not JSON-serializable: {exc}"}
    return {"returned": value}


def _send(frame: dict) -> None:
    data = (json.dumps(frame) + "\n").encode()
    while data:
        data = data[os.write(RESULT_FD, data):]
