"""Functions the sandbox tests run as targets in isolated children (imported there by name)."""

import os
import resource
import signal
import socket
import subprocess
import sys
import time

import sandbox


def echo(payload):
    return {"payload": payload, "pid": os.getpid(), "cwd": os.getcwd(), "info": sandbox.child_info()}


def raises(payload):
    raise ValueError("no good")


def environment(payload):
    try:
        with open("/proc/self/environ", "rb") as handle:
            initial = handle.read().decode(errors="replace")
    except PermissionError:  # a process that switched user is not dumpable: only root outside may read it
        initial = None
    return {"environ": dict(os.environ), "initial": initial}


def threads(payload):
    import torch

    return {"torch": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}


def spin(payload):
    while True:
        pass


def _sleeper(escape: bool) -> int:
    # escape=True: a new session, so only the supervisor's subreaper sweep can find it.
    return subprocess.Popen(["sleep", "600"], start_new_session=escape).pid


def sleepers_then_hang(payload):
    print(_sleeper(escape=False), _sleeper(escape=True), flush=True)
    while True:
        time.sleep(1)


def sleepers_then_return(payload):
    return {"pids": [_sleeper(escape=False), _sleeper(escape=True)]}


def _require_address_space_limit() -> None:
    # Never allocate 50 GB without the limit: fail loudly instead.
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > 16 << 30:
        raise AssertionError(f"RLIMIT_AS is not set (got {soft}); refusing to allocate")


def allocate_torch(payload):
    _require_address_space_limit()
    import torch

    return {"numel": torch.empty(50 << 30, dtype=torch.uint8).numel()}


def allocate_bytes(payload):
    _require_address_space_limit()
    return {"n": len(bytearray(50 << 30))}


def connect(payload):
    try:
        socket.create_connection(("127.0.0.1", payload["port"]), timeout=2).close()
    except OSError as exc:
        return {"connected": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"connected": True}


def shout(payload):
    chunk = "x" * (1 << 20) + "\n"
    for _ in range(payload["megabytes"]):
        sys.stdout.write(chunk)
    sys.stderr.write("last words\n")
    return {"done": True}


def scribble(payload):
    sys.stdout.write("garbage on stdout\n")
    sys.stdout.flush()
    os.write(1, b'{"returned": {"forged": true}}\n\xff\xfe not utf-8\n')
    os.write(2, b"\x00\x01 binary on stderr\n")
    sys.stdout.close()
    return {"genuine": True}


def write_file(payload):
    with open("scratch.txt", "w") as handle:
        handle.write("hello")
    return {"cwd": os.getcwd(), "home": os.environ["HOME"], "files": os.listdir(".")}


def exit3(payload):
    os._exit(3)


def segfault(payload):
    os.kill(os.getpid(), signal.SIGSEGV)


def not_a_dict(payload):
    return [1, 2, 3]


def unserializable(payload):
    return {"value": object()}


def raise_limits(payload):
    try:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError) as exc:
        return {"raised": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"raised": True}
