"""Functions the sandbox tests run in isolated children."""

import os
import signal
import subprocess
import sys
import time


def echo(payload):
    return {"payload": payload, "cwd": os.getcwd(), "pid": os.getpid()}


def environ(payload):
    with open("/proc/self/environ", "rb") as handle:
        initial = handle.read().decode(errors="replace")
    return {"environ": dict(os.environ), "initial": initial}


def spin(payload):
    while True:
        pass


def spawn_sleeper(payload):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(payload["pidfile"], "w") as handle:
        handle.write(str(child.pid))
    while True:
        time.sleep(1)


def alloc(payload):
    import torch

    torch.empty(50 * 2**30 // 4, dtype=torch.float32).fill_(1.0)
    return {}


def alloc_bytes(payload):
    return {"n": len(bytearray(50 * 2**30))}


def segv(payload):
    os.kill(os.getpid(), signal.SIGSEGV)


def exit3(payload):
    os._exit(3)


def raises(payload):
    raise ValueError("no good")


def shout(payload):
    chunk = "x" * 1_000_000 + "\n"
    for _ in range(payload.get("megabytes", 100)):
        sys.stdout.write(chunk)
    return {"done": True}


def connect(payload):
    import socket

    try:
        socket.create_connection(("127.0.0.1", payload.get("port", 9)), timeout=2).close()
    except OSError as exc:
        return {"connected": False, "error": str(exc)}
    return {"connected": True}
