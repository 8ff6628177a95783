"""What a sandboxed job is, what it may use, and how it ended."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

OUTCOMES: dict[str, str] = {
    "returned": "the target returned a JSON-serializable dict (in ``value``)",
    "raised": "the target (or importing its module) raised; ``error`` and ``traceback`` say what",
    "memory": "an allocation failed under the address-space limit (MemoryError or torch's allocator)",
    "invalid-value": "the target returned something that is not a JSON-serializable dict",
    "timeout": "the wall-clock limit passed; the process group and every descendant were killed",
    "cpu-limit": "the CPU-time limit passed (SIGXCPU, then SIGKILL)",
    "killed": "the child died from a signal (``signal`` names it; SIGKILL may be the kernel's OOM killer)",
    "exited": "the child exited (``returncode``) without returning a value",
    "cancelled": "the caller killed the job (``cancel_all``)",
    "sandbox-error": "the sandbox itself failed (isolation could not be applied, supervisor lost)",
}


@dataclass(frozen=True)
class Limits:
    """Resources one job may use. ``None`` leaves that limit unset."""

    wall_s: float = 300.0                # wall-clock timeout; on expiry the whole process group is SIGKILLed
    cpu_s: float | None = None           # RLIMIT_CPU; None means wall_s * 1.5, rounded up
    memory_bytes: int | None = 6 << 30   # RLIMIT_AS; CUDA reserves far more address space, so use None on GPU
    max_processes: int | None = 256      # RLIMIT_NPROC; not enforced for root (``isolation["nproc"]`` says)
    file_size_bytes: int = 64 << 20      # RLIMIT_FSIZE: largest file the child may write
    output_bytes: int = 256 << 10        # stdout and stderr are each kept up to this (head and tail), then cut
    threads: int = 1                     # OMP/MKL/OpenBLAS variables and torch.set_num_threads in the child
    network: bool = False                # False: an empty network namespace where the OS allows
    hidden: tuple[str, ...] = ()         # files or folders the job may not read, even inside an allowed tree
    programs: tuple[str, ...] = ()       # the only programs the job may execute (files, or folders of them);
                                         # empty: none at all (a GPU compiler's tool chain is the use)

    def __post_init__(self) -> None:
        if not self.wall_s > 0:
            raise ValueError(f"wall_s must be > 0, got {self.wall_s}")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(f"cpu_s must be > 0 or None, got {self.cpu_s}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.output_bytes < 0 or self.file_size_bytes < 0:
            raise ValueError("output_bytes and file_size_bytes must be >= 0")

    @property
    def cpu_limit_s(self) -> int:
        """The RLIMIT_CPU soft limit in whole seconds."""
        return math.ceil(self.cpu_s if self.cpu_s is not None else self.wall_s * 1.5)


@dataclass(frozen=True)
class Job:
    """Call ``target`` ("package.module:function") as ``function(payload)`` in an isolated child.

    The payload is pickled to the child (trusted to untrusted); the function must return a
    JSON-serializable dict, which comes back as JSON (nothing from the child is unpickled).
    """

    target: str
    payload: dict = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        module, sep, function = self.target.partition(":")
        if not (module and sep and function):
            raise ValueError(f"target must look like 'package.module:function', got {self.target!r}")


@dataclass
class ProcessResult:
    """How one job ended. ``outcome`` is a key of ``OUTCOMES``."""

    outcome: str
    value: dict | None = None        # what the target returned (None unless outcome == "returned")
    error: str | None = None         # one line: exception, signal, exit code or limit
    traceback: str = ""              # when raised
    returncode: int | None = None    # exit code, or None when killed by a signal
    signal: str | None = None        # e.g. "SIGSEGV"
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False          # stdout or stderr was longer than output_bytes
    wall_s: float = 0.0              # child start to child end
    cpu_s: float = 0.0               # user + system time of the child (and the descendants it waited for)
    max_rss_bytes: int = 0           # peak resident set, pages shared with the fork server included
    ready_s: float | None = None     # spawn request -> child isolated, about to import the target
    imported_s: float | None = None  # spawn request -> target imported, about to be called
    isolation: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "returned"
