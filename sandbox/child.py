"""The child's side: isolate this process, then call the target and report over a pipe.

``python -m sandbox.child FD`` reads the job as JSON on stdin. The parent has already given it a
new session, a scrubbed environment and a private working directory with stdout and stderr
going to files; here it adds rlimits and an empty network namespace before anything of the
target is imported. The value goes back over the inherited pipe FD as JSON lines (a "ready"
line, then one final line), so whatever the candidate prints cannot forge or corrupt it.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import signal
import sys
import time
import traceback

from sandbox.limits import Limits

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES",
             "TRITON_INTERPRET", "LITELLM_LOCAL_MODEL_COST_MAP")
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "SESSION")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def scrubbed_environment(environ: dict[str, str], home: str, threads: int) -> dict[str, str]:
    """Only allow-listed variables, never anything that looks like a secret."""
    keep = {k: v for k, v in environ.items()
            if k in _ENV_KEEP and not any(word in k.upper() for word in _SECRET_WORDS)}
    keep["HOME"] = home
    keep["TMPDIR"] = home
    keep.update({var: str(threads) for var in _THREAD_VARS})
    return keep


def _unshare_network() -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) == 0:
        return "namespace"
    first = ctypes.get_errno()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return "namespace (user)"
    return f"none: unshare failed ({os.strerror(first)}; user namespace: {os.strerror(ctypes.get_errno())})"


def _set_limits(limits: Limits) -> dict:
    applied = {}

    def cap(name: str, which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        value = min(value, hard) if hard != resource.RLIM_INFINITY else value
        resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))
        applied[name] = value

    cap("cpu_s", resource.RLIMIT_CPU, limits.cpu_limit_s)
    cap("file_size_bytes", resource.RLIMIT_FSIZE, limits.file_size_bytes)
    cap("core", resource.RLIMIT_CORE, 0)
    if limits.memory_bytes:
        cap("memory_bytes", resource.RLIMIT_AS, limits.memory_bytes)
    if limits.max_processes:
        cap("max_processes", resource.RLIMIT_NPROC, limits.max_processes)
        if os.geteuid() == 0:
            applied["max_processes"] = f"{limits.max_processes} (not enforced: running as root)"
    return applied


def child_main(target: str, payload: dict, limits: Limits, result_fd: int) -> None:
    """Isolate this process, call the target, report, exit."""
    out = os.fdopen(result_fd, "w", buffering=1)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-long output fails the write, not the process
    isolation = {"session": os.getsid(0) == os.getpid(), "env_scrubbed": True, "workdir": os.getcwd(),
                 "start_method": "spawn"}
    isolation["network"] = "allowed" if limits.network else _unshare_network()
    isolation["rlimits"] = _set_limits(limits)
    out.write(json.dumps({"kind": "ready", "t": time.time(), "isolation": isolation}) + "\n")
    try:
        module_name, _, function_name = target.partition(":")
        module = importlib.import_module(module_name)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(limits.threads)
        out.write(json.dumps({"kind": "imported", "t": time.time()}) + "\n")
        value = getattr(module, function_name)(payload)
        message = {"kind": "returned", "value": value}
    except BaseException as exc:  # everything the target does is reported, nothing escapes
        message = {"kind": "raised", "error": f"{type(exc).__name__}: {exc}"[:1000],
                   "memory": isinstance(exc, MemoryError) or "can't allocate memory" in str(exc),
                   "traceback": traceback.format_exc()[-8000:]}
    try:
        line = json.dumps(message)
    except (TypeError, ValueError) as exc:
        line = json.dumps({"kind": "raised", "error": f"target returned a value that is not JSON: {exc}",
                           "memory": False, "traceback": ""})
    out.write(line + "\n")
    out.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    child_main(job["target"], job["payload"], Limits(**job["limits"]), int(sys.argv[1]))


if __name__ == "__main__":
    main()
