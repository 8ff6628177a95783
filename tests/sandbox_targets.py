"""Functions the sandbox tests run as targets in isolated children (imported there by name)."""

import ctypes
import os
import pickle
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
    # A forked copy, since the job may not run programs; escape=True: a new session, so only the
    # supervisor's subreaper sweep can find it.
    pid = os.fork()
    if pid == 0:
        if escape:
            os.setsid()
        time.sleep(600)
        os._exit(0)
    return pid


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


def _attempt(action) -> dict:
    """What ``action()`` gave, or the OSError it raised: its type, errno and message."""
    try:
        return {"value": action()}
    except OSError as exc:
        return {"raised": type(exc).__name__, "errno": exc.errno, "message": str(exc)}


class Gadget:
    """A pickle whose loading runs ``command`` through os.system, as a hostile payload would."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def run_program(payload):
    """Try to run a shell that writes ``marker`` in the working directory, the way ``payload["how"]`` says."""
    command = "echo pwned > marker"
    how = payload["how"]
    if how == "subprocess":
        outcome = _attempt(lambda: subprocess.run(["/bin/sh", "-c", command], check=False).returncode)
    elif how == "os.system":
        outcome = _attempt(lambda: os.system(command))
    elif how == "execv":
        outcome = _attempt(lambda: os.execv("/bin/sh", ["sh", "-c", command]))
    elif how == "collect_env":
        from torch.utils import collect_env

        outcome = _attempt(lambda: collect_env.run(command))
    elif how == "pickle":
        outcome = _attempt(lambda: pickle.loads(payload["gadget"]))
    else:
        raise ValueError(how)
    return {**outcome, "marker": os.path.exists("marker")}


def open_socket(payload):
    family = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "unix": socket.AF_UNIX}[payload["family"]]
    if payload.get("pair"):
        return _attempt(lambda: [s.close() for s in socket.socketpair(family)] and "opened")
    return _attempt(lambda: socket.socket(family, socket.SOCK_STREAM).close() or "opened")


def read_file(payload):
    """Read ``payload["path"]`` (a file, or a directory's listing)."""
    path = payload["path"]
    if os.path.isdir(path):
        return _attempt(lambda: sorted(os.listdir(path)))
    return _attempt(lambda: open(path, errors="replace").read())


def write_file_at(payload):
    def write():
        with open(payload["path"], "w") as handle:
            return handle.write("planted")

    return _attempt(write)


def _libc_call(name: str, *args) -> dict:
    libc = ctypes.CDLL(None, use_errno=True)
    function = getattr(libc, name)
    function.restype = ctypes.c_long
    result = function(*(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    if result == 0 and name == "syscall" and args[0] == _SYS_CLONE:
        os._exit(0)  # a clone that got through: its child must not run the rest of the target
    errno = ctypes.get_errno() if result == -1 else None
    return {"result": result, "errno": errno}


_SYS_CLONE, _SYS_CLONE3 = 56, 435
_PTRACE_ATTACH, _PTRACE_DETACH = 16, 17
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def reach_process(payload):
    """ptrace, and read memory of, process ``payload["pid"]``."""
    pid = payload["pid"]
    traced = _libc_call("ptrace", _PTRACE_ATTACH, pid, 0, 0)
    if traced["result"] == 0:
        _libc_call("ptrace", _PTRACE_DETACH, pid, 0, 0)
    buffer = ctypes.create_string_buffer(64)
    local = _IoVec(ctypes.cast(buffer, ctypes.c_void_p), 64)
    remote = _IoVec(ctypes.c_void_p(payload["address"]), 64)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    read = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return {"ptrace": traced, "process_vm_readv": {"result": read, "errno": ctypes.get_errno() if read < 0 else None},
            "read": buffer.raw.decode(errors="replace") if read > 0 else ""}


def new_namespace(payload):
    """unshare(2) a user and a network namespace, clone(2) into one, and call clone3(2)."""
    return {"unshare": _libc_call("unshare", _CLONE_NEWUSER | _CLONE_NEWNET),
            "clone": _libc_call("syscall", _SYS_CLONE, _CLONE_NEWNET | signal.SIGCHLD, 0, 0, 0, 0),
            "clone3": _libc_call("syscall", _SYS_CLONE3, 0, 0)}


def real_work(payload):
    """What designs do, lazy imports included: numpy, torch with threads, the flop counter, an interpreted
    Triton kernel, a thread, a fork, a temporary file."""
    import tempfile
    import threading

    import numpy as np
    import torch
    import triton
    import triton.language as tl
    from torch.utils.flop_counter import FlopCounterMode

    @triton.jit
    def add(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask),
                 mask=mask)

    x = torch.arange(100, dtype=torch.float32)
    out = torch.empty_like(x)
    add[(4,)](x, x, out, 100, BLOCK=32)
    with FlopCounterMode(display=False) as counter:
        torch.nn.Linear(8, 8)(torch.randn(2, 8))
    product = torch.randn(256, 256) @ torch.randn(256, 256)  # intra-op threads
    seen = []
    thread = threading.Thread(target=lambda: seen.append(threading.get_ident()))
    thread.start()
    thread.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    with tempfile.NamedTemporaryFile("w", delete=False) as handle:
        handle.write("scratch")
    return {"triton": bool(torch.equal(out, 2 * x)), "flops": counter.get_total_flops(),
            "numpy": float(np.linalg.norm(np.ones(4))), "product": list(product.shape), "thread": len(seen),
            "fork": os.waitstatus_to_exitcode(status), "temp": handle.name.startswith(os.environ["TMPDIR"]),
            "interpreted": os.environ.get("TRITON_INTERPRET"), "torch_threads": torch.get_num_threads()}


def run_programs(payload):
    """Run each program of ``payload["programs"]``: its exit code, or the error that stopped it."""
    outcome = {}
    for program in payload["programs"]:
        try:
            outcome[program] = subprocess.run([program], capture_output=True, timeout=20).returncode
        except OSError as exc:
            outcome[program] = f"{type(exc).__name__}: {exc.strerror}"
    return outcome
